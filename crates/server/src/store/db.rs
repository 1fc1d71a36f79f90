//! One connection type for both back ends, so that each query of the
//! store is written once. The SQL is the subset SQLite and PostgreSQL
//! share: `?N` placeholders (sent to PostgreSQL as `$N`), integers for
//! times and flags (BIGINT on PostgreSQL), text, and bytes. The few
//! statements that differ name both texts ([`Db::pick`]).

use std::cell::RefCell;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

pub(super) use super::pg_conn::PgConn;
use super::StoreError;

/// A connection as the store's queries see it.
pub(super) enum Db<'c> {
    /// SQLite.
    Lite(&'c rusqlite::Connection),
    /// PostgreSQL (its client needs `&mut` for every call).
    Pg(&'c RefCell<PgConn>),
}

/// A row as the store's mapping functions see it.
pub(super) enum Row<'r> {
    /// SQLite.
    Lite(&'r rusqlite::Row<'r>),
    /// PostgreSQL.
    Pg(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `i` as `T`.
    pub(super) fn get<T: Column>(&self, i: usize) -> Result<T, StoreError> {
        match self {
            Row::Lite(r) => Ok(T::lite(r, i)?),
            Row::Pg(r) => T::pg(r, i),
        }
    }
}

impl Db<'_> {
    /// Whether this is PostgreSQL.
    pub(super) fn is_pg(&self) -> bool {
        matches!(self, Db::Pg(_))
    }

    /// `lite` on SQLite, `pg` on PostgreSQL: for the few statements whose
    /// dialects differ.
    pub(super) fn pick<'s>(&self, lite: &'s str, pg: &'s str) -> &'s str {
        if self.is_pg() {
            pg
        } else {
            lite
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub(super) fn exec(&self, sql: &str, args: &[Value<'_>]) -> Result<usize, StoreError> {
        match self {
            Db::Lite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?),
            Db::Pg(c) => {
                let mut c = c.borrow_mut();
                if let Some(n) = c.exec_with_begin(sql, args)? {
                    return Ok(n);
                }
                c.flush()?;
                let stmt = c.statement(sql)?;
                let n = c.client.execute(&stmt, &pg_args(args))?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Every row of a query, mapped.
    pub(super) fn all<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.rows(sql, args, usize::MAX, f)
    }

    /// The first row of a query, mapped; `None` when there is none.
    pub(super) fn opt<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.rows(sql, args, 1, f)?.pop())
    }

    /// At most `limit` rows of a query, mapped.
    fn rows<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        limit: usize,
        mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Db::Lite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                let mut out = Vec::new();
                while out.len() < limit {
                    match rows.next()? {
                        Some(r) => out.push(f(&Row::Lite(r))?),
                        None => break,
                    }
                }
                Ok(out)
            }
            Db::Pg(c) => {
                let mut c = c.borrow_mut();
                c.flush()?;
                let stmt = c.statement(sql)?;
                let rows = c.client.query(&stmt, &pg_args(args))?;
                rows.iter().take(limit).map(|r| f(&Row::Pg(r))).collect()
            }
        }
    }

    /// The first row of a query, which must exist.
    pub(super) fn one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.opt(sql, args, f)?.ok_or(StoreError::NoRow)
    }

    /// PostgreSQL: `sql` with `args` as a statement to send later in one
    /// text with others (the commit), prepared all the same; see
    /// [`PgConn::execute_text`]. SQLite has no use for it.
    pub(super) fn execute_text(&self, sql: &str, args: &[Value<'_>]) -> Result<String, StoreError> {
        match self {
            Db::Lite(_) => Err(StoreError::Decode(
                "statements sent as text are for PostgreSQL".into(),
            )),
            Db::Pg(c) => c.borrow_mut().execute_text(sql, args),
        }
    }

    /// Several statements without parameters (schema changes).
    pub(super) fn batch(&self, sql: &str) -> Result<(), StoreError> {
        match self {
            Db::Lite(c) => Ok(c.execute_batch(sql)?),
            Db::Pg(c) => c.borrow_mut().batch(sql),
        }
    }
}

fn pg_args<'a>(args: &'a [Value<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

/// A statement parameter.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    /// NULL.
    Null,
    /// An integer (also a flag: 0 or 1).
    Int(i64),
    /// An unsigned integer (times): refused if past `i64::MAX`.
    Unsigned(u64),
    /// Text.
    Text(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
}

impl Value<'_> {
    fn int(self) -> Result<Option<i64>, String> {
        match self {
            Value::Int(n) => Ok(Some(n)),
            Value::Unsigned(n) => i64::try_from(n)
                .map(Some)
                .map_err(|_| format!("{n} does not fit a database integer")),
            _ => Ok(None),
        }
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Bytes(b) => ValueRef::Blob(b),
            n => ValueRef::Integer(
                n.int()
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?
                    .unwrap_or_default(),
            ),
        }))
    }
}

impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Text(s) => s.to_sql(ty, out),
            Value::Bytes(b) => b.to_sql(ty, out),
            n => {
                let n = n.int()?.unwrap_or_default();
                match *ty {
                    Type::INT4 => i32::try_from(n)?.to_sql(ty, out),
                    Type::INT2 => i16::try_from(n)?.to_sql(ty, out),
                    Type::BOOL => (n != 0).to_sql(ty, out),
                    _ => n.to_sql(ty, out),
                }
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, which knows the variant.
        true
    }

    to_sql_checked!();
}

/// What can be a statement parameter (taken by reference, so that
/// `args!` can name fields without moving them).
pub(super) trait Arg {
    /// The parameter.
    fn value(&self) -> Value<'_>;
}

macro_rules! int_args {
    ($($t:ty),*) => {$(
        impl Arg for $t {
            fn value(&self) -> Value<'_> {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_args!(i64, i32, u32, u16, u8, bool);

impl Arg for u64 {
    fn value(&self) -> Value<'_> {
        Value::Unsigned(*self)
    }
}

impl Arg for usize {
    fn value(&self) -> Value<'_> {
        Value::Unsigned(*self as u64)
    }
}

impl Arg for str {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Arg for String {
    fn value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl Arg for [u8] {
    fn value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl Arg for Vec<u8> {
    fn value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl<const N: usize> Arg for [u8; N] {
    fn value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl<T: Arg> Arg for Option<T> {
    fn value(&self) -> Value<'_> {
        self.as_ref().map_or(Value::Null, Arg::value)
    }
}

impl<T: Arg + ?Sized> Arg for &T {
    fn value(&self) -> Value<'_> {
        (**self).value()
    }
}

/// Statement parameters: `args![a, b]` is `&[Value]`.
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        &[$($crate::store::db::Arg::value(&$e)),*][..]
    };
}
pub(super) use args;

/// A type a column can be read as, from either back end.
pub(super) trait Column: Sized {
    /// From a SQLite row.
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self>;
    /// From a PostgreSQL row.
    fn pg(r: &postgres::Row, i: usize) -> Result<Self, StoreError>;
}

/// Reads a PostgreSQL integer column (BIGINT, INTEGER, or a boolean
/// such as `EXISTS`) as an i64; `None` when NULL.
fn pg_int(r: &postgres::Row, i: usize) -> Result<Option<i64>, StoreError> {
    let ty = r.columns().get(i).map(|c| c.type_());
    Ok(match ty {
        Some(&Type::BOOL) => r.try_get::<_, Option<bool>>(i)?.map(i64::from),
        Some(&Type::INT4) => r.try_get::<_, Option<i32>>(i)?.map(i64::from),
        Some(&Type::INT2) => r.try_get::<_, Option<i16>>(i)?.map(i64::from),
        _ => r.try_get::<_, Option<i64>>(i)?,
    })
}

/// A column that must not be NULL.
fn present<T>(v: Option<T>, i: usize) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::Decode(format!("column {i} is NULL")))
}

/// Integer columns, read through i64 and checked to fit.
trait Integer: Sized + rusqlite::types::FromSql + TryFrom<i64> {}
macro_rules! integer_columns {
    ($($t:ty),*) => {$(
        impl Integer for $t {}
    )*};
}
integer_columns!(i64, i32, u64, u32, u16, u8);

fn fit<T: TryFrom<i64>>(n: i64, i: usize) -> Result<T, StoreError> {
    T::try_from(n).map_err(|_| StoreError::Decode(format!("column {i} holds {n}, out of range")))
}

impl<T: Integer> Column for T {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self, StoreError> {
        fit(present(pg_int(r, i)?, i)?, i)
    }
}

impl<T: Integer> Column for Option<T> {
    fn lite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
        r.get(i)
    }
    fn pg(r: &postgres::Row, i: usize) -> Result<Self, StoreError> {
        pg_int(r, i)?.map(|n| fit(n, i)).transpose()
    }
}

/// Flags, stored as 0/1 (or a boolean expression).
macro_rules! plain_columns {
    ($($t:ty => $pg:expr),* $(,)?) => {$(
        impl Column for $t {
            fn lite(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Self> {
                r.get(i)
            }
            fn pg(r: &postgres::Row, i: usize) -> Result<Self, StoreError> {
                #[allow(clippy::redundant_closure_call)]
                ($pg)(r, i)
            }
        }
    )*};
}
plain_columns!(
    bool => |r, i| Ok(present(pg_int(r, i)?, i)? != 0),
    Option<bool> => |r, i| Ok(pg_int(r, i)?.map(|n| n != 0)),
    String => |r: &postgres::Row, i| Ok(r.try_get::<_, String>(i)?),
    Option<String> => |r: &postgres::Row, i| Ok(r.try_get::<_, Option<String>>(i)?),
    Vec<u8> => |r: &postgres::Row, i| Ok(r.try_get::<_, Vec<u8>>(i)?),
    Option<Vec<u8>> => |r: &postgres::Row, i| Ok(r.try_get::<_, Option<Vec<u8>>>(i)?),
);

#[cfg(test)]
mod tests {
    use super::super::pg_conn::dollar_placeholders;
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars() {
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?2 WHERE id = ?1 AND b > ?2"),
            "UPDATE t SET a = $2 WHERE id = $1 AND b > $2"
        );
    }

    #[test]
    fn a_time_too_large_for_the_database_is_refused_not_wrapped() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        let db = Db::Lite(&c);
        let err = db.one("SELECT ?1", args![u64::MAX], |r| r.get::<i64>(0));
        assert!(err.is_err(), "{err:?}");
        assert_eq!(
            db.one("SELECT ?1", args![7u64], |r| r.get::<u64>(0))
                .unwrap(),
            7
        );
    }
}

//! One PostgreSQL connection: the statements it has prepared, and the
//! `BEGIN` of a transaction held back to go with its first statement.
//!
//! The blocking client sends one statement per network round trip. A
//! concurrent write ([`super::Store::concurrent_write`]) begins its
//! transaction in the round trip of its first change, that change's
//! values written into the text as literals; a write that only audits
//! sends `BEGIN`, its rows and `COMMIT` at once.

use std::collections::HashMap;

use postgres::SimpleQueryMessage;

use super::db::Value;
use super::StoreError;

/// A PostgreSQL connection with the statements it has prepared.
pub(super) struct PgConn {
    pub(super) client: postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
    /// Left in a state no next user may inherit (a transaction that would
    /// not roll back): closed instead of going back to the pool.
    pub(super) spoiled: bool,
    /// A `BEGIN` not sent yet: it goes with the next statement.
    begin: Option<String>,
}

impl PgConn {
    /// Wraps a connected client.
    pub(super) fn new(client: postgres::Client) -> Self {
        PgConn {
            client,
            prepared: HashMap::new(),
            spoiled: false,
            begin: None,
        }
    }

    /// The statement for `sql` (SQLite placeholders), prepared once per
    /// connection.
    pub(super) fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&dollar_placeholders(sql))?;
        self.prepared.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// Holds `begin` back, to send with the next statement.
    pub(super) fn defer(&mut self, begin: String) {
        self.begin = Some(begin);
    }

    /// Whether a transaction was begun on the server: false while its
    /// `BEGIN` is still held back (which this forgets).
    pub(super) fn began(&mut self) -> bool {
        self.begin.take().is_none()
    }

    /// Sends a held-back `BEGIN`, if any, on its own.
    pub(super) fn flush(&mut self) -> Result<(), StoreError> {
        match self.begin.take() {
            Some(begin) => Ok(self.client.batch_execute(&begin)?),
            None => Ok(()),
        }
    }

    /// `sql`, after a held-back `BEGIN` if any, in one round trip.
    pub(super) fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self.begin.take() {
            Some(begin) => Ok(self.client.batch_execute(&format!("{begin};{sql}"))?),
            None => Ok(self.client.batch_execute(sql)?),
        }
    }

    /// Runs `sql` with a held-back `BEGIN` in one round trip, its values
    /// written in: the number of rows it changed. `None` (nothing sent)
    /// when there is no `BEGIN` held back or a value has no literal here.
    pub(super) fn exec_with_begin(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<Option<usize>, StoreError> {
        let Some(begin) = &self.begin else {
            return Ok(None);
        };
        let Some(sql) = inline(sql, args)? else {
            return Ok(None);
        };
        let text = format!("{begin};{sql}");
        self.begin = None;
        let replies = self.client.simple_query(&text)?;
        let changed = replies.iter().rev().find_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        });
        Ok(Some(
            changed.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX)),
        ))
    }
}

/// `?N` → `$N` (the store's SQL has no `?` inside string literals).
pub(super) fn dollar_placeholders(sql: &str) -> String {
    sql.replace('?', "$")
}

/// `sql` with each `?N` replaced by a literal of its value; `None` when a
/// value (bytes) has none here. Numbers and text become untyped quoted
/// constants, which PostgreSQL types from where they stand, as it types
/// a parameter. Text uses the escape form (`E'...'`), which reads the
/// same whatever `standard_conforming_strings` says; the client always
/// speaks UTF-8 (rust-postgres sets `client_encoding` when it connects),
/// in which no byte of a multi-byte character is a quote or backslash.
fn inline(sql: &str, args: &[Value<'_>]) -> Result<Option<String>, StoreError> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find('?') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .map_or(rest.len() - at - 1, |n| n);
        let n: usize = rest[at + 1..at + 1 + digits]
            .parse()
            .map_err(|_| StoreError::Decode(format!("a bad placeholder in {sql}")))?;
        let value = n
            .checked_sub(1)
            .and_then(|i| args.get(i))
            .ok_or_else(|| StoreError::Decode(format!("no value for ?{n} in {sql}")))?;
        match literal(*value)? {
            Some(l) => out.push_str(&l),
            None => return Ok(None),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// One value as an untyped constant; `None` for bytes.
fn literal(v: Value<'_>) -> Result<Option<String>, StoreError> {
    Ok(Some(match v {
        Value::Null => "NULL".into(),
        Value::Int(n) => format!("'{n}'"),
        Value::Unsigned(n) => format!("'{}'", i64::try_from(n).map_err(|_| too_big(n))?),
        Value::Text(s) => {
            refuse_nul(s)?;
            format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
        }
        Value::Bytes(_) => return Ok(None),
    }))
}

fn too_big(n: u64) -> StoreError {
    StoreError::Decode(format!("{n} does not fit a database integer"))
}

fn refuse_nul(s: &str) -> Result<(), StoreError> {
    match s.contains('\0') {
        true => Err(StoreError::Decode(
            "text with a NUL character cannot be stored".into(),
        )),
        false => Ok(()),
    }
}

/// `s` as a PostgreSQL text expression, for statements sent as text with
/// a commit: its UTF-8 bytes in hex, decoded by the server, so no quote,
/// backslash or client encoding can change how it reads. A NUL, which no
/// PostgreSQL text can hold, is refused.
pub(super) fn pg_literal(s: &str) -> Result<String, StoreError> {
    refuse_nul(s)?;
    Ok(format!(
        "convert_from(decode('{}', 'hex'), 'UTF8')",
        data_encoding::HEXLOWER.encode(s.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_in_as_untyped_constants_and_text_cannot_break_out() {
        let sql = "UPDATE t SET a = ?2, b = ?10, c = ?1 WHERE d = ?3";
        let mut args = vec![Value::Text("it's a \\ test"), Value::Int(-5), Value::Null];
        args.extend((4..=9).map(|_| Value::Int(0)));
        args.push(Value::Unsigned(7));
        assert_eq!(
            inline(sql, &args).unwrap().unwrap(),
            "UPDATE t SET a = '-5', b = '7', c = E'it''s a \\\\ test' WHERE d = NULL"
        );
        assert!(inline("SELECT ?1", &[Value::Bytes(b"x")])
            .unwrap()
            .is_none());
        assert!(inline("SELECT ?1", &[Value::Text("a\0b")]).is_err());
        assert!(inline("SELECT ?2", &[Value::Int(1)]).is_err());
        assert!(inline("SELECT ?1", &[Value::Unsigned(u64::MAX)]).is_err());
    }
}

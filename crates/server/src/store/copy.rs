//! `store copy`: everything in one store written into another, e.g. an
//! existing SQLite deployment moved to PostgreSQL. Rows keep their ids and
//! times, the audit chain its hashes (so `audit verify` passes on the
//! copy), devices their keys and tokens' hashes (so enrolled devices keep
//! working). The source is read in one snapshot; the target is written in
//! one transaction, so a failed copy leaves it as it was.

use super::db::{args, Arg, Db, Value};
use super::{Store, StoreError};

/// Every table, parents before children. (`rowid` columns are not
/// copied: PostgreSQL numbers its own, in the source's order.)
const TABLES: &[&str] = &[
    "users",
    "password_history",
    "activations",
    "devices",
    "challenges",
    "audit",
    "web_sessions",
    "registration_requests",
    "phones",
    "security_answers",
    "phone_codes",
    "oidc_clients",
    "oidc_requests",
    "oidc_codes",
    "oidc_tokens",
    "oidc_signins",
    "api_challenges",
    "address_events",
    "used_once",
    "sealed_secrets",
];

/// Tables whose ids the target numbers after the copy continues from.
const NUMBERED: &[&str] = &["users", "registration_requests"];

/// What a copy did.
#[derive(Debug, Default)]
pub struct Copied {
    /// Rows per table, in copy order.
    pub tables: Vec<(&'static str, usize)>,
}

/// A stored value of any column.
#[derive(Debug, Clone)]
enum Cell {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Arg for Cell {
    fn value(&self) -> Value<'_> {
        match self {
            Cell::Null => Value::Null,
            Cell::Int(n) => Value::Int(*n),
            Cell::Text(s) => Value::Text(s),
            Cell::Bytes(b) => Value::Bytes(b),
        }
    }
}

impl Store {
    /// Whether the store holds no user and no audit row.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        self.read(|db| {
            db.one(
                "SELECT NOT EXISTS (SELECT 1 FROM users) AND NOT EXISTS (SELECT 1 FROM audit)",
                args![],
                |r| r.get(0),
            )
        })
    }

    /// Copies every row of `self` into `target`. A target that holds
    /// anything is refused unless `replace`, which empties it first.
    pub fn copy_into(&self, target: &Store, replace: bool) -> Result<Copied, StoreError> {
        if !replace && !target.is_empty()? {
            return Err(StoreError::TargetNotEmpty);
        }
        let mut rows = Vec::new();
        self.snapshot(|db| {
            for table in TABLES {
                let columns = columns(db, table)?;
                let order = if db.is_pg() { "1" } else { "rowid" };
                let sql = format!(
                    "SELECT {} FROM {table} ORDER BY {order}",
                    columns.join(", ")
                );
                let n = columns.len();
                let read: Vec<Vec<Cell>> =
                    db.all(&sql, args![], |r| (0..n).map(|i| cell(r, i)).collect())?;
                rows.push((*table, columns, read));
            }
            Ok(())
        })?;
        target.pool.transaction(|db| {
            if db.is_pg() {
                // The audit rows go in with their own sequence numbers: no
                // serving instance may append to the chain meanwhile.
                db.batch(&format!(
                    "SELECT pg_advisory_xact_lock({})",
                    super::write::CHAIN_LOCK
                ))?;
            }
            if replace && db.is_pg() {
                // One statement for all: no foreign-key cascade row by row
                // (challenges are indexed by device only while pending).
                db.batch(&format!("TRUNCATE {}", TABLES.join(", ")))?;
            } else if replace {
                for table in TABLES.iter().rev() {
                    db.exec(&format!("DELETE FROM {table}"), args![])?;
                }
            }
            let mut copied = Copied::default();
            for (table, columns, read) in &rows {
                let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
                let sql = format!(
                    "INSERT INTO {table} ({}) VALUES ({})",
                    columns.join(", "),
                    marks.join(", ")
                );
                for row in read {
                    let values: Vec<Value<'_>> = row.iter().map(Arg::value).collect();
                    db.exec(&sql, &values)?;
                }
                copied.tables.push((*table, read.len()));
            }
            if db.is_pg() {
                for table in NUMBERED {
                    db.exec(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                             COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                        ),
                        args![],
                    )?;
                }
            }
            Ok(copied)
        })
    }

    /// Runs `f` on one consistent view of the store.
    fn snapshot<T>(
        &self,
        f: impl FnOnce(&Db<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.scan(|db| {
            db.batch(db.pick("BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"))?;
            let out = f(db);
            let end = db.batch("COMMIT");
            let out = out?;
            end?;
            Ok(out)
        })
    }
}

/// The columns of `table` a copy carries (all but `rowid`).
fn columns(db: &Db<'_>, table: &str) -> Result<Vec<String>, StoreError> {
    let names: Vec<String> = match db {
        Db::Lite(_) => db.all(&format!("PRAGMA table_info({table})"), args![], |r| {
            r.get(1)
        })?,
        Db::Pg(_) => db.all(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ?1 ORDER BY ordinal_position",
            args![table],
            |r| r.get(0),
        )?,
    };
    Ok(names.into_iter().filter(|c| c != "rowid").collect())
}

/// Column `i` of a row, whatever its type.
fn cell(r: &super::db::Row<'_>, i: usize) -> Result<Cell, StoreError> {
    if let Some(n) = r.get::<Option<i64>>(i).ok().flatten() {
        return Ok(Cell::Int(n));
    }
    if let Some(s) = r.get::<Option<String>>(i).ok().flatten() {
        return Ok(Cell::Text(s));
    }
    if let Some(b) = r.get::<Option<Vec<u8>>>(i).ok().flatten() {
        return Ok(Cell::Bytes(b));
    }
    Ok(Cell::Null)
}

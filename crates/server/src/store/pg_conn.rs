//! One PostgreSQL connection: the statements it has prepared, and the
//! `BEGIN` of a transaction held back to go with its first statement.
//!
//! Each call of the blocking client is one network round trip (it does
//! not pipeline); several statements share one only as one text. A
//! concurrent write ([`super::Store::concurrent_write`]) begins its
//! transaction in the round trip of its first statement run by
//! [`super::db::Db::exec`] (a query that comes first sends the `BEGIN`
//! alone); a write that only audits sends `BEGIN`, its rows and `COMMIT`
//! at once. A statement sent in such a text is prepared all the same: it
//! goes as `EXECUTE` of a statement prepared (SQL `PREPARE`) once per
//! connection, its values written in as constants, so PostgreSQL neither
//! parses nor plans it afresh each time.
//!
//! Statements sent as text are written whole, values included, to
//! PostgreSQL's own log when they fail (`log_min_error_statement`):
//! docs/OPERATIONS.md says what that log may then hold.

use std::collections::HashMap;

use postgres::SimpleQueryMessage;

use super::db::Value;
use super::StoreError;

/// A PostgreSQL connection with the statements it has prepared.
pub(super) struct PgConn {
    pub(super) client: postgres::Client,
    prepared: HashMap<String, postgres::Statement>,
    /// The names of the statements prepared with SQL `PREPARE`, by their
    /// text, for `EXECUTE` in statements sent as text.
    named: HashMap<String, String>,
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
            named: HashMap::new(),
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

    /// Forgets a held-back `BEGIN`: true if there was one, so that no
    /// transaction was begun on the server.
    pub(super) fn forget_begin(&mut self) -> bool {
        self.begin.take().is_some()
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

    /// `sql` (SQLite placeholders) with `args`, as a statement to send in
    /// a text with others: `EXECUTE` of the statement prepared once on this
    /// connection (in a round trip of its own the first time, apart from
    /// any `BEGIN` held back), its values written in.
    pub(super) fn execute_text(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<String, StoreError> {
        let values = constants(args)?;
        let name = match self.named.get(sql) {
            Some(name) => name,
            None => {
                let name = format!("cs_{}", self.named.len());
                let prepare = format!("PREPARE {name} AS {}", dollar_placeholders(sql));
                self.client.batch_execute(&prepare)?;
                self.named.entry(sql.to_string()).or_insert(name)
            }
        };
        Ok(match values.is_empty() {
            true => format!("EXECUTE {name}"),
            false => format!("EXECUTE {name}({values})"),
        })
    }

    /// Runs `sql` with a held-back `BEGIN` in one round trip: the number
    /// of rows it changed. `None` (nothing sent) when there is no `BEGIN`
    /// held back.
    pub(super) fn exec_with_begin(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<Option<usize>, StoreError> {
        if self.begin.is_none() {
            return Ok(None);
        }
        let execute = self.execute_text(sql, args)?;
        let begin = self.begin.take().unwrap_or_default();
        let replies = self.client.simple_query(&format!("{begin};{execute}"))?;
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

/// `args` as constants, comma-separated, for an `EXECUTE`: each takes the
/// type of its statement's parameter, as a value sent apart would. Text
/// goes in the escape form (`E'...'`), which reads the same whatever
/// `standard_conforming_strings` says; the client always speaks UTF-8
/// (rust-postgres sets `client_encoding` as it connects, over any role or
/// database setting), in which no byte of a multi-byte character is a
/// quote or a backslash. Bytes go as hex.
fn constants(args: &[Value<'_>]) -> Result<String, StoreError> {
    let mut out = Vec::with_capacity(args.len());
    for v in args {
        out.push(match *v {
            Value::Null => "NULL".to_string(),
            Value::Int(n) => format!("'{n}'"),
            Value::Unsigned(n) => format!("'{}'", i64::try_from(n).map_err(|_| too_big(n))?),
            Value::Text(s) => {
                refuse_nul(s)?;
                format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
            }
            Value::Bytes(b) => format!("decode('{}', 'hex')", data_encoding::HEXLOWER.encode(b)),
        });
    }
    Ok(out.join(", "))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_in_as_constants() {
        let args = [
            Value::Text("it's \\ E'x'"),
            Value::Int(-5),
            Value::Null,
            Value::Unsigned(7),
            Value::Bytes(&[0, 255]),
        ];
        assert_eq!(
            constants(&args).unwrap(),
            r#"E'it''s \\ E''x''', '-5', NULL, '7', decode('00ff', 'hex')"#
        );
        assert_eq!(constants(&[]).unwrap(), "");
    }

    #[test]
    fn values_that_cannot_be_written_in_are_refused() {
        assert!(constants(&[Value::Text("a\0b")]).is_err());
        assert!(constants(&[Value::Unsigned(u64::MAX)]).is_err());
    }

    /// On the test cluster: a statement sent with a held-back `BEGIN` is
    /// prepared once per connection, and its values (quotes, backslashes,
    /// placeholders' look-alikes, control characters, bytes) reach the row
    /// exactly as given.
    #[test]
    fn a_statement_sent_with_its_begin_is_prepared_once_and_keeps_its_values() {
        let Some(cluster) = countersign_testkit::postgres::cluster() else {
            println!("skipped: needs PostgreSQL (./test.sh runs this on its cluster)");
            return;
        };
        let client = postgres::Client::connect(&format!("{cluster}/postgres"), postgres::NoTls);
        let mut conn = PgConn::new(client.unwrap());
        let table = "CREATE TEMP TABLE t (id BIGINT PRIMARY KEY, s TEXT, b BYTEA)";
        conn.client.batch_execute(table).unwrap();
        let text = "it's \\ E'x' ?1 $1 -- /* \u{1b}[2J\r é";
        let bytes = [0, 255, b'\'', b'\\'];
        for id in [1, 2] {
            conn.defer("BEGIN".into());
            let args = [Value::Int(id), Value::Text(text), Value::Bytes(&bytes)];
            let sql = "INSERT INTO t (id, s, b) VALUES (?1, ?2, ?3)";
            assert_eq!(conn.exec_with_begin(sql, &args).unwrap(), Some(1));
            conn.batch("COMMIT").unwrap();
        }
        let rows = conn.client.query("SELECT id, s, b FROM t ORDER BY id", &[]);
        let rows: Vec<(i64, String, Vec<u8>)> = rows
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let row = |id| (id, text.to_string(), bytes.to_vec());
        assert_eq!(rows, vec![row(1), row(2)]);
        let named = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'cs\\_%'";
        let prepared: i64 = conn.client.query_one(named, &[]).unwrap().get(0);
        assert_eq!(prepared, 1);
        // Dropped off the async runtime's threads, as the store does.
        std::thread::spawn(move || drop(conn)).join().unwrap();
    }
}

//! One PostgreSQL connection: the statements it has prepared, and the
//! `BEGIN` of a transaction held back to go with its first statement.
//!
//! Each call of the blocking client is one network round trip (it does
//! not pipeline); several statements share one only as one text. A
//! concurrent write ([`super::Store::concurrent_write`]) begins its
//! transaction in the round trip of its first statement run by
//! [`super::db::Db::exec`], that statement's values written into its
//! text as constants of its parameters' types (a query that comes first
//! sends the `BEGIN` alone); a write that only audits sends `BEGIN`, its
//! rows and `COMMIT` at once.
//!
//! Statements sent as text are written whole, values included, to
//! PostgreSQL's own log when they fail (`log_min_error_statement`):
//! docs/OPERATIONS.md says what that log may then hold.

use std::collections::HashMap;

use postgres::types::Type;
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

    /// Runs `sql` with a held-back `BEGIN` in one round trip, its values
    /// written in: the number of rows it changed. `None` (nothing sent)
    /// when there is no `BEGIN` held back or a value has no literal here.
    pub(super) fn exec_with_begin(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> Result<Option<usize>, StoreError> {
        if self.begin.is_none() {
            return Ok(None);
        }
        // Prepared once per connection, for its parameters' types.
        let prepared = self.statement(sql)?;
        let Some(sql) = inline(sql, args, prepared.params())? else {
            return Ok(None);
        };
        let begin = self.begin.as_deref().unwrap_or_default();
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

/// `sql` with each `?N` replaced by a literal of its value, cast to the
/// type PostgreSQL gave that parameter when it prepared `sql`, so the
/// statement means what it means with parameters. Text goes in the
/// escape form (`E'...'`), which reads the same whatever
/// `standard_conforming_strings` says; the client always speaks UTF-8
/// (rust-postgres sets `client_encoding` as it connects, over any role or
/// database setting), in which no byte of a multi-byte character is a
/// quote or a backslash. Bytes go as hex. `None` (send it prepared
/// instead) when a `?` stands inside a quoted string, a quoted name or a
/// comment.
fn inline(sql: &str, args: &[Value<'_>], types: &[Type]) -> Result<Option<String>, StoreError> {
    let mut out = String::with_capacity(sql.len() + 64);
    let mut quote: Option<char> = None;
    let mut chars = sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '?') => return Ok(None),
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '-') if sql[at..].starts_with("--") => return Ok(None),
            (None, '/') if sql[at..].starts_with("/*") => return Ok(None),
            (None, '?') => {
                let mut n = 0usize;
                while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                    n = n
                        .saturating_mul(10)
                        .saturating_add(d as usize - '0' as usize);
                }
                let i = n
                    .checked_sub(1)
                    .filter(|&i| i < args.len() && i < types.len());
                let i =
                    i.ok_or_else(|| StoreError::Decode(format!("no value for ?{n} in {sql}")))?;
                out.push_str(&literal(args[i], &types[i])?);
                continue;
            }
            (None, _) => {}
        }
        out.push(c);
    }
    Ok(Some(out))
}

/// One value as a constant of type `ty`.
fn literal(v: Value<'_>, ty: &Type) -> Result<String, StoreError> {
    let value = match v {
        Value::Null => "NULL".into(),
        Value::Int(n) => format!("'{n}'"),
        Value::Unsigned(n) => format!("'{}'", i64::try_from(n).map_err(|_| too_big(n))?),
        // A constant, not a function of one: the planner can look it up
        // in an index (`convert_from`, as `pg_literal` writes text, is
        // only stable, and an UPDATE's row was then found by a scan).
        Value::Text(s) => {
            refuse_nul(s)?;
            format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
        }
        Value::Bytes(b) => format!("decode('{}', 'hex')", data_encoding::HEXLOWER.encode(b)),
    };
    let name = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    Ok(format!(
        "({value})::{}.{}",
        name(ty.schema()),
        name(ty.name())
    ))
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
    fn values_are_written_in_as_constants_of_their_parameters_types() {
        let sql = "UPDATE t SET a = ?2, b = ?10, c = ?1 WHERE d = ?3 AND e = ?11";
        let mut args = vec![Value::Text("it's \\ E'x'"), Value::Int(-5), Value::Null];
        args.extend((4..=9).map(|_| Value::Int(0)));
        args.extend([Value::Unsigned(7), Value::Bytes(&[0, 255])]);
        let mut types = vec![Type::TEXT, Type::INT8, Type::BOOL];
        types.extend((4..=9).map(|_| Type::INT4));
        types.extend([Type::INT8, Type::BYTEA]);
        assert_eq!(
            inline(sql, &args, &types).unwrap().unwrap(),
            concat!(
                r#"UPDATE t SET a = ('-5')::"pg_catalog"."int8", b = ('7')::"pg_catalog"."int8", "#,
                r#"c = (E'it''s \\ E''x''')::"pg_catalog"."text" "#,
                r#"WHERE d = (NULL)::"pg_catalog"."bool" AND e = (decode('00ff', 'hex'))::"pg_catalog"."bytea""#
            )
        );
    }

    #[test]
    fn a_placeholder_in_quotes_or_a_comment_leaves_the_statement_to_parameters() {
        let one = [Value::Int(1)];
        let ty = [Type::INT8];
        for sql in [
            "SELECT '?1'",
            "SELECT \"a?1\"",
            "SELECT 1 -- ?1",
            "SELECT /* ?1 */ 1",
        ] {
            assert_eq!(inline(sql, &one, &ty).unwrap(), None, "{sql}");
        }
        let quoted = inline("SELECT 'it''s', ?1", &one, &ty).unwrap();
        assert_eq!(
            quoted.as_deref(),
            Some("SELECT 'it''s', ('1')::\"pg_catalog\".\"int8\"")
        );
    }

    #[test]
    fn values_that_cannot_be_written_in_are_refused() {
        let ty = [Type::TEXT];
        assert!(inline("SELECT ?1", &[Value::Text("a\0b")], &ty).is_err());
        assert!(inline("SELECT ?2", &[Value::Int(1)], &ty).is_err());
        assert!(inline("SELECT ?1", &[Value::Unsigned(u64::MAX)], &[Type::INT8]).is_err());
    }
}

//! The audit log: one row per transaction, hash-chained so that altering or
//! removing a row breaks every hash after it.
//!
//! Each row also keeps the id of the HTTP request that wrote it (the
//! `request_id` field of the server's logs), for correlation. It is not
//! covered by the chain: it is a pointer into the logs, not evidence.

use ring::digest::{Context, SHA256};
use serde::Serialize;

use super::db::{args, Arg, Row, Value};
use super::{Store, StoreError};

/// A row to append.
#[derive(Debug, Clone, Copy)]
pub struct NewAudit<'a> {
    /// Who acted: a username, `device:<id>`, `admin-cli` or `system`.
    pub actor: &'a str,
    /// What happened, e.g. `challenge.answered`.
    pub action: &'a str,
    /// Whom or what it concerned.
    pub target: &'a str,
    /// Client address, or empty.
    pub ip: &'a str,
    /// `ok`, `refused`, `approved`, ...
    pub outcome: &'a str,
    /// Extra detail, never a secret.
    pub detail: &'a str,
}

impl<'a> NewAudit<'a> {
    /// A row about `action` by `actor` on `target` from `ip`; the outcome
    /// is given with [`NewAudit::with`] once known.
    pub fn of(actor: &'a str, action: &'a str, target: &'a str, ip: &'a str) -> Self {
        NewAudit {
            actor,
            action,
            target,
            ip,
            outcome: "",
            detail: "",
        }
    }

    /// This row with its outcome and detail.
    pub fn with(self, outcome: &'a str, detail: &'a str) -> Self {
        NewAudit {
            outcome,
            detail,
            ..self
        }
    }
}

/// A stored row.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Position in the chain.
    pub seq: i64,
    /// Time.
    pub at: u64,
    /// Actor.
    pub actor: String,
    /// Action.
    pub action: String,
    /// Target.
    pub target: String,
    /// IP.
    pub ip: String,
    /// Outcome.
    pub outcome: String,
    /// Detail.
    pub detail: String,
    /// Hash of the previous row (hex).
    pub prev_hash: String,
    /// This row's hash (hex).
    pub hash: String,
    /// The request that wrote it (empty: none, e.g. a command or a timer).
    pub request_id: String,
}

/// Which rows to read.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// Only rows whose actor or target is this.
    pub user: Option<String>,
    /// Only rows at or after this time.
    pub since: Option<u64>,
    /// Only rows before this time.
    pub until: Option<u64>,
    /// Only rows by this actor.
    pub actor: Option<String>,
    /// Only rows whose action starts with this (`signin.` matches every
    /// sign-in step).
    pub action: Option<String>,
    /// Only rows with this outcome.
    pub outcome: Option<String>,
    /// Only rows after this sequence number (a live tail, an export's
    /// next page).
    pub after_seq: Option<i64>,
    /// Only rows up to this sequence number (an export stops at the row
    /// that was the last as it began).
    pub through_seq: Option<i64>,
    /// Only the newest this many (still returned oldest first).
    pub newest: Option<usize>,
    /// Only the oldest this many, instead of the newest: an export reads
    /// its rows in such pages, each after the last row of the one before.
    pub oldest: Option<usize>,
}

/// One CSV field of an audit export: always quoted, and a leading formula
/// character (`=`, `+`, `-`, `@`) neutralised so a spreadsheet shows the
/// text instead of running it.
pub fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// The query for [`Store::audit_entries`] and its parameters. It names
/// only the filters given, so that SQLite's planner, which plans once for
/// any values, finds a user's rows through the actor and target indexes
/// instead of reading the whole log.
fn entries_query(f: &AuditFilter) -> (String, Vec<Value<'_>>) {
    let mut filters: Vec<String> = Vec::new();
    let mut values: Vec<Value<'_>> = Vec::new();
    // `{}` in a condition is its parameter.
    let mut only = |condition: &str, value| {
        values.push(value);
        filters.push(condition.replace("{}", &format!("?{}", values.len())));
    };
    if let Some(user) = &f.user {
        only("(actor = {} OR target = {})", user.value());
    }
    if let Some(since) = &f.since {
        only("at >= {}", since.value());
    }
    if let Some(until) = &f.until {
        only("at < {}", until.value());
    }
    if let Some(actor) = &f.actor {
        only("actor = {}", actor.value());
    }
    if let Some(action) = &f.action {
        only(
            "substr(action, 1, length(CAST({} AS TEXT))) = {}",
            action.value(),
        );
    }
    if let Some(outcome) = &f.outcome {
        only("outcome = {}", outcome.value());
    }
    if let Some(after) = &f.after_seq {
        only("seq > {}", after.value());
    }
    if let Some(through) = &f.through_seq {
        only("seq <= {}", through.value());
    }
    let filter = match filters.is_empty() {
        true => String::new(),
        false => format!("WHERE {} ", filters.join(" AND ")),
    };
    let (order, limit) = match f.oldest {
        Some(n) => ("ASC", Some(n)),
        None => ("DESC", f.newest),
    };
    let limit = limit.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT seq, at, actor, action, target, ip, outcome, detail, prev_hash, hash, request_id FROM audit \
         {filter}ORDER BY seq {order} LIMIT ?{}",
        values.len() + 1
    );
    values.push(Value::Int(limit));
    (sql, values)
}

/// What every row's hash starts with.
pub(super) const CHAIN_DOMAIN: &str = "countersign/v1/audit";

/// A row's hash: SHA-256 over the chain's domain, the previous hash, the
/// row's sequence number, time and each field with its length.
pub(super) fn chain_hash(prev: &[u8], seq: i64, at: u64, e: &NewAudit<'_>) -> Vec<u8> {
    let mut ctx = Context::new(&SHA256);
    ctx.update(CHAIN_DOMAIN.as_bytes());
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&at.to_be_bytes());
    for field in [e.actor, e.action, e.target, e.ip, e.outcome, e.detail] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish().as_ref().to_vec()
}

fn entry(r: &Row<'_>) -> Result<AuditEntry, StoreError> {
    let prev: Vec<u8> = r.get(8)?;
    let hash: Vec<u8> = r.get(9)?;
    Ok(AuditEntry {
        seq: r.get(0)?,
        at: r.get(1)?,
        actor: r.get(2)?,
        action: r.get(3)?,
        target: r.get(4)?,
        ip: r.get(5)?,
        outcome: r.get(6)?,
        detail: r.get(7)?,
        prev_hash: data_encoding::HEXLOWER.encode(&prev),
        hash: data_encoding::HEXLOWER.encode(&hash),
        request_id: r.get(10)?,
    })
}
impl Store {
    /// Appends a row, in a write of its own: on SQLite the read of the
    /// last hash and the insert share one immediate transaction; on
    /// PostgreSQL one insert reads the tail at commit under the chain's
    /// lock. Either way concurrent writers (the server, an admin command,
    /// other instances) still form a single chain.
    pub fn audit(&self, e: &NewAudit<'_>, now: u64) -> Result<(), StoreError> {
        self.write(now, |w| w.audit(e))
    }
}

impl Store {
    /// The time of the newest audit row, if any.
    pub fn last_audit_at(&self) -> Result<Option<u64>, StoreError> {
        self.read(|db| {
            db.opt(
                "SELECT at FROM audit ORDER BY seq DESC LIMIT 1",
                args![],
                |r| r.get(0),
            )
        })
    }

    /// The rows `f` selects, oldest first.
    pub fn audit_entries(&self, f: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
        let (sql, values) = entries_query(f);
        let mut rows = self.scan(|db| db.all(&sql, &values, entry))?;
        if f.oldest.is_none() {
            rows.reverse();
        }
        Ok(rows)
    }

    /// The last audit row's sequence number (0 when there is none).
    pub fn last_audit_seq(&self) -> Result<i64, StoreError> {
        self.read(|db| {
            db.one("SELECT COALESCE(MAX(seq), 0) FROM audit", args![], |r| {
                r.get(0)
            })
        })
    }

    /// Recomputes the whole chain. `Ok(n)` with the number of rows when
    /// intact; `Err(seq)` at the first row that was altered, inserted or
    /// follows a removed one.
    pub fn verify_audit(&self) -> Result<Result<usize, i64>, StoreError> {
        self.scan(|db| {
            let mut prev = vec![0u8; 32];
            let mut expected_seq = 1;
            let mut broken = None;
            db.all(
                "SELECT seq, at, actor, action, target, ip, outcome, detail, prev_hash, hash, request_id FROM audit ORDER BY seq",
                args![],
                |r| {
                    if broken.is_some() {
                        return Ok(());
                    }
                    let seq: i64 = r.get(0)?;
                    let text = |i| r.get::<String>(i);
                    let (actor, action, target, ip, outcome, detail) =
                        (text(2)?, text(3)?, text(4)?, text(5)?, text(6)?, text(7)?);
                    let e = NewAudit {
                        actor: &actor,
                        action: &action,
                        target: &target,
                        ip: &ip,
                        outcome: &outcome,
                        detail: &detail,
                    };
                    let stored_prev: Vec<u8> = r.get(8)?;
                    let stored: Vec<u8> = r.get(9)?;
                    if seq != expected_seq
                        || stored_prev != prev
                        || chain_hash(&prev, seq, r.get(1)?, &e) != stored
                    {
                        broken = Some(seq);
                        return Ok(());
                    }
                    prev = stored;
                    expected_seq += 1;
                    Ok(())
                },
            )?;
            Ok(match broken {
                Some(seq) => Err(seq),
                None => Ok((expected_seq - 1) as usize),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        assert_eq!(csv_field("plain"), "\"plain\"");
        assert_eq!(csv_field("say \"hi\", then"), "\"say \"\"hi\"\", then\"");
        for formula in ["=1+1", "+1", "-1", "@SUM(A1)"] {
            assert_eq!(csv_field(formula), format!("\"'{formula}\""));
        }
    }

    /// Changes the table behind the store's back, as an intruder would.
    fn raw(store: &Store, sql: &str) {
        store.pool.transaction(|db| db.batch(sql)).unwrap();
    }

    fn row<'a>(action: &'a str) -> NewAudit<'a> {
        NewAudit {
            actor: "admin-cli",
            action,
            target: "cs0101",
            ip: "",
            outcome: "ok",
            detail: "",
        }
    }

    #[test]
    fn a_users_rows_are_found_through_the_actor_and_target_indexes() {
        let store = Store::open_in_memory().unwrap();
        for f in [
            AuditFilter {
                user: Some("cs0101".into()),
                newest: Some(200),
                ..AuditFilter::default()
            },
            AuditFilter {
                user: Some("cs0101".into()),
                since: Some(100),
                outcome: Some("ok".into()),
                ..AuditFilter::default()
            },
        ] {
            let (sql, values) = entries_query(&f);
            let plan = crate::store::tests::plan(&store, &sql, &values);
            assert!(
                plan.contains("USING INDEX audit_actor_seq (actor=?)"),
                "{plan}"
            );
            assert!(
                plan.contains("USING INDEX audit_target (target=?"),
                "{plan}"
            );
            assert!(!plan.contains("SCAN audit"), "{plan}");
        }
    }

    #[test]
    fn chain_detects_edits_and_removals() {
        let store = Store::open_in_memory().unwrap();
        for a in ["user.add", "user.unlock", "user.disable"] {
            store.audit(&row(a), 100).unwrap();
        }
        assert_eq!(store.verify_audit().unwrap(), Ok(3));
        raw(&store, "UPDATE audit SET outcome = 'refused' WHERE seq = 2");
        assert_eq!(store.verify_audit().unwrap(), Err(2));
        raw(&store, "UPDATE audit SET outcome = 'ok' WHERE seq = 2");
        assert_eq!(store.verify_audit().unwrap(), Ok(3));
        raw(&store, "DELETE FROM audit WHERE seq = 2");
        assert_eq!(store.verify_audit().unwrap(), Err(3));
    }

    #[test]
    fn rows_of_one_transaction_chain_to_each_other_and_the_next_to_them() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(100, |w| {
                for a in ["user.add", "user.unlock", "user.disable"] {
                    w.audit(&row(a))?;
                }
                Ok(())
            })
            .unwrap();
        store.audit(&row("user.enable"), 101).unwrap();
        assert_eq!(store.verify_audit().unwrap(), Ok(4));
        let seqs: Vec<i64> = store
            .audit_entries(&AuditFilter::default())
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
    }

    #[test]
    fn removing_the_last_row_is_not_detectable_by_the_chain_alone() {
        // Documented limit: truncation at the tail needs an external anchor
        // (the count or last hash kept elsewhere); see docs/OPERATIONS.md.
        let store = Store::open_in_memory().unwrap();
        store.audit(&row("a"), 1).unwrap();
        store.audit(&row("b"), 2).unwrap();
        raw(&store, "DELETE FROM audit WHERE seq = 2");
        assert_eq!(store.verify_audit().unwrap(), Ok(1));
    }
}

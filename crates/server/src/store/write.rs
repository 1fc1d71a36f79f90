//! An open write transaction ([`Write`]) and the audit rows it appends.
//!
//! On SQLite a row is chained as it is inserted: the one writer holds the
//! chain's tail. On PostgreSQL the rows are appended as the transaction
//! commits, in the same round trip, under [`CHAIN_LOCK`], by statements
//! that read the tail and compute the hash themselves: the chain is
//! locked for the commit alone, so writes on every instance run side by
//! side until then.
//!
//! Locks on PostgreSQL are taken in one order, so that no two writes wait
//! for each other: the write lock first (serialised writes only), then
//! rows and the account's push lock, and the chain's lock last, with
//! nothing waited for after it but the commit. A concurrent write never
//! takes the write lock.

use super::audit::{chain_hash, NewAudit, CHAIN_DOMAIN};
use super::db::{args, Db};
use super::{Store, StoreError};

impl Store {
    /// Runs `change` in one immediate transaction: what it writes, audit
    /// rows included, commits together or not at all. A state change and
    /// its audit row written this way cannot be parted by a crash.
    ///
    /// On SQLite, inside a request, it returns before the commit: the
    /// request's writes share a transaction with others' (see
    /// [`super::batch`]); tell others of the change with
    /// [`Store::after_commit`], and commit with [`Store::commit_now`]
    /// before acting outside the server.
    ///
    /// It is serialised with every other such write, on every instance,
    /// so a check made inside it ("only while the account has no method")
    /// holds until it commits. See [`Store::concurrent_write`] for the
    /// writes that need no such check.
    pub fn write<T>(
        &self,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_in(Order::Serialised, now, change)
    }

    /// [`Store::write`] for a change whose checks are conditions on the
    /// rows it changes (`UPDATE ... WHERE status = 'pending'`) or take a
    /// lock of their own (the push limit's, per account). On PostgreSQL
    /// it runs beside other writes and waits only for the rows and locks
    /// it takes itself, and for the audit chain's lock during its commit;
    /// on SQLite every write is serialised anyway.
    pub fn concurrent_write<T>(
        &self,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_in(Order::Concurrent, now, change)
    }

    /// [`Store::write`] or [`Store::concurrent_write`], as `order` says.
    pub fn write_in<T>(
        &self,
        order: Order,
        now: u64,
        change: impl FnOnce(&mut Write<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.timed(super::Access::Write, || {
            self.pool.transaction_then(order, |db| {
                let mut w = Write {
                    db,
                    tail: None,
                    chained: String::new(),
                    now,
                    rows: Vec::new(),
                    events: Vec::new(),
                };
                let out = change(&mut w)?;
                let mut commit = match w.chained.is_empty() {
                    true => String::new(),
                    false => format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK});{}", w.chained),
                };
                commit.push_str(&super::bus::notify_sql(db, &self.origin, &w.events)?);
                Ok((out, commit))
            })
        })
    }
}

/// Whether a write waits for every other (see [`Store::write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Serialised with every other serialised write, on every instance.
    Serialised,
    /// Beside other writes ([`Store::concurrent_write`]).
    Concurrent,
}

/// The PostgreSQL advisory lock that orders the audit chain ("Cs chain"):
/// taken by each write with audit rows just before its commit, in the
/// same round trip, and held until the commit is durable.
pub(super) const CHAIN_LOCK: i64 = 0x4373_2063_6861_696e;

/// An open write transaction (see [`Store::write`]).
pub struct Write<'c> {
    db: &'c Db<'c>,
    /// The audit chain's last row, once known in this transaction: its
    /// rows are chained without reading the table again (SQLite).
    tail: Option<ChainTail>,
    /// The audit rows to append with the commit, chained in SQL under
    /// [`CHAIN_LOCK`] (PostgreSQL): the chain is locked for the commit
    /// alone, not for the whole transaction.
    chained: String,
    now: u64,
    rows: Vec<Audited>,
    events: Vec<super::Event>,
}

/// An audit row a transaction appended: its action, outcome and detail.
pub type Audited = (String, String, String);

/// The audit chain's last row: its sequence number and hash.
pub(super) type ChainTail = (i64, Vec<u8>);

/// What the first row of an empty chain follows.
pub(super) fn chain_start() -> ChainTail {
    (0, vec![0u8; 32])
}

impl Write<'_> {
    /// The transaction's connection, for the store's statements (never
    /// to write audit rows: [`Write::audit`] chains them, with the tail
    /// on SQLite, under the chain's lock at commit on PostgreSQL).
    pub(super) fn db(&self) -> &Db<'_> {
        self.db
    }

    /// Tells the other instances of a change when this transaction
    /// commits (see [`super::bus`]).
    pub fn announce(&mut self, e: super::Event) {
        self.events.push(e);
    }

    /// Whether this transaction tells other instances of a challenge
    /// (created or settled), which stands for its audit rows too.
    pub fn announces_a_challenge(&self) -> bool {
        self.events
            .iter()
            .any(|e| matches!(e, super::Event::Created(..) | super::Event::Settled(..)))
    }

    /// The audit rows appended in this transaction, taken out.
    pub fn take_audited(&mut self) -> Vec<Audited> {
        std::mem::take(&mut self.rows)
    }

    /// Rows with `action` and `outcome` about `target` since `since`
    /// (per-account limits that outlive a restart), counted in the write
    /// that adds the next one, which must be serialised
    /// ([`Store::write`]) for the count to hold across instances. On
    /// PostgreSQL it does not see rows this transaction appended (they
    /// are inserted at commit): count before appending.
    pub fn audit_count(
        &self,
        target: &str,
        action: &str,
        outcome: &str,
        since: u64,
    ) -> Result<u32, StoreError> {
        self.db.one(
            "SELECT COUNT(*) FROM audit WHERE target = ?1 AND at >= ?2 AND action = ?3 AND outcome = ?4",
            args![target, since, action, outcome],
            |r| r.get(0),
        )
    }

    /// Appends an audit row within the transaction.
    pub fn audit(&mut self, e: &NewAudit<'_>) -> Result<(), StoreError> {
        self.rows
            .push((e.action.into(), e.outcome.into(), e.detail.into()));
        let (db, now) = (self.db, self.now);
        if db.is_pg() {
            let request = super::request::current();
            let row = args![now, e.actor, e.action, e.target, e.ip, e.outcome, e.detail, request];
            let append = db.execute_text(&CHAINED_INSERT, row)?;
            self.chained.push_str(&append);
            self.chained.push(';');
            return Ok(());
        }
        let (seq, prev) = match self.tail.take() {
            Some(tail) => tail,
            None => db
                .opt(
                    "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                    args![],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap_or_else(chain_start),
        };
        let seq = seq + 1;
        let hash = chain_hash(&prev, seq, now, e);
        db.exec(
            "INSERT INTO audit (seq, at, actor, action, target, ip, outcome, detail, prev_hash, hash, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            args![seq, now, e.actor, e.action, e.target, e.ip, e.outcome, e.detail, prev, hash, super::request::current()],
        )?;
        self.tail = Some((seq, hash));
        Ok(())
    }
}

/// The statement (PostgreSQL) that appends a row to the chain as
/// [`chain_hash`] would: the tail is read, and the hash computed, by the
/// statement itself, so the chain is locked only while the commit is
/// sent. Its values: at, actor, action, target, ip, outcome, detail,
/// request id.
static CHAINED_INSERT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let domain = data_encoding::HEXLOWER.encode(CHAIN_DOMAIN.as_bytes());
    let fields = ["actor", "action", "target", "ip", "outcome", "detail"]
        .map(|f| format!(" || int8send(octet_length(convert_to({f}, 'UTF8'))::int8) || convert_to({f}, 'UTF8')"))
        .concat();
    format!(
        "INSERT INTO audit (seq, at, actor, action, target, ip, outcome, detail, prev_hash, hash, request_id) \
         SELECT seq, at, actor, action, target, ip, outcome, detail, prev, \
         sha256(decode('{domain}', 'hex') || prev || int8send(seq) || int8send(at){fields}), request_id \
         FROM (SELECT COALESCE(t.seq, 0) + 1 AS seq, COALESCE(t.hash, decode(repeat('00', 32), 'hex')) AS prev, v.* \
         FROM (VALUES (?1::int8, ?2::text, ?3::text, ?4::text, ?5::text, ?6::text, ?7::text, ?8::text)) \
         AS v (at, actor, action, target, ip, outcome, detail, request_id) \
         LEFT JOIN (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) AS t ON true) AS r"
    )
});

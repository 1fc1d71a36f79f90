//! Audit rows as written: every character of their text kept, and a row
//! the database refuses, or a commit that fails, taking the whole
//! transaction with it without leaving its connection in the failed
//! transaction.

use countersign_server::store::{AuditFilter, Event, NewAudit, NewChallenge, StoreError};

use super::{Domain, IP, T0};

/// Text an attacker could put in a username, an address or a detail.
const AWKWARD: [&str; 6] = [
    "o'brien",
    "'); DELETE FROM audit; --",
    "back\\slash \\x41 E'\\''",
    "$$ dollar $tag$ quotes $$",
    "line\nbreak\ttab\r",
    "Ünïcödé ✓ 𝄞",
];

/// The rows written at or after `seq`, as (actor, target, ip, detail).
fn written_after(d: &Domain, seq: i64) -> Vec<(String, String, String, String)> {
    let filter = AuditFilter {
        after_seq: Some(seq),
        ..AuditFilter::default()
    };
    let rows = d.s.store.audit_entries(&filter).unwrap();
    rows.into_iter()
        .map(|e| (e.actor, e.target, e.ip, e.detail))
        .collect()
}

/// The failed transaction did not leave its connection inside it: the
/// store's next writes go through, on every pooled connection, and the
/// chain after `seq` ends with them, intact.
fn writes_again(d: &Domain, seq: i64) {
    for i in 0..8 {
        let target = i.to_string();
        let row = NewAudit::of("system", "test.after", &target, "");
        match i % 2 {
            0 => d.s.store.audit(&row, T0),
            _ => d.s.store.concurrent_write(T0, |w| w.audit(&row)),
        }
        .unwrap();
    }
    assert_eq!(written_after(d, seq).last().unwrap().1, "7");
    d.chain_verifies();
}

#[test]
fn audit_rows_keep_every_character_of_their_text() {
    let d = Domain::new();
    let before = d.s.store.verify_audit().unwrap().expect("intact");
    let seq = i64::try_from(before).unwrap();
    // All of them in one transaction, then one per transaction.
    d.s.store
        .write(T0, |w| {
            for text in AWKWARD {
                w.audit(&NewAudit::of(text, "test.awkward", text, text).with("ok", text))?;
            }
            Ok(())
        })
        .unwrap();
    for text in AWKWARD {
        d.s.store
            .audit(
                &NewAudit::of(text, "test.awkward", text, text).with("ok", text),
                T0,
            )
            .unwrap();
    }
    let want: Vec<_> = AWKWARD
        .iter()
        .chain(AWKWARD.iter())
        .map(|t| (t.to_string(), t.to_string(), t.to_string(), t.to_string()))
        .collect();
    assert_eq!(written_after(&d, seq), want);
    assert_eq!(d.s.store.verify_audit().unwrap(), Ok(before + 12));
}

#[test]
fn a_row_the_database_refuses_leaves_nothing_of_its_transaction() {
    let d = Domain::new();
    let before = d.s.store.verify_audit().unwrap().expect("intact");
    let seq = i64::try_from(before).unwrap();
    let fine = NewAudit::of("system", "test.fine", "first", "").with("ok", "");
    let nul = NewAudit::of("system", "test.nul", "nul\0byte", "").with("ok", "");
    let out = d.s.store.write(T0, |w| {
        w.audit(&fine)?;
        w.audit(&nul)
    });
    if countersign_testkit::postgres::on_postgres() {
        // PostgreSQL's text holds no NUL: refused, saying so, and the row
        // before it in the transaction is not kept either.
        assert!(
            matches!(&out, Err(StoreError::Decode(m)) if m.contains("NUL")),
            "a NUL in PostgreSQL text: {out:?}"
        );
        assert_eq!(written_after(&d, seq), vec![]);
        assert_eq!(d.s.store.verify_audit().unwrap(), Ok(before));
    } else {
        // SQLite's text holds it, like any other character.
        out.unwrap();
        assert_eq!(written_after(&d, seq).len(), 2);
    }
    writes_again(&d, seq);
}

#[test]
fn a_write_whose_commit_fails_leaves_nothing_and_the_next_goes_through() {
    let d = Domain::new();
    let before = d.s.store.verify_audit().unwrap().expect("intact");
    let seq = i64::try_from(before).unwrap();
    // On PostgreSQL an announcement goes with the commit, in the same
    // round trip; one longer than a notification may be (8,000 bytes)
    // fails there, after every statement of the transaction succeeded.
    let out = d.s.store.write(T0, |w| {
        w.audit(&NewAudit::of("system", "test.long", "", "").with("ok", ""))?;
        w.announce(Event::Secret("k".repeat(9_000)));
        Ok(())
    });
    if countersign_testkit::postgres::on_postgres() {
        assert!(
            matches!(out, Err(StoreError::Postgres(_))),
            "an announcement too long to send: {out:?}"
        );
        assert_eq!(written_after(&d, seq), vec![], "its audit row rolled back");
    } else {
        // SQLite announces nothing: the write simply commits.
        out.unwrap();
        assert_eq!(written_after(&d, seq).len(), 1);
    }
    writes_again(&d, seq);
}

/// A push's hot writes do not wait for a serialised write still open: on
/// PostgreSQL the concurrent write commits while the other holds the
/// write lock, and both audit rows join one chain in the order they
/// committed. On SQLite, with its one writer, it waits its turn.
#[test]
fn a_concurrent_write_does_not_wait_for_a_serialised_one_and_both_rows_join_the_chain() {
    use std::sync::mpsc;
    use std::time::Duration;
    let d = Domain::new();
    let before = d.s.store.verify_audit().unwrap().expect("intact");
    let seq = i64::try_from(before).unwrap();
    let row = |target| NewAudit::of("system", "test.order", target, "").with("ok", "");
    let (inside, entered) = mpsc::channel();
    let (go, wait) = mpsc::channel::<()>();
    let on_postgres = countersign_testkit::postgres::on_postgres();
    let store = &d.s.store;
    std::thread::scope(|s| {
        let held = s.spawn(move || {
            store.write(T0, |w| {
                w.audit(&row("held"))?;
                inside.send(()).unwrap();
                // Bounded, so that a write that did wait ends the test with
                // the wrong order rather than hanging it.
                let _ = wait.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
        });
        entered.recv().unwrap();
        if on_postgres {
            d.s.store
                .concurrent_write(T0, |w| w.audit(&row("beside")))
                .unwrap();
            go.send(()).unwrap();
        } else {
            go.send(()).unwrap();
            d.s.store
                .concurrent_write(T0, |w| w.audit(&row("beside")))
                .unwrap();
        }
        held.join().unwrap().unwrap();
    });
    let order: Vec<_> = written_after(&d, seq).into_iter().map(|r| r.1).collect();
    let want = match on_postgres {
        true => ["beside", "held"],
        false => ["held", "beside"],
    };
    assert_eq!(order, want);
    assert_eq!(d.s.store.verify_audit().unwrap(), Ok(before + 2));
}

/// A concurrent write that fails leaves nothing behind and its connection
/// clean, whether it failed before sending anything or in the round trip
/// that begins its transaction (on PostgreSQL, its first statement goes
/// with the `BEGIN`): the writes after it go through, on every pooled
/// connection, and the chain holds.
#[test]
fn a_concurrent_write_that_fails_leaves_nothing_and_the_next_goes_through() {
    let d = Domain::new();
    d.officer("cs0301");
    super::push::device(&d, "cs0301", "phone");
    let created = super::push::sign_in(&d, "cs0301");
    let before = d.s.store.verify_audit().unwrap().expect("intact");
    let seq = i64::try_from(before).unwrap();
    let row = |action| NewAudit::of("system", action, "", "").with("ok", "");
    let early = d.s.store.concurrent_write(T0, |w| {
        w.audit(&row("test.early"))?;
        Err::<(), _>(StoreError::NoRow)
    });
    assert!(matches!(early, Err(StoreError::NoRow)), "{early:?}");
    // The same challenge again: its id is taken, so the database refuses
    // the insert that begins the transaction.
    let stored = d.s.store.challenge(&created.challenge_id).unwrap().unwrap();
    let again = d.s.store.concurrent_write(T0, |w| {
        w.insert_challenge(&NewChallenge {
            challenge: &stored.challenge,
            user_id: stored.user_id,
            number: stored.number,
            created_ms: T0 * 1000,
            connected: false,
        })?;
        w.audit(&row("test.again"))
    });
    assert!(again.is_err(), "a second challenge with one id: {again:?}");
    assert_eq!(written_after(&d, seq), vec![]);
    writes_again(&d, seq);
}

/// The sequence numbers of the rows `f` selects.
fn seqs(d: &Domain, f: &AuditFilter) -> Vec<i64> {
    let rows = d.s.store.audit_entries(f).unwrap();
    rows.iter().map(|e| e.seq).collect()
}

/// Every combination of the audit view's filters finds exactly the rows
/// a plain reading of the filters names, newest-first limit included (on
/// either back end: the query names only the filters given).
#[test]
fn every_combination_of_filters_finds_the_rows_it_names() {
    let d = Domain::new();
    let actors = ["cs0201", "device:d1", "helpdesk1"];
    let targets = ["cs0201", "cs0202"];
    let actions = ["signin.password", "signin.push", "user.add"];
    let outcomes = ["ok", "refused"];
    for i in 0..36usize {
        let row = NewAudit::of(actors[i % 3], actions[i / 3 % 3], targets[i / 2 % 2], IP)
            .with(outcomes[i / 5 % 2], "");
        d.s.store.audit(&row, T0 + i as u64).unwrap();
    }
    let all = d.s.store.audit_entries(&AuditFilter::default()).unwrap();
    let first = all[all.len() - 36].seq;
    let full = AuditFilter {
        user: Some("cs0201".into()),
        since: Some(T0 + 4),
        until: Some(T0 + 30),
        actor: Some("helpdesk1".into()),
        action: Some("signin.".into()),
        outcome: Some("ok".into()),
        after_seq: Some(first + 2),
        through_seq: Some(first + 33),
        newest: None,
        oldest: None,
    };
    let mut tried = 0;
    for mask in 0..=255u8 {
        let on = |bit: u8| mask & (1 << bit) != 0;
        let f = AuditFilter {
            user: full.user.clone().filter(|_| on(0)),
            since: full.since.filter(|_| on(1)),
            until: full.until.filter(|_| on(2)),
            actor: full.actor.clone().filter(|_| on(3)),
            action: full.action.clone().filter(|_| on(4)),
            outcome: full.outcome.clone().filter(|_| on(5)),
            after_seq: full.after_seq.filter(|_| on(6)),
            through_seq: full.through_seq.filter(|_| on(7)),
            newest: None,
            oldest: None,
        };
        let named = |e: &&countersign_server::store::AuditEntry| {
            f.user
                .as_ref()
                .is_none_or(|u| &e.actor == u || &e.target == u)
                && f.since.is_none_or(|t| e.at >= t)
                && f.until.is_none_or(|t| e.at < t)
                && f.actor.as_ref().is_none_or(|a| &e.actor == a)
                && f.action
                    .as_ref()
                    .is_none_or(|a| e.action.starts_with(a.as_str()))
                && f.outcome.as_ref().is_none_or(|o| &e.outcome == o)
                && f.after_seq.is_none_or(|s| e.seq > s)
                && f.through_seq.is_none_or(|s| e.seq <= s)
        };
        let expected: Vec<i64> = all.iter().filter(named).map(|e| e.seq).collect();
        assert_eq!(seqs(&d, &f), expected, "filters {mask:08b}");
        // The newest two of them, still oldest first; and the oldest two.
        let newest = AuditFilter {
            newest: Some(2),
            ..f.clone()
        };
        assert_eq!(
            seqs(&d, &newest),
            expected[expected.len().saturating_sub(2)..],
            "newest 2, filters {mask:08b}"
        );
        let oldest = AuditFilter {
            oldest: Some(2),
            ..f
        };
        assert_eq!(
            seqs(&d, &oldest),
            expected[..expected.len().min(2)],
            "oldest 2, filters {mask:08b}"
        );
        tried += usize::from(!expected.is_empty());
    }
    // The filters' values were chosen so that most combinations match rows.
    assert!(tried > 200, "only {tried} combinations matched any row");
}

/// An export's pages: the oldest few after one row and up to another,
/// oldest first, so that pages read one after the other meet exactly.
#[test]
fn pages_of_the_oldest_rows_meet_and_stop_at_the_row_given() {
    let d = Domain::new();
    for i in 0..10 {
        let target = i.to_string();
        let row = NewAudit::of("system", "test.page", &target, IP).with("ok", "");
        d.s.store.audit(&row, T0 + i).unwrap();
    }
    let matching = AuditFilter {
        action: Some("test.page".into()),
        ..AuditFilter::default()
    };
    let all = seqs(&d, &matching);
    assert_eq!(all.len(), 10);
    let page = |after, through| {
        let f = AuditFilter {
            after_seq: Some(after),
            through_seq: Some(through),
            oldest: Some(4),
            ..matching.clone()
        };
        seqs(&d, &f)
    };
    assert_eq!(page(0, all[9]), all[0..4]);
    assert_eq!(page(all[3], all[9]), all[4..8]);
    assert_eq!(page(all[7], all[8]), all[8..9]);
}

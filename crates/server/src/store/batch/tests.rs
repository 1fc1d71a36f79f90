//! Group commit against a real SQLite file.

use std::sync::Arc;

use super::settled;
use crate::store::db::args;
use crate::store::{NewAudit, Store, StoreError};

/// A store on a file, and a way to count its audit rows as another
/// process would see them: from a connection of its own.
fn store() -> (
    tempfile::TempDir,
    Arc<Store>,
    impl Fn() -> i64 + Clone + Send + Sync + 'static,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Arc::new(Store::open(&path).unwrap());
    let committed = move || {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM audit", [], |r| r.get(0))
            .unwrap()
    };
    (dir, store, committed)
}

fn row(s: &Store, target: &str) -> Result<(), StoreError> {
    s.write(1, |w| w.audit(&NewAudit::of("t", "test", target, "")))
}

/// Serves `n` requests at once, each making `each(i)`; returns their
/// answers in order.
async fn serve<T: Send + 'static>(
    n: usize,
    each: impl Fn(usize) -> Result<T, StoreError> + Send + Sync + 'static,
) -> Vec<Result<T, StoreError>> {
    let each = Arc::new(each);
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let each = each.clone();
            tokio::spawn(async move { settled(async { each(i) }).await.and_then(|r| r) })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn requests_served_together_share_one_commit_and_each_answer_waits_for_it() {
    let (_dir, store, committed) = store();
    let before = store.commits().unwrap();
    let (s, c) = (store.clone(), committed.clone());
    let answers = serve(4, move |i| {
        row(&s, &format!("r{i}"))?;
        // Written, not yet committed: another connection sees none of
        // the batch.
        Ok(c())
    })
    .await;
    for a in answers {
        assert_eq!(a.unwrap(), 0, "a write was committed before its batch");
    }
    assert_eq!(committed(), 4, "every answered write is committed");
    let after = store.commits().unwrap();
    assert_eq!((after.0 - before.0, after.1 - before.1), (4, 1));
    assert_eq!(store.verify_audit().unwrap(), Ok(4));
}

#[tokio::test]
async fn a_write_outside_any_request_commits_at_once_with_the_open_batch() {
    let (_dir, store, committed) = store();
    let (s, c) = (store.clone(), committed.clone());
    let answers = serve(1, move |_| {
        row(&s, "in a request")?;
        let seen = c();
        // A thread of its own serves no request.
        let o = s.clone();
        std::thread::spawn(move || row(&o, "outside"))
            .join()
            .unwrap()?;
        Ok((seen, c()))
    })
    .await;
    assert_eq!(answers[0].as_ref().unwrap(), &(0, 2));
    assert_eq!(store.verify_audit().unwrap(), Ok(2));
}

#[tokio::test]
async fn a_write_that_fails_in_a_batch_undoes_only_itself() {
    let (_dir, store, committed) = store();
    let s = store.clone();
    let answers = serve(3, move |i| {
        s.write(1, |w| {
            w.audit(&NewAudit::of("t", "test", &format!("r{i}"), ""))?;
            match i {
                1 => Err(StoreError::Decode("refused after writing".into())),
                _ => Ok(()),
            }
        })
    })
    .await;
    assert!(answers[0].is_ok() && answers[2].is_ok());
    assert!(answers[1].is_err());
    assert_eq!(committed(), 2);
    let targets = store
        .read(|db| {
            db.all("SELECT target FROM audit ORDER BY seq", args![], |r| {
                r.get::<String>(0)
            })
        })
        .unwrap();
    assert_eq!(targets, ["r0", "r2"]);
    assert_eq!(
        store.verify_audit().unwrap(),
        Ok(2),
        "the chain skips the undone row"
    );
}

#[tokio::test]
async fn a_batch_that_cannot_commit_fails_every_answer_that_waited_for_it() {
    let (_dir, store, committed) = store();
    let s = store.clone();
    let answers = serve(2, move |i| match i {
        0 => doomed(&s),
        _ => row(&s, "r1"),
    })
    .await;
    for a in &answers {
        let e = a.as_ref().unwrap_err().to_string();
        assert!(e.contains("not committed"), "{e}");
    }
    assert_eq!(committed(), 0, "nothing of the batch is kept");
    // The writer is usable again, in a request or not.
    row(&store, "after").unwrap();
    let s = store.clone();
    assert!(serve(1, move |_| row(&s, "later")).await[0].is_ok());
    assert_eq!(committed(), 2);
    assert_eq!(store.verify_audit().unwrap(), Ok(2));
}

/// A write whose commit fails: it leaves a row whose user does not
/// exist, checked only as the whole transaction commits.
fn doomed(s: &Store) -> Result<(), StoreError> {
    s.write(1, |w| {
        w.db().exec("PRAGMA defer_foreign_keys = ON", args![])?;
        w.db().exec(
            "INSERT INTO password_history (user_id, hash, created_at) VALUES (999, 'x', 1)",
            args![],
        )?;
        Ok(())
    })
}

#[tokio::test]
async fn a_request_whose_earlier_batch_failed_fails_though_its_last_committed() {
    let (_dir, store, committed) = store();
    let s = store.clone();
    let answer = settled(async move {
        doomed(&s)?;
        // The batch's commit task runs, and fails, meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        row(&s, "later")
    })
    .await;
    let e = answer.unwrap_err().to_string();
    assert!(e.contains("not committed"), "{e}");
    assert_eq!(committed(), 1, "the later batch did commit");
}

#[tokio::test]
async fn a_request_that_reads_another_requests_write_waits_for_its_commit() {
    let (_dir, store, committed) = store();
    let (s, r) = (store.clone(), store.clone());
    let writer = tokio::spawn(settled(async move { row(&s, "written") }));
    let reader = tokio::spawn(settled(async move {
        r.read(|db| db.one("SELECT COUNT(*) FROM audit", args![], |r| r.get::<i64>(0)))
    }));
    // The reader ran after the write, before the commit: it saw the
    // row, and was answered only once the row was committed.
    let seen = reader.await.unwrap().unwrap().unwrap();
    assert_eq!((seen, committed()), (1, 1));
    writer.await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn what_waits_for_a_commit_runs_after_it_and_never_for_a_lost_write() {
    let (_dir, store, committed) = store();
    let ran = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (s, c, r) = (store.clone(), committed.clone(), ran.clone());
    let seen = settled(async move {
        row(&s, "told")?;
        let (r2, c2) = (r.clone(), c.clone());
        // Told only once the row is on disk, as another process sees it.
        s.after_commit(move || {
            assert_eq!(c2(), 1, "told before the commit");
            r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        Ok::<_, StoreError>(r.load(std::sync::atomic::Ordering::SeqCst))
    })
    .await;
    assert_eq!(seen.unwrap().unwrap(), 0, "ran before the commit");
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);

    let (s, r) = (store.clone(), ran.clone());
    let lost = settled(async move {
        doomed(&s)?;
        s.after_commit(move || {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        Ok::<_, StoreError>(())
    })
    .await;
    assert!(lost.is_err());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        ran.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "told of a lost write"
    );
    // Outside a request a write commits at once: so does what follows it.
    let r = ran.clone();
    store.after_commit(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_commits_its_writes_before_acting_outside_the_server() {
    let (_dir, store, committed) = store();
    let (s, c) = (store.clone(), committed.clone());
    let seen = settled(async move {
        row(&s, "a code")?;
        let before = c();
        s.commit_now()?;
        Ok::<_, StoreError>((before, c()))
    })
    .await;
    assert_eq!(seen.unwrap().unwrap(), (0, 1));
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, r) = (store.clone(), refused.clone());
    let lost = settled(async move {
        doomed(&s)?;
        r.store(s.commit_now().is_err(), std::sync::atomic::Ordering::SeqCst);
        Ok::<_, StoreError>(())
    })
    .await;
    assert!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        "a lost write was reported committed: it would be acted on"
    );
    assert!(lost.is_err());
}

#[tokio::test]
async fn a_batch_left_open_by_a_panicking_write_is_still_committed_for_requests() {
    let (_dir, store, committed) = store();
    // Outside any request: the write opens the batch itself and would
    // commit it, but panics half-way.
    orphan_batch(&store);
    let s = store.clone();
    answered_within_5_s(settled(async move { row(&s, "next") }))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed(), 1, "the half-made write is undone");
    assert_eq!(store.verify_audit().unwrap(), Ok(1));
}

#[tokio::test]
async fn a_full_disk_loses_no_answered_write() {
    let (_dir, store, committed) = store();
    // The database may grow by a few pages only: a large row fills it.
    let pages: i64 = store
        .read(|db| db.one("PRAGMA page_count", args![], |r| r.get(0)))
        .unwrap();
    store
        .write(1, |w| {
            w.db()
                .one(
                    &format!("PRAGMA max_page_count = {}", pages + 4),
                    args![],
                    |r| r.get::<i64>(0),
                )
                .map(|_| ())
        })
        .unwrap();
    let s = store.clone();
    let big = "x".repeat(64 * 1024);
    let answers = serve(3, move |i| match i {
        1 => s.write(1, |w| {
            w.audit(&NewAudit {
                detail: &big,
                ..NewAudit::of("t", "test", "big", "")
            })
        }),
        _ => row(&s, &format!("r{i}")),
    })
    .await;
    assert!(answers[1].is_err(), "the large row fits");
    let answered_ok = answers.iter().filter(|a| a.is_ok()).count() as i64;
    assert_eq!(committed(), answered_ok, "{answers:?}");
    assert_eq!(store.verify_audit().unwrap(), Ok(answered_ok as usize));
}

/// `answer`, which must not wait for a commit nobody makes.
async fn answered_within_5_s<T>(answer: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(5), answer)
        .await
        .expect("the answer waited for a commit nobody makes")
}

/// Leaves a batch open that no task will commit: a write outside any
/// request opens it and panics half-way.
fn orphan_batch(store: &Arc<Store>) {
    let s = store.clone();
    let panicked = std::thread::spawn(move || {
        s.write(1, |w| -> Result<(), StoreError> {
            w.audit(&NewAudit::of("t", "test", "half", ""))?;
            panic!("a bug in a write");
        })
    })
    .join();
    assert!(panicked.is_err());
}

#[tokio::test]
async fn a_request_that_only_reads_is_not_held_by_a_batch_nobody_commits() {
    let (_dir, store, _) = store();
    orphan_batch(&store);
    let s = store.clone();
    let read = answered_within_5_s(settled(async move {
        s.read(|db| db.one("SELECT COUNT(*) FROM audit", args![], |r| r.get::<i64>(0)))
    }))
    .await;
    assert_eq!(read.unwrap().unwrap(), 0);
}

#[tokio::test]
async fn what_follows_a_requests_writes_does_not_wait_for_a_batch_it_only_read() {
    let (_dir, store, committed) = store();
    let told = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (doomed_written, wait_for_doomed) = tokio::sync::oneshot::channel::<()>();
    // Another request's write that will not commit, made while this
    // request's own write is committed already.
    let s = store.clone();
    let other = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        settled(async move {
            doomed(&s)?;
            let _ = doomed_written.send(());
            Ok::<_, StoreError>(())
        })
        .await
    });
    let (s, t) = (store.clone(), told.clone());
    let answer = settled(async move {
        row(&s, "mine")?;
        wait_for_doomed.await.unwrap();
        // Reads the other request's open batch, then follows its own,
        // committed, write with an action.
        s.read(|db| db.one("SELECT COUNT(*) FROM audit", args![], |r| r.get::<i64>(0)))?;
        s.after_commit(move || t.store(true, std::sync::atomic::Ordering::SeqCst));
        Ok::<_, StoreError>(())
    })
    .await;
    assert!(other.await.unwrap().is_err());
    assert!(answer.is_err(), "answered from a batch that was lost");
    assert!(
        told.load(std::sync::atomic::Ordering::SeqCst),
        "its own committed write was never followed"
    );
    assert_eq!(committed(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_comes_after_what_its_commit_set_off() {
    let (_dir, store, _) = store();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, d) = (store.clone(), done.clone());
    settled(async move {
        row(&s, "answered")?;
        // Slow, on whichever worker commits: the other is free to run
        // this request on as soon as it is let go.
        s.after_commit(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            d.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Ok::<_, StoreError>(())
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        "answered before what the commit set off had run"
    );
}

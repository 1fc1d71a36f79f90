//! The help-desk console over HTTPS: staff only (an officer gets 403 on
//! every URL), a user's devices and live streams, a test push followed on
//! its timeline through delivered, shown and approved, fixes that need and
//! record a reason, the audit log with its CSV export, push health.

use countersign_core::protocol::{Decision, Receipt, ReceiptEvent};
use countersign_server::domain::helpdesk::Staff;
use countersign_server::domain::methods::Authority;
use countersign_server::now;
use countersign_server::store::{NewAudit, Role};

use super::{answers, approve_from_page, assert_audited, between, Browser};
use crate::common::{TestDevice, TestServer};

/// The help-desk member these tests act as.
const HD0001: Staff<'static> = Staff {
    name: "hd0001",
    role: Role::Helpdesk,
};

/// A user with the app (returned) and security questions, signed in
/// through the pages (password change, number matching) in `b`.
pub(super) async fn signed_in(ts: &TestServer, b: &Browser, username: &str) -> TestDevice {
    let temp = ts.add_user(username);
    let dev = ts.enroll(username).await;
    let chosen: Vec<(usize, String)> = answers()
        .chunks(2)
        .map(|p| (p[0].1.parse().unwrap(), p[1].1.to_string()))
        .collect();
    ts.server
        .register_answers(username, &chosen, Authority::Proven, "", now())
        .unwrap()
        .unwrap();
    let (path, page) = b.change_temporary(username, &temp).await;
    assert_eq!(path, "/signin/mfa");
    approve_from_page(ts, &dev, &page, Decision::Approve).await;
    let (_, path, page) = b.get("/signin/mfa/done").await;
    assert_eq!(path, "/signin/stay");
    let (_, path, _) = b.post("/signin/stay", &page, &[("stay", "no")]).await;
    assert_eq!(path, "/my");
    dev
}

/// A staff member with `role`, signed in through the pages in a browser
/// of their own.
pub(super) async fn staff_member(ts: &TestServer, username: &str, role: Role) -> Browser {
    let b = Browser::new(ts);
    signed_in(ts, &b, username).await;
    ts.server.set_role(username, role, "admin", now()).unwrap();
    b
}

async fn receipt(ts: &TestServer, dev: &TestDevice, id: &str, event: ReceiptEvent) {
    let r = Receipt::sign(id, dev.id(), event, now(), &dev.key);
    let resp = ts
        .http
        .post(format!("{}/api/v1/challenges/{id}/receipt", ts.url))
        .json(&r)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_follow_a_test_push_and_fix_the_account_officers_are_refused() {
    let ts = TestServer::start().await;
    let officer_browser = Browser::new(&ts);
    let officer = signed_in(&ts, &officer_browser, "cs1001").await;
    let staff = Browser::new(&ts);
    let _staff_dev = signed_in(&ts, &staff, "hd0001").await;
    ts.server
        .set_role("hd0001", Role::Helpdesk, "admin", now())
        .unwrap();

    // An officer: 403 on every console URL, pages and actions alike.
    for path in [
        "/helpdesk",
        "/helpdesk?q=cs",
        "/helpdesk/users/cs1001",
        "/helpdesk/challenges/x",
        "/helpdesk/challenges/x/events",
        "/helpdesk/audit",
        "/helpdesk/audit?format=csv",
        "/helpdesk/audit/events",
        "/helpdesk/health",
    ] {
        let (status, _, _) = officer_browser.get(path).await;
        assert_eq!(status, 403, "{path}");
    }
    let (_, _, my) = officer_browser.get("/my").await;
    for path in ["/helpdesk/users/cs1001/fix", "/helpdesk/users/cs1001/push"] {
        let (status, _, _) = officer_browser
            .post(path, &my, &[("action", "unlock"), ("reason", "me")])
            .await;
        assert_eq!(status, 403, "{path}");
    }
    assert!(!my.contains("Help desk console"));
    // No session at all: to sign-in.
    assert_eq!(Browser::new(&ts).get("/helpdesk").await.1, "/signin");

    // Staff: find the officer by name; the device is not listening.
    let (_, _, my) = staff.get("/my").await;
    assert!(my.contains("Help desk console"));
    let (status, _, page) = staff.get("/helpdesk?q=kent").await;
    assert_eq!(status, 200);
    assert!(page.contains("/helpdesk/users/cs1001"), "{page}");
    let (_, _, page) = staff.get("/helpdesk/users/cs1001").await;
    assert!(page.contains("no: no request stream open"), "{page}");

    // A test push: the number to read out, and "not delivered" until the
    // device acknowledges.
    let (_, path, page) = staff
        .post(
            "/helpdesk/users/cs1001/push",
            &page,
            &[
                ("device", officer.id()),
                ("label", "Help desk test (ticket 7)"),
            ],
        )
        .await;
    let id = path
        .strip_prefix("/helpdesk/challenges/")
        .unwrap()
        .to_string();
    assert!(page.contains("Read this number to the officer"), "{page}");
    assert!(page.contains("not delivered"), "{page}");
    let number: u8 = between(&page, "<p class=\"number\">", "<").parse().unwrap();
    let pending = officer.poll(&ts, 5).await;
    assert_eq!(
        pending[0].challenge.application,
        "Help desk test (ticket 7)"
    );
    receipt(&ts, &officer, &id, ReceiptEvent::Delivered).await;
    receipt(&ts, &officer, &id, ReceiptEvent::Shown).await;
    officer
        .answer(&ts, &officer.response(&id, Decision::Approve, Some(number)))
        .await;
    let (_, _, page) = staff.get(&format!("/helpdesk/challenges/{id}")).await;
    assert!(page.contains("the device acknowledged it"), "{page}");
    assert!(
        page.contains("the prompt was opened on the device"),
        "{page}"
    );
    assert!(page.contains("approved with the right number"), "{page}");

    // The live form: server-sent events carry the whole timeline.
    let resp = staff
        .http
        .get(format!("{}/helpdesk/challenges/{id}/events", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = resp.text().await.unwrap();
    assert!(
        events.starts_with("event: timeline") && events.contains("\"status\":\"approved\""),
        "{events}"
    );

    // A wrong number shows as such. This time the device is listening (a
    // long poll is open) when the request is made.
    let (_, _, page) = staff.get("/helpdesk/users/cs1001").await;
    let (fetched, (_, path, page)) = tokio::join!(officer.poll(&ts, 10), async {
        while ts.server.hub.connected(officer.id()) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        staff
            .post(
                "/helpdesk/users/cs1001/push",
                &page,
                &[("device", officer.id()), ("label", "")],
            )
            .await
    });
    let id2 = path
        .strip_prefix("/helpdesk/challenges/")
        .unwrap()
        .to_string();
    assert_eq!(fetched[0].challenge.id, id2);
    receipt(&ts, &officer, &id2, ReceiptEvent::Delivered).await;
    // The timelines say whether the device was connected when asked.
    let first = ts.server.timeline(&id, now()).unwrap();
    assert!(
        first.steps[0]
            .detail
            .ends_with("the device was not connected"),
        "{:?}",
        first.steps
    );
    // Wrong for this request's own number, whatever the first one was.
    let number2: u8 = between(&page, "<p class=\"number\">", "<").parse().unwrap();
    let wrong = if number2 == 10 { 11 } else { 10 };
    officer
        .answer(&ts, &officer.response(&id2, Decision::Approve, Some(wrong)))
        .await;
    let t = ts.server.timeline(&id2, now()).unwrap();
    assert_eq!(t.status, "number_mismatch");
    assert!(
        t.steps[0].detail.ends_with("the device was connected"),
        "{:?}",
        t.steps
    );
    assert!(
        t.steps[3].detail.contains(&format!("typed {wrong}")),
        "{:?}",
        t.steps
    );

    // Fixes: extend the setup deadline; remove the device.
    let (_, _, page) = staff.get("/helpdesk/users/cs1001").await;
    let before = ts
        .server
        .user("cs1001")
        .unwrap()
        .skip_setup_until
        .max(now());
    let (_, _, page) = staff
        .post(
            "/helpdesk/users/cs1001/fix",
            &page,
            &[
                ("action", "extend-skip-setup"),
                ("hours", "48"),
                ("reason", "on leave"),
            ],
        )
        .await;
    assert!(page.contains("Done: extend skip setup."), "{page}");
    let until = ts.server.user("cs1001").unwrap().skip_setup_until;
    assert!(
        (before + 48 * 3600..=now() + 48 * 3600).contains(&until),
        "{until}"
    );
    let (_, _, page) = staff
        .post(
            "/helpdesk/users/cs1001/fix",
            &page,
            &[
                ("action", "remove-device"),
                ("device", officer.id()),
                ("reason", "phone stolen"),
            ],
        )
        .await;
    assert!(page.contains("Done: remove device."), "{page}");
    assert!(ts.server.store.device(officer.id()).unwrap().is_none());
    assert!(page.contains("No device enrolled."), "{page}");

    // A reason is required, then recorded with the staff name.
    let (status, _, page) = staff
        .post(
            "/helpdesk/users/cs1001/fix",
            &page,
            &[("action", "reset-methods"), ("reason", "")],
        )
        .await;
    assert_eq!(status, 400);
    assert!(page.contains("Give a reason"), "{page}");
    let (_, path, page) = staff
        .post(
            "/helpdesk/users/cs1001/fix",
            &page,
            &[
                ("action", "reset-methods"),
                ("reason", "new phone, ticket 7"),
            ],
        )
        .await;
    assert_eq!(path, "/helpdesk/users/cs1001");
    assert!(page.contains("Done: reset methods."), "{page}");
    let (_, _, page) = staff
        .post(
            "/helpdesk/users/cs1001/fix",
            &page,
            &[
                ("action", "reset-password"),
                ("reason", "forgot it, ticket 8"),
            ],
        )
        .await;
    let temp = between(&page, "<p class=\"number password\">", "<").to_string();
    assert!(temp.starts_with("New$Alacop#"), "{page}");

    // The officer is sent back to registration at the next sign-in.
    let b = Browser::new(&ts);
    let (_, _, page) = b.sign_in("cs1001", &temp).await;
    let (_, path, _) = b
        .post(
            "/signin/update-password",
            &page,
            &[
                ("current", &temp),
                ("new", "Another-Long-Pass-42"),
                ("confirm", "Another-Long-Pass-42"),
            ],
        )
        .await;
    assert_eq!(path, "/signin/register");

    // The audit log: filtered, exported with the reasons, health drawn.
    let (_, _, page) = staff
        .get("/helpdesk/audit?actor=hd0001&action=helpdesk.")
        .await;
    assert!(
        page.contains("new phone, ticket 7") && page.contains("forgot it, ticket 8"),
        "{page}"
    );
    assert!(!page.contains("signin.password"), "filtered by action");
    let (_, _, page) = staff
        .get("/helpdesk/audit?user=cs1001&outcome=refused&action=helpdesk.")
        .await;
    assert!(!page.contains("ticket 7"), "filtered by outcome: {page}");
    let (_, _, page) = staff.get("/helpdesk/audit?actor=hd0001&until=1").await;
    assert!(!page.contains("ticket 7"), "filtered by time: {page}");
    // A username in another case is the account, as at sign-in.
    let (_, _, page) = staff
        .get("/helpdesk/audit?actor=HD0001&action=helpdesk.")
        .await;
    assert!(page.contains("ticket 7"), "actor in capitals: {page}");
    // A time that is not one is said, not dropped: no rows, the form kept.
    for bad in ["abc", "-5", "99999999999999999999"] {
        let (status, _, page) = staff
            .get(&format!("/helpdesk/audit?actor=hd0001&since={bad}"))
            .await;
        assert_eq!(status, 400, "since={bad}");
        assert!(
            page.contains(&format!("Since: &quot;{bad}&quot; is not a time")),
            "{page}"
        );
        assert!(
            !page.contains("ticket 7") && page.contains("value=\"hd0001\""),
            "{page}"
        );
        let (status, _, _) = staff
            .get(&format!("/helpdesk/audit?format=csv&until={bad}"))
            .await;
        assert_eq!(status, 400, "CSV until={bad}");
        let (status, _, _) = staff
            .get(&format!("/helpdesk/audit/events?since={bad}"))
            .await;
        assert_eq!(status, 400, "live tail since={bad}");
    }
    let csv = staff
        .http
        .get(format!("{}/helpdesk/audit?format=csv&user=cs1001", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("seq,at,actor,action,target,ip,outcome,detail\n"));
    assert!(
        csv.lines().any(
            |l| l.contains("\"hd0001\",\"helpdesk.reset_methods\",\"cs1001\"")
                && l.contains("new phone, ticket 7")
        ),
        "{csv}"
    );
    // The live tail: a row written after the page was opened arrives.
    let last = ts
        .server
        .store
        .audit_entries(&Default::default())
        .unwrap()
        .last()
        .unwrap()
        .seq;
    let mut tail = staff
        .http
        .get(format!(
            "{}/helpdesk/audit/events?after={last}&action=helpdesk.",
            ts.url
        ))
        .send()
        .await
        .unwrap();
    ts.server
        .apply_fix(
            "cs1001",
            &countersign_server::domain::helpdesk::Fix::Unlock,
            HD0001,
            "ticket 9",
            "",
            now(),
        )
        .unwrap();
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), tail.chunk())
        .await
        .expect("a row within 10 s")
        .unwrap()
        .unwrap();
    let event = String::from_utf8_lossy(&chunk);
    assert!(
        event.starts_with("event: row")
            && event.contains("helpdesk.unlock")
            && event.contains("ticket 9"),
        "{event}"
    );

    let (_, _, page) = staff.get("/helpdesk/health").await;
    assert!(
        page.contains("<svg") && page.contains("Challenges per minute"),
        "{page}"
    );
    let h = ts.server.push_health(60, now()).unwrap();
    // The latency counts the push to the listening device only; the first
    // test push waited for the device to ask.
    assert_eq!((h.latencies_ms.len(), h.delivered_later), (1, 1), "{h:?}");
    assert!(page.contains("id=\"delivered-later\">1<"), "{page}");
    // Four answered (two sign-ins, two test pushes), one with a wrong number.
    assert_eq!(
        (h.total, h.mismatch_rate, h.expired_rate),
        (4, 0.25, 0.0),
        "{h:?}"
    );
    assert_audited(
        &ts,
        &[
            ("helpdesk.reset_methods", "ok"),
            ("helpdesk.reset_password", "ok"),
            ("helpdesk.extend_skip_setup", "ok"),
            ("helpdesk.remove_device", "ok"),
            ("challenge.delivered", "ok"),
            ("challenge.shown", "ok"),
        ],
    );
}

/// What the console cannot show or read is said as a page, naming what
/// was wrong, and nothing typed is shown back raw; its live streams are
/// never stored by a cache.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_says_what_was_wrong_as_a_page() {
    let ts = TestServer::start().await;
    let staff = staff_member(&ts, "hd0201", Role::Helpdesk).await;
    ts.add_user("cs1201");
    ts.server
        .apply_fix(
            "cs1201",
            &countersign_server::domain::helpdesk::Fix::Unlock,
            HD0001,
            "ticket 21",
            "",
            now(),
        )
        .unwrap();

    // Nobody by that name, no such challenge: a page, not JSON.
    for path in ["/helpdesk/users/nobody", "/helpdesk/challenges/none"] {
        let resp = staff
            .http
            .get(format!("{}{path}", ts.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
        let page = resp.text().await.unwrap();
        assert!(page.contains("<h1>Not found</h1>"), "{page}");
        assert!(
            page.contains("<a href=\"/helpdesk\">Back to the help desk</a>"),
            "{page}"
        );
    }

    // The audit filters: a user as an address at the domain is the account.
    let (_, _, page) = staff
        .get("/helpdesk/audit?user=CS1201@ALACOP.GOV&action=helpdesk.")
        .await;
    assert!(page.contains("ticket 21"), "{page}");
    // A signed time, a format the page does not give, a control character:
    // each refused, saying which; the control character is not shown back.
    for (query, says) in [
        ("since=%2B5", "Since: &quot;+5&quot; is not a time"),
        ("until=1e9", "Until: &quot;1e9&quot; is not a time"),
        (
            "format=xml",
            "Format: &quot;xml&quot; is not one this page gives",
        ),
        ("user=cs1201%00", "The user filter holds a control"),
        ("action=a%1b%5b31m", "The action filter holds a control"),
        (
            "outcome=ok%E2%80%AE",
            "The outcome filter holds a control or text-direction",
        ),
        (
            "outcome=ok%E2%80%8F",
            "The outcome filter holds a control or text-direction",
        ),
        (
            "user=%EF%BB%BFcs1201",
            "The user filter holds a control or text-direction",
        ),
        ("since=9223372036854775808", "is not a time"),
        ("user=@alacop.gov", "User: give a username before the @."),
    ] {
        let (status, _, page) = staff.get(&format!("/helpdesk/audit?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(says), "{query}: {page}");
        assert!(!page.contains("ticket 21"), "{query}: no rows");
        assert!(
            !page.contains(['\0', '\x1b', '\u{202e}', '\u{200f}', '\u{feff}']),
            "{query}: shown back raw"
        );
    }
    // An account's page by its address, as at sign-in; a confirmation
    // only of a fix's own name.
    let (status, _, page) = staff
        .get("/helpdesk/users/CS1201@alacop.gov?done=unlock")
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("Done: unlock."), "{page}");
    let (_, _, page) = staff
        .get("/helpdesk/users/cs1201?done=call-us-on-555-0100")
        .await;
    assert!(!page.contains("555"), "{page}");
    // The live tail checks where it starts.
    for after in ["abc", "-1", "%2B5"] {
        let resp = staff
            .http
            .get(format!("{}/helpdesk/audit/events?after={after}", ts.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "after={after}");
        let text = resp.text().await.unwrap();
        assert!(text.contains("is not a row number"), "{text}");
    }
    // Live streams are not kept by a cache.
    let resp = staff
        .http
        .get(format!("{}/helpdesk/audit/events?after=0", ts.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["cache-control"], "no-store");
}

/// An export of more rows than it reads at a time has every matching row,
/// once each and oldest first.
#[tokio::test(flavor = "multi_thread")]
async fn an_export_larger_than_its_pages_has_every_matching_row_once() {
    let ts = TestServer::start().await;
    let staff = staff_member(&ts, "hd0301", Role::Helpdesk).await;
    // 2,500 rows, every other one matching: the matches fill more than
    // one page of the export's reads (1,000 rows).
    ts.server
        .store
        .write(now(), |w| {
            for i in 0..2_500 {
                let action = ["test.export", "test.other"][i % 2];
                let target = format!("row {i}");
                let row = NewAudit::of("system", action, &target, "");
                w.audit(&row.with("ok", ""))?;
            }
            Ok(())
        })
        .unwrap();
    let resp = staff
        .http
        .get(format!(
            "{}/helpdesk/audit?format=csv&action=test.export",
            ts.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let csv = resp.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("seq,at,actor,action,target,ip,outcome,detail")
    );
    let targets: Vec<&str> = lines.map(|l| l.split(',').nth(4).unwrap()).collect();
    let expected: Vec<String> = (0..2_500)
        .step_by(2)
        .map(|i| format!("\"row {i}\""))
        .collect();
    assert_eq!(targets, expected);
}

/// The live timeline and audit tail wait for the next audit row, not for a
/// polling period: a row wakes them at once (the limit given here, an
/// hour, is what they would otherwise wait).
#[tokio::test(flavor = "multi_thread")]
async fn live_views_wake_on_each_audit_row() {
    let ts = TestServer::start().await;
    let mut changes = ts.server.audit_changes();
    let waiting =
        tokio::spawn(async move { changes.next(std::time::Duration::from_secs(3600)).await });
    tokio::task::yield_now().await;
    ts.server
        .audit(
            countersign_server::store::NewAudit {
                actor: "system",
                action: "test.row",
                target: "",
                ip: "",
                outcome: "ok",
                detail: "",
            },
            now(),
        )
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("the row woke the waiting view")
        .unwrap();
}

/// The timeline keeps the millisecond a challenge was created at, as the
/// caller's clock read it, not the start of that second.
#[tokio::test(flavor = "multi_thread")]
async fn a_challenge_keeps_its_millisecond() {
    let ts = TestServer::start().await;
    ts.add_user("cs1003");
    let _device = ts.enroll("cs1003").await;
    let at = now() * 1000 + 789;
    let (id, _) = ts
        .server
        .helpdesk_push("cs1003", None, "", HD0001, "", at)
        .unwrap();
    let t = ts.server.timeline(&id, now()).unwrap();
    assert_eq!(t.steps[0].at_ms, Some(at), "{:?}", t.steps);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_reset_whose_browser_left_while_it_waited_changes_nothing() {
    let ts = TestServer::start().await;
    signed_in(&ts, &Browser::new(&ts), "cs1011").await;
    let staff = staff_member(&ts, "hd0011", Role::Helpdesk).await;
    let (_, _, page) = staff.get("/helpdesk/users/cs1011").await;
    let before = ts.server.user("cs1011").unwrap().password_hash;

    // Every hashing thread busy until the gate opens: the reset waits in
    // their queue, as behind a burst of sign-ins.
    let gate = std::sync::Arc::new(tokio::sync::RwLock::new(()));
    let closed = gate.write().await;
    // (As many jobs as cores: more than there are hashing threads.)
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let busy: Vec<_> = (0..cores)
        .map(|_| {
            let (s, gate, running) = (ts.server.clone(), gate.clone(), running.clone());
            tokio::spawn(async move {
                s.hashing(move |_| {
                    running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(gate.blocking_read());
                    Ok(())
                })
                .await
            })
        })
        .collect();
    // Every hashing thread has taken one (the rest wait in the queue).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut taken = 0;
    while std::time::Instant::now() < deadline {
        taken = running.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if taken > 0 && running.load(std::sync::atomic::Ordering::SeqCst) == taken {
            break;
        }
    }
    assert!(taken > 0, "no hashing thread took a job");
    // The help desk asks for a reset, and gives up waiting (the browser
    // closed, the connection with it).
    let reset = staff.post(
        "/helpdesk/users/cs1011/fix",
        &page,
        &[
            ("action", "reset-password"),
            ("reason", "forgot it, ticket 9"),
        ],
    );
    let waited = tokio::time::timeout(std::time::Duration::from_secs(2), reset).await;
    assert!(waited.is_err(), "the reset waited behind the busy threads");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(closed);
    for b in busy {
        b.await.unwrap().unwrap();
    }
    // The reset's hashing, queued behind them, has run by now; give a
    // commit that should not come time to come.
    ts.server.hashing(|_| Ok(())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    // No one saw a new password, so none was set: the officer's stays.
    assert_eq!(ts.server.user("cs1011").unwrap().password_hash, before);
    let filter = countersign_server::store::AuditFilter {
        action: Some("helpdesk.reset_password".into()),
        ..Default::default()
    };
    assert_eq!(ts.server.store.audit_entries(&filter).unwrap().len(), 0);
    // The same reset, waited for, goes through.
    let (_, _, page) = staff.get("/helpdesk/users/cs1011").await;
    let (_, _, page) = staff
        .post(
            "/helpdesk/users/cs1011/fix",
            &page,
            &[
                ("action", "reset-password"),
                ("reason", "forgot it, ticket 9"),
            ],
        )
        .await;
    assert!(page.contains("Temporary password"), "{page}");
    assert_ne!(ts.server.user("cs1011").unwrap().password_hash, before);
}

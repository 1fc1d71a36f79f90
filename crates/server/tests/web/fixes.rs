//! Help-desk fixes take effect at once: disabling, a password reset and a
//! methods reset end every browser session of the officer (stay-signed-in
//! ones too); the console's live streams close when their viewer signs
//! out, loses the role or is disabled; staff cannot fix an account whose
//! role is above theirs.

use std::time::Duration;

use countersign_core::protocol::Decision;
use countersign_server::domain::helpdesk::Fix;
use countersign_server::domain::helpdesk::Staff;
use countersign_server::now;
use countersign_server::store::Role;

use super::helpdesk::{signed_in, staff_member};
use super::{approve_from_page, assert_audited, Browser, NEW};
use crate::common::{TestDevice, TestServer};

/// Signs `user` in again in `b`, approving with `dev`; "Stay signed in"
/// when `stay`.
async fn sign_in_again(ts: &TestServer, b: &Browser, user: &str, dev: &TestDevice, stay: bool) {
    let (_, path, page) = b.sign_in(user, NEW).await;
    assert_eq!(path, "/signin/mfa");
    approve_from_page(ts, dev, &page, Decision::Approve).await;
    let (_, path, page) = b.get("/signin/mfa/done").await;
    assert_eq!(path, "/signin/stay");
    let answer = if stay { "yes" } else { "no" };
    let (_, path, _) = b.post("/signin/stay", &page, &[("stay", answer)]).await;
    assert_eq!(path, "/my");
}

#[tokio::test(flavor = "multi_thread")]
async fn fixes_end_every_session_of_the_officer() {
    let ts = TestServer::start().await;
    let _staff = staff_member(&ts, "hd0101", Role::Helpdesk).await;

    type Apply = fn(&TestServer, &str);
    let fixes: [(&str, Apply); 4] = [
        ("cs1101", |ts, u| {
            ts.server.set_disabled(u, true, "admin-cli", now()).unwrap()
        }),
        ("cs1102", |ts, u| {
            ts.server
                .reset_password(u, "admin-cli", now())
                .map(drop)
                .unwrap()
        }),
        ("cs1103", |ts, u| {
            ts.server
                .reset_methods(u, "admin-cli", now())
                .map(drop)
                .unwrap()
        }),
        ("cs1104", |ts, u| {
            ts.server
                .apply_fix(
                    u,
                    &Fix::ResetPassword,
                    Staff {
                        name: "hd0101",
                        role: Role::Helpdesk,
                    },
                    "forgot",
                    "",
                    now(),
                )
                .map(drop)
                .unwrap()
        }),
    ];
    for (user, apply) in fixes {
        // Signed in twice: a browser session and a "Stay signed in".
        let plain = Browser::new(&ts);
        let dev = signed_in(&ts, &plain, user).await;
        let staying = Browser::new(&ts);
        sign_in_again(&ts, &staying, user, &dev, true).await;
        for b in [&plain, &staying] {
            assert_eq!(b.get("/my").await.1, "/my", "{user} signed in");
        }
        apply(&ts, user);
        for b in [&plain, &staying] {
            assert_eq!(b.get("/my").await.1, "/signin", "{user}: the old cookie");
        }
    }
}

/// Reads a live stream for `d`: whether it is still open then.
async fn open_after(stream: &mut reqwest::Response, d: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => return true,
            Ok(Ok(Some(_))) => continue,
            Ok(Ok(None) | Err(_)) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_streams_close_when_the_viewer_signs_out_loses_the_role_or_is_disabled() {
    let ts = TestServer::start().await;
    let (challenge, _) = {
        let b = Browser::new(&ts);
        signed_in(&ts, &b, "cs1201").await;
        ts.push_ok("cs1201").await
    };
    type Revoke = fn(&TestServer, &str);
    let cases: [(&str, Revoke); 3] = [
        ("hd1201", |_, _| {}),
        ("hd1202", |ts, u| {
            ts.server
                .set_role(u, Role::Officer, "admin-cli", now())
                .unwrap()
        }),
        ("hd1203", |ts, u| {
            ts.server.set_disabled(u, true, "admin-cli", now()).unwrap()
        }),
    ];
    for (staff_name, revoke) in cases {
        let staff = staff_member(&ts, staff_name, Role::Helpdesk).await;
        let open = |path: String| {
            let http = staff.http.clone();
            let url = format!("{}{path}", ts.url);
            async move {
                let r = http.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                r
            }
        };
        let mut audit = open("/helpdesk/audit/events?after=0".into()).await;
        let mut timeline = open(format!("/helpdesk/challenges/{challenge}/events")).await;
        let short = Duration::from_millis(300);
        assert!(open_after(&mut audit, short).await && open_after(&mut timeline, short).await);
        if staff_name == "hd1201" {
            let (_, _, page) = staff.get("/signout").await;
            let csrf = super::between(&page, "name=\"csrf\" value=\"", "\"").to_string();
            staff
                .http
                .post(format!("{}/signout", ts.url))
                .form(&[("csrf", csrf.as_str())])
                .send()
                .await
                .unwrap();
        } else {
            revoke(&ts, staff_name);
        }
        let limit = Duration::from_secs(5);
        assert!(
            !open_after(&mut audit, limit).await,
            "{staff_name}: audit tail"
        );
        assert!(
            !open_after(&mut timeline, limit).await,
            "{staff_name}: timeline"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_cannot_fix_an_account_above_their_role() {
    let ts = TestServer::start().await;
    let staff = staff_member(&ts, "hd1301", Role::Helpdesk).await;
    let admin = staff_member(&ts, "ad1301", Role::Admin).await;
    let hash_before = ts.server.user("ad1301").unwrap().password_hash;

    // The administrator's page offers no fix and no test push, and says why.
    let (_, _, page) = staff.get("/helpdesk/users/ad1301").await;
    assert!(
        !page.contains("/helpdesk/users/ad1301/fix") && !page.contains("/push\""),
        "{page}"
    );
    assert!(
        page.contains(
            "This account is admin and you are helpdesk: only an administrator can fix it"
        ),
        "{page}"
    );
    // A form posted by hand is still refused (the token from a peer's page).
    let (_, _, page) = staff.get("/helpdesk/users/hd1301").await;
    assert!(page.contains("/helpdesk/users/hd1301/fix"), "{page}");
    for action in ["reset-password", "reset-methods", "unlock"] {
        let (status, _, page) = staff
            .post(
                "/helpdesk/users/ad1301/fix",
                &page,
                &[("action", action), ("reason", "ticket 77")],
            )
            .await;
        assert_eq!(status, 403, "{action}");
        assert!(
            page.contains("only an administrator can fix this account"),
            "{page}"
        );
    }
    let after = ts.server.user("ad1301").unwrap();
    assert_eq!(after.password_hash, hash_before);
    assert!(!after.must_change);
    assert!(ts.server.methods("ad1301").unwrap().app);
    assert_eq!(
        admin.get("/my").await.1,
        "/my",
        "the admin is still signed in"
    );
    assert_audited(&ts, &[("helpdesk.reset_password", "refused")]);

    // Peers and officers can still be helped; an admin can fix anyone.
    let err = ts
        .server
        .apply_fix(
            "ad1301",
            &Fix::Unlock,
            Staff {
                name: "hd1301",
                role: Role::Helpdesk,
            },
            "ticket",
            "",
            now(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "role_too_high");
    ts.server
        .apply_fix(
            "hd1301",
            &Fix::Unlock,
            Staff {
                name: "ad1301",
                role: Role::Admin,
            },
            "ticket",
            "",
            now(),
        )
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_needs_a_second_factor_and_a_password_change_ends_other_sessions() {
    let ts = TestServer::start().await;
    let temp = ts.add_user("hd1401");
    ts.server
        .set_role("hd1401", Role::Helpdesk, "admin", now())
        .unwrap();
    // Someone else got in with the temporary password first…
    let old = Browser::new(&ts);
    assert_eq!(
        old.sign_in("hd1401", &temp).await.1,
        "/signin/update-password"
    );
    // …and the officer changes it: that other session ends.
    let b = Browser::new(&ts);
    let (path, page) = b.change_temporary("hd1401", &temp).await;
    assert_eq!(path, "/signin/register");
    assert_eq!(old.get("/signin/update-password").await.1, "/signin");

    // A staff member who skipped setup is signed in with the password
    // alone: not enough for the console.
    b.skip_setup(&page).await;
    b.console_needs_a_factor().await;
    let (status, _, _) = b.get("/helpdesk/audit/events").await;
    assert_eq!(status, 403);
}

/// The console's password reset past the staff member's resets for the
/// hour: the page says so (429), and the officer's password stands.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_refuses_a_reset_past_the_hours_limit() {
    let ts = TestServer::start_with(|c| c.users.helpdesk_resets_per_hour = 1).await;
    let staff = staff_member(&ts, "hd1501", Role::Helpdesk).await;
    ts.add_user("cs1501");
    ts.add_user("cs1502");
    let (_, _, page) = staff.get("/helpdesk/users/cs1501").await;
    let (status, _, done) = staff
        .post(
            "/helpdesk/users/cs1501/fix",
            &page,
            &[("action", "reset-password"), ("reason", "ticket 1")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(done.contains("Temporary password"), "{done}");
    let before = ts.server.user("cs1502").unwrap().password_hash;
    let (status, _, refused) = staff
        .post(
            "/helpdesk/users/cs1502/fix",
            &page,
            &[("action", "reset-password"), ("reason", "ticket 2")],
        )
        .await;
    assert_eq!(status, 429);
    assert!(
        refused.contains("You have applied 1 resets in the last hour"),
        "{refused}"
    );
    assert_eq!(ts.server.user("cs1502").unwrap().password_hash, before);
    assert_audited(&ts, &[("helpdesk.reset_password", "refused")]);
}

//! The help desk in a real browser (headless Debian chromium): an officer
//! is refused the console; a help-desk user finds the officer, whose device
//! is offline ("not delivered"), watches the timeline move on by itself to
//! delivered → shown → approved when the officer's `countersign watch`
//! connects and the number is typed, sends another test push, resets the
//! officer's methods with a reason, and the officer is sent back to
//! registration. Every action is in the audit log with its reason.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_e2e::{assert_ok, Pages, Stack};
use countersign_testkit::Session;

const NEW: &str = "Correct-Horse-9-Battery";

/// Adds the help-desk user and returns the temporary password.
fn add_staff(stack: &Stack) -> String {
    let out = stack.server(&["user", "add", "hd0001", "--first", "Lois", "--last", "Lane"]);
    assert_ok(&out, "user add");
    assert_ok(
        &stack.server(&["user", "role", "hd0001", "helpdesk"]),
        "user role",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Enrolls the stack's CLI for `username` from the server's QR image.
fn enroll(stack: &Stack, username: &str) {
    let png = stack.file(&format!("{username}.png"));
    let out = stack.server(&[
        "user",
        "enroll-link",
        username,
        "--png",
        png.to_str().unwrap(),
    ]);
    assert_ok(&out, "user enroll-link");
    stack.cli(&["add", "--qr", png.to_str().unwrap()]);
}

/// First sign-in: new password, the app's number typed through the CLI,
/// setup of a second method postponed, "Stay signed in?" no.
fn first_sign_in(p: &mut Pages<'_>, stack: &Stack, username: &str, temp: &str) {
    p.sign_in(username, temp);
    p.at("/signin/update-password");
    p.change_password(temp, NEW);
    p.at("/signin/mfa");
    let number = p.number();
    stack.approve_with(&number);
    p.at("/signin/register");
    p.submit("/signin/register/skip");
    p.at("/signin/stay");
    p.s.click("button[name=stay][value=no]");
    p.at("/my");
}

#[test]
fn help_desk_follows_a_push_and_resets_an_officer() {
    let stack = Stack::start("cs0401");
    let staff_temp = add_staff(&stack);
    stack.cli(&["init"]);
    enroll(&stack, "cs0401");
    enroll(&stack, "hd0001");
    let s = Session::chromium(1280, 1000);
    let mut p = Pages::new(&s, "helpdesk");

    p.step("The officer is refused the console");
    // The officer is refused the console.
    s.goto(&stack.url("/signin"));
    first_sign_in(&mut p, &stack, "cs0401", &stack.temporary_password.clone());
    s.goto(&stack.url("/helpdesk"));
    p.says("The help-desk console is for help-desk staff.");
    p.shot("officer-refused");
    for path in [
        "/helpdesk/users/cs0401",
        "/helpdesk/audit",
        "/helpdesk/health",
    ] {
        s.goto(&stack.url(path));
        p.says("The help-desk console is for help-desk staff.");
    }
    s.goto(&stack.url("/my"));
    p.sign_out(false);

    p.step("The help desk signs in and finds the officer");
    // The help desk signs in and finds the officer: the device is offline.
    first_sign_in(&mut p, &stack, "hd0001", &staff_temp);
    s.click("a[href='/helpdesk']");
    p.at("/helpdesk");
    s.type_into("#q", "kent");
    p.submit("/helpdesk");
    p.says("1 found");
    p.shot("search");
    s.click("a[href='/helpdesk/users/cs0401']");
    p.at("/helpdesk/users/cs0401");
    p.says("no: no request stream open");
    p.shot("officer-offline");

    p.step("A test push while offline");
    // A test push while offline: "not delivered".
    s.click("form[action='/helpdesk/users/cs0401/push'] button[type=submit]");
    p.says("Read this number to the officer");
    p.says("not delivered");
    p.shot("timeline-not-delivered");
    let number = s.text("p.number").trim().to_string();

    p.step("The officer's device comes online");
    // The officer's device comes online: the page moves on by itself.
    let mut watch = stack.watch();
    watch.said("Are you trying to sign in?");
    s.wait_for(
        "document.querySelector('li[data-step=delivered]').className == 'done' \
         && document.querySelector('li[data-step=shown]').className == 'done'",
        "delivered and shown on the timeline",
    );
    p.says("the prompt was opened on the device");
    p.shot("timeline-shown");
    watch.type_line(&number);
    p.says("approved with the right number");
    p.says("Status: approved");
    p.shot("timeline-approved");
    let times = s.script(
        "return [...document.querySelectorAll('#timeline .when')].map(e => e.textContent);",
        serde_json::json!([]),
    );
    assert!(
        times
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.as_str().unwrap().ends_with(" UTC")),
        "every step has its time: {times}"
    );

    p.step("Another test push, now that the device listens");
    // Another test push, now that the device listens.
    s.goto(&stack.url("/helpdesk/users/cs0401"));
    p.says("yes (1 stream)");
    s.click("form[action='/helpdesk/users/cs0401/push'] button[type=submit]");
    p.says("Read this number to the officer");
    let number = s.text("p.number").trim().to_string();
    watch.said("Are you trying to sign in?");
    watch.type_line(&number);
    p.says("Status: approved");
    drop(watch);

    p.step("Reset the officer's methods, with a reason");
    // Reset the officer's methods, with a reason.
    s.goto(&stack.url("/helpdesk/users/cs0401"));
    s.type_into("#reason-reset-methods", "lost phone, ticket 5150");
    p.submit_form_with("input[name=action][value=reset-methods]");
    p.says("Done: reset methods.");
    p.shot("reset-methods");

    p.step("The audit log, the health page");
    // The audit log, the health page.
    s.goto(&stack.url("/helpdesk/audit?actor=hd0001"));
    p.says("lost phone, ticket 5150");
    p.shot("audit");
    s.goto(&stack.url("/helpdesk/health"));
    p.says("Challenges per minute");
    p.shot("health");
    s.goto(&stack.url("/my"));
    p.sign_out(false);

    p.step("The officer registers again at the next sign-in");
    // The officer registers again at the next sign-in.
    p.sign_in("cs0401", NEW);
    p.more_information(false);
    p.at("/signin/register");
    p.says("Method 1 of 2");

    let audit = stack.server(&["audit", "--user", "cs0401", "--format", "csv"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.lines().any(|l| l.contains("hd0001")
            && l.contains("helpdesk.reset_methods")
            && l.contains("lost phone, ticket 5150")),
        "{audit}"
    );
    for action in ["challenge.delivered", "challenge.shown", "challenge.answer"] {
        assert!(audit.contains(action), "{action} is not in the audit log");
    }
}

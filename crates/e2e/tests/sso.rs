//! Single sign-on in a real browser (headless Debian chromium), as the
//! seed guide begins and ends: the officer opens the application first
//! ("LETS (demo)", a relying party on the `openidconnect` crate), is sent
//! to sign in "to continue to" it, approves the number the page shows with
//! the `countersign` CLI (the prompt names the application), and lands
//! back in it with the push in `amr`. A second application ("SCRAP
//! (demo)") then signs in without asking again. Logging out of LETS leads
//! through the sign-out pages to "log in to the previous application
//! again", which returns to LETS.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_e2e::{assert_ok, Demo, Pages, Stack};
use countersign_testkit::Session;

const NEW: &str = "Correct-Horse-9-Battery";

#[test]
fn an_officer_opens_the_application_signs_in_with_the_number_and_logs_out() {
    let stack = Stack::start("cs0601");
    let temp = stack.temporary_password.clone();
    stack.cli(&["init"]);
    let png = stack.file("cs0601.png");
    assert_ok(
        &stack.server(&[
            "user",
            "enroll-link",
            "cs0601",
            "--png",
            png.to_str().unwrap(),
        ]),
        "user enroll-link",
    );
    stack.cli(&["add", "--qr", png.to_str().unwrap()]);
    let lets = Demo::start(&stack, "lets-demo", "LETS (demo)");
    // The second application's ID tokens are EdDSA: the relying-party
    // library checks a second algorithm.
    let scrap = Demo::start_signed(&stack, "scrap-demo", "SCRAP (demo)", "EdDSA");
    let s = Session::chromium(1280, 900);
    let mut p = Pages::new(&s, "sso");

    p.step("Open the application first");
    s.goto(&lets.url("/"));
    p.says("This application needs you to sign in.");
    s.click("#signin");

    p.step("Sign in to continue to LETS (demo)");
    p.at("/signin");
    p.says("to continue to LETS (demo)");
    p.help("signin-for-application");
    p.sign_in("cs0601", &temp);
    p.at("/signin/update-password");
    p.change_password(&temp, NEW);

    p.step("Approve the number; the prompt names the application");
    p.at("/signin/mfa");
    let number = p.number();
    let request = stack.pending_request();
    assert_eq!(request["app"], "LETS (demo)", "{request}");
    stack.approve_with(&number);
    p.at("/signin/register");
    p.submit("/signin/register/skip");
    p.at("/signin/stay");
    s.click("button[name=stay][value=no]");

    p.step("Back in the application, with the push in amr");
    p.says("Signed in as cs0601");
    assert!(s.url().starts_with(&lets.url("/")), "{}", s.url());
    assert_eq!(s.text("#amr code"), "pwd swk user mfa");
    assert_eq!(s.text("#acr code"), "mfa");
    assert!(s.text("#userinfo").contains("cs0601@alacop.gov"));

    p.step("A second application signs in without asking again");
    s.goto(&scrap.url("/"));
    s.click("#signin");
    p.says("Signed in as cs0601");
    assert!(s.url().starts_with(&scrap.url("/")), "{}", s.url());

    p.step("Log out of LETS through the sign-out pages");
    s.goto(&lets.url("/"));
    p.says("Signed in as cs0601");
    s.click("form[action='/logout'] button");
    p.at("/signout");
    p.says("Pick an account to sign out");
    p.shot("application-signout-pick");
    s.click("button[name=account]");
    p.says("You signed out of your account");
    p.says("log in to the previous application (LETS (demo)) again");
    p.help("application-signed-out");

    p.step("Log in to the previous application again");
    s.click("a[href^='http://127.0.0.1']");
    p.says("You are signed out of LETS (demo)");
    assert!(s.url().starts_with(&lets.url("/signed-out")), "{}", s.url());
    s.click("#signin");
    p.at("/signin");
    p.says("to continue to LETS (demo)");

    p.step("The audit log holds each step");
    let audit = stack.server(&["audit", "--format", "json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&audit.stdout).unwrap();
    let actions: Vec<String> = rows
        .iter()
        .filter_map(|r| r["action"].as_str())
        .filter(|a| a.starts_with("oidc.") || *a == "signout")
        .map(str::to_string)
        .collect();
    assert_eq!(
        actions,
        [
            "oidc.authorize",
            "oidc.token",
            "oidc.authorize",
            "oidc.token",
            "oidc.logout",
            "signout"
        ]
    );
    assert_ok(&stack.server(&["audit", "verify"]), "audit verify");
}

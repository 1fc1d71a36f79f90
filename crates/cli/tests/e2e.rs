//! The `countersign` CLI against the real `countersign-server` binary on
//! loopback: enrollment from the server's PNG QR code, number-matching
//! push, offline devices, restarts, TOTP, and oathtool agreement. The
//! server and the officer's CLI home come from `countersign_e2e::Stack`,
//! the same stack the browser and app journeys run against.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use countersign_e2e::{assert_ok, Stack, PASSCODE};
use countersign_testkit::epoch_ms;

fn cli_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_countersign"))
}

/// The server (not started) with the officer cs0101, requests living `ttl`
/// seconds.
fn stack(ttl: u64) -> Stack {
    let stack = Stack::prepare(
        "cs0101",
        &format!("[push]\nttl_seconds = {ttl}\nmax_per_window = 50\n"),
    );
    assert_eq!(stack.temporary_password, "New$Alacop#k4321c");
    stack
}

/// The officer's `countersign` CLI, whatever its exit status.
fn cli(stack: &Stack, args: &[&str]) -> Output {
    stack
        .cli_command(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Starts `countersign-server push` and reads the number and the challenge
/// id it prints first.
fn start_push_with_id(stack: &Stack) -> (Child, u8, String) {
    let mut child = stack
        .server_command(&[
            "push",
            "cs0101",
            "--app",
            "ALEA Portal",
            "--ip",
            "203.0.113.7",
            "--timeout",
            "30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.as_mut().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    reader.read_line(&mut first).unwrap();
    reader.read_line(&mut second).unwrap();
    let number = first
        .trim()
        .strip_prefix("number: ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .parse()
        .unwrap();
    let id = second
        .trim()
        .strip_prefix("challenge: ")
        .unwrap_or_else(|| panic!("second line: {second:?}"))
        .to_string();
    (child, number, id)
}

fn start_push(stack: &Stack) -> (Child, u8) {
    let (child, number, _) = start_push_with_id(stack);
    (child, number)
}

/// Enrolls the officer's CLI from the PNG QR code the server writes.
fn enroll(stack: &Stack) {
    enroll_at(stack, &stack.file("officer"), "cs0101");
}

/// Enrolls a `countersign` home of its own (another device) for `username`.
fn enroll_at(stack: &Stack, home: &Path, username: &str) {
    let png = stack.file(&format!("enroll-{username}.png"));
    let out = stack.server(&[
        "user",
        "enroll-link",
        username,
        "--png",
        png.to_str().unwrap(),
    ]);
    assert_ok(&out, "user enroll-link");
    let payload = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        payload.starts_with("countersign://enroll?v=1&s=https%3A%2F%2F127.0.0.1%3A"),
        "{payload}"
    );
    assert_ok(&countersign_at(home, &["init"]), "countersign init");
    let add = countersign_at(home, &["add", "--qr", png.to_str().unwrap()]);
    assert_ok(&add, "countersign add");
    let added = format!("added ALEA ({username}@alacop.gov) (sign-in approval and codes)");
    assert!(String::from_utf8_lossy(&add.stderr).contains(&added));
}

/// `countersign` on the device whose home is `home`, whatever its exit
/// status.
fn countersign_at(home: &Path, args: &[&str]) -> Output {
    Command::new(countersign_e2e::workspace_bin("countersign"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("COUNTERSIGN_PASSCODE", PASSCODE)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn adding_an_account_with_the_server_asks_for_the_passcode_once() {
    let mut env = stack(60);
    env.start_server();
    assert_ok(&cli(&env, &["init"]), "countersign init");
    let payload = env.enroll_link();
    // The passcode comes from a pipe that holds it once: a second read
    // would wait for a writer that never comes.
    let fifo = env.file("passcode.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, "246810\n").unwrap())
    };
    let mut add = env
        .cli_command(&["--passcode-file", fifo.to_str().unwrap(), "add", &payload])
        .env_remove("COUNTERSIGN_PASSCODE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while add.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = add.kill();
            panic!("`countersign add` waited for the passcode a second time");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.join().unwrap();
    let out = add.wait_with_output().unwrap();
    assert_ok(&out, "countersign add");
    assert!(String::from_utf8_lossy(&out.stderr).contains("(sign-in approval and codes)"));
}

/// The one pending request's id.
fn pending_id(stack: &Stack) -> String {
    let list = stack.pending_request();
    assert_eq!(list["app"], "ALEA Portal");
    assert_eq!(list["ip"], "203.0.113.7");
    assert_eq!(list["account"], "ALEA (cs0101@alacop.gov)");
    list["id"].as_str().unwrap().to_string()
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn push_approve_mismatch_deny_report_and_offline_device() {
    let mut env = stack(60);
    env.start_server();
    enroll(&env);

    // Approved with the right number. The device was offline (no stream)
    // when the request was created, and gets it when it asks.
    let (push, number) = start_push(&env);
    let id = pending_id(&env);
    let out = cli(
        &env,
        &["answer", &id, "--approve", "--number", &number.to_string()],
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "approved");
    assert!(out.status.success());
    let (code, stdout) = finish(push);
    assert_eq!(
        (code, stdout.lines().last().unwrap()),
        (0, "result: approved")
    );

    // A wrong number fails the sign-in.
    let (push, number) = start_push(&env);
    let id = pending_id(&env);
    let wrong = if number == 99 { 10 } else { number + 1 };
    let out = cli(
        &env,
        &["answer", &id, "--approve", "--number", &wrong.to_string()],
    );
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        (Some(1), "number_mismatch")
    );
    let (code, stdout) = finish(push);
    assert_eq!(
        (code, stdout.lines().last().unwrap()),
        (1, "result: number_mismatch")
    );

    // A wrong passcode changes nothing: the request is still open.
    let (push, _) = start_push(&env);
    let id = pending_id(&env);
    let out = env
        .cli_command(&["answer", &id, "--deny"])
        .env("COUNTERSIGN_PASSCODE", "999999")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passcode"));
    let out = cli(&env, &["answer", &id, "--deny"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "denied");
    assert_eq!(finish(push).0, 1);

    // Report: the sign-in fails and further pushes are blocked.
    let (push, _) = start_push(&env);
    let id = pending_id(&env);
    assert_eq!(
        String::from_utf8_lossy(&cli(&env, &["answer", &id, "--report"]).stdout).trim(),
        "reported"
    );
    assert_eq!(finish(push).0, 1);
    let blocked = env.server(&["push", "cs0101", "--timeout", "1"]);
    assert_eq!(blocked.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&blocked.stderr).contains("blocked"),
        "{}",
        String::from_utf8_lossy(&blocked.stderr)
    );

    // The device's history shows what happened, newest first.
    let history: serde_json::Value =
        serde_json::from_slice(&cli(&env, &["history", "--json"]).stdout).unwrap();
    let decisions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["result"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["reported", "denied", "number_mismatch", "approved"]
    );

    // The audit log holds every step and its chain verifies.
    let verify = env.server(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // Removing the push account removes the device on the server too.
    let show = String::from_utf8_lossy(&env.server(&["user", "show", "cs0101"]).stdout).to_string();
    assert!(show.contains("device: "), "{show}");
    let out = cli(&env, &["remove", "cs0101"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = String::from_utf8_lossy(&env.server(&["user", "show", "cs0101"]).stdout).to_string();
    assert!(!show.contains("device: "), "{show}");
}

/// A push, approved with its number at `watch`'s prompt.
fn approve_at_watch(env: &Stack, watch: &mut countersign_e2e::Watch) {
    let (push, number) = start_push(env);
    watch.said("Are you trying to sign in?");
    watch.type_line(&number.to_string());
    let (code, stdout) = finish(push);
    assert_eq!(
        (code, stdout.lines().last().unwrap()),
        (0, "result: approved")
    );
}

#[test]
fn expiry_restart_while_watching_and_totp() {
    let mut env = stack(3);
    env.start_server();
    enroll(&env);

    // Unanswered: the push command exits 2 after expiry.
    let (push, _) = start_push(&env);
    assert_eq!(finish(push).0, 2);

    // `watch` stays connected; the server restarts under it; the next
    // request still arrives and is approved at the prompt.
    let mut watch = env.watch();
    watch.said("connected: ALEA");
    env.stop_server();
    env.start_server();
    watch.said("connected: ALEA");
    approve_at_watch(&env, &mut watch);
    drop(watch);

    // TOTP: the code the CLI shows is accepted once, then refused.
    let out = cli(&env, &["code", "cs0101"]);
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(code.len(), 6, "{code}");
    let check = env.server(&["user", "check-code", "cs0101", &code]);
    assert_eq!(
        (
            check.status.code(),
            String::from_utf8_lossy(&check.stdout).trim()
        ),
        (Some(0), "accepted")
    );
    let replay = env.server(&["user", "check-code", "cs0101", &code]);
    assert_eq!(
        (
            replay.status.code(),
            String::from_utf8_lossy(&replay.stdout).trim()
        ),
        (Some(1), "refused")
    );
}

#[test]
fn codes_agree_with_oathtool() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let run = |args: &[&str]| {
        Command::new(cli_bin())
            .arg("--home")
            .arg(&home)
            .args(args)
            .env("COUNTERSIGN_PASSCODE", PASSCODE)
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let cases = [
        ("sha1", "SHA1", "HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K", 6),
        ("sha256", "SHA256", "UFUOVPTRMOGIJFAI2FW47ALKTSPZCLGJ6Q7I3UP25DBLDAY2SM3Q", 8),
        ("sha512", "SHA512", "YH5V5DECRSDBBDPCZZWYPE4OABQ6WN7HAQ2PIAFAZNVZZMKUM5QOXCSABIN7JME5QFEGPNC6IPTWLJ2MMNUUXB2OLL43WJGKDSC3UYY", 8),
    ];
    for (name, alg, secret, digits) in cases {
        let uri =
            format!("otpauth://totp/Test:{name}?secret={secret}&algorithm={alg}&digits={digits}");
        assert!(run(&["add", &uri]).status.success(), "{name}");
        // Retry across a step boundary rather than compare two different steps.
        for attempt in 0.. {
            let ours = String::from_utf8_lossy(&run(&["code", name]).stdout)
                .trim()
                .to_string();
            let theirs = Command::new("oathtool")
                .args([
                    &format!("--totp={}", name),
                    "-d",
                    &digits.to_string(),
                    "-b",
                    secret,
                ])
                .output()
                .expect("oathtool is installed (Debian package oathtool; test.sh installs it)");
            let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_string();
            if ours == theirs {
                break;
            }
            assert!(
                attempt < 2,
                "{name}: countersign {ours} vs oathtool {theirs}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

#[test]
fn simulated_devices_answer_by_themselves() {
    let mut env = stack(30);
    env.start_server();
    let payloads = env.file("payloads.txt");
    let out = env.server(&["user", "enroll-link", "cs0101"]);
    std::fs::write(&payloads, &out.stdout).unwrap();
    let numbers = env.file("numbers.log");
    std::fs::write(&numbers, "").unwrap();
    let sim = Command::new(cli_bin())
        .args([
            "simulate",
            "--payloads",
            payloads.to_str().unwrap(),
            "--numbers",
            numbers.to_str().unwrap(),
            "--seconds",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the device to be enrolled and connected.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let show =
            String::from_utf8_lossy(&env.server(&["user", "show", "cs0101"]).stdout).to_string();
        if show.contains("simulated device 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the simulated device never enrolled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let (push, number, id) = start_push_with_id(&env);
    std::fs::write(&numbers, format!("number: {number}\nchallenge: {id}\n")).unwrap();
    let (code, stdout) = finish(push);
    assert_eq!(
        (code, stdout.lines().last().unwrap()),
        (0, "result: approved")
    );
    // The device prints its verdict once the server's answer reaches it,
    // which may be just after `push` has finished: wait for the line.
    let mut sim = sim;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = sim.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !printed
        .iter()
        .any(|l: &String| l.contains("ALEA Portal from 203.0.113.7 -> approve -> approved"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("the device never printed its verdict: {printed:?}"),
        }
    }
    let _ = Command::new("kill").arg(sim.id().to_string()).status();
    let _ = sim.wait();
    assert!(
        printed
            .iter()
            .any(|l| l.contains("device #1 enrolled for cs0101@alacop.gov")),
        "{printed:?}"
    );
}

/// `helpdesk timeline ID --json`, parsed.
fn timeline(env: &Stack, id: &str) -> serde_json::Value {
    let out = env.server(&["helpdesk", "timeline", id, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The time of `step` in a timeline, if it happened.
fn step_at(t: &serde_json::Value, step: &str) -> Option<u64> {
    t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == step)
        .and_then(|s| s["at_ms"].as_u64())
}

#[test]
fn receipts_put_delivered_and_shown_on_the_help_desk_timeline() {
    let mut env = stack(60);
    env.start_server();
    enroll(&env);

    // The device is offline: the request is created, not delivered. Its
    // time is the server's clock to the millisecond.
    let before = epoch_ms();
    let (push, number, id) = start_push_with_id(&env);
    let after = epoch_ms();
    let t = timeline(&env, &id);
    let created = step_at(&t, "created").unwrap();
    assert!(
        before <= created && created <= after,
        "{before} {t} {after}"
    );
    assert_eq!(step_at(&t, "delivered"), None, "{t}");
    let show = env.server(&["helpdesk", "show", "cs0101"]);
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(shown.contains("not connected"), "{shown}");

    // `watch` connects, gets the request and shows it: both receipts,
    // signed with the device's receipt key, land on the timeline.
    let mut watch = env.watch();
    watch.said("Are you trying to sign in?");
    let deadline = Instant::now() + Duration::from_secs(10);
    let t = loop {
        let t = timeline(&env, &id);
        if step_at(&t, "shown").is_some() {
            break t;
        }
        assert!(Instant::now() < deadline, "no shown receipt: {t}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let (delivered, shown) = (
        step_at(&t, "delivered").unwrap(),
        step_at(&t, "shown").unwrap(),
    );
    assert!(created <= delivered && delivered <= shown, "{t}");
    let show = env.server(&["helpdesk", "show", "cs0101"]);
    assert!(String::from_utf8_lossy(&show.stdout).contains("connected (1 streams)"));

    watch.type_line(&number.to_string());
    assert_eq!(finish(push).0, 0);
    let t = timeline(&env, &id);
    assert_eq!(t["status"], "approved");
    let answered = &t["steps"][3];
    assert_eq!(answered["detail"], "approved with the right number", "{t}");
    assert!(answered["at_ms"].as_u64().unwrap() >= shown, "{t}");
    drop(watch);

    // Listed by `pending` (for a script): delivered, not shown.
    let (push, number, id) = start_push_with_id(&env);
    assert_eq!(pending_id(&env), id);
    let t = timeline(&env, &id);
    assert!(step_at(&t, "delivered").is_some(), "{t}");
    assert_eq!(step_at(&t, "shown"), None, "{t}");
    cli(
        &env,
        &["answer", &id, "--approve", "--number", &number.to_string()],
    );
    assert_eq!(finish(push).0, 0);

    // A fix needs a reason; with one, it is audited with it.
    let out = env.server(&[
        "helpdesk",
        "fix",
        "cs0101",
        "clear-push-block",
        "--reason",
        "",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Give a reason"));
    let out = env.server(&[
        "helpdesk",
        "fix",
        "cs0101",
        "clear-push-block",
        "--reason",
        "ticket 4411: blocked by mistake",
        "--staff",
        "hd-lee",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = env.server(&["audit", "--user", "cs0101", "--format", "csv"]);
    let audit = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.lines().any(|l| l.contains("hd-lee")
            && l.contains("helpdesk.clear_push_block")
            && l.contains("ticket 4411")),
        "{audit}"
    );
    assert!(audit.contains("challenge.delivered") && audit.contains("challenge.shown"));
}

#[test]
fn a_quiet_account_does_not_hold_up_another_accounts_request() {
    let mut env = stack(60);
    env.start_server();
    enroll(&env);
    // A second account on the same authenticator, with nothing waiting.
    let out = env.server(&["user", "add", "cs0102", "--first", "Lois", "--last", "Lane"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = env.file("second.png");
    let out = env.server(&[
        "user",
        "enroll-link",
        "cs0102",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let add = cli(&env, &["add", "--qr", png.to_str().unwrap()]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    // `pending --wait 30` answers with the first account's request without
    // waiting out the second account's long-poll (which would take the
    // full 30 s: this is a behaviour, not a speed figure).
    let (push, number, id) = start_push_with_id(&env);
    let started = Instant::now();
    let out = cli(&env, &["pending", "--json", "--wait", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "pending waited out the quiet account"
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    cli(
        &env,
        &["answer", &id, "--approve", "--number", &number.to_string()],
    );
    assert_eq!(finish(push).0, 0);
}

#[test]
fn a_label_with_control_characters_is_shown_escaped_not_obeyed() {
    let mut env = stack(60);
    env.start_server();
    enroll(&env);
    // The server refuses such a label now; one stored before (or by a
    // server that misbehaves) reaches the device signed all the same.
    let (push, _, id) = start_push_with_id(&env);
    let evil = "Portal\x1b[2J\rApproved: type 42";
    countersign_testkit::postgres::sql(
        &env.file("data"),
        "UPDATE challenges SET application = ?1 WHERE id = ?2",
        &[evil, id.as_str()],
    );
    let out = cli(&env, &["pending"]);
    assert_ok(&out, "countersign pending");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains("Portal\\u{1b}[2J\\u{d}Approved: type 42"),
        "{shown}"
    );
    assert!(!shown.contains(['\x1b', '\r']), "{shown:?}");

    // `watch` shows the prompt with the label escaped too.
    let mut watch = env.watch();
    watch.said("Portal\\u{1b}[2J\\u{d}Approved: type 42");
    watch.type_line("n"); // No, it's not me…
    watch.type_line("n"); // …but no fraud report.
    watch.said("result: denied");
    drop(watch);
    let (code, _) = finish(push);
    assert_ne!(code, 0, "the request was denied");
}

#[test]
fn a_server_with_another_key_is_named_as_such() {
    let mut env = stack(60);
    env.start_server();
    enroll(&env);
    // The server is set up anew (or another one answers at its address):
    // a new TLS key, so the pin from the QR code no longer matches.
    env.stop_server();
    for f in ["data/tls-cert.pem", "data/tls-key.pem"] {
        std::fs::remove_file(env.file(f)).unwrap();
    }
    if countersign_testkit::postgres::on_postgres() {
        // Instances on PostgreSQL keep their TLS key in the database too.
        countersign_testkit::postgres::sql(
            &env.file("data"),
            "DELETE FROM sealed_secrets WHERE name LIKE 'tls-%'",
            &[],
        );
    }
    env.start_server();
    let out = cli(&env, &["pending"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the server's identity changed"), "{said}");
    assert!(said.contains("contact the help desk"), "{said}");
}

#[test]
fn a_new_tls_key_announced_in_time_keeps_the_device_working() {
    if countersign_testkit::postgres::on_postgres() {
        return; // Key rotations are SQLite only (the command refuses).
    }
    let mut env = stack(60);
    env.start_server();
    enroll(&env);
    env.stop_server();
    assert_ok(
        &env.server(&["keys", "rotate", "tls", "--new-key", "--grace-days", "30"]),
        "keys rotate tls",
    );
    // A second copy of the officer's device that stays offline through the
    // grace period.
    let offline = env.file("officer-offline");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(env.file("officer"))
        .arg(&offline)
        .status()
        .unwrap();
    assert!(copied.success());

    // During the grace period the request tells the device the next key,
    // and a device enrolled now (another officer's) hears of it at
    // activation.
    env.start_server();
    let late = env.file("officer-late");
    let added = env.server(&["user", "add", "cs0102", "--first", "Lois", "--last", "Lane"]);
    assert_ok(&added, "user add (another officer)");
    enroll_at(&env, &late, "cs0102");
    let mut watch = env.watch();
    watch.said("connected: ALEA");
    approve_at_watch(&env, &mut watch);

    // The switch (its time moved to now); `watch` reconnects to the new
    // key it was told about, and approves again.
    env.stop_server();
    let plan = env.file("data/tls-next.json");
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    json["switch_at"] = (epoch_ms() / 1000 - 1).into();
    std::fs::write(&plan, json.to_string()).unwrap();
    env.start_server();
    watch.said("connected: ALEA");
    approve_at_watch(&env, &mut watch);
    drop(watch);
    assert_ok(
        &cli(&env, &["pending"]),
        "countersign pending after the switch",
    );

    // The device enrolled during the grace period still reaches it.
    assert_ok(
        &countersign_at(&late, &["pending"]),
        "pending on the late device",
    );

    // The device that slept through it is told what happened.
    let out = countersign_at(&offline, &["pending"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("the server's identity changed"), "{said}");
    assert!(said.contains("enroll the account again"), "{said}");
}

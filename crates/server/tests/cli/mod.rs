//! The `countersign-server` command on a temporary data folder.

mod bench;

use countersign_testkit::free_port;
use countersign_testkit::process::Proc;
use std::process::{Command, Output};

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_countersign-server"));
    c.arg("--data")
        .arg(dir.join("data"))
        .args(args)
        .env_remove("COUNTERSIGN_CONFIG")
        .env_remove("COUNTERSIGN_LISTEN");
    countersign_testkit::postgres::store_env(&mut c, &dir.join("data"));
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn a_bad_configuration_names_the_key_and_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(&cfg, "[totp]\ndigits = 9\n").unwrap();
    let out = run(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "user", "list"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr).trim(),
        "error: configuration key `totp.digits`: must be 6, 7 or 8"
    );
    std::fs::write(&cfg, "[push]\nttl = 5\n").unwrap();
    let out = run(
        tmp.path(),
        &["--config", cfg.to_str().unwrap(), "user", "list"],
    );
    assert!(
        text(&out.stderr).contains("unknown field `ttl`"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !tmp.path().join("data").exists(),
        "a bad configuration creates nothing"
    );
}

#[test]
fn user_lifecycle_and_audit_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "user",
            "add",
            "cs0201",
            "--first",
            "Lois",
            "--last",
            "Lane",
            "--ssn-last4",
            "1234",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "New$Alacop#l1234l");
    let dup = run(
        tmp.path(),
        &["user", "add", "cs0201", "--first", "Lois", "--last", "Lane"],
    );
    assert_eq!(
        (dup.status.code(), text(&dup.stderr).trim()),
        (Some(3), "error: user cs0201 already exists")
    );
    let bad = run(
        tmp.path(),
        &["user", "add", "CS 02", "--first", "X", "--last", "Y"],
    );
    assert!(text(&bad.stderr).contains("a username is 2–64 lower-case letters"));
    let bad = run(
        tmp.path(),
        &[
            "user",
            "add",
            "cs0202",
            "--first",
            "X",
            "--last",
            "Y",
            "--ssn-last4",
            "12a4",
        ],
    );
    assert!(text(&bad.stderr).contains("exactly four digits"));

    assert!(run(tmp.path(), &["user", "disable", "cs0201"])
        .status
        .success());
    assert!(run(tmp.path(), &["user", "role", "cs0201", "helpdesk"])
        .status
        .success());
    let show = text(&run(tmp.path(), &["user", "show", "cs0201"]).stdout);
    assert!(
        show.contains("role: helpdesk")
            && show.contains("disabled")
            && show.contains("must change password"),
        "{show}"
    );
    let unknown = run(tmp.path(), &["user", "show", "nobody"]);
    assert_eq!(text(&unknown.stderr).trim(), "error: user not found");
    let list: serde_json::Value =
        serde_json::from_slice(&run(tmp.path(), &["user", "list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["username"], "cs0201");
    assert!(
        list[0].get("password_hash").is_none(),
        "no hash in the listing"
    );

    let link = run(
        tmp.path(),
        &[
            "user",
            "enroll-link",
            "cs0201",
            "--png",
            tmp.path().join("qr.png").to_str().unwrap(),
        ],
    );
    assert!(text(&link.stdout)
        .starts_with("countersign://enroll?v=1&s=https%3A%2F%2F127.0.0.1%3A8443&c="));
    let decoded = countersign_core::qr::scan_bytes(
        &std::fs::read(tmp.path().join("qr.png")).unwrap(),
        &|| false,
    )
    .unwrap();
    assert_eq!(
        decoded.payloads,
        [text(&link.stdout).trim().to_string()],
        "the PNG holds the payload"
    );

    let csv = text(
        &run(
            tmp.path(),
            &["audit", "--format", "csv", "--user", "cs0201"],
        )
        .stdout,
    );
    assert!(csv.starts_with("seq,at,actor,action,target,ip,outcome,detail,hash,request_id\n"));
    for action in [
        "user.add",
        "user.disable",
        "user.role",
        "device.enroll_link",
    ] {
        assert!(csv.contains(action), "{action} in {csv}");
    }
    let verify = run(tmp.path(), &["audit", "verify"]);
    assert!(verify.status.success());
    assert!(text(&verify.stdout).starts_with("audit log intact: "));

    // Without a running server, a push says so.
    let push = run(tmp.path(), &["push", "cs0201"]);
    assert_eq!(push.status.code(), Some(3));
    assert!(text(&push.stderr).contains("no server is running"));

    // Ids are base64url and may start with '-': read as ids, not flags.
    let timeline = run(tmp.path(), &["helpdesk", "timeline", "-Yd2x"]);
    assert_eq!(timeline.status.code(), Some(3));
    assert!(
        text(&timeline.stderr).contains("challenge not found"),
        "{}",
        text(&timeline.stderr)
    );
}

#[test]
fn stored_control_characters_are_shown_escaped_on_the_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "user", "add", "cs0202", "--first", "Jimmy", "--last", "Olsen",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Rows written before control characters were refused at the door.
    let evil = "Pixel\x1b[2J\rApproved: type 42";
    let data = tmp.path().join("data");
    let byte = if countersign_testkit::postgres::on_postgres() {
        "'\\x00'::bytea"
    } else {
        "x'00'"
    };
    countersign_testkit::postgres::sql(
        &data,
        &format!(
            "INSERT INTO devices (id, user_id, name, platform, app_version, public_key, token_hash, totp_secret, \
             totp_algorithm, totp_digits, totp_period, created_at) \
             SELECT 'dev1', id, ?1, 'linux', '1.0', {byte}, {byte}, {byte}, 'SHA1', 6, 30, 0 FROM users WHERE username = 'cs0202'"
        ),
        &[evil],
    );
    countersign_testkit::postgres::sql(
        &data,
        "INSERT INTO registration_requests (first_name, last_name, email, agency, phone, reason, ip, created_at) \
         VALUES (?1, 'Doe', 'jd@agency.gov', ?1, '2055550100', ?1, '127.0.0.1', 0)",
        &[evil],
    );
    let shown = "Pixel\\u{1b}[2J\\u{d}Approved: type 42";
    for args in [
        &["helpdesk", "show", "cs0202"][..],
        &["user", "show", "cs0202"],
        &["user", "requests"],
    ] {
        let out = run(tmp.path(), args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(stdout.contains(shown), "{args:?}: {stdout}");
        assert!(!stdout.contains(['\x1b', '\r']), "{args:?}: {stdout:?}");
    }
}

/// `countersign-server serve` under `ulimit -n 1024`, with `config`; its
/// runtime file once it listens.
fn serve_limited(dir: &std::path::Path, config: &str) -> (Proc, serde_json::Value) {
    let cfg = dir.join("server.toml");
    // No metrics listener: the default port is the packaged service's,
    // which the package test checks at the same time.
    std::fs::write(&cfg, format!("{config}\n[metrics]\nlisten = \"\"\n")).unwrap();
    let child = Proc::spawn(Command::new("sh")
        .arg("-c")
        .arg(
            "ulimit -Sn 1024 && ulimit -Hn 1024 && exec \"$0\" --data \"$1\" --config \"$2\" serve",
        )
        .arg(env!("CARGO_BIN_EXE_countersign-server"))
        .arg(dir.join("data"))
        .arg(&cfg)
        .env_remove("COUNTERSIGN_LISTEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null()))
    .unwrap();
    let runtime = dir.join("data/server.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !runtime.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let r = serde_json::from_slice(&std::fs::read(&runtime).unwrap()).unwrap();
    (child, r)
}

/// [`serve_limited`] on a free loopback port with `config` after the
/// `listen` line; answers the server and its address.
fn serve_limited_on_loopback(dir: &std::path::Path, config: &str) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let (server, _) = serve_limited(dir, &format!("listen = \"{addr}\"\n{config}"));
    (server, addr)
}

/// The pinned TLS client configuration for a server's runtime file.
fn pinned(runtime: &serde_json::Value) -> rustls::ClientConfig {
    let pin = data_encoding::BASE64URL_NOPAD
        .decode(runtime["pin"].as_str().unwrap().as_bytes())
        .unwrap();
    countersign_core::pin::PinnedVerifier::client_config(pin.try_into().unwrap()).unwrap()
}

/// Opens up to `n` TLS connections to `port` from `source` and sends
/// nothing on them; returns those the server took.
async fn idle_tls_connections(
    runtime: &serde_json::Value,
    source: &str,
    port: u16,
    n: usize,
) -> Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(pinned(runtime)));
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let to = format!("127.0.0.1:{port}").parse().unwrap();
        let Ok(tcp) = socket.connect(to).await else {
            continue;
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let handshake = connector.connect(name, tcp);
        if let Ok(Ok(tls)) =
            tokio::time::timeout(std::time::Duration::from_secs(1), handshake).await
        {
            held.push(tls);
        }
    }
    held
}

/// How many of `conns` the server has closed (read returns 0 or fails).
async fn closed<C: tokio::io::AsyncRead + Unpin>(conns: &mut [C]) -> usize {
    use tokio::io::AsyncReadExt;
    let mut n = 0;
    for c in conns.iter_mut() {
        let mut b = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_millis(5), c.read(&mut b)).await;
        if matches!(read, Ok(Ok(0) | Err(_))) {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_from_one_client_do_not_stall_others_under_1024_files() {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 2048,
        "the test itself needs 2048 open files, has {limit}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let (server, runtime) = serve_limited(
        tmp.path(),
        &format!("listen = \"127.0.0.1:{port}\"\n[connections]\nheader_timeout_seconds = 10\n"),
    );
    // One client (127.0.0.2) opens 1,100 TLS connections and sends
    // nothing: past its 256, the server closes them at once.
    let mut held = idle_tls_connections(&runtime, "127.0.0.2", port, 1100).await;
    assert!(held.len() <= 256, "{} taken", held.len());

    // Another client's request answers at once (within two seconds, while
    // those connections are still held).
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(pinned(&runtime))
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("{}/healthz", runtime["url"].as_str().unwrap());
    for _ in 0..5 {
        let r = http
            .get(&url)
            .send()
            .await
            .expect("a normal request answers");
        assert_eq!(r.status(), 200);
    }
    // The held ones close when the header timeout (10 s, long enough for a
    // busy machine to open them all first) passes.
    let checked = std::time::Instant::now();
    assert_eq!(closed(&mut held).await, 0, "still held");
    tokio::time::sleep(std::time::Duration::from_secs(11).saturating_sub(checked.elapsed())).await;
    assert_eq!(
        closed(&mut held).await,
        held.len(),
        "closed after the timeout"
    );
    drop(server);
}

/// Fails unless the server closes each connection (read returns 0 or
/// fails) within five seconds, whatever it sends before.
async fn assert_closed_within_five_seconds<const N: usize>(
    conns: [(&str, &mut tokio::net::TcpStream); N],
    start: std::time::Instant,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    for (what, conn) in conns {
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        });
        assert!(
            closed.await.is_ok(),
            "{what}: still open after {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_handshake_left_unfinished_is_closed_at_its_timeout() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr) = serve_limited_on_loopback(
        tmp.path(),
        "[connections]\nhandshake_timeout_seconds = 1\nheader_timeout_seconds = 60\n",
    );
    // One says nothing; one starts a ClientHello and stops.
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut halfway = tokio::net::TcpStream::connect(&addr).await.unwrap();
    halfway
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
        .await
        .unwrap();
    let start = std::time::Instant::now();
    assert_closed_within_five_seconds([("silent", &mut silent), ("halfway", &mut halfway)], start)
        .await;
    drop(server);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_sends_headers_slowly_or_idles_is_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let (server, addr) = serve_limited_on_loopback(
        tmp.path(),
        "[tls]\nmode = \"off\"\n[connections]\nheader_timeout_seconds = 2\n",
    );
    let start = std::time::Instant::now();
    // Slowloris: a header line now and then, never the end.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let _ = slow.write_all(b"X-Slow: 1\r\n").await;
    }
    // Both are closed by the server within the timeout (and a margin).
    assert_closed_within_five_seconds(
        [("slow headers", &mut slow), ("idle keep-alive", &mut idle)],
        start,
    )
    .await;
    drop(server);
}

#[test]
fn applications_are_registered_listed_rotated_and_removed_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let add = run(
        tmp.path(),
        &[
            "client",
            "add",
            "lets",
            "--name",
            "LETS",
            "--redirect-uri",
            "https://lets.example/callback",
            "--post-logout-redirect-uri",
            "https://lets.example/",
            "--id-token-alg",
            "ES256",
        ],
    );
    assert!(add.status.success(), "{}", text(&add.stderr));
    let secret = text(&add.stdout).trim().to_string();
    assert_eq!(secret.len(), 43, "the secret alone on standard output");
    assert!(text(&add.stderr).contains("shown once"));
    // The same id again, and a bad address, are refused with the reason.
    let again = run(
        tmp.path(),
        &[
            "client",
            "add",
            "lets",
            "--name",
            "X",
            "--redirect-uri",
            "https://x.example/cb",
        ],
    );
    assert_eq!(again.status.code(), Some(3));
    assert!(
        text(&again.stderr).contains("registered already"),
        "{}",
        text(&again.stderr)
    );
    let bad = run(
        tmp.path(),
        &[
            "client",
            "add",
            "scrap",
            "--name",
            "SCRAP",
            "--redirect-uri",
            "http://scrap.example/cb",
        ],
    );
    assert!(
        text(&bad.stderr).contains("must be https (http only on loopback)"),
        "{}",
        text(&bad.stderr)
    );
    let list = run(tmp.path(), &["client", "list"]);
    assert_eq!(
        text(&list.stdout),
        "lets\tLETS\tconfidential\thttps://lets.example/callback\n"
    );
    let show = run(tmp.path(), &["client", "show", "lets", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["id_token_alg"], "ES256");
    assert_eq!(shown["require_mfa"], true);
    assert!(
        !text(&show.stdout).contains(&secret),
        "the secret is never shown again"
    );
    let rotated = run(tmp.path(), &["client", "rotate-secret", "lets"]);
    let new_secret = text(&rotated.stdout).trim().to_string();
    assert_eq!(new_secret.len(), 43);
    assert_ne!(new_secret, secret);
    // hash-secret prints what a configuration entry holds.
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign-server"))
        .arg("--data")
        .arg(tmp.path().join("data"))
        .args(["client", "hash-secret"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let hashed = child.wait_with_output().unwrap();
    assert_eq!(
        text(&hashed.stdout).trim(),
        data_encoding::HEXLOWER
            .encode(ring::digest::digest(&ring::digest::SHA256, b"s3cret").as_ref())
    );
    let removed = run(tmp.path(), &["client", "remove", "lets"]);
    assert!(removed.status.success());
    assert_eq!(text(&run(tmp.path(), &["client", "list"]).stdout), "");
    // Each change is in the audit log.
    let audit = text(&run(tmp.path(), &["audit"]).stdout);
    for action in ["client.add", "client.rotate_secret", "client.remove"] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    // Token keys: rotated, the old ones still published.
    let rotated = run(tmp.path(), &["oidc", "rotate-keys"]);
    assert!(
        text(&rotated.stdout).starts_with("current keys: rs256-"),
        "{}",
        text(&rotated.stdout)
    );
    let again = run(tmp.path(), &["oidc", "rotate-keys"]);
    assert!(
        text(&again.stdout).contains("retired, still published for"),
        "{}",
        text(&again.stdout)
    );
}

#[test]
fn applications_in_the_configuration_file_are_checked_and_kept_there() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("countersign.toml");
    let hash = data_encoding::HEXLOWER
        .encode(ring::digest::digest(&ring::digest::SHA256, b"s3cret").as_ref());
    std::fs::write(
        &cfg,
        format!(
            "[[oidc.clients]]\nid = \"artic\"\nname = \"ARTIC\"\nredirect_uris = [\"https://artic.example/cb\"]\nsecret_sha256 = \"{hash}\"\nid_token_alg = \"EdDSA\"\n"
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let list = run(tmp.path(), &["--config", c, "client", "list"]);
    assert_eq!(
        text(&list.stdout),
        "artic\tARTIC\tconfidential\thttps://artic.example/cb\n",
        "{}",
        text(&list.stderr)
    );
    let remove = run(tmp.path(), &["--config", c, "client", "remove", "artic"]);
    assert!(
        text(&remove.stderr).contains("defined in the configuration file"),
        "{}",
        text(&remove.stderr)
    );
    std::fs::write(
        &cfg,
        "[[oidc.clients]]\nid = \"artic\"\nname = \"ARTIC\"\nredirect_uris = [\"https://artic.example/cb#frag\"]\n",
    )
    .unwrap();
    let bad = run(tmp.path(), &["--config", c, "client", "list"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(
        text(&bad.stderr).contains("oidc.clients") && text(&bad.stderr).contains("fragment"),
        "{}",
        text(&bad.stderr)
    );
}

/// Writes a configuration on a free port (no metrics listener), starts
/// `serve` with its standard error to `stderr`, and waits until it is
/// ready.
fn serve_ready(dir: &std::path::Path, stderr: std::process::Stdio) -> std::process::Child {
    std::fs::write(
        dir.join("server.toml"),
        format!(
            "listen = \"127.0.0.1:{}\"\n[metrics]\nlisten = \"\"\n",
            free_port()
        ),
    )
    .unwrap();
    let server = crate::common::server_command(dir)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dir.join("data/server.json").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server
}

#[test]
fn a_server_whose_log_reader_has_gone_still_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = serve_ready(tmp.path(), std::process::Stdio::piped());
    // What read its standard error is gone (a `tee` stopped by Ctrl-C).
    drop(server.stderr.take());
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = server.kill();
    let _ = server.wait();
    let status = status.expect("still running 10 s after SIGTERM");
    assert!(status.success(), "{status:?}");
}

/// A log written to a file (or a journal) is plain text: colours are for a
/// terminal, and their escape codes would be kept in the file.
#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("server.log");
    let mut server = serve_ready(tmp.path(), std::fs::File::create(&log).unwrap().into());
    let term = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    assert!(term.unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("serving connections"), "{text}");
    assert!(!text.contains('\x1b'), "{text:?}");
}

/// `helpdesk fix` records a staff member under their account's own name,
/// in any case typed, refuses a name that is not one line of plain text,
/// and is not held to the help desk's resets an hour (whoever runs it
/// holds the data folder).
#[test]
fn helpdesk_fix_records_the_staff_members_own_name() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let cfg = tmp.path().join("server.toml");
    std::fs::write(&cfg, "[users]\nhelpdesk_resets_per_hour = 1\n").unwrap();
    let c = cfg.to_str().unwrap();
    for user in ["hd0501", "cs0501", "cs0502"] {
        let add = run(
            tmp.path(),
            &[
                "--config", c, "user", "add", user, "--first", "A", "--last", "B",
            ],
        );
        assert!(add.status.success(), "{}", text(&add.stderr));
    }
    let fix = |user: &str, staff: &str| {
        run(
            tmp.path(),
            &[
                "--config",
                c,
                "helpdesk",
                "fix",
                user,
                "reset-methods",
                "--reason",
                "new phone",
                "--staff",
                staff,
            ],
        )
    };
    for (user, staff) in [
        ("cs0501", "hd0501"),
        ("cs0502", "HD0501"),
        ("cs0502", " hd0501 "),
    ] {
        let done = fix(user, staff);
        assert!(done.status.success(), "{staff:?}: {}", text(&done.stderr));
    }
    for staff in [
        "hd0501\u{202e}",
        "\u{feff}hd0501",
        "hd\u{200f}0501",
        "a\u{2028}b",
        "evil\nline",
        "  ",
    ] {
        let bad = fix("cs0502", staff);
        assert!(!bad.status.success(), "{staff:?}");
        assert!(
            text(&bad.stderr).contains("--staff must be a name on one line"),
            "{}",
            text(&bad.stderr)
        );
    }
    let audit = text(&run(tmp.path(), &["--config", c, "audit", "--format", "csv"]).stdout);
    assert!(
        audit.contains("\"hd0501\",\"helpdesk.reset_methods\",\"cs0502\"")
            && !audit.contains("HD0501"),
        "{audit}"
    );
}

/// `audit` reads a large log a page at a time: every row, once each and
/// oldest first, in each format, from a log of more rows than a page.
#[test]
fn audit_writes_out_a_log_larger_than_its_pages_whole() {
    use countersign_server::store::{NewAudit, Store, EXPORT_PAGE};
    let tmp = tempfile::tempdir().unwrap();
    let add = ["user", "add", "cs0301", "--first", "Ada", "--last", "Ng"];
    assert!(run(tmp.path(), &add).status.success());
    let data = tmp.path().join("data");
    let rows = 2 * EXPORT_PAGE + 500;
    std::thread::spawn(move || {
        let store = match countersign_testkit::postgres::store_for(&data) {
            Some(url) => Store::open_url(&url),
            None => Store::open(&data.join("countersign.db")),
        };
        store
            .unwrap()
            .write(countersign_server::now(), |w| {
                for i in 0..rows {
                    let target = format!("row {i}");
                    w.audit(&NewAudit::of("system", "test.export", &target, "").with("ok", ""))?;
                }
                Ok(())
            })
            .unwrap();
    })
    .join()
    .unwrap();
    let expected: Vec<String> = (0..rows).map(|i| format!("row {i}")).collect();
    let exported = |format: &str| {
        let out = run(tmp.path(), &["audit", "--format", format]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };

    let json: Vec<serde_json::Value> = serde_json::from_str(&exported("json")).unwrap();
    let targets: Vec<&str> = json
        .iter()
        .filter(|r| r["action"] == "test.export")
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, expected);
    let seqs: Vec<i64> = json.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest first, once each"
    );

    let csv = exported("csv");
    let targets: Vec<String> = csv
        .lines()
        .filter(|l| l.contains("\"test.export\""))
        .map(|l| l.split(',').nth(4).unwrap().trim_matches('"').to_string())
        .collect();
    assert_eq!(targets, expected);

    let lines = exported("text");
    let shown = lines.lines().filter(|l| l.contains("test.export")).count();
    assert_eq!(shown, rows);

    // By user (the rows' actor): read in one go, the same rows.
    let out = run(
        tmp.path(),
        &["audit", "--user", "system", "--format", "csv"],
    );
    let by_user: Vec<String> = text(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"test.export\""))
        .map(|l| l.split(',').nth(4).unwrap().trim_matches('"').to_string())
        .collect();
    assert_eq!(by_user, expected);
}

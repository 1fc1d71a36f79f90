//! The load driver (`countersign-server bench`), small: its figures are
//! for a reader to compare, but it must run, open every stream it is asked
//! for and say what it measured.

use std::process::Command;
use std::time::{Duration, Instant};

fn figure<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` in:\n{out}"))
        .trim()
}

#[test]
fn the_load_driver_opens_every_idle_stream_and_reports_its_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_countersign-server"))
        .args([
            "bench",
            "--devices",
            "20",
            "--concurrency",
            "2",
            "--seconds",
            "1",
            "--idle-streams",
            "300",
            "--opening",
            "16",
            "--wrong-passwords",
            "0",
        ])
        .env_remove("COUNTERSIGN_CONFIG")
        .env_remove("COUNTERSIGN_LISTEN")
        .env_remove("COUNTERSIGN_STORE_URL")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    // A driver that stalls (a place to open a stream never given back)
    // fails the test instead of hanging it.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the driver did not finish in 180 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(&stdout).unwrap();
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("opening 300 idle device streams from 1 source address, 16 at a time"),
        "{stderr}"
    );
    assert!(!stdout.contains("idle streams did not open"), "{stdout}");
    assert!(!stdout.contains("closed by the server"), "{stdout}");
    assert!(
        figure(&stdout, "with 300 idle streams:").ends_with("MiB"),
        "{stdout}"
    );
    let per_stream = figure(&stdout, "per stream:");
    assert!(
        per_stream.contains(" KiB (") && per_stream.ends_with(" bytes)"),
        "{stdout}"
    );
    // Each round-trip phase (short, full, then beside the idle streams)
    // ran round trips, and every one came back approved.
    let phases: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("round trips:"))
        .collect();
    assert_eq!(phases.len(), 3, "{stdout}");
    // The two phases that measure the server's CPU say how busy the
    // machine was and how much of its time the host took.
    let machine: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("machine:"))
        .collect();
    assert_eq!(machine.len(), 2, "{stdout}");
    for m in machine {
        let busy: f64 = m.split(" % busy").next().unwrap().trim().parse().unwrap();
        assert!(busy > 0.0 && busy <= 100.0, "{m}");
        assert!(m.contains("% stolen by the host"), "{m}");
    }
    for p in phases {
        let done: usize = p.split_whitespace().next().unwrap().parse().unwrap();
        assert!(done > 0, "{p}");
        assert!(p.ends_with("(0 errors)"), "{p}");
    }
}

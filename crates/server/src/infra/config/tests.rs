use super::*;

#[test]
fn defaults_follow_the_seed_guide() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(
        (
            c.password.min_length,
            c.password.history,
            c.password.min_age_hours
        ),
        (14, 24, 24)
    );
    assert_eq!((c.lockout.max_failures, c.lockout.minutes), (5, 10));
    assert_eq!(
        (
            c.push.ttl_seconds,
            c.push.max_per_window,
            c.push.window_minutes
        ),
        (60, 5, 15)
    );
    assert_eq!(c.public_url(), "https://127.0.0.1:8443");
}

#[test]
fn a_partial_file_keeps_defaults() {
    let c = Config::parse("org_name = \"ACME\"\n[push]\nttl_seconds = 30\n").unwrap();
    assert_eq!(
        (
            c.org_name.as_str(),
            c.push.ttl_seconds,
            c.push.max_per_window
        ),
        ("ACME", 30, 5)
    );
}

#[test]
fn bad_values_name_the_key() {
    let unknown = Config::parse("[push]\nttl = 30\n").unwrap_err().to_string();
    assert!(unknown.contains("unknown field `ttl`"), "{unknown}");
    let mistyped = Config::parse("[lockout]\nminutes = \"ten\"\n")
        .unwrap_err()
        .to_string();
    assert!(mistyped.contains("minutes"), "{mistyped}");
    let c = Config::parse("[totp]\ndigits = 9\n").unwrap();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "configuration key `totp.digits`: must be 6, 7 or 8"
    );
    let c = Config::parse("email_domain = \"nodot\"\n").unwrap();
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .starts_with("configuration key `email_domain`"));
}

#[test]
fn workers_leave_a_core_unless_set() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let auto = Config::default().connections.worker_threads();
    assert_eq!(auto, cores.saturating_sub(1).max(1));
    let c = Config::parse("[connections]\nworkers = 3\n").unwrap();
    c.validate().unwrap();
    assert_eq!(c.connections.worker_threads(), 3);
    let c = Config::parse("[connections]\nworkers = 5000\n").unwrap();
    assert_eq!(
        c.validate().unwrap_err().to_string(),
        "configuration key `connections.workers`: must be at most 1024 (0: automatic)"
    );
}

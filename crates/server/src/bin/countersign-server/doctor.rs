//! `countersign-server doctor`: checks what an operator can get wrong
//! around the server (configuration, data folder permissions, clock,
//! certificate, disk, open-file limit, database) and prints what to fix.
//! Reads only; changes nothing.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use countersign_server::infra::backup::{DATABASE, KEY_FILES};
use countersign_server::infra::config::{Config, TlsMode};
use countersign_server::infra::datadir::DataDir;
use countersign_server::store::Store;

/// How one check came out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Ok,
    Warn,
    Fail,
}

/// The findings so far.
#[derive(Default)]
struct Report {
    worst: Option<Verdict>,
}

impl Report {
    fn say(&mut self, verdict: Verdict, what: &str, fix: &str) {
        let tag = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        };
        // Written, not printed: `doctor | head` must not panic.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{tag} {what}");
        if !fix.is_empty() {
            let _ = writeln!(out, "     fix: {fix}");
        }
        self.worst = self.worst.max(Some(verdict));
    }
}

/// Free space below which the database may soon fail to grow.
const LOW_DISK: u64 = 1 << 30;

/// Open files a deployment should allow: one per device stream, and more.
const WANTED_FILES: u64 = 65_536;

/// Runs every check; exit 1 if any failed, 0 otherwise (warnings too).
pub fn run(data: &Path, config_path: Option<&Path>) -> ExitCode {
    let mut r = Report::default();
    let config = match Config::load(config_path, None) {
        Ok(c) => {
            let shown =
                config_path.map_or("(defaults: no file)".into(), |p| p.display().to_string());
            r.say(Verdict::Ok, &format!("configuration {shown} loads"), "");
            Some(c)
        }
        Err(e) => {
            r.say(
                Verdict::Fail,
                &format!("configuration: {e}"),
                "correct the key named above (docs/OPERATIONS.md lists every key)",
            );
            None
        }
    };
    data_folder(&mut r, data);
    clock(&mut r, data);
    if let Some(c) = &config {
        certificate(&mut r, c, data);
        database(&mut r, c, data);
    }
    disk(&mut r, data);
    open_files(&mut r, data);
    match r.worst {
        Some(Verdict::Fail) => {
            let _ = writeln!(
                std::io::stdout(),
                "doctor: something must be fixed (FAIL above)"
            );
            ExitCode::from(1)
        }
        Some(Verdict::Warn) => {
            let _ = writeln!(
                std::io::stdout(),
                "doctor: no failure; see the warnings above"
            );
            ExitCode::SUCCESS
        }
        _ => {
            let _ = writeln!(std::io::stdout(), "doctor: all checks passed");
            ExitCode::SUCCESS
        }
    }
}

#[cfg(unix)]
fn mode_and_owner(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.mode() & 0o777, m.uid()))
}

fn data_folder(r: &mut Report, data: &Path) {
    let Some((mode, owner)) = mode_and_owner(data) else {
        r.say(
            Verdict::Fail,
            &format!("data folder {} does not exist", data.display()),
            "pass --data with the folder the server uses (or start the server once to create it)",
        );
        return;
    };
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        r.say(
            Verdict::Warn,
            &format!("data folder {} belongs to user id {owner}, not to this user ({me})", data.display()),
            "run admin commands as the service's user, e.g. `runuser -u countersign -- countersign-server ...`",
        );
    }
    if mode & 0o077 != 0 {
        r.say(
            Verdict::Fail,
            &format!(
                "data folder {} is open to others (mode {mode:o})",
                data.display()
            ),
            &format!("chmod 700 {}", data.display()),
        );
    } else {
        r.say(
            Verdict::Ok,
            &format!("data folder {} is private (mode {mode:o})", data.display()),
            "",
        );
    }
    for name in KEY_FILES.iter().chain([&DATABASE]) {
        let path = data.join(name);
        if let Some((mode, file_owner)) = mode_and_owner(&path) {
            if file_owner != owner {
                r.say(
                    Verdict::Fail,
                    &format!(
                        "{} belongs to user id {file_owner}, the folder to {owner}: the server may not read it",
                        path.display()
                    ),
                    &format!("chown {owner} {}", path.display()),
                );
            }
            if mode & 0o077 != 0 {
                r.say(
                    Verdict::Fail,
                    &format!("{} is readable by others (mode {mode:o})", path.display()),
                    &format!("chmod 600 {}", path.display()),
                );
            }
        }
    }
}

/// The clock TOTP codes and challenge expiry depend on: not behind the
/// newest audit row, and synchronised where the machine can say.
fn clock(r: &mut Report, data: &Path) {
    let now = countersign_server::now();
    let newest = read_only(&data.join(DATABASE), Store::last_audit_at)
        .ok()
        .flatten();
    match newest {
        Some(at) if at > now + 60 => r.say(
            Verdict::Fail,
            &format!(
                "the clock ({}) is {} s behind the newest audit row: it went backwards",
                countersign_core::time::format_utc(now),
                at - now
            ),
            "synchronise the clock (systemd-timesyncd, chrony); TOTP codes and expiry depend on it",
        ),
        _ => r.say(
            Verdict::Ok,
            &format!(
                "clock {} (not behind the audit log)",
                countersign_core::time::format_utc(now)
            ),
            "",
        ),
    }
    let synced = std::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "yes");
    match synced {
        Some(true) => r.say(Verdict::Ok, "clock synchronised by NTP", ""),
        Some(false) => r.say(
            Verdict::Warn,
            "clock not synchronised by NTP",
            "enable time synchronisation (`timedatectl set-ntp true`, or chrony)",
        ),
        None => r.say(
            Verdict::Warn,
            "cannot tell whether the clock is synchronised (no timedatectl answer)",
            "check that chrony or systemd-timesyncd keeps the clock right",
        ),
    }
}

fn certificate(r: &mut Report, config: &Config, data: &Path) {
    let path = match config.tls.mode {
        TlsMode::Off => {
            r.say(
                Verdict::Ok,
                "TLS is off (a reverse proxy in front ends it)",
                "",
            );
            return;
        }
        TlsMode::Files => config.tls.cert_file.clone(),
        TlsMode::SelfSigned => Some(DataDir::existing(data).tls_paths().0),
    };
    let Some(path) = path.filter(|p| p.exists()) else {
        r.say(
            Verdict::Warn,
            "no TLS certificate yet",
            "start the server once (self-signed) or set tls.cert_file",
        );
        return;
    };
    match countersign_server::infra::tls::time_left(&path) {
        Ok(left) if left.whole_days() < 0 => r.say(
            Verdict::Fail,
            &format!("the TLS certificate {} has expired", path.display()),
            "renew it: restart the server (self-signed) or install a new certificate",
        ),
        Ok(left) if left.whole_days() < 30 => r.say(
            Verdict::Warn,
            &format!(
                "the TLS certificate {} expires in {} days",
                path.display(),
                left.whole_days()
            ),
            "renew it: restart the server (self-signed renews itself) or install a new certificate",
        ),
        Ok(left) => r.say(
            Verdict::Ok,
            &format!("TLS certificate valid for {} more days", left.whole_days()),
            "",
        ),
        Err(e) => r.say(
            Verdict::Fail,
            &format!("the TLS certificate {} cannot be read: {e}", path.display()),
            "replace it with a PEM certificate",
        ),
    }
}

/// Runs `f` on the database at `db` opened read-only. A database in use
/// has its `-wal` file beside it and is read as SQLite readers do; one
/// nobody has open is read as it stands (immutable), so that no journal
/// file is made, owned by whoever ran `doctor`.
fn read_only<T>(
    db: &Path,
    f: impl FnOnce(&Store) -> Result<T, countersign_server::store::StoreError>,
) -> Result<T, countersign_server::store::StoreError> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let in_use = Path::new(&wal).exists();
    Store::open_read_only(db, !in_use).and_then(|s| f(&s))
}

fn database(r: &mut Report, config: &Config, data: &Path) {
    if config.store.is_postgres() {
        // Connects and asks for nothing but an answer: `Store::open_url`
        // would run pending migrations.
        match Store::ping_url(&config.store.url) {
            Ok(()) => r.say(
                Verdict::Ok,
                &format!("PostgreSQL {} answers", config.store.display_url()),
                "",
            ),
            Err(e) => r.say(
                Verdict::Fail,
                &format!("PostgreSQL {}: {e}", config.store.display_url()),
                "check store.url, the network and the database's state",
            ),
        }
        return;
    }
    let db = data.join(DATABASE);
    if !db.exists() {
        r.say(
            Verdict::Warn,
            "no database yet",
            "start the server once, or restore a backup",
        );
        return;
    }
    match read_only(&db, Store::verify_audit) {
        Ok(Ok(rows)) => r.say(Verdict::Ok, &format!("database opens; audit chain intact ({rows} rows)"), ""),
        Ok(Err(seq)) => r.say(
            Verdict::Fail,
            &format!("the audit chain breaks at row {seq}"),
            "the log was altered: keep a copy of the database and investigate (docs/OPERATIONS.md, audit log)",
        ),
        Err(e @ countersign_server::store::StoreError::Older(..)) => r.say(
            Verdict::Warn,
            &format!("{e}"),
            "start the server to migrate it (take a backup first)",
        ),
        Err(e) => r.say(
            Verdict::Fail,
            &format!("the database does not open: {e}"),
            "restore the newest backup (countersign-server restore)",
        ),
    }
}

fn disk(r: &mut Report, data: &Path) {
    match rustix::fs::statvfs(data) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let mib = free >> 20;
            if free < LOW_DISK {
                r.say(
                    Verdict::Warn,
                    &format!("{mib} MiB free where the data folder is"),
                    "free space or grow the file system: the database and audit log only grow",
                );
            } else {
                r.say(
                    Verdict::Ok,
                    &format!("{mib} MiB free where the data folder is"),
                    "",
                );
            }
        }
        Err(e) => r.say(Verdict::Warn, &format!("free space unknown: {e}"), ""),
    }
}

/// The hard open-file limit of the running server (its runtime file
/// names its process), else of this command.
fn open_files(r: &mut Report, data: &Path) {
    let running = countersign_server::http::serve::running_server(&DataDir::existing(data))
        .and_then(|rt| std::fs::read_to_string(format!("/proc/{}/limits", rt.pid)).ok())
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(4)?.parse::<u64>().ok()
        });
    let (hard, whose) = match running {
        Some(hard) => (Ok(hard), "the running server's"),
        None => (
            rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(_, h)| h),
            "this command's (the server is not running)",
        ),
    };
    match hard {
        Ok(hard) if hard < WANTED_FILES => r.say(
            Verdict::Warn,
            &format!("{whose} open-file limit is {hard}: each officer's device holds a connection all day"),
            &format!("raise it to at least {WANTED_FILES} (LimitNOFILE in the systemd unit; the package sets 262144)"),
        ),
        Ok(hard) => r.say(Verdict::Ok, &format!("{whose} open-file limit is {hard}"), ""),
        Err(e) => r.say(Verdict::Warn, &format!("open-file limit unknown: {e}"), ""),
    }
}

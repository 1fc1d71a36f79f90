//! Child processes that die with the test, free ports, Xvfb displays.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process, with all it started, killed when the test ends.
pub struct Proc(Child);

impl Proc {
    /// Spawns `cmd` as the leader of a new process group, so that what it
    /// starts (a driver starts its browser or the app) dies with it.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        cmd.process_group(0).spawn().map(Proc)
    }

    /// How it ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.0.try_wait().ok().flatten()
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Asks it to stop (SIGTERM), as an operator would, and waits until it
    /// has.
    pub fn terminate(mut self) {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        // Quietly: the group may be gone already.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Unix milliseconds now, on the same clock the server reads.
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` different loopback ports nobody listens on now, chosen at random
/// below the system's ephemeral range. A port the system hands out itself
/// (`bind` to port 0) comes from that range, where any outgoing connection
/// of another test may take it before the server binds it.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::hash::{BuildHasher, Hasher};
    const LOWEST: u16 = 10_000;
    let below = ephemeral_ports_start().max(LOWEST + 1_000);
    let mut held: Vec<std::net::TcpListener> = Vec::with_capacity(N);
    while held.len() < N {
        // A fresh random key each time: the standard library's hasher seed.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = LOWEST + (random % u64::from(below - LOWEST)) as u16;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push(listener);
        }
    }
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// The first port of the range the system picks outgoing connections'
/// ports from (Linux's default range starts at 32768).
fn ephemeral_ports_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether X display `n` is held by a running server. A lock left by one
/// that was killed (its process gone) is cleared with its socket, so that
/// stale files cannot use up the display numbers.
fn display_in_use(n: u32) -> bool {
    let lock = format!("/tmp/.X{n}-lock");
    let socket = format!("/tmp/.X11-unix/X{n}");
    match std::fs::read_to_string(&lock) {
        Ok(pid) => {
            let alive = pid
                .trim()
                .parse::<u32>()
                .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !alive {
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&socket);
            }
            alive
        }
        Err(_) => Path::new(&socket).exists(),
    }
}

/// Starts Xvfb on a free display number; returns it and the process.
pub fn xvfb() -> (String, Proc) {
    for n in 90..140 {
        if display_in_use(n) {
            continue;
        }
        let display = format!(":{n}");
        let proc = Proc::spawn(
            Command::new("Xvfb")
                .args([
                    display.as_str(),
                    "-screen",
                    "0",
                    "1280x1000x24",
                    "-nolisten",
                    "tcp",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("Xvfb is missing: ./test.sh installs it (Debian package xvfb)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
            assert!(Instant::now() < deadline, "Xvfb did not start on {display}");
            std::thread::sleep(Duration::from_millis(50));
        }
        return (display, proc);
    }
    panic!("no free X display number");
}

/// A program from `~/.cargo/bin` (where `cargo install` puts it) or PATH.
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let local = cargo_home.join("bin").join(name);
    if local.exists() {
        local
    } else {
        name.into()
    }
}

/// `root` and every process below it (children, their children…), with
/// each one's command name, read from `/proc`.
pub fn process_tree(root: u32) -> Vec<(u32, String)> {
    let procs: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces.
            let (head, tail) = stat.rsplit_once(')')?;
            let comm = head.split_once('(')?.1.to_string();
            let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid, comm))
        })
        .collect();
    let name = |pid: u32| {
        procs
            .iter()
            .find(|p| p.0 == pid)
            .map(|p| p.2.clone())
            .unwrap_or_default()
    };
    let mut tree = vec![(root, name(root))];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i].0;
        tree.extend(
            procs
                .iter()
                .filter(|p| p.1 == parent)
                .map(|p| (p.0, p.2.clone())),
        );
        i += 1;
    }
    tree
}

/// The process named `name` below `root` (an app below its driver).
pub fn process_below(root: u32, name: &str) -> Option<u32> {
    process_tree(root)
        .into_iter()
        .find(|(_, comm)| comm == name)
        .map(|(pid, _)| pid)
}

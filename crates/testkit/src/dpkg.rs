//! Installing and removing the project's Debian packages in tests: dpkg
//! as root (directly, or through password-less sudo) and what it recorded.

use std::process::{Command, Output};

/// Runs `program` with `args`, panicking if it cannot start.
pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// What `out` printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `program` as root: directly, or through sudo when it needs no password.
/// Panics with its output if it fails.
pub fn as_root(program: &str, args: &[&str]) -> Output {
    let root = stdout(&run("id", &["-u"])).trim() == "0";
    let out = if root {
        run(program, args)
    } else {
        let mut with = vec!["-n", program];
        with.extend_from_slice(args);
        run("sudo", &with)
    };
    assert!(
        out.status.success(),
        "{program} {args:?} failed (installing needs root or password-less sudo): {}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// dpkg's status of `package` (`install ok installed`, `deinstall ok
/// config-files`, or empty when unknown).
pub fn status(package: &str) -> String {
    stdout(&run("dpkg-query", &["-W", "-f=${Status}", package]))
}

/// Whether `package` is installed.
pub fn installed(package: &str) -> bool {
    status(package).contains("install ok installed")
}

/// `dpkg --print-architecture`: the name Debian gives this machine's
/// architecture (`amd64`, `arm64`, ...).
pub fn architecture() -> String {
    stdout(&run("dpkg", &["--print-architecture"]))
        .trim()
        .to_string()
}

/// Checks the package file `deb`: its name and version, that its Depends
/// names `depends`, and that it holds each of `files`.
pub fn check_deb(deb: &str, package: &str, version: &str, depends: &str, files: &[&str]) {
    let fields = stdout(&run(
        "dpkg-deb",
        &["-f", deb, "Package", "Version", "Depends"],
    ));
    assert!(fields.contains(&format!("Package: {package}")), "{fields}");
    assert!(fields.contains(&format!("Version: {version}")), "{fields}");
    assert!(
        fields.contains(depends),
        "Depends lacks {depends}: {fields}"
    );
    let listing = stdout(&run("dpkg-deb", &["-c", deb]));
    for want in files {
        assert!(
            listing.lines().any(|l| l.trim_end().ends_with(want)),
            "{want} is not in the package:\n{listing}"
        );
    }
}

/// Panics unless `package` is absent: a test must not replace what the
/// machine has installed.
pub fn assert_not_installed(package: &str) {
    assert!(
        !installed(package),
        "{package} is installed on this machine already; the test would replace it. Remove it first (dpkg -r {package})."
    );
}

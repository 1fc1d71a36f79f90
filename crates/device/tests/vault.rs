//! The vault on a real SQLite file.

// Test support: a failed step should stop the test right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use countersign_core::vault::MIN_ITERATIONS;
use countersign_core::{OtpAccount, Passcode};
use countersign_device::vault::Vault;
use countersign_device::Error;

const URI: &str =
    "otpauth://totp/ALEA:jd2468@alacop.gov?secret=HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K&issuer=ALEA";
const HOTP: &str =
    "otpauth://hotp/ALEA:jd2468-hotp?secret=YOREZK4HUJ3RHIH7AST6SYILOCSZ6M6C&counter=5";
const T: u64 = 1_800_000_000;

fn new_vault(dir: &std::path::Path) -> Vault {
    Vault::create(dir, &Passcode::new("246810"), MIN_ITERATIONS, T).unwrap()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn file_bytes(dir: &std::path::Path) -> Vec<u8> {
    // The WAL may hold recent writes: read both.
    let mut b = std::fs::read(dir.join("vault.db")).unwrap();
    b.extend(std::fs::read(dir.join("vault.db-wal")).unwrap_or_default());
    b
}

#[test]
fn no_secret_is_stored_in_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let a = OtpAccount::parse(URI).unwrap();
    v.add_otp(&a, T).unwrap();
    drop(v);
    let bytes = file_bytes(tmp.path());
    assert!(
        contains(&bytes, b"jd2468@alacop.gov"),
        "names are stored (a sanity check of the search)"
    );
    assert!(
        !contains(&bytes, b"HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K"),
        "base32 secret in clear"
    );
    assert!(!contains(&bytes, a.secret.expose()), "raw secret in clear");
    assert!(!contains(&bytes, b"246810"), "passcode in clear");
}

#[test]
fn wrong_passcode_changes_nothing_but_the_count_and_backoff_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let added = v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    let code = v.code(&added, T).unwrap().code;
    drop(v);

    let mut v = Vault::open(tmp.path()).unwrap();
    assert!(!v.is_unlocked());
    for i in 1..=4 {
        assert!(
            matches!(v.unlock(&Passcode::new("000000"), T), Err(Error::WrongPasscode { failures }) if failures == i)
        );
    }
    assert!(matches!(
        v.unlock(&Passcode::new("000000"), T),
        Err(Error::WrongPasscode { failures: 5 })
    ));
    // Backing off now, even with the right passcode, and after a restart.
    assert!(matches!(
        v.unlock(&Passcode::new("246810"), T + 10),
        Err(Error::Backoff(20))
    ));
    drop(v);
    let mut v = Vault::open(tmp.path()).unwrap();
    assert!(matches!(
        v.unlock(&Passcode::new("246810"), T + 10),
        Err(Error::Backoff(20))
    ));
    // A sixth failure after the wait doubles it.
    assert!(matches!(
        v.unlock(&Passcode::new("000000"), T + 31),
        Err(Error::WrongPasscode { failures: 6 })
    ));
    assert!(matches!(
        v.unlock(&Passcode::new("246810"), T + 32),
        Err(Error::Backoff(59))
    ));
    v.unlock(&Passcode::new("246810"), T + 91).unwrap();
    assert_eq!(v.failures().unwrap(), 0);
    // The account and its secret are intact.
    let a = v.find("jd2468").unwrap();
    assert_eq!(v.code(&a, T).unwrap().code, code);
}

#[test]
fn optional_wipe_after_n_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    v.set_wipe_after(Some(3)).unwrap();
    v.lock();
    let _ = v.unlock(&Passcode::new("1"), T);
    let _ = v.unlock(&Passcode::new("2"), T);
    assert!(matches!(
        v.unlock(&Passcode::new("3"), T),
        Err(Error::Wiped)
    ));
    assert!(matches!(Vault::open(tmp.path()), Err(Error::NoVault(_))));
}

#[test]
fn locked_vault_refuses_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let a = v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    v.lock();
    assert!(matches!(v.code(&a, T), Err(Error::Locked)));
    v.set_idle_timeout(std::time::Duration::ZERO).unwrap();
    v.unlock(&Passcode::new("246810"), T).unwrap();
    assert!(
        matches!(v.code(&a, T), Err(Error::Locked)),
        "idle timeout of zero locks at once"
    );
}

#[test]
fn the_watchdog_forgets_the_key_once_idle_and_says_so_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    assert!(!v.lock_if_idle(), "not idle yet");
    assert!(v.is_unlocked());
    v.set_idle_timeout(std::time::Duration::ZERO).unwrap();
    assert!(v.lock_if_idle(), "idle: locked now");
    assert!(!v.lock_if_idle(), "already locked: nothing to say");
    v.touch();
    assert!(!v.is_unlocked(), "a touch does not reopen a locked vault");
}

#[test]
fn reading_codes_does_not_keep_an_unattended_vault_open_but_the_person_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let a = v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    let idle = std::time::Duration::from_secs(1);
    v.set_idle_timeout(idle).unwrap();

    // A screen that asks for the codes every 100 ms, nobody at the keys:
    // the vault locks once the idle time has passed.
    v.unlock(&Passcode::new("246810"), T).unwrap();
    let start = std::time::Instant::now();
    while v.code(&a, T).is_ok() {
        assert!(start.elapsed() < idle * 3, "codes kept the vault open");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= idle,
        "locked too early: {:?}",
        start.elapsed()
    );
    assert!(!v.is_unlocked());

    // Someone taps now and then: it stays open past the idle time.
    v.unlock(&Passcode::new("246810"), T).unwrap();
    let start = std::time::Instant::now();
    while start.elapsed() < idle * 2 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        v.touch();
        assert!(v.code(&a, T).is_ok(), "locked while in use");
    }
    // A touch after the idle time does not reopen it.
    std::thread::sleep(idle + std::time::Duration::from_millis(100));
    v.touch();
    assert!(matches!(v.code(&a, T), Err(Error::Locked)));
}

#[test]
fn auto_lock_settings_are_stored_in_the_vault() {
    use countersign_device::vault::AutoLock;
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let defaults = v.auto_lock().unwrap();
    assert_eq!(defaults.idle.as_secs(), 300);
    assert!(!defaults.when_hidden);
    let chosen = AutoLock {
        idle: std::time::Duration::from_secs(900),
        when_hidden: true,
    };
    v.set_auto_lock(chosen).unwrap();
    drop(v);
    assert_eq!(
        Vault::open(tmp.path()).unwrap().auto_lock().unwrap(),
        chosen
    );
}

#[test]
fn duplicates_are_reported_and_hotp_counters_advance() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    let err = v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap_err();
    assert_eq!(err.to_string(), "already added: ALEA (jd2468@alacop.gov)");
    let h = v.add_otp(&OtpAccount::parse(HOTP).unwrap(), T).unwrap();
    let first = v.code(&h, T).unwrap().code;
    let second = v.code(&h, T).unwrap().code;
    assert_ne!(first, second);
    assert_eq!(v.find("hotp").unwrap().counter, 7);
    // Rename and reorder.
    v.rename(&h.id, "renamed").unwrap();
    v.move_to(&h.id, 0).unwrap();
    let list = v.accounts().unwrap();
    assert_eq!(list[0].name, "renamed");
    assert!(matches!(
        v.find("nothing-like-this"),
        Err(Error::NoAccount(_))
    ));
}

#[test]
fn backup_round_trip_and_bad_files_import_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    v.add_otp(&OtpAccount::parse(HOTP).unwrap(), T).unwrap();
    let file = tmp.path().join("backup.csb");
    assert_eq!(v.export(&file, &Passcode::new("correct horse")).unwrap(), 2);
    let bytes = std::fs::read(&file).unwrap();
    assert!(!contains(&bytes, b"HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K") && !contains(&bytes, b"jd2468"));

    let other = tempfile::tempdir().unwrap();
    let mut w = Vault::create(other.path(), &Passcode::new("135790"), MIN_ITERATIONS, T).unwrap();
    let err = w
        .import(&file, &Passcode::new("wrong horse"), T)
        .unwrap_err();
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    let truncated = tmp.path().join("short.csb");
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    assert!(w
        .import(&truncated, &Passcode::new("correct horse"), T)
        .is_err());
    std::fs::write(&truncated, &bytes[..20]).unwrap();
    assert_eq!(
        w.import(&truncated, &Passcode::new("correct horse"), T)
            .unwrap_err()
            .to_string(),
        "backup file: the file is truncated"
    );
    assert!(w.accounts().unwrap().is_empty(), "nothing imported");

    let report = w.import(&file, &Passcode::new("correct horse"), T).unwrap();
    assert_eq!(report.added.len(), 2);
    let again = w.import(&file, &Passcode::new("correct horse"), T).unwrap();
    assert_eq!(again.duplicates.len(), 2);
    let a = w.find("jd2468@alacop.gov").unwrap();
    let mut orig = Vault::open(tmp.path()).unwrap();
    orig.unlock(&Passcode::new("246810"), T).unwrap();
    let b = orig.find("jd2468@alacop.gov").unwrap();
    assert_eq!(w.code(&a, T).unwrap().code, orig.code(&b, T).unwrap().code);
}

#[test]
fn passcode_change_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v = new_vault(tmp.path());
    let a = v.add_otp(&OtpAccount::parse(URI).unwrap(), T).unwrap();
    let code = v.code(&a, T).unwrap().code;
    assert!(v
        .change_passcode(&Passcode::new("wrong1"), &Passcode::new("864200"), T)
        .is_err());
    assert!(matches!(
        v.change_passcode(&Passcode::new("246810"), &Passcode::new("123"), T),
        Err(Error::WeakPasscode)
    ));
    v.change_passcode(&Passcode::new("246810"), &Passcode::new("864200"), T)
        .unwrap();
    v.lock();
    assert!(v.unlock(&Passcode::new("246810"), T).is_err());
    v.unlock(&Passcode::new("864200"), T).unwrap();
    assert_eq!(v.code(&a, T).unwrap().code, code);
}

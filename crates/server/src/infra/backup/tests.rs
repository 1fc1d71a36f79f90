//! Sealing and opening backups, and the file format.

use super::*;
use ring::rand::SystemRandom;

fn files() -> Files {
    vec![
        (
            DATABASE.into(),
            Zeroizing::new(b"SQLite format 3\0...".to_vec()),
        ),
        ("master.key".into(), Zeroizing::new(vec![7u8; 32])),
    ]
}

fn key(b: u8) -> Unlock {
    Unlock::Key(SealingKey::from_bytes(&[b; 32]).unwrap())
}

/// Seals as `backup` does, the key derived from `unlock`.
fn seal(
    snapshot: Option<&Snapshot>,
    files: &Files,
    unlock: &Unlock,
    rng: &SystemRandom,
    now: u64,
) -> Result<Vec<u8>, BackupError> {
    Sealer::new(unlock, rng)?.seal(snapshot, files, rng, now)
}

/// Opens a copy of `sealed`: its time and files, as [`Files`].
fn opened(sealed: &[u8], unlock: &Unlock) -> Result<(u64, Files), BackupError> {
    let mut bytes = Zeroizing::new(sealed.to_vec());
    let (at, files) = open(&mut bytes, unlock)?;
    let files = files
        .into_iter()
        .map(|(n, b)| (n.to_string(), Zeroizing::new(b.to_vec())))
        .collect();
    Ok((at, files))
}

#[test]
fn a_backup_is_its_two_lines_then_one_blob_sealed_under_them_in_one_buffer() {
    let rng = SystemRandom::new();
    let sealed = seal(None, &files(), &key(1), &rng, 5).unwrap();
    assert_eq!(sealed.len(), sealed.capacity(), "sized once, never grown");
    // Read as the format says, without `open`: the two lines are the
    // associated data of a blob `SealingKey::open` opens whole.
    let second = sealed
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1);
    let (head, blob) = sealed.split_at(second.unwrap().0 + 1);
    assert!(head.starts_with(b"COUNTERSIGN BACKUP 1\n{"));
    let payload = SealingKey::from_bytes(&[1; 32])
        .unwrap()
        .open(blob, head)
        .unwrap();
    // Each file: its name's length (u32), its name, its length (u64),
    // its bytes.
    let mut want = Vec::new();
    for (name, bytes) in files() {
        want.extend_from_slice(&(name.len() as u32).to_be_bytes());
        want.extend_from_slice(name.as_bytes());
        want.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        want.extend_from_slice(&bytes);
    }
    assert_eq!(payload.expose(), want);
}

#[test]
fn a_snapshot_is_sealed_first_read_straight_from_its_copy_which_then_goes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(DATABASE);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES ('kept');")
        .unwrap();
    let snapshot = snapshot_sqlite(&db).unwrap();
    let copy = std::fs::read(snapshot.path()).unwrap();
    assert!(copy.starts_with(b"SQLite format 3\0"));
    assert_eq!(snapshot.size(), copy.len() as u64);
    let keys = vec![("master.key".to_string(), Zeroizing::new(vec![7u8; 32]))];
    let sealed = seal(Some(&snapshot), &keys, &key(1), &SystemRandom::new(), 5).unwrap();
    assert_eq!(sealed.len(), sealed.capacity(), "sized once, never grown");
    let (_, got) = opened(&sealed, &key(1)).unwrap();
    let database = (DATABASE.to_string(), Zeroizing::new(copy));
    assert_eq!(got, vec![database, keys[0].clone()]);
    let folder = snapshot.folder.path().to_path_buf();
    assert!(folder.starts_with(dir.path()), "made beside the database");
    drop(snapshot);
    assert!(!folder.exists(), "the copy in clear goes with the snapshot");
}

#[test]
fn a_sealed_backup_opens_with_its_key_only() {
    let rng = SystemRandom::new();
    let sealed = seal(None, &files(), &key(1), &rng, 1_700_000_000).unwrap();
    let (at, got) = opened(&sealed, &key(1)).unwrap();
    assert_eq!(at, 1_700_000_000);
    assert_eq!(got, files());
    assert!(
        !sealed.windows(32).any(|w| w == [7u8; 32]),
        "keys are not in clear"
    );
    assert!(matches!(
        opened(&sealed, &key(2)),
        Err(BackupError::WrongKey)
    ));
    let pass = Unlock::Passphrase(Passcode::new("correct horse battery staple"));
    assert!(matches!(
        opened(&sealed, &pass),
        Err(BackupError::OtherUnlock(_))
    ));
}

#[test]
fn a_passphrase_backup_opens_with_the_passphrase_only() {
    let rng = SystemRandom::new();
    let pass = |p: &str| Unlock::Passphrase(Passcode::new(p));
    let sealed = seal(None, &files(), &pass("correct horse"), &rng, 5).unwrap();
    assert_eq!(opened(&sealed, &pass("correct horse")).unwrap().1, files());
    assert!(matches!(
        opened(&sealed, &pass("wrong horse")),
        Err(BackupError::WrongKey)
    ));
}

#[test]
fn an_altered_header_or_payload_does_not_open() {
    let rng = SystemRandom::new();
    let sealed = seal(None, &files(), &key(1), &rng, 5).unwrap();
    let text = String::from_utf8_lossy(&sealed).to_string();
    let at = text.find("\"created_at\":5").unwrap() + "\"created_at\":".len();
    let mut altered = sealed.clone();
    altered[at] = b'6';
    assert!(matches!(
        opened(&altered, &key(1)),
        Err(BackupError::WrongKey)
    ));
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(matches!(
        opened(&flipped, &key(1)),
        Err(BackupError::WrongKey)
    ));
    assert!(matches!(
        opened(b"hello\n", &key(1)),
        Err(BackupError::Format(_))
    ));
    assert!(matches!(
        opened(&sealed[..30], &key(1)),
        Err(BackupError::Format(_))
    ));
}

#[test]
fn a_payload_naming_another_file_is_refused() {
    let mut evil = Vec::new();
    let name = b"../../etc/passwd";
    evil.extend_from_slice(&(name.len() as u32).to_be_bytes());
    evil.extend_from_slice(name);
    evil.extend_from_slice(&1u64.to_be_bytes());
    evil.push(b'x');
    assert!(matches!(unpack(&evil), Err(BackupError::Format(_))));
    assert!(matches!(
        unpack(&[0, 0, 0, 9, b'a']),
        Err(BackupError::Format(_))
    ));
}

#[test]
fn copies_left_by_backups_that_did_not_finish_are_swept_once_old() {
    let root = tempfile::tempdir().unwrap();
    let make = |name: &str, hours_ago: u64| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(DATABASE), b"SQLite format 3\0").unwrap();
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(hours_ago * 3600);
        for path in [dir.join(DATABASE), dir.clone()] {
            std::fs::File::open(&path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
        dir
    };
    let left = make(".backup-left", 2);
    // Old itself, but with a file written in it just now: still being
    // written.
    let writing = make(".backup-writing", 2);
    std::fs::write(writing.join("more"), b"x").unwrap();
    std::fs::File::open(&writing)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let running = make(".backup-running", 0);
    let restoring = make(".restore-old", 2);
    let other = make(".other-old", 2);
    let file = root.path().join(".backup-file");
    std::fs::write(&file, b"not a folder").unwrap();
    // A link by the name, to an old folder elsewhere: neither goes.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("kept");
    std::fs::create_dir(&target).unwrap();
    std::fs::File::open(&target)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    let link = root.path().join(".backup-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let swept = sweep_stale_copies(root.path(), &[".backup-", ".restore-"], hour).unwrap();
    assert_eq!((swept.removed, swept.left.len()), (2, 0), "{swept:?}");
    assert!(!left.exists(), "the old copy went");
    assert!(!restoring.exists(), "and a killed restore's");
    assert!(
        running.exists() && writing.exists() && other.exists() && file.exists(),
        "nothing else did"
    );
    assert!(
        link.symlink_metadata().is_ok() && target.exists(),
        "the link and its folder stay"
    );
    assert_eq!(
        sweep_stale_copies(root.path(), &[".backup-", ".restore-"], hour)
            .unwrap()
            .removed,
        0
    );
}

//! Sealed backups of a data folder: a consistent copy of the SQLite
//! database taken with SQLite's online backup API while the server runs,
//! and the folder's keys, sealed together with AES-256-GCM under a key
//! from a passphrase (PBKDF2-HMAC-SHA256) or from a key file.
//!
//! A backup file is two text lines and the sealed payload:
//!
//! ```text
//! COUNTERSIGN BACKUP 1
//! {"created_at":..., "kdf":{"iterations":...,"salt":"..."} or null, "files":[...]}
//! nonce || ciphertext || tag
//! ```
//!
//! Both lines are the associated data, so neither can be altered without
//! the payload failing to open. The payload is each file in turn: its
//! name's length (u32, big-endian), its name, its length (u64), its bytes.

use std::path::Path;

use countersign_core::vault::{
    KdfParams, SealingKey, DEFAULT_ITERATIONS, NONCE_LEN, SEAL_OVERHEAD,
};
use countersign_core::Passcode;
use ring::rand::SecureRandom;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The first line of every backup file.
const MAGIC: &str = "COUNTERSIGN BACKUP 1";

/// The database inside a backup.
pub const DATABASE: &str = "countersign.db";

/// What a backup holds besides the database: the data folder's keys and
/// certificate. Only these names are ever written back.
pub const KEY_FILES: [&str; 10] = [
    "server.key",
    "server-key-retiring.json",
    "master.key",
    "admin.token",
    "tls-cert.pem",
    "tls-key.pem",
    "tls-next-cert.pem",
    "tls-next-key.pem",
    "tls-next.json",
    "oidc-keys.json",
];

/// How a backup is sealed and opened.
pub enum Unlock {
    /// A passphrase an operator types or keeps in a file.
    Passphrase(Passcode),
    /// A key file's 32 bytes.
    Key(SealingKey),
}

/// What went wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite's backup failed.
    #[error("copying the database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database stayed locked by another process.
    #[error("the database stayed busy for 10 s; try again")]
    Busy,
    /// The file is not a backup of this format.
    #[error("not a Countersign backup file ({0})")]
    Format(&'static str),
    /// Sealing or key derivation failed.
    #[error("{0}")]
    Crypto(#[from] countersign_core::Error),
    /// The payload did not open.
    #[error("the backup does not open: a wrong passphrase or key file, or the file was altered")]
    WrongKey,
    /// A passphrase backup was given a key file, or the reverse.
    #[error("this backup was sealed with {0}")]
    OtherUnlock(&'static str),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    created_at: u64,
    kdf: Option<KdfParams>,
    files: Vec<String>,
}

/// Files by name, wiped when dropped.
pub type Files = Vec<(String, Zeroizing<Vec<u8>>)>;

/// A consistent copy of the database, in a hidden folder beside it; the
/// folder goes when this is dropped.
pub struct Snapshot {
    folder: tempfile::TempDir,
    size: u64,
}

impl Snapshot {
    /// The copy's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn path(&self) -> std::path::PathBuf {
        self.folder.path().join(DATABASE)
    }
}

/// A consistent copy of the SQLite database at `db`, taken while other
/// connections read and write it: the online backup API copies every page
/// in one step, under one read transaction (WAL: writers carry on). The
/// copy is made in a folder beside `db`, removed with the [`Snapshot`].
pub fn snapshot_sqlite(db: &Path) -> Result<Snapshot, BackupError> {
    let src = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The copy is as secret as the database: it is made beside it, in the
    // data folder (0700), never in a shared temporary folder.
    let folder = db.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".backup-")
        .tempdir_in(folder)
        .map_err(io(folder))?;
    let copy = tmp.path().join(DATABASE);
    {
        let mut dst = rusqlite::Connection::open(&copy)?;
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // -1: every page in one step. A busy database (another process
        // checkpointing) is tried again for up to 10 s.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            use rusqlite::backup::StepResult::{Busy, Done, Locked, More};
            match backup.step(-1)? {
                Done => break,
                More | Busy | Locked if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => return Err(BackupError::Busy),
            }
        }
    }
    let size = std::fs::metadata(&copy).map_err(io(&copy))?.len();
    Ok(Snapshot { folder: tmp, size })
}

/// What [`sweep_stale_copies`] did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Copies removed.
    pub removed: usize,
    /// Copies that could not be removed, each with why (the operator must
    /// remove them: each holds the database in clear).
    pub left: Vec<String>,
}

/// Removes the copies that backups and restores stopped part-way
/// (killed) left in the data folder `root`: folders named with one of
/// `prefixes` (`.backup-`, `.restore-`) last changed at least `age` ago,
/// each holding the database in clear (a restore's, the keys too). A
/// running one's is younger. Only the folder's listing can fail it: an
/// entry gone meanwhile (removed by a backup beside this one) is passed
/// over, and one that cannot be removed (another user's) is reported in
/// [`Swept::left`], so the backup still goes on.
pub fn sweep_stale_copies(
    root: &Path,
    prefixes: &[&str],
    age: std::time::Duration,
) -> Result<Swept, BackupError> {
    let mut swept = Swept::default();
    for entry in std::fs::read_dir(root).map_err(io(root))? {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                swept
                    .left
                    .push(format!("an entry of {}: {e}", root.display()));
                continue;
            }
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !prefixes.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let path = entry.path();
        // The entry itself, not what a link would point to.
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                swept.left.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if !meta.is_dir() || unchanged_for(&path) < Some(age) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => swept.removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => swept.left.push(format!("{}: {e}", path.display())),
        }
    }
    Ok(swept)
}

/// How long since the folder `dir`, or anything directly in it, last
/// changed (`None` if that cannot be read): a copy still being written
/// is younger, whatever its folder's own time.
pub fn unchanged_for(dir: &Path) -> Option<std::time::Duration> {
    let mut newest = std::fs::symlink_metadata(dir).ok()?.modified().ok()?;
    for entry in std::fs::read_dir(dir).ok()? {
        let changed = entry.ok()?.metadata().ok()?.modified().ok()?;
        newest = newest.max(changed);
    }
    newest.elapsed().ok()
}

/// The key files present in the data folder `root`.
pub fn key_files(root: &Path) -> Result<Files, BackupError> {
    let mut files = Vec::new();
    for name in KEY_FILES {
        let path = root.join(name);
        match std::fs::read(&path) {
            Ok(bytes) => files.push((name.to_string(), Zeroizing::new(bytes))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(files)
}

/// The key a backup is sealed with, derived before anything is copied:
/// from a passphrase that takes a while (PBKDF2), and the database's copy
/// in clear should wait on disk no longer than the sealing itself.
pub struct Sealer {
    key: SealingKey,
    kdf: Option<KdfParams>,
}

impl Sealer {
    /// Derives the key from `unlock` (a passphrase gets a fresh salt).
    pub fn new(unlock: &Unlock, rng: &dyn SecureRandom) -> Result<Self, BackupError> {
        Ok(match unlock {
            Unlock::Passphrase(p) => {
                let kdf = KdfParams::generate(rng, DEFAULT_ITERATIONS)?;
                Sealer {
                    key: kdf.derive(p)?,
                    kdf: Some(kdf),
                }
            }
            Unlock::Key(k) => Sealer {
                key: SealingKey::from_bytes(k.expose())?,
                kdf: None,
            },
        })
    }

    /// Seals the database `snapshot` (if any, first) and `files` into a
    /// backup file's bytes. The payload is laid out and sealed in the one
    /// buffer that is returned, the snapshot read straight into it: a
    /// backup holds the database in memory once.
    pub fn seal(
        &self,
        snapshot: Option<&Snapshot>,
        files: &Files,
        rng: &dyn SecureRandom,
        now: u64,
    ) -> Result<Vec<u8>, BackupError> {
        let header = Header {
            created_at: now,
            kdf: self.kdf.clone(),
            files: snapshot
                .map(|_| DATABASE.to_string())
                .into_iter()
                .chain(files.iter().map(|(n, _)| n.clone()))
                .collect(),
        };
        let head = format!(
            "{MAGIC}\n{}\n",
            serde_json::to_string(&header).map_err(|_| BackupError::Format("header"))?
        );
        // Sized up front: a growing vector would leave unwiped copies behind.
        let database = match snapshot {
            Some(s) => {
                usize::try_from(s.size()).map_err(|_| BackupError::Format("database size"))?
            }
            None => 0,
        };
        let entry = |name: &str, len: usize| 12 + name.len() + len;
        let payload: usize = snapshot.map_or(0, |_| entry(DATABASE, database))
            + files.iter().map(|(n, b)| entry(n, b.len())).sum::<usize>();
        let mut out = Zeroizing::new(Vec::with_capacity(head.len() + SEAL_OVERHEAD + payload));
        out.extend_from_slice(head.as_bytes());
        // Room for the nonce, then the payload, sealed where it lies.
        out.resize(head.len() + NONCE_LEN, 0);
        let lead = |out: &mut Vec<u8>, name: &str, len: usize| {
            out.extend_from_slice(&(name.len() as u32).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(len as u64).to_be_bytes());
        };
        if let Some(s) = snapshot {
            lead(&mut out, DATABASE, database);
            let at = out.len();
            out.resize(at + database, 0);
            let path = s.path();
            let mut f = std::fs::File::open(&path).map_err(io(&path))?;
            std::io::Read::read_exact(&mut f, &mut out[at..]).map_err(io(&path))?;
        }
        for (name, bytes) in files {
            lead(&mut out, name, bytes.len());
            out.extend_from_slice(bytes);
        }
        self.key.seal_after(rng, &mut out, head.len())?;
        // Nothing in clear is left in it to wipe.
        Ok(std::mem::take(&mut *out))
    }
}

/// The files of an opened backup: each name, and its bytes inside the
/// opened buffer (no copy).
pub type Opened<'b> = Vec<(&'static str, &'b [u8])>;

/// Opens a backup file's bytes in place: its creation time and files.
/// The buffer holds the payload in clear afterwards, even when opening
/// failed part-way; it is wiped when dropped.
pub fn open<'b>(
    bytes: &'b mut Zeroizing<Vec<u8>>,
    unlock: &Unlock,
) -> Result<(u64, Opened<'b>), BackupError> {
    let magic_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .filter(|&i| &bytes[..i] == MAGIC.as_bytes())
        .ok_or(BackupError::Format(
            "it does not start with the backup line",
        ))?;
    let header_end = bytes[magic_end + 1..]
        .iter()
        .position(|b| *b == b'\n')
        .map(|i| magic_end + 1 + i)
        .ok_or(BackupError::Format("no header"))?;
    let header: Header = serde_json::from_slice(&bytes[magic_end + 1..header_end])
        .map_err(|_| BackupError::Format("its header is damaged"))?;
    let key = match (unlock, &header.kdf) {
        (Unlock::Passphrase(p), Some(kdf)) => kdf.derive(p)?,
        (Unlock::Key(k), None) => SealingKey::from_bytes(k.expose())?,
        (Unlock::Passphrase(_), None) => return Err(BackupError::OtherUnlock("a key file")),
        (Unlock::Key(_), Some(_)) => return Err(BackupError::OtherUnlock("a passphrase")),
    };
    let payload = key
        .open_after(bytes, header_end + 1)
        .map_err(|_| BackupError::WrongKey)?;
    let files = unpack(payload)?;
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    if names != header.files.iter().map(String::as_str).collect::<Vec<_>>() {
        return Err(BackupError::Format("its contents differ from its header"));
    }
    Ok((header.created_at, files))
}

/// Splits a payload into files; only the names a backup may hold.
fn unpack(mut rest: &[u8]) -> Result<Opened<'_>, BackupError> {
    const DAMAGED: BackupError = BackupError::Format("its contents are damaged");
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], BackupError> {
        if rest.len() < n {
            return Err(DAMAGED);
        }
        let (a, b) = rest.split_at(n);
        *rest = b;
        Ok(a)
    }
    fn number<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], BackupError> {
        take(rest, N)?.try_into().map_err(|_| DAMAGED)
    }
    let mut files = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(number(&mut rest)?) as usize;
        let name = std::str::from_utf8(take(&mut rest, len)?).map_err(|_| DAMAGED)?;
        let Some(name) = [DATABASE].iter().chain(&KEY_FILES).find(|n| **n == name) else {
            return Err(BackupError::Format("it holds a file a backup never holds"));
        };
        let size = usize::try_from(u64::from_be_bytes(number(&mut rest)?)).map_err(|_| DAMAGED)?;
        files.push((*name, take(&mut rest, size)?));
    }
    Ok(files)
}

#[cfg(test)]
mod tests;

//! The data folder: the database, the keys and the TLS certificate, created
//! on first use with owner-only permissions.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use countersign_core::vault::SealingKey;
use countersign_core::SigningKey;
use ring::rand::{SecureRandom, SystemRandom};

/// Paths inside the data folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The data folder's lock, released when dropped (or when the process
/// ends, however it ends).
#[derive(Debug)]
pub struct FolderLock(#[allow(dead_code)] fs::File);

/// A data-folder problem.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A running server (or another command that changes keys) holds
    /// the folder.
    #[error("{0} is in use by a running countersign-server (or a key rotation): stop it first")]
    InUse(String),
    /// A key file is damaged.
    #[error("{path}: {problem}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DataDir {
    /// Opens (creating if needed) the data folder at `root`.
    pub fn open(root: &Path) -> Result<Self, DataDirError> {
        fs::create_dir_all(root).map_err(io(root))?;
        restrict_dir(root)?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    /// The data folder at `root` as it is, without creating or changing
    /// it (for commands that only look).
    pub fn existing(root: &Path) -> Self {
        DataDir {
            root: root.to_path_buf(),
        }
    }

    /// Takes the folder's lock (`.lock`), held for as long as the returned
    /// value lives: by `serve`, and by commands that change keys, so that
    /// neither starts while the other runs. Other admin commands do not
    /// take it; they work beside a running server.
    pub fn lock(&self) -> Result<FolderLock, DataDirError> {
        let path = self.root.join(".lock");
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(io(&path))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(FolderLock(file)),
            Err(rustix::io::Errno::WOULDBLOCK) => {
                Err(DataDirError::InUse(self.root.display().to_string()))
            }
            Err(e) => Err(io(&path)(e.into())),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("countersign.db")
    }

    /// The runtime file a running server writes (its URL, for admin commands).
    pub fn runtime_file(&self) -> PathBuf {
        self.root.join("server.json")
    }

    /// The server's Ed25519 key, generated once.
    pub fn server_key(&self) -> Result<SigningKey, DataDirError> {
        let path = self.root.join("server.key");
        let bytes = self.secret_file(&path, |rng| {
            SigningKey::generate(rng)
                .map(|k| k.pkcs8().expose().to_vec())
                .map_err(|e| e.to_string())
        })?;
        SigningKey::from_pkcs8(&bytes).map_err(|e| damaged(&path, e))
    }

    /// The master key sealing stored TOTP secrets, generated once.
    pub fn master_key(&self) -> Result<SealingKey, DataDirError> {
        let path = self.root.join("master.key");
        let bytes = self.secret_file(&path, |rng| {
            let mut k = vec![0u8; 32];
            rng.fill(&mut k)
                .map_err(|_| "random generator failed".to_string())?;
            Ok(k)
        })?;
        SealingKey::from_bytes(&bytes).map_err(|e| damaged(&path, e))
    }

    /// The token admin commands present to a running server, generated once.
    pub fn admin_token(&self) -> Result<zeroize::Zeroizing<String>, DataDirError> {
        let path = self.root.join("admin.token");
        let bytes = self.secret_file(&path, |rng| {
            let mut k = [0u8; 32];
            rng.fill(&mut k)
                .map_err(|_| "random generator failed".to_string())?;
            Ok(data_encoding::BASE64URL_NOPAD.encode(&k).into_bytes())
        })?;
        String::from_utf8(bytes.to_vec())
            .map(zeroize::Zeroizing::new)
            .map_err(|e| damaged(&path, e))
    }

    /// TLS certificate and key paths for the self-signed mode.
    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.root.join("tls-cert.pem"),
            self.root.join("tls-key.pem"),
        )
    }

    /// A TLS key staged by `keys rotate tls --new-key`: its certificate,
    /// its key, and the switch time (see [`crate::infra::tls`]).
    pub fn next_tls_paths(&self) -> (PathBuf, PathBuf, PathBuf) {
        (
            self.root.join("tls-next-cert.pem"),
            self.root.join("tls-next-key.pem"),
            self.root.join("tls-next.json"),
        )
    }

    /// Reads a secret file, creating it with `make` (mode 0600) when absent.
    fn secret_file(
        &self,
        path: &Path,
        make: impl FnOnce(&dyn SecureRandom) -> Result<Vec<u8>, String>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, DataDirError> {
        match fs::read(path) {
            Ok(bytes) => Ok(zeroize::Zeroizing::new(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes = zeroize::Zeroizing::new(
                    make(&SystemRandom::new()).map_err(|p| damaged(path, p))?,
                );
                write_private(path, &bytes)?;
                Ok(bytes)
            }
            Err(e) => Err(io(path)(e)),
        }
    }
}

fn damaged(path: &Path, problem: impl ToString) -> DataDirError {
    DataDirError::Damaged {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Removes the file at `path`; one already gone (another process on the
/// folder removed it first) is no error.
pub fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename),
/// so a crash never leaves half a key behind.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DataDirError> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}

fn restrict_dir(root: &Path) -> Result<(), DataDirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).map_err(io(root))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_lock_is_held_by_one_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let first = dir.lock().unwrap();
        assert!(matches!(dir.lock(), Err(DataDirError::InUse(_))));
        drop(first);
        assert!(dir.lock().is_ok(), "released when dropped");
    }

    #[test]
    fn keys_are_generated_once_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let k1 = dir.server_key().unwrap().public_key();
        let k2 = dir.server_key().unwrap().public_key();
        assert_eq!(k1, k2);
        assert_eq!(
            dir.master_key().unwrap().expose(),
            dir.master_key().unwrap().expose()
        );
        assert_eq!(dir.admin_token().unwrap(), dir.admin_token().unwrap());
        #[cfg(unix)]
        for name in ["server.key", "master.key", "admin.token"] {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(tmp.path().join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
    }

    #[test]
    fn a_damaged_key_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("server.key"), b"junk").unwrap();
        let err = DataDir::open(tmp.path()).unwrap().server_key().unwrap_err();
        assert!(err.to_string().contains("server.key: invalid key"), "{err}");
    }
}

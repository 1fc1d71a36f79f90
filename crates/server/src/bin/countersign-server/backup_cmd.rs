//! `countersign-server backup FILE` and `restore FILE`: a sealed copy of
//! the data folder (database and keys), taken while the server runs, and
//! its return into an empty data folder. See infra/backup.rs for the file.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use countersign_core::time::format_utc;
use countersign_core::Passcode;
use countersign_server::infra::backup::{self, Unlock, DATABASE, KEY_FILES};
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::{write_private, DataDir};
use countersign_server::infra::keyfile::parse_key;
use countersign_server::store::Store;
use ring::rand::SystemRandom;

/// The environment variable a backup passphrase may come from.
const PASSPHRASE_ENV: &str = "COUNTERSIGN_BACKUP_PASSPHRASE";

/// Fewest characters a backup passphrase may have.
const MIN_PASSPHRASE: usize = 12;

/// How the backup is sealed: a key file, or a passphrase.
#[derive(Args)]
pub struct Sealing {
    /// A key file: 32 random bytes in base64 (`openssl rand -base64 32`),
    /// kept apart from the data folder and the backups.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_file")]
    key_file: Option<PathBuf>,
    /// A file whose first line is the passphrase. Without this or
    /// --key-file: $COUNTERSIGN_BACKUP_PASSPHRASE, or asked on the terminal.
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

impl Sealing {
    fn unlock(&self, new: bool) -> anyhow::Result<Unlock> {
        if let Some(path) = &self.key_file {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the key file {}", path.display()))?,
            );
            let key = parse_key(&text).with_context(|| {
                format!(
                    "{} is not a key file: 32 random bytes in base64 (`openssl rand -base64 32`)",
                    path.display()
                )
            })?;
            return Ok(Unlock::Key(key));
        }
        let passphrase = match &self.passphrase_file {
            Some(path) => {
                let text = zeroize::Zeroizing::new(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
                Passcode::new(text.lines().next().unwrap_or_default())
            }
            None => match std::env::var(PASSPHRASE_ENV) {
                Ok(p) if !p.is_empty() => Passcode::new(p),
                _ => ask(new)?,
            },
        };
        if new && passphrase.expose().chars().count() < MIN_PASSPHRASE {
            bail!("a backup passphrase needs at least {MIN_PASSPHRASE} characters");
        }
        Ok(Unlock::Passphrase(passphrase))
    }
}

/// Asks for the passphrase on the terminal (twice for a new backup).
fn ask(new: bool) -> anyhow::Result<Passcode> {
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: pass --key-file or --passphrase-file, or set {PASSPHRASE_ENV}");
    }
    let first = Passcode::new(rpassword::prompt_password("Backup passphrase: ")?);
    if new {
        let again = Passcode::new(rpassword::prompt_password("The same passphrase again: ")?);
        if !first.matches(&again) {
            bail!("the two passphrases differ; nothing was written");
        }
    }
    Ok(first)
}

fn on_postgres(config: &Config) -> anyhow::Result<()> {
    if config.store.is_postgres() {
        bail!(
            "the state is in PostgreSQL ({}): back it up with pg_dump, and keep the \
             key-encryption key apart (docs/OPERATIONS.md, \"Backup and restore\")",
            config.store.display_url()
        );
    }
    Ok(())
}

/// `backup FILE`.
pub fn backup(data: &Path, config: &Config, file: &Path, sealing: &Sealing) -> anyhow::Result<()> {
    on_postgres(config)?;
    let db = data.join(DATABASE);
    if !db.is_file() {
        bail!("no database in {}: nothing to back up", data.display());
    }
    if file.exists() {
        bail!("{} exists already; name a new file", file.display());
    }
    if data.join("master.key.next").exists() {
        bail!(
            "a master-key rotation in {} is unfinished: start the server once (it settles it), then back up",
            data.display()
        );
    }
    let unlock = sealing.unlock(true)?;
    // The key first (a passphrase takes a moment): the copy in clear
    // waits on disk only while it is sealed.
    let rng = SystemRandom::new();
    let sealer = backup::Sealer::new(&unlock, &rng)?;
    let swept = backup::sweep_stale_copies(
        data,
        &[".backup-", ".restore-"],
        std::time::Duration::from_secs(3600),
    )?;
    if swept.removed > 0 {
        eprintln!(
            "removed {} database cop{} left in the data folder by a backup that did not finish",
            swept.removed,
            if swept.removed == 1 { "y" } else { "ies" }
        );
    }
    for left in &swept.left {
        eprintln!(
            "warning: could not remove a database copy left by a backup that did not finish \
             (it holds the database in clear; remove it): {left}"
        );
    }
    eprintln!("copying the database with SQLite's online backup (the server may keep running)...");
    let snapshot = backup::snapshot_sqlite(&db)?;
    let db_size = snapshot.size();
    let files = backup::key_files(data)?;
    eprintln!("sealing the database and {} key files...", files.len());
    let sealed = sealer.seal(Some(&snapshot), &files, &rng, countersign_server::now())?;
    // The database's copy in clear goes as soon as it is sealed.
    drop(snapshot);
    write_new(file, &sealed)?;
    let how = match unlock {
        Unlock::Key(_) => "the key file",
        Unlock::Passphrase(_) => "the passphrase",
    };
    println!(
        "backup written: {} ({} bytes: the database, {db_size} bytes, and {} key files), sealed with {how}",
        file.display(),
        sealed.len(),
        files.len()
    );
    Ok(())
}

/// `restore FILE`, into an empty data folder.
pub fn restore(data: &Path, config: &Config, file: &Path, sealing: &Sealing) -> anyhow::Result<()> {
    on_postgres(config)?;
    // A restore killed part-way left its staging folder (the database and
    // keys in clear); one untouched for ten minutes is not running. Only
    // in a folder that holds nothing else, all of it that old: otherwise
    // (a live data folder named by mistake, a restore running) it is
    // refused below with nothing removed.
    let ten_minutes = std::time::Duration::from_secs(600);
    let only_stale_staging = std::fs::read_dir(data).is_ok_and(|entries| {
        entries.filter_map(Result::ok).all(|e| {
            e.file_name().to_string_lossy().starts_with(".restore-")
                && e.file_type().is_ok_and(|t| t.is_dir())
                && backup::unchanged_for(&e.path()).is_some_and(|age| age >= ten_minutes)
        })
    });
    if only_stale_staging {
        let swept = backup::sweep_stale_copies(data, &[".restore-"], ten_minutes)?;
        if swept.removed > 0 {
            eprintln!(
                "removed what a restore that did not finish left in {}",
                data.display()
            );
        }
        for left in &swept.left {
            eprintln!("warning: could not remove what a restore that did not finish left: {left}");
        }
    }
    let existed = match std::fs::read_dir(data) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            if !names.is_empty() {
                bail!(
                    "{} is not empty ({}): restore goes into an empty data folder, so nothing there is overwritten",
                    data.display(),
                    names.join(", ")
                );
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => bail!("cannot read {}: {e}", data.display()),
    };
    // Opened in place: wiped when dropped.
    let mut bytes = zeroize::Zeroizing::new(
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
    );
    let unlock = sealing.unlock(false)?;
    let (created_at, files) = backup::open(&mut bytes, &unlock)?;
    if !files.iter().any(|(n, _)| *n == DATABASE) {
        bail!("the backup holds no database");
    }
    let dir = DataDir::open(data)?;
    match stage_and_move(&dir, &files) {
        Ok(rows) => {
            println!(
                "restored the backup taken {} into {}: {} files; audit chain verified ({rows} rows). \
                 Start the server on it.",
                format_utc(created_at),
                data.display(),
                files.len()
            );
            Ok(())
        }
        Err(e) => {
            // Leave things as they were: an empty folder, or none.
            for name in KEY_FILES.iter().chain([&DATABASE]) {
                let _ = std::fs::remove_file(dir.root().join(name));
            }
            if !existed {
                let _ = std::fs::remove_dir(dir.root());
            }
            Err(e.context("nothing was restored"))
        }
    }
}

/// Writes the files into a staging folder inside the data folder, checks
/// the database there, then moves each into place. The staging folder
/// goes in any case.
fn stage_and_move(dir: &DataDir, files: &backup::Opened<'_>) -> anyhow::Result<usize> {
    let stage = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(dir.root())
        .context("making a staging folder in the data folder")?;
    for (name, bytes) in files {
        write_private(&stage.path().join(name), bytes)?;
    }
    let rows = verify(&stage.path().join(DATABASE))?;
    for (name, _) in files {
        std::fs::rename(stage.path().join(name), dir.root().join(name))
            .with_context(|| format!("moving {name} into place"))?;
    }
    Ok(rows)
}

/// Writes `bytes` to `path`, which must not exist, readable by its owner
/// only; removed again if anything fails.
fn write_new(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let written = f.write_all(bytes).and_then(|()| f.sync_all());
    if let Err(e) = written {
        drop(f);
        let _ = std::fs::remove_file(path);
        bail!("writing {}: {e}", path.display());
    }
    Ok(())
}

/// Opens the restored database and checks its audit chain.
fn verify(db: &Path) -> anyhow::Result<usize> {
    let store = Store::open(db)?;
    match store.verify_audit()? {
        Ok(n) => Ok(n),
        Err(seq) => bail!("the restored audit chain breaks at row {seq}"),
    }
}

//! `countersign-server keys rotate ...`: replacing keys without
//! re-enrolling devices (see domain/keys.rs).

use std::path::Path;

use clap::Subcommand;
use countersign_server::domain::shared_keys::SharedKeys;
use countersign_server::http::serve;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::store::{Presence, Store};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Replace a key.
    #[command(subcommand)]
    Rotate(RotateCommand),
}

#[derive(Subcommand)]
pub enum RotateCommand {
    /// Seal every stored TOTP secret again under a new master key, in one
    /// transaction (stop the server first; on PostgreSQL, every instance).
    Master,
    /// Sign with a new server key; the old one vouches for it to devices
    /// until the grace period ends (stop the server first; on PostgreSQL,
    /// every instance).
    Signing {
        /// Days the old key vouches for the new one: a device that gets no
        /// request in that time must enrol again.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=365))]
        grace_days: u64,
    },
    /// Issue a new self-signed TLS certificate: for the same key (every
    /// pin holds), or with --new-key for a new key that devices are told
    /// about first (stop the server first; SQLite only).
    Tls {
        /// Make a new key too; the server presents it after the grace
        /// period, and devices learn its pin with each request until then.
        #[arg(long)]
        new_key: bool,
        /// Days until the server presents the new key: a device that gets
        /// no request in that time must enrol again.
        #[arg(long, default_value_t = 30, requires = "new_key", value_parser = clap::value_parser!(u64).range(1..=365))]
        grace_days: u64,
    },
}

/// Runs a `keys` command.
pub fn run(cmd: KeysCommand, data: &Path, config: &Config) -> anyhow::Result<()> {
    let KeysCommand::Rotate(which) = cmd;
    if config.store.is_postgres() && matches!(which, RotateCommand::Tls { .. }) {
        anyhow::bail!(
            "rotating the TLS key on PostgreSQL is not supported yet (docs/OPERATIONS.md)"
        );
    }
    let stopped = stopped_folder(data, config)?;
    let (dir, store) = (&stopped.dir, &stopped.store);
    let now = countersign_server::now();
    match which {
        RotateCommand::Master => {
            let n = countersign_server::domain::keys::rotate_master(
                dir,
                store,
                stopped.shared.as_ref(),
                "admin-cli",
                now,
            )?;
            println!("master key rotated: {n} TOTP secrets sealed again under the new key; start the server");
        }
        RotateCommand::Tls {
            new_key,
            grace_days,
        } => {
            use countersign_server::domain::keys::{rotate_tls, TlsRotation};
            let new_key = new_key.then_some(grace_days);
            match rotate_tls(dir, config, store, "admin-cli", new_key, now)? {
                TlsRotation::Reissued => println!(
                    "TLS certificate issued again for the same key: every device's pin holds; start the server"
                ),
                TlsRotation::Staged(at) => println!(
                    "new TLS key staged; start the server. Until {} each device learns its pin with its next request, \
                     and the server presents it from then on; a device that gets no request by then must be enrolled again",
                    countersign_core::time::format_utc(at)
                ),
            }
        }
        RotateCommand::Signing { grace_days } => {
            let until = countersign_server::domain::keys::rotate_signing(
                dir,
                store,
                stopped.shared.as_ref(),
                "admin-cli",
                grace_days,
                now,
            )?;
            println!(
                "signing key rotated; start the server. Until {} each device learns the new key with its next request; \
                 a device that gets none by then must be enrolled again",
                countersign_core::time::format_utc(until)
            );
        }
    }
    Ok(())
}

/// A data folder and its store that no server uses, held so while a
/// rotation runs.
struct Stopped {
    dir: DataDir,
    store: Store,
    /// On PostgreSQL, the key-encryption key the database's keys are
    /// sealed under.
    shared: Option<SharedKeys>,
    _lock: countersign_server::infra::datadir::FolderLock,
    /// On PostgreSQL, the database held against starting instances.
    _alone: Presence,
}

/// The data folder and its store, checked to be one this user may change
/// with no server running on it (on PostgreSQL, none on the database);
/// the folder's lock is held.
fn stopped_folder(data: &Path, config: &Config) -> anyhow::Result<Stopped> {
    let dir = DataDir::existing(data);
    if !config.store.is_postgres() && !dir.database().exists() {
        anyhow::bail!("no database in {}: nothing to rotate", data.display());
    }
    if let Some(rt) = serve::running_server(&dir) {
        if Path::new(&format!("/proc/{}", rt.pid)).exists() {
            anyhow::bail!(
                "the server is running (process {}): stop it first; it holds the old key in memory",
                rt.pid
            );
        }
    }
    let owner = std::fs::metadata(data).map(|m| std::os::unix::fs::MetadataExt::uid(&m))?;
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        anyhow::bail!(
            "{} belongs to user id {owner}: run this as that user (e.g. `runuser -u countersign -- ...`), \
             or the server could not read the new key",
            data.display()
        );
    }
    let lock = dir.lock()?;
    if !config.store.is_postgres() {
        let store = Store::open(&dir.database())?;
        return Ok(Stopped {
            dir,
            store,
            shared: None,
            _lock: lock,
            _alone: Presence::none(),
        });
    }
    let store = Store::open_url(&config.store.url)
        .map_err(|e| anyhow::anyhow!("store {}: {e}", config.store.display_url()))?;
    let Some(alone) = store.exclude_instances()? else {
        anyhow::bail!(
            "the server is running on this database: stop every instance first; each holds \
             the old key in memory. Connected: {}",
            // (PostgreSQL shows application names in printable ASCII only.)
            store.serving_instances()?.join("; ")
        );
    };
    // The database's keys are the ones in use: the folder takes them.
    let shared = SharedKeys::new(&config.store, data)?;
    shared.pull(&store)?;
    Ok(Stopped {
        dir,
        store,
        shared: Some(shared),
        _lock: lock,
        _alone: alone,
    })
}

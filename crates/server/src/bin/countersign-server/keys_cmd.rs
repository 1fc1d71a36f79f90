//! `countersign-server keys rotate ...`: replacing keys without
//! re-enrolling devices (see domain/keys.rs).

use std::path::Path;

use clap::Subcommand;
use countersign_server::http::serve;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Replace a key.
    #[command(subcommand)]
    Rotate(RotateCommand),
}

#[derive(Subcommand)]
pub enum RotateCommand {
    /// Seal every stored TOTP secret again under a new master key, in one
    /// transaction (stop the server first; SQLite only).
    Master,
}

/// Runs a `keys` command.
pub fn run(cmd: KeysCommand, data: &Path, config: &Config) -> anyhow::Result<()> {
    let KeysCommand::Rotate(RotateCommand::Master) = cmd;
    rotate_master(data, config)
}

/// `keys rotate master`, with the server stopped.
fn rotate_master(data: &Path, config: &Config) -> anyhow::Result<()> {
    if config.store.is_postgres() {
        anyhow::bail!(
            "rotating the master key on PostgreSQL is not supported yet (docs/OPERATIONS.md)"
        );
    }
    let dir = DataDir::existing(data);
    if !dir.database().exists() {
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
    let _lock = dir.lock()?;
    let store = countersign_server::store::Store::open(&dir.database())?;
    let n = countersign_server::domain::keys::rotate_master(
        &dir,
        &store,
        "admin-cli",
        countersign_server::now(),
    )?;
    println!(
        "master key rotated: {n} TOTP secrets sealed again under the new key; start the server"
    );
    Ok(())
}

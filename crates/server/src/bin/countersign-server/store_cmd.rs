//! `countersign-server store copy`: moves a deployment's state from one
//! store to another (e.g. from the SQLite default to PostgreSQL).

use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;
use countersign_server::infra::config::StoreConfig;
use countersign_server::store::Store;

/// `store ...`.
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy everything (users, devices, methods, sessions, pending
    /// challenges, the audit chain) from one store into another.
    Copy {
        /// The source: `sqlite:PATH` (a data folder's countersign.db) or
        /// `postgres://...`.
        #[arg(long, value_name = "STORE")]
        from: String,
        /// The target: `postgres://...` or `sqlite:PATH`.
        #[arg(long, value_name = "STORE")]
        to: String,
        /// Empty a target that holds data first (refused otherwise).
        #[arg(long)]
        replace: bool,
    },
}

/// Runs a `store` command.
pub fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    let StoreCommand::Copy { from, to, replace } = cmd;
    let source = open(&from, true).with_context(|| format!("source {}", shown(&from)))?;
    let target = open(&to, false).with_context(|| format!("target {}", shown(&to)))?;
    eprintln!("copying {} into {}...", shown(&from), shown(&to));
    let copied = source.copy_into(&target, replace)?;
    for (table, n) in &copied.tables {
        println!("{table:<24} {n} rows");
    }
    match target.verify_audit()? {
        Ok(n) => println!("audit chain verified on the target: {n} rows"),
        Err(seq) => bail!("the copied audit chain breaks at row {seq}"),
    }
    Ok(())
}

/// Opens `sqlite:PATH` (which must exist when it is the source) or a
/// PostgreSQL URL, running migrations.
fn open(spec: &str, source: bool) -> anyhow::Result<Store> {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        let path = Path::new(path);
        if source && !path.is_file() {
            bail!("no such database file: {}", path.display());
        }
        return Ok(Store::open(path)?);
    }
    Ok(Store::open_url(spec)?)
}

/// A store for messages, without any password.
fn shown(spec: &str) -> String {
    if spec.starts_with("sqlite:") {
        return spec.to_string();
    }
    StoreConfig {
        url: spec.to_string(),
        kek_file: None,
    }
    .display_url()
}

//! The `bench` command's options.

use std::time::Duration;

/// What to measure (the `bench` command's options).
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Devices connected during the round-trip phase.
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Round trips in flight at once.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    pub concurrency: usize,
    /// Seconds of round trips.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Idle streams for the memory figure (0 to skip).
    #[arg(long, default_value_t = 10_000)]
    pub idle_streams: usize,
    /// Loopback source addresses the idle streams come from
    /// (127.0.0.2 on), for more streams than one address has ports.
    #[arg(long, default_value_t = 1)]
    pub source_addresses: usize,
    /// Idle streams being opened at once: the driver opens the next when
    /// one is open. Many more than the server can take in its handshake
    /// timeout, as in a reconnect storm, and some are refused.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub opening: usize,
    /// Hold plain server-sent-event streams (as browsers do) instead of
    /// the upgraded streams devices use.
    #[arg(long)]
    pub sse: bool,
    /// Then round trips again with this many wrong-password sign-ins
    /// running beside them (0 to skip).
    #[arg(long, default_value_t = 20)]
    pub wrong_passwords: usize,
    /// Instead: single sign-on code exchanges by signed-in browsers
    /// (authorize → code → token → userinfo), `--concurrency` at once.
    #[arg(long)]
    pub sso: bool,
    /// Run on this PostgreSQL database (empty; `postgres://...`)
    /// instead of SQLite in the temporary folder.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Serve instances, behind an nginx balancer when more than one
    /// (needs --store and Debian's nginx).
    #[arg(long, default_value_t = 1, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=64))]
    pub instances: usize,
    /// Each serve instance's worker threads (`connections.workers`; 0:
    /// the server's default).
    #[arg(long, default_value_t = 0)]
    pub server_workers: usize,
}

impl BenchOptions {
    /// How long each round-trip phase lasts.
    pub(super) fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }
}

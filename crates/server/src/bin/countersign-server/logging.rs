//! The server's logs: text or JSON on stderr, and a filter SIGHUP can
//! change while the server runs.

use std::io::IsTerminal;
use std::path::PathBuf;

use countersign_server::infra::config::Config;

/// Changes the running process's log filter (SIGHUP).
pub type SetLevel = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Logs to stderr, as text or JSON, filtered by `COUNTERSIGN_LOG` or else
/// `level`; returns how to change the filter later.
pub fn init(json: bool, level: &str) -> SetLevel {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("COUNTERSIGN_LOG")
        .unwrap_or_else(|_| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    // Colours only for a person at a terminal: a file or a journal would
    // keep the escape codes.
    // A line that cannot be written (whatever read stderr is gone) is
    // dropped: by default the logger would say so with `eprintln!`, which
    // panics on the same closed stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .log_internal_errors(false);
    let parse = |l: &str| EnvFilter::try_new(l).map_err(|e| e.to_string());
    if json {
        let builder = builder.json().with_filter_reloading();
        let handle = builder.reload_handle();
        builder.init();
        Box::new(move |l| handle.reload(parse(l)?).map_err(|e| e.to_string()))
    } else {
        let builder = builder.with_filter_reloading();
        let handle = builder.reload_handle();
        builder.init();
        Box::new(move |l| handle.reload(parse(l)?).map_err(|e| e.to_string()))
    }
}

/// On SIGHUP, reads the configuration file again and applies its
/// `log.level`. Nothing else is reloaded: every other setting is read
/// once, at start (docs/OPERATIONS.md says so). A file that no longer
/// loads changes nothing.
pub async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    set_level: SetLevel,
) {
    while hangups.recv().await.is_some() {
        match Config::load(path.as_deref(), None) {
            Ok(c) => match set_level(&c.log.level) {
                Ok(()) => crate::note(&format!(
                    "countersign-server: SIGHUP: log level now {:?}; other settings apply at the next restart",
                    c.log.level
                )),
                Err(e) => crate::note(&format!(
                    "countersign-server: SIGHUP: log level not changed: {e}"
                )),
            },
            Err(e) => {
                crate::note(&format!(
                    "countersign-server: SIGHUP: the configuration does not load, nothing changed: {e}"
                ))
            }
        }
    }
}

/// Ctrl-C and SIGTERM, caught from the moment this is made. The server
/// makes it before it announces itself (`server.json`): a stop asked for
/// right after start then stops it cleanly, instead of the signal's
/// default ending the process with its files left behind.
pub struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Starts catching both (inside the runtime).
    pub fn catch() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either.
    pub async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
    }
}

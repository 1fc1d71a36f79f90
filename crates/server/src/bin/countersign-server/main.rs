//! `countersign-server`: run the sign-in server and administer it.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use countersign_core::api::ChallengeStatus;
use countersign_server::http::api::PushRequest;
use countersign_server::http::serve;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::infra::tls;
use countersign_server::store::AuditFilter;
use countersign_server::Server;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod admin;
mod audit_cmd;
mod backup_cmd;

mod bench;
mod clients;
mod doctor;

mod helpdesk;
mod keys_cmd;
mod logging;
mod store_cmd;
mod users;

use admin::AdminClient;
use users::{user, UserCommand};

const AFTER_HELP: &str = "\
Exit codes:
  0  success (push: approved; check-code: accepted)
  1  refused (push: denied, reported or wrong number; check-code: refused)
  2  push: the request expired unanswered
  3  error: bad configuration, unknown user, server not running, ...";

/// The Countersign sign-in server.
#[derive(Parser)]
#[command(name = "countersign-server", version, after_help = AFTER_HELP)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "COUNTERSIGN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data folder: database, keys, certificate.
    #[arg(long, global = true, env = "COUNTERSIGN_DATA", value_name = "DIR")]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on (default from the configuration: 127.0.0.1:8443).
        #[arg(long, env = "COUNTERSIGN_LISTEN", value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// Serve plain HTTP, for a TLS-terminating reverse proxy in front
        /// (the same as `tls.mode = "off"`). Never expose it directly.
        #[arg(long)]
        behind_proxy: bool,
    },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Help-desk operations: find users, challenge timelines, fixes with
    /// a reason, push health.
    #[command(subcommand)]
    Helpdesk(helpdesk::HelpdeskCommand),
    /// Applications that hand their sign-in to Countersign (OpenID
    /// Connect clients).
    #[command(subcommand)]
    Client(clients::ClientCommand),
    /// Single sign-on keys.
    #[command(subcommand)]
    Oidc(clients::OidcCommand),
    /// Send a test push to a user's authenticator: prints `number: NN` first
    /// and `challenge: ID` second,
    /// then waits for the answer.
    Push {
        /// The user.
        username: String,
        /// Application name shown on the device.
        #[arg(long, default_value = "Help desk test")]
        app: String,
        /// IP shown on the device.
        #[arg(long, default_value = "")]
        ip: String,
        /// Location shown on the device.
        #[arg(long, default_value = "")]
        location: String,
        /// A particular device (default: the newest; ids may start with `-`).
        #[arg(long, allow_hyphen_values = true)]
        device: Option<String>,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Load driver: push round trips and idle-stream memory against a
    /// fresh server started as a child process.
    Bench(bench::BenchOptions),
    /// Write a sealed copy of the data folder (database and keys) to FILE,
    /// while the server runs. SQLite only; PostgreSQL: pg_dump.
    Backup {
        /// The backup file to write (must not exist).
        file: PathBuf,
        #[command(flatten)]
        sealing: backup_cmd::Sealing,
    },
    /// Restore a backup into an empty data folder, then verify its audit
    /// chain.
    Restore {
        /// The backup file.
        file: PathBuf,
        #[command(flatten)]
        sealing: backup_cmd::Sealing,
    },
    /// Check the installation (configuration, data folder, clock,
    /// certificate, database, disk, open-file limit) and say what to fix.
    /// Changes nothing; exits 1 if a check failed.
    Doctor,
    /// Rotate keys.
    #[command(subcommand)]
    Keys(keys_cmd::KeysCommand),
    /// Move the state between stores (`store copy --from sqlite:PATH --to postgres://...`).
    #[command(subcommand)]
    Store(store_cmd::StoreCommand),
    /// Read the audit log, or verify its hash chain.
    Audit {
        #[command(subcommand)]
        verify: Option<AuditCommand>,
        /// Only rows about or by this user.
        #[arg(long)]
        user: Option<String>,
        /// Only rows at or after this Unix time.
        #[arg(long)]
        since: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain; exit 1 at the first altered or missing row.
    Verify,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum RequestCommand {
    /// Create the account a request asks for; prints its temporary password once.
    Approve {
        /// The request's number.
        id: i64,
        /// The username to give, e.g. cs0102.
        username: String,
        /// Last four SSN digits for the temporary password (random if omitted).
        #[arg(long, value_name = "NNNN")]
        ssn_last4: Option<String>,
    },
    /// Refuse a request; the reason is kept with it and in the audit log.
    Reject {
        /// The request's number.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            note(&format!("error: {e:#}"));
            ExitCode::from(3)
        }
    }
}

/// Writes `line` to standard error if it is still open (`eprintln!` panics
/// once its reader is gone: in the signal task, the server never stopped).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Store(cmd) = cli.command {
        store_cmd::run(cmd)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Bench(opts) = cli.command {
        let _ = logging::init(false, "info");
        if opts.sso {
            bench::sso::run(opts.concurrency, Duration::from_secs(opts.seconds))?;
            return Ok(ExitCode::SUCCESS);
        }
        bench::run(&opts)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Doctor = cli.command {
        return Ok(doctor::run(&data_folder(cli.data)?, cli.config.as_deref()));
    }
    if let Command::Keys(cmd) = cli.command {
        let config = Config::load(cli.config.as_deref(), None)?;
        // A rotation a crash interrupted is settled with a warning.
        let _ = logging::init(config.log.json, &config.log.level);
        keys_cmd::run(cmd, &data_folder(cli.data)?, &config)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Backup { file, sealing } | Command::Restore { file, sealing } = &cli.command {
        let config = Config::load(cli.config.as_deref(), None)?;
        let data = data_folder(cli.data.clone())?;
        match cli.command {
            Command::Backup { .. } => backup_cmd::backup(&data, &config, file, sealing)?,
            _ => backup_cmd::restore(&data, &config, file, sealing)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (listen, behind_proxy) = match &cli.command {
        Command::Serve {
            listen,
            behind_proxy,
        } => (*listen, *behind_proxy),
        _ => (None, false),
    };
    let mut config = Config::load(cli.config.as_deref(), listen)?;
    if behind_proxy {
        config.tls.mode = countersign_server::infra::config::TlsMode::Off;
    }
    let set_level = logging::init(config.log.json, &config.log.level);
    let dir = DataDir::open(&data_folder(cli.data)?)?;
    let config_path = cli.config.clone();
    // On SQLite a serving process holds the folder's lock for its whole
    // life, taken before anything is read: a key rotation never runs
    // beside it, nor a second server on the same database. (Instances on
    // PostgreSQL keep nothing in the folder that a rotation changes.)
    // SIGHUP, whose default action ends a process, is handled from here on.
    let serving = match cli.command {
        Command::Serve { .. } => {
            let lock = match config.store.is_postgres() {
                false => Some(dir.lock()?),
                true => None,
            };
            let workers = config.connections.worker_threads();
            let threads = if workers == 1 { "thread" } else { "threads" };
            tracing::info!("serving connections on {workers} worker {threads}");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()?;
            // Caught from here on, before the server announces itself.
            let (hangups, stops) = rt.block_on(async {
                let hangups =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
                std::io::Result::Ok((hangups, logging::StopSignals::catch()?))
            })?;
            Some((lock, rt, hangups, stops))
        }
        _ => None,
    };
    let mut server = match serving {
        Some(_) => Server::open_serving(config, &dir)?,
        None => Server::open(config, &dir)?,
    };
    let actor = "admin-cli";
    match cli.command {
        Command::Serve { .. } => {
            let (_lock, rt, hangups, stops) =
                serving.context("serve started without its runtime")?;
            let tls = tls::setup(&server.config, &dir)?;
            server.use_tls(&tls);
            rt.block_on(async {
                let listen = server.config.listen;
                let running = serve::start(Arc::new(server), tls.config, listen, &dir).await?;
                note(&format!(
                    "countersign-server: listening on {}; data in {}",
                    running.addr,
                    dir.root().display()
                ));
                tokio::spawn(logging::reload_on_hangup(hangups, config_path, set_level));
                let handle = running.handle();
                tokio::spawn(async move {
                    stops.wait().await;
                    note("countersign-server: stopping");
                    handle.graceful_shutdown(Some(Duration::from_secs(2)));
                });
                running.wait().await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User(cmd) => user(&mut server, &dir, cmd, actor),
        Command::Helpdesk(cmd) => helpdesk::run(&server, &dir, cmd),
        Command::Client(cmd) => clients::run(&server, cmd, actor),
        Command::Oidc(cmd) => clients::run_oidc(&server, &dir, cmd),
        Command::Bench(_)
        | Command::Doctor
        | Command::Keys(_)
        | Command::Store(_)
        | Command::Backup { .. }
        | Command::Restore { .. } => unreachable!("handled above"),
        Command::Push {
            username,
            app,
            ip,
            location,
            device,
            timeout,
        } => {
            let client = AdminClient::connect(&dir)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let req = PushRequest {
                    username,
                    device_id: device,
                    application: app,
                    ip,
                    location,
                    actor: actor.into(),
                };
                let created = client.push(&req).await?;
                println!("number: {}", created.number);
                println!("challenge: {}", created.challenge_id);
                std::io::stdout().flush()?;
                eprintln!(
                    "waiting for the answer on the device (challenge {})...",
                    created.challenge_id
                );
                let status = client
                    .wait(&created.challenge_id, Duration::from_secs(timeout))
                    .await?;
                println!("result: {}", status.as_str());
                Ok(match status {
                    ChallengeStatus::Approved => ExitCode::SUCCESS,
                    ChallengeStatus::Expired | ChallengeStatus::Pending => ExitCode::from(2),
                    _ => ExitCode::from(1),
                })
            })
        }
        Command::Audit {
            verify: Some(AuditCommand::Verify),
            ..
        } => {
            match server.store.verify_audit()? {
                Ok(n) => {
                    println!("audit log intact: {n} rows");
                    Ok(ExitCode::SUCCESS)
                }
                Err(seq) => {
                    println!("audit log broken at row {seq}: altered, inserted or following a removed row");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Audit {
            verify: None,
            user,
            since,
            format,
        } => {
            let filter = AuditFilter {
                user,
                since,
                ..AuditFilter::default()
            };
            audit_cmd::print(server.store.clone(), &filter, format)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The data folder: `--data`, or the user's data folder.
fn data_folder(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(d) => Ok(d),
        None => directories::ProjectDirs::from("", "", "countersign-server")
            .map(|p| p.data_dir().to_path_buf())
            .context("no home folder to keep data in; pass --data DIR"),
    }
}

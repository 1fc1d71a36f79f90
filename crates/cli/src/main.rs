//! `countersign`: the headless authenticator. A thin layer over
//! `countersign-device`: parse arguments, call the engine, print.

mod args;
mod secrets;

mod simulate;

mod watch;

use anyhow::Context;
use args::{Cli, Command};
use clap::Parser;
use countersign_core::protocol::{Decision, ReceiptEvent};
use countersign_core::text::printable;
use countersign_core::{Answer, Passcode};
use countersign_device::intake::Intake;
use countersign_device::vault::Vault;
use countersign_device::{now, push, scanner, Error};
use secrets::Source;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// Maps an error to the documented exit codes.
fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(
            Error::WrongPasscode { .. }
            | Error::Backoff(_)
            | Error::Wiped
            | Error::NoAccount(_)
            | Error::Ambiguous(_)
            | Error::Duplicate(_)
            | Error::NoChallenge(_)
            | Error::NotPush(_)
            | Error::Locked,
        ) => 1,
        Some(
            Error::Core(_)
            | Error::File { .. }
            | Error::Image { .. }
            | Error::WeakPasscode
            | Error::Backup(_),
        ) => 2,
        Some(Error::NoVault(_) | Error::VaultExists(_)) => 2,
        Some(_) => 3,
        None if e.downcast_ref::<countersign_core::Error>().is_some()
            || e.downcast_ref::<secrets::BadInput>().is_some() =>
        {
            2
        }
        None => 3,
    }
}

struct Ctx {
    home: PathBuf,
    passcode_file: Option<PathBuf>,
}

impl Ctx {
    fn passcode(&self) -> Source<'_> {
        Source {
            file: self.passcode_file.as_deref(),
            env: "COUNTERSIGN_PASSCODE",
            what: "passcode",
        }
    }

    /// Opens and unlocks the vault.
    fn unlock(&self) -> anyhow::Result<Vault> {
        let mut vault = Vault::open(&self.home)?;
        let passcode = self.passcode().read()?;
        vault.unlock(&passcode, now())?;
        Ok(vault)
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let home = match cli.global.home {
        Some(h) => h,
        None => countersign_device::default_home().context("no home folder: pass --home DIR")?,
    };
    let ctx = Ctx {
        home,
        passcode_file: cli.global.passcode_file,
    };
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match cli.command {
        Command::Init => {
            let passcode = ctx.passcode().read_new()?;
            let vault = Vault::create(
                &ctx.home,
                &passcode,
                countersign_core::vault::DEFAULT_ITERATIONS,
                now(),
            )?;
            eprintln!("created the vault at {}", vault.path().display());
        }
        Command::Scan { images, budget_ms } => {
            return Ok(scan(&images, Duration::from_millis(budget_ms)))
        }
        Command::Add {
            uri,
            qr,
            device_name,
        } => {
            let payloads = match (uri, qr) {
                (Some(u), _) => vec![u],
                (None, Some(image)) => {
                    let scan = scanner::scan_file(&image, scanner::DEFAULT_BUDGET)?;
                    if scan.payloads.is_empty() {
                        eprintln!("{}: no QR code found", image.display());
                        return Ok(ExitCode::from(1));
                    }
                    scan.payloads
                }
                (None, None) => unreachable!("clap requires one of them"),
            };
            // One passcode for the whole command: it unlocks the vault and
            // seals the device keys of the accounts it activates.
            let passcode = ctx.passcode().read()?;
            let mut vault = Vault::open(&ctx.home)?;
            vault.unlock(&passcode, now())?;
            for payload in payloads {
                add(&mut vault, &payload, &passcode, &device_name, &rt()?)?;
            }
        }
        Command::List { json } => {
            let vault = Vault::open(&ctx.home)?;
            let accounts = vault.accounts()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&accounts)?);
            } else if accounts.is_empty() {
                eprintln!("no accounts yet: add one with `countersign add`");
            } else {
                for a in accounts {
                    let push = if a.push.is_some() {
                        "  [sign-in approval]"
                    } else {
                        ""
                    };
                    println!("{:<24} {}{push}", a.id, printable(&a.label()));
                }
            }
        }
        Command::Code {
            account,
            watch,
            json,
        } => {
            let mut vault = ctx.unlock()?;
            let accounts = match &account {
                Some(q) => vec![vault.find(q)?],
                None => vault.accounts()?,
            };
            if watch {
                return watch::codes(&mut vault, &accounts);
            }
            let codes = accounts
                .iter()
                .map(|a| vault.code(a, now()))
                .collect::<Result<Vec<_>, _>>()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&codes)?);
            } else {
                for c in codes {
                    if account.is_some() {
                        println!("{}", c.code);
                    } else {
                        let who = printable(&c.account);
                        println!("{}  {:>2}s  {who}", c.code, c.seconds_left);
                    }
                }
            }
        }
        Command::Rename { account, name } => {
            let mut vault = Vault::open(&ctx.home)?;
            let a = vault.find(&account)?;
            vault.rename(&a.id, &name)?;
            eprintln!("renamed {} to {}", printable(&a.label()), printable(&name));
        }
        Command::Move { account, position } => {
            let mut vault = Vault::open(&ctx.home)?;
            let a = vault.find(&account)?;
            vault.move_to(&a.id, position)?;
        }
        Command::Remove { account } => {
            let mut vault = ctx.unlock()?;
            let a = vault.find(&account)?;
            if let Some(w) = rt()?.block_on(push::remove_account(&mut vault, &a))? {
                eprintln!("warning: the server was not told ({w}); ask the help desk to remove the device");
            }
            eprintln!("removed {}", printable(&a.label()));
        }
        Command::Export {
            file,
            passphrase_file,
        } => {
            let mut vault = ctx.unlock()?;
            let source = Source::passphrase(passphrase_file.as_deref());
            let n = vault.export(&file, &source.read_new()?)?;
            eprintln!("exported {n} account(s) to {}", file.display());
        }
        Command::Import {
            file,
            passphrase_file,
        } => {
            let mut vault = ctx.unlock()?;
            let source = Source::passphrase(passphrase_file.as_deref());
            let report = vault.import(&file, &source.read()?, now())?;
            for a in &report.added {
                eprintln!("added {}", printable(a));
            }
            for a in &report.duplicates {
                eprintln!("skipped {}: already here", printable(a));
            }
        }
        Command::History { json } => {
            let vault = Vault::open(&ctx.home)?;
            let history = vault.history()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&history)?);
            } else {
                for h in history {
                    println!(
                        "{} {} {} from {} {}: {} -> {}",
                        h.at,
                        printable(&h.account),
                        printable(&h.application),
                        printable(&h.ip),
                        printable(&h.location),
                        h.decision,
                        h.result
                    );
                }
            }
        }
        Command::Pending { wait, json } => {
            let mut vault = ctx.unlock()?;
            let rt = rt()?;
            let list = rt.block_on(push::pending(&mut vault, wait, now()))?;
            for p in &list {
                rt.block_on(push::acknowledge(
                    &mut vault,
                    p,
                    ReceiptEvent::Delivered,
                    now(),
                ));
                if let Some(w) = p.drift_warning() {
                    eprintln!("warning: {w}");
                }
            }
            if json {
                let rows: Vec<serde_json::Value> = list.iter().map(pending_json).collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if list.is_empty() {
                eprintln!("no sign-in requests waiting");
            } else {
                for p in &list {
                    let c = &p.envelope.challenge;
                    println!(
                        "{}  {}  {}  from {} {}  expires in {} s",
                        c.id,
                        printable(&p.account),
                        printable(&c.application),
                        printable(&c.ip),
                        printable(&c.location),
                        c.expires_at.saturating_sub(now())
                    );
                }
            }
        }
        Command::Answer {
            id,
            decision,
            number,
        } => {
            let mut vault = ctx.unlock()?;
            let answer = match (decision.approve, decision.deny, decision.report, number) {
                (true, _, _, Some(n)) => Answer::Approve(n),
                (true, _, _, None) => anyhow::bail!("--approve needs --number"),
                (_, true, _, _) => Answer::Deny,
                (_, _, true, _) => Answer::Report,
                _ => Answer::CannotSeeNumber,
            };
            let rt = rt()?;
            let request = rt.block_on(push::find_pending(&mut vault, &id, now()))?;
            let passcode = ctx.passcode().read()?;
            let verdict =
                rt.block_on(push::answer(&mut vault, &request, answer, &passcode, now()))?;
            println!("{}", verdict.status.as_str());
            let wanted = match answer.decision() {
                Decision::Approve => push::approved(&verdict),
                Decision::Deny => verdict.status == countersign_core::api::ChallengeStatus::Denied,
                Decision::Report => {
                    verdict.status == countersign_core::api::ChallengeStatus::Reported
                }
            };
            return Ok(if wanted {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        Command::Simulate {
            payloads,
            server,
            approve,
            deny,
            mismatch,
            report,
            delay_ms,
            seconds,
            numbers,
        } => {
            let opts = simulate::Options {
                payloads,
                server,
                mix: [approve, deny, mismatch, report],
                delay: Duration::from_millis(delay_ms),
                duration: seconds.map(Duration::from_secs),
                numbers,
            };
            return rt()?.block_on(simulate::run(opts));
        }
        Command::Watch => {
            let vault = ctx.unlock()?;
            return rt()?.block_on(watch::requests(vault, &ctx.passcode()));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn add(
    vault: &mut Vault,
    payload: &str,
    passcode: &Passcode,
    device_name: &str,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let intake = Intake::parse(payload)?;
    let passcode = match intake {
        Intake::Enroll(_) => {
            eprintln!("activating with the server...");
            Some(passcode)
        }
        Intake::Otp(_) => None,
    };
    let result = rt.block_on(intake.add(vault, passcode, device_name, "cli", now()))?;
    for label in result.skipped {
        eprintln!("skipped {}: already here", printable(&label));
    }
    let added = result.added;
    for a in added {
        let what = if a.push.is_some() {
            " (sign-in approval and codes)"
        } else {
            ""
        };
        eprintln!("added {}{what}", printable(&a.label()));
        println!("{}", a.id);
    }
    Ok(())
}

fn pending_json(p: &push::Pending) -> serde_json::Value {
    let c = &p.envelope.challenge;
    serde_json::json!({
        "id": c.id, "account": p.account, "app": c.application, "ip": c.ip, "location": c.location,
        "created_at": c.created_at, "expires_at": c.expires_at, "kind": c.kind, "clock_drift": p.drift,
    })
}

fn scan(images: &[PathBuf], budget: Duration) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    let mut nothing_found = false;
    for path in images {
        match scanner::scan_file(path, budget) {
            Ok(scan) if scan.payloads.is_empty() => {
                nothing_found = true;
                let why = if scan.out_of_time {
                    " (gave up after the time budget)"
                } else {
                    ""
                };
                eprintln!("{}: no QR code found{why}", path.display());
            }
            Ok(scan) => scan.payloads.iter().for_each(|p| println!("{p}")),
            Err(e) => {
                eprintln!("error: {e}");
                code = ExitCode::from(2);
            }
        }
    }
    let _ = std::io::stdout().flush();
    if code == ExitCode::SUCCESS && nothing_found {
        code = ExitCode::from(1);
    }
    code
}

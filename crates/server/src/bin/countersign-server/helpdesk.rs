//! `countersign-server helpdesk ...`: the console's operations for
//! scripts. They read the data folder directly; whether a device listens
//! right now is asked of the running server, when there is one.

use std::process::ExitCode;

use crate::admin::AdminClient;
use clap::Subcommand;
use countersign_core::methods::mask;
use countersign_core::text::printable;
use countersign_core::time::format_utc;
use countersign_server::domain::helpdesk::{Fix, Staff};
use countersign_server::infra::datadir::DataDir;
use countersign_server::store::Role;
use countersign_server::{now, Server};

/// Help-desk operations.
#[derive(Subcommand)]
pub enum HelpdeskCommand {
    /// Users whose username, name or email contains QUERY.
    Find {
        /// Part of a username, name or email.
        query: String,
    },
    /// A user's status, methods, devices (and whether each listens now)
    /// and recent challenges.
    Show {
        /// The user.
        username: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// A challenge's steps: created, delivered, shown, answered, result.
    Timeline {
        /// The challenge id (`push` prints it; it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        challenge: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Fix an account; the reason goes into the audit log.
    Fix {
        /// The user.
        username: String,
        /// unlock, reset-password, reset-methods, remove-device,
        /// clear-push-block or extend-skip-setup.
        action: String,
        /// Why (required; recorded with your name).
        #[arg(long)]
        reason: String,
        /// The device, for remove-device.
        #[arg(long, allow_hyphen_values = true)]
        device: Option<String>,
        /// Hours to add, for extend-skip-setup.
        #[arg(long)]
        hours: Option<u64>,
        /// Your name, as the audit log should show it (an account's name
        /// in any case stands for the account; resets count per name).
        #[arg(long, default_value = "admin-cli")]
        staff: String,
    },
    /// Push figures: challenges, delivery latency, expiry and mismatch rates.
    Health {
        /// The window, in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Streams open now, from the running server: in all, and per device of
/// `devices` (None if no server runs). One connection for all questions.
fn live_streams(dir: &DataDir, devices: &[&str]) -> Option<(usize, Vec<usize>)> {
    let client = AdminClient::connect(dir).ok()?;
    let rt = tokio::runtime::Runtime::new().ok()?;
    rt.block_on(async {
        let all = client.streams(None).await.ok()?.connected;
        let mut each = Vec::with_capacity(devices.len());
        for d in devices {
            each.push(client.streams(Some(d)).await.ok()?.device.unwrap_or(0));
        }
        Some((all, each))
    })
}

/// Runs one help-desk command.
pub fn run(server: &Server, dir: &DataDir, cmd: HelpdeskCommand) -> anyhow::Result<ExitCode> {
    let t = now();
    match cmd {
        HelpdeskCommand::Find { query } => {
            for u in server.find_users(&query)? {
                println!(
                    "{}\t{} {}\t{}",
                    u.username,
                    printable(&u.first_name),
                    printable(&u.last_name),
                    u.role.as_str()
                );
            }
        }
        HelpdeskCommand::Show { username, json } => {
            let user = server.user(&username)?;
            let m = server.store.methods_of(user.id)?;
            let devices = server.store.devices_of(user.id)?;
            let ids: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
            let live: Vec<Option<usize>> = match live_streams(dir, &ids) {
                Some((_, each)) => each.into_iter().map(Some).collect(),
                None => vec![None; devices.len()],
            };
            let challenges = server.store.challenges_of(user.id, 10)?;
            if json {
                let out = serde_json::json!({
                    "user": user,
                    "methods": {"app": m.app, "phone": m.phone.as_deref().map(mask), "questions": m.questions.len()},
                    "devices": devices.iter().zip(&live).map(|(d, l)| serde_json::json!({
                        "device": d, "streams": l,
                    })).collect::<Vec<_>>(),
                    "challenges": challenges.iter().map(|c| countersign_server::domain::helpdesk::timeline(c, t)).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{} ({} {}), role {}",
                user.username,
                printable(&user.first_name),
                printable(&user.last_name),
                user.role.as_str()
            );
            println!(
                "  locked until:   {}",
                if user.locked_until > t {
                    format_utc(user.locked_until)
                } else {
                    "-".into()
                }
            );
            println!("  must change:    {}", user.must_change);
            println!("  push blocked:   {}", user.push_blocked);
            println!(
                "  methods:        app {}, phone {}, questions {}",
                m.app,
                m.phone.as_deref().map_or("-".into(), mask),
                m.questions.len()
            );
            for (d, l) in devices.iter().zip(&live) {
                let connected = match l {
                    Some(0) => "not connected".to_string(),
                    Some(n) => format!("connected ({n} streams)"),
                    None => "unknown (no server running)".into(),
                };
                println!(
                    "  device {}: {} ({}, app {}), enrolled {}, last seen {}, {connected}",
                    d.id,
                    printable(&d.name),
                    printable(&d.platform),
                    printable(&d.app_version),
                    format_utc(d.created_at),
                    format_utc(d.last_seen_at)
                );
            }
            for c in &challenges {
                println!(
                    "  challenge {} {} {} {}",
                    c.challenge.id,
                    format_utc(c.challenge.created_at),
                    printable(&c.challenge.application),
                    c.status_at(t).as_str()
                );
            }
        }
        HelpdeskCommand::Timeline { challenge, json } => {
            let tl = server.timeline(&challenge, t)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tl)?);
            } else {
                println!(
                    "{} for {} ({}), number {}: {}",
                    tl.id,
                    tl.username,
                    printable(&tl.application),
                    tl.number,
                    tl.status
                );
                for s in &tl.steps {
                    let when = s.at_ms.map_or("-".to_string(), |ms| {
                        format!("{}.{:03}", format_utc(ms / 1000), ms % 1000)
                    });
                    println!("  {:<10} {:<28} {}", s.step, when, printable(&s.detail));
                }
            }
        }
        HelpdeskCommand::Fix {
            username,
            action,
            reason,
            device,
            hours,
            staff,
        } => {
            let fix = Fix::parse(&action, device.as_deref(), hours)?;
            let staff = staff.trim();
            if staff.is_empty() || countersign_core::text::first_unsafe(staff).is_some() {
                anyhow::bail!(
                    "--staff must be a name on one line, without control or text-direction characters"
                );
            }
            // A staff member's account by its own spelling, so that their
            // resets count together whatever case is typed.
            let staff = server
                .store
                .user_by_name(staff)?
                .map_or_else(|| staff.to_string(), |u| u.username);
            // Whoever holds the data folder administers the server.
            let fixed = server.apply_fix(
                &username,
                &fix,
                Staff {
                    name: &staff,
                    role: Role::Admin,
                },
                &reason,
                "",
                t,
            )?;
            if let Some(password) = fixed {
                crate::users::show_once(&format!("password reset for {username}"), &password);
            } else {
                eprintln!("{action}: done for {username}");
            }
        }
        HelpdeskCommand::Health { minutes, json } => {
            let mut h = server.push_health(minutes.clamp(1, 24 * 60), t)?;
            // Only the running server knows its streams.
            let live = live_streams(dir, &[]);
            h.connected = live.as_ref().map_or(0, |(all, _)| *all);
            if json {
                let mut out = serde_json::to_value(&h)?;
                out["latency_ms"] = serde_json::to_value(h.latency_ms())?;
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                match live {
                    Some(_) => println!("devices connected now: {}", h.connected),
                    None => println!("devices connected now: unknown (no server running)"),
                }
                println!("challenges ({minutes} min): {}", h.total);
                match h.latency_ms() {
                    Some([a, b, c]) => println!(
                        "delivery latency (device connected when asked): p50 {a} ms, p90 {b} ms, p99 {c} ms"
                    ),
                    None => println!("delivery latency (device connected when asked): no deliveries"),
                }
                println!("delivered once the device connected: {}", h.delivered_later);
                println!("expired: {:.1} %", h.expired_rate * 100.0);
                println!("wrong number: {:.1} %", h.mismatch_rate * 100.0);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

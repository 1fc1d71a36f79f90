//! `countersign-server user ...`: the accounts, from the command line.

//! `countersign-server`: run the sign-in server and administer it.

use crate::RequestCommand;
use anyhow::Context;
use clap::Subcommand;
use countersign_core::text::printable;
use countersign_server::domain::methods::Authority;
use countersign_server::http::serve;
use countersign_server::infra::datadir::DataDir;
use countersign_server::infra::tls;
use countersign_server::store::Role;
use countersign_server::{now, Server};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user; prints the temporary password once.
    Add {
        /// Username, e.g. cs0101.
        username: String,
        /// Given name.
        #[arg(long)]
        first: String,
        /// Family name.
        #[arg(long)]
        last: String,
        /// Last four SSN digits for the temporary password (random if omitted).
        #[arg(long, value_name = "NNNN")]
        ssn_last4: Option<String>,
    },
    /// List users.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show a user with their devices.
    Show {
        /// The user.
        username: String,
    },
    /// Clear a lockout.
    Unlock {
        /// The user.
        username: String,
    },
    /// Issue a new temporary password (printed once).
    ResetPassword {
        /// The user.
        username: String,
    },
    /// Remove every authenticator and clear a push block: the user registers again.
    ResetMethods {
        /// The user.
        username: String,
    },
    /// Disable an account (or enable it again).
    Disable {
        /// The user.
        username: String,
        /// Enable instead.
        #[arg(long)]
        enable: bool,
    },
    /// Set a role: officer, helpdesk or admin.
    Role {
        /// The user.
        username: String,
        /// officer, helpdesk or admin.
        role: String,
    },
    /// Print an enrollment payload for the authenticator app (and write its QR code).
    EnrollLink {
        /// The user.
        username: String,
        /// Also write the QR code as a PNG file.
        #[arg(long, value_name = "FILE")]
        png: Option<PathBuf>,
    },
    /// New User Registration requests: lists the pending ones, or decides one.
    Requests {
        /// Approve or reject one; without it, list.
        #[command(subcommand)]
        decide: Option<RequestCommand>,
        /// List decided requests too.
        #[arg(long)]
        all: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Check a TOTP code the user reads out (a used code is refused).
    CheckCode {
        /// The user.
        username: String,
        /// The code.
        code: String,
    },
}

pub(crate) fn user(
    server: &mut Server,
    dir: &DataDir,
    cmd: UserCommand,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let now = now();
    match cmd {
        UserCommand::Add {
            username,
            first,
            last,
            ssn_last4,
        } => {
            let (user, password) =
                server.add_user(&username, &first, &last, ssn_last4.as_deref(), actor, now)?;
            show_once(
                &format!(
                    "created {} ({} {})",
                    user.username, user.first_name, user.last_name
                ),
                &password,
            );
        }
        UserCommand::List { json } => {
            let users = server.store.list_users()?;
            if json {
                serde_json::to_writer_pretty(std::io::stdout().lock(), &users)?;
                println!();
            } else {
                for u in users {
                    println!(
                        "{:<20} {:<24} {:<9} {}",
                        u.username,
                        printable(&format!("{} {}", u.first_name, u.last_name)),
                        u.role.as_str(),
                        status(&u, now)
                    );
                }
            }
        }
        UserCommand::Show { username } => {
            let u = server.user(&username)?;
            println!(
                "username: {}\nname: {} {}\nrole: {}\nstatus: {}",
                u.username,
                printable(&u.first_name),
                printable(&u.last_name),
                u.role.as_str(),
                status(&u, now)
            );
            for d in server.store.devices_of(u.id)? {
                println!(
                    "device: {} {} ({}, app {}) enrolled {} last seen {}",
                    d.id,
                    printable(&d.name),
                    printable(&d.platform),
                    printable(&d.app_version),
                    d.created_at,
                    d.last_seen_at
                );
            }
        }
        UserCommand::Unlock { username } => {
            server.unlock(&username, actor, now)?;
            eprintln!("{username} unlocked");
        }
        UserCommand::ResetPassword { username } => {
            let password = server.reset_password(&username, actor, now)?;
            show_once(&format!("new password for {username}"), &password);
        }
        UserCommand::ResetMethods { username } => {
            let n = server.reset_methods(&username, actor, now)?;
            eprintln!("removed {n} authenticator(s) of {username}; they register again at the next sign-in");
        }
        UserCommand::Disable { username, enable } => {
            server.set_disabled(&username, !enable, actor, now)?;
            eprintln!("{username} {}", if enable { "enabled" } else { "disabled" });
        }
        UserCommand::Role { username, role } => {
            let r = Role::parse(&role).with_context(|| {
                format!("unknown role '{role}': use officer, helpdesk or admin")
            })?;
            server.set_role(&username, r, actor, now)?;
            eprintln!("{username} is now {}", r.as_str());
        }
        UserCommand::EnrollLink { username, png } => {
            // Use the running server's address and certificate when there is one.
            if let Some(rt) = serve::running_server(dir) {
                if server.config.public_url.is_empty() {
                    server.config.public_url = rt.url;
                }
            }
            let tls = tls::setup(&server.config, dir)?;
            server.use_tls(&tls);
            let (enrollment, _) = server.enrollment(&username, actor, Authority::Proven, now)?;
            let payload = enrollment.to_uri();
            println!("{payload}");
            if let Some(path) = png {
                write_qr(&payload, &path)?;
                eprintln!("QR code written to {}", path.display());
            }
        }
        UserCommand::Requests { decide, all, json } => match decide {
            Some(RequestCommand::Approve {
                id,
                username,
                ssn_last4,
            }) => {
                let (user, password) =
                    server.approve_registration(id, &username, ssn_last4.as_deref(), actor, now)?;
                show_once(
                    &format!(
                        "request #{id} approved: created {} ({} {})",
                        user.username, user.first_name, user.last_name
                    ),
                    &password,
                );
            }
            Some(RequestCommand::Reject { id, reason }) => {
                server.reject_registration(id, &reason, actor, now)?;
                eprintln!("request #{id} rejected");
            }
            None => {
                let requests = server.store.registrations(all)?;
                if json {
                    serde_json::to_writer_pretty(std::io::stdout().lock(), &requests)?;
                    println!();
                } else if requests.is_empty() {
                    eprintln!("no {}requests", if all { "" } else { "pending " });
                } else {
                    for r in requests {
                        println!(
                            "#{:<4} {:<9} {:<24} {:<32} {} — {}",
                            r.id,
                            r.status,
                            printable(&format!("{} {}", r.form.first_name, r.form.last_name)),
                            printable(&r.form.email),
                            printable(&r.form.agency),
                            printable(r.form.reason.lines().next().unwrap_or_default())
                        );
                    }
                }
            }
        },
        UserCommand::CheckCode { username, code } => {
            let ok = server.verify_totp(&username, &code, actor, "", now)?;
            println!("{}", if ok { "accepted" } else { "refused" });
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn status(u: &countersign_server::store::UserRow, now: u64) -> String {
    let mut s = Vec::new();
    if u.disabled {
        s.push("disabled".to_string());
    }
    if u.locked_until > now {
        s.push(format!("locked until {}", u.locked_until));
    }
    if u.must_change {
        s.push("must change password".into());
    }
    if u.push_blocked {
        s.push("push blocked".into());
    }
    if s.is_empty() {
        "active".into()
    } else {
        s.join(", ")
    }
}

pub(crate) fn write_qr(payload: &str, path: &Path) -> anyhow::Result<()> {
    let png = countersign_server::domain::activation::qr_png(payload, 6)?;
    std::fs::write(path, png).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Prints a temporary password on standard output, once, with what it is
/// for on standard error (so a script can take the password alone).
pub(crate) fn show_once(what: &str, password: &str) {
    eprintln!("{what}; temporary password (shown once, must be changed at the next sign-in):");
    println!("{password}");
}

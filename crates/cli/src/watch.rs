//! The two long-running views: codes with a countdown, and live sign-in
//! requests answered at the terminal like the phone app.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::time::Duration;

use countersign_core::protocol::ReceiptEvent;
use countersign_core::text::printable;
use countersign_core::{Answer, Number};
use countersign_device::accounts::Account;
use countersign_device::channel::{self, ChannelEvent};
use countersign_device::inbox::Inbox;
use countersign_device::now;
use countersign_device::push::{self, Pending};
use countersign_device::vault::Vault;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use crate::secrets::Source;

/// Redraws the codes every second until interrupted.
pub fn codes(vault: &mut Vault, accounts: &[Account]) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout();
    let mut first = true;
    loop {
        if !first {
            // Move the cursor back up over the previous frame.
            write!(out, "\x1b[{}A", accounts.len())?;
        }
        first = false;
        for a in accounts {
            let c = vault.code(a, now())?;
            writeln!(
                out,
                "\x1b[2K{}  {:>2}s  {}",
                c.code, c.seconds_left, c.account
            )?;
        }
        out.flush()?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Connects every push account and answers requests as they come.
pub async fn requests(mut vault: Vault, passcode: &Source<'_>) -> anyhow::Result<ExitCode> {
    let accounts: Vec<Account> = vault
        .accounts()?
        .into_iter()
        .filter(|a| a.push.is_some())
        .collect();
    if accounts.is_empty() {
        anyhow::bail!("no sign-in approval account: enroll one with `countersign add countersign://enroll?...`");
    }
    let (tx, mut rx) = mpsc::channel(64);
    let mut tasks = Vec::new();
    for a in &accounts {
        tasks.push(channel::start(&mut vault, a, tx.clone())?);
    }
    drop(tx);
    let mut inbox = Inbox::default();
    let stdin = std::io::stdin();
    eprintln!("waiting for sign-in requests (Ctrl-C to stop)...");
    while let Some(event) = rx.recv().await {
        match event {
            ChannelEvent::Connected { account_id } => {
                eprintln!("connected: {}", printable(&label(&accounts, &account_id)))
            }
            ChannelEvent::Disconnected {
                account_id,
                error,
                retry_in,
            } => {
                eprintln!(
                    "disconnected: {} ({error}); retrying in {:.1} s",
                    label(&accounts, &account_id),
                    retry_in.as_secs_f32()
                )
            }
            ChannelEvent::Envelope {
                account_id,
                envelope,
            } => {
                if inbox.has_seen(&envelope.challenge.id) {
                    continue;
                }
                let Some(request) = push::receive(&mut vault, &account_id, *envelope, now()).await
                else {
                    continue;
                };
                inbox.offer(request.clone());
                prompt(&mut vault, &request, passcode, &mut stdin.lock()).await?;
                inbox.remove(&request.envelope.challenge.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn label(accounts: &[Account], id: &str) -> String {
    accounts
        .iter()
        .find(|a| a.id == id)
        .map(Account::label)
        .unwrap_or_default()
}

async fn prompt(
    vault: &mut Vault,
    p: &Pending,
    passcode: &Source<'_>,
    input: &mut impl BufRead,
) -> anyhow::Result<()> {
    let c = &p.envelope.challenge;
    eprintln!();
    eprintln!("Are you trying to sign in?");
    // What the server sent is shown, never obeyed: no escape sequence in
    // a label may repaint this prompt.
    eprintln!("  account:     {}", printable(&p.account));
    eprintln!("  application: {}", printable(&c.application));
    eprintln!(
        "  from:        {} {}",
        printable(&c.ip),
        printable(&c.location)
    );
    eprintln!("  expires in:  {} s", c.expires_at.saturating_sub(now()));
    if let Some(w) = p.drift_warning() {
        eprintln!("  warning: {w}");
    }
    push::acknowledge(vault, p, ReceiptEvent::Shown, now()).await;
    eprint!(
        "Enter the number shown to sign in (n = No, it's not me; s = I can't see the number): "
    );
    let mut line = Zeroizing::new(String::new());
    if input.read_line(&mut line)? == 0 {
        anyhow::bail!("input closed");
    }
    let answer = line.trim();
    let answer = match answer {
        "n" | "N" => {
            eprint!("Report it as fraud? This blocks further requests until the help desk resets them. [y/N]: ");
            let mut r = String::new();
            input.read_line(&mut r)?;
            if r.trim().eq_ignore_ascii_case("y") {
                Answer::Report
            } else {
                Answer::Deny
            }
        }
        "s" | "S" => Answer::CannotSeeNumber,
        n => match Number::parse(n) {
            Ok(n) => Answer::Approve(n),
            Err(_) => {
                eprintln!("'{n}' is not a two-digit number; the request stays open (answer it with `countersign answer {}`)", c.id);
                return Ok(());
            }
        },
    };
    let code = passcode.read()?;
    match push::answer(vault, p, answer, &code, now()).await {
        Ok(v) => eprintln!("result: {}", v.status.as_str()),
        Err(e) => eprintln!("error: {e}"),
    }
    Ok(())
}

//! The command line: subcommands, options and what `--help` says.

use clap::{Args, Parser, Subcommand};
use countersign_core::Number;
use std::path::PathBuf;

pub(crate) const EXIT_CODES: &str = "\
Exit codes:
  0  success (answer: the server approved)
  1  refused or nothing found: no QR code in an image, wrong passcode,
     no such account or request, or the server's verdict was not approved
  2  bad usage or bad input: missing or unreadable file, malformed URI
  3  the server could not be reached, or another failure

The passcode is read from --passcode-file, COUNTERSIGN_PASSCODE, or the
terminal (no echo); backup passphrases from --passphrase-file,
COUNTERSIGN_PASSPHRASE, or the terminal. Each command that needs a secret
unlocks the vault for itself and locks it when it ends; answering a request
needs the passcode again, since it unseals the device key.";

/// Countersign authenticator: approve sign-ins and show one-time codes.
#[derive(Parser)]
#[command(name = "countersign", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args)]
pub(crate) struct Global {
    /// Folder of the vault (default: the platform's data folder).
    #[arg(long, global = true, env = "COUNTERSIGN_HOME", value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Read the passcode from this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) passcode_file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create the vault, protected by a passcode (at least 6 characters).
    Init,
    /// Add accounts: an otpauth:// URI, an otpauth-migration:// export, a
    /// countersign://enroll payload (activates with the server), or the QR
    /// codes in an image.
    Add {
        /// The URI or payload.
        #[arg(required_unless_present = "qr", conflicts_with = "qr")]
        uri: Option<String>,
        /// Read the payload from a QR code image instead.
        #[arg(long, value_name = "IMAGE")]
        qr: Option<PathBuf>,
        /// Device name given to the server when enrolling.
        #[arg(long, default_value = "countersign CLI")]
        device_name: String,
    },
    /// List accounts.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show current codes (one account, or all).
    Code {
        /// Account id or part of its name.
        account: Option<String>,
        /// Keep redrawing with the countdown.
        #[arg(long)]
        watch: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Rename an account.
    Rename {
        /// Account id or part of its name.
        account: String,
        /// The new name.
        name: String,
    },
    /// Move an account to a place in the list (0 = top).
    Move {
        /// Account id or part of its name.
        account: String,
        /// New position.
        position: usize,
    },
    /// Remove an account (a push account is also removed from its server).
    Remove {
        /// Account id or part of its name.
        account: String,
    },
    /// Export every account to an encrypted backup file.
    Export {
        /// The file to write.
        file: PathBuf,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Import an encrypted backup file.
    Import {
        /// The backup file.
        file: PathBuf,
        /// Read the passphrase from this file.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Sign-in requests seen and what was done with them, newest first.
    History {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Decode the QR codes in image files (PNG or JPEG) and print each
    /// payload on its own line.
    Scan {
        /// Image files: screenshots, camera photos, exported QR codes.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
        /// Give up on an image after this many milliseconds.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        budget_ms: u64,
    },
    /// List sign-in requests waiting for an answer.
    Pending {
        /// Wait up to this many seconds for one to arrive.
        #[arg(long, default_value_t = 0, value_name = "S")]
        wait: u64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Answer a sign-in request.
    Answer {
        /// The request id (from `pending`). Ids are base64url and may
        /// start with '-'.
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        decision: DecisionArgs,
        /// The number shown on the sign-in screen (to approve).
        #[arg(long, value_name = "NN", required_if_eq("approve", "true"), value_parser = parse_number)]
        number: Option<Number>,
    },
    /// Stay connected and answer each request as it arrives, like the app.
    Watch,
    /// Enroll many test devices (one per enrollment payload in a file) that
    /// answer requests by themselves, printing what each saw.
    Simulate {
        /// File of enrollment payloads, one per line.
        #[arg(long, value_name = "FILE")]
        payloads: PathBuf,
        /// Reach the server at this URL instead of the payloads' one.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Weight of approvals (need --numbers).
        #[arg(long, default_value_t = 1)]
        approve: u32,
        /// Weight of denials.
        #[arg(long, default_value_t = 0)]
        deny: u32,
        /// Weight of approvals with a wrong number.
        #[arg(long, default_value_t = 0)]
        mismatch: u32,
        /// Weight of fraud reports.
        #[arg(long, default_value_t = 0)]
        report: u32,
        /// Milliseconds to wait before answering.
        #[arg(long, default_value_t = 0, value_name = "MS")]
        delay_ms: u64,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long, value_name = "S")]
        seconds: Option<u64>,
        /// Output of `countersign-server push` to read numbers from.
        #[arg(long, value_name = "FILE")]
        numbers: Option<PathBuf>,
    },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct DecisionArgs {
    /// Yes, it's me (needs --number).
    #[arg(long)]
    pub(crate) approve: bool,
    /// No, it's not me.
    #[arg(long)]
    pub(crate) deny: bool,
    /// Deny and report as fraud: blocks further requests.
    #[arg(long)]
    pub(crate) report: bool,
    /// Deny because the number is not visible.
    #[arg(long)]
    pub(crate) cannot_see_number: bool,
}

/// Reads `--number` (two digits, 10–99).
pub(crate) fn parse_number(typed: &str) -> Result<Number, String> {
    Number::parse(typed).map_err(|e| e.to_string())
}

//! `countersign`: the headless authenticator.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the request was refused or nothing was found (e.g. no QR code in an image)
  2  bad usage, or a file that is missing or unreadable";

/// Countersign authenticator: approve sign-ins and show one-time codes.
#[derive(Parser)]
#[command(name = "countersign", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Scan { images, budget_ms } => scan(&images, Duration::from_millis(budget_ms)),
    }
}

fn scan(images: &[PathBuf], budget: Duration) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    let mut nothing_found = false;
    for path in images {
        match countersign_device::scanner::scan_file(path, budget) {
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
    if code == ExitCode::SUCCESS && nothing_found {
        code = ExitCode::from(1);
    }
    code
}

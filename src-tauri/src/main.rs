//! The Countersign app. The Tauri window is being built; until then the
//! `countersign` CLI is the authenticator.

fn main() {
    eprintln!(
        "countersign-app {}: the desktop app is not built yet; use the `countersign` CLI.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}

//! `countersign-server`: the sign-in server (being built; see docs/ARCHITECTURE.md).

fn main() {
    eprintln!(
        "countersign-server {}: the sign-in server is not built yet.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}

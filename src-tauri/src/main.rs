//! The Countersign app's desktop entry point.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    countersign_app::run();
}

//! The Countersign app: a Tauri window over `countersign-device`. Commands
//! only convert data ([`commands`], [`adding`]); the request listener ([`listener`])
//! feeds verified sign-in requests to the window, raises it and notifies.

pub mod adding;
pub mod commands;
pub mod listener;
pub mod prompt;
pub mod rendering;
pub mod settings;
pub mod state;

// The tray and the window that hides instead of closing are the desktop's;
// a phone build leaves them out (docs/OPERATIONS.md, "Release steps").
#[cfg(desktop)]
use tauri::menu::{Menu, MenuItem};
#[cfg(desktop)]
use tauri::tray::TrayIconBuilder;
#[cfg(desktop)]
use tauri::{Manager, WindowEvent};

pub use state::AppState;

/// Registers every command with a builder (the app and the tests share it).
pub fn with_commands<R: tauri::Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::status,
        commands::create_vault,
        commands::unlock,
        commands::lock,
        commands::activity,
        commands::accounts,
        commands::next_hotp,
        adding::preview,
        adding::passcode_strength,
        adding::add,
        adding::scan_image,
        adding::scan_screen,
        commands::rename,
        commands::move_account,
        commands::remove,
        commands::requests,
        commands::request_shown,
        commands::answer,
        prompt::check_number,
        commands::history,
        commands::change_passcode,
        settings::auto_lock,
        settings::set_auto_lock,
        commands::export_backup,
        commands::import_backup,
    ])
}

/// Runs the app. The home folder is `COUNTERSIGN_HOME` or the platform's
/// data folder, shared with the `countersign` CLI.
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("COUNTERSIGN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    #[cfg(target_os = "linux")]
    rendering::configure();
    let home = std::env::var_os("COUNTERSIGN_HOME")
        .map(std::path::PathBuf::from)
        .or_else(countersign_device::default_home)
        .unwrap_or_else(|| std::path::PathBuf::from(".countersign"));
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .manage(AppState::new(home))
        .setup(|app| {
            #[cfg(desktop)]
            tray(app)?;
            state::watch_idle(app.handle().clone());
            Ok(())
        });
    #[cfg(desktop)]
    let builder = builder.on_window_event(|window, event| {
        // Closing the window keeps the app in the tray, so requests
        // still arrive; hiding it locks when the setting says so.
        if let WindowEvent::CloseRequested { api, .. } = event {
            api.prevent_close();
            let _ = window.hide();
            let app = window.app_handle().clone();
            tauri::async_runtime::spawn(async move {
                if app.state::<AppState>().hidden().await {
                    let _ = tauri::Emitter::emit(&app, "locked", ());
                }
            });
        }
    });
    if let Err(e) = with_commands(builder).run(tauri::generate_context!()) {
        eprintln!("countersign-app: {e}");
        std::process::exit(1);
    }
}

#[cfg(desktop)]
fn tray(app: &tauri::App) -> tauri::Result<()> {
    let show = MenuItem::with_id(app, "show", "Open Countersign", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&show, &quit])?;
    let mut tray = TrayIconBuilder::new()
        .tooltip("Countersign")
        .menu(&menu)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => listener::raise(app),
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        tray = tray.icon(icon.clone());
    }
    tray.build(app)?;
    Ok(())
}

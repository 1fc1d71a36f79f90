//! How the window draws on a Linux machine without a GPU.
//!
//! WebKitGTK's window process opens an OpenGL display at start-up, first
//! through GDK (GLX) and then to look for a GPU render node (EGL). Without a
//! GPU both land in Mesa's software rasteriser, which maps `libLLVM` and its
//! heaps: about 55 MB of the window process for a 360-px page that gains
//! nothing from software GL. On such a machine the app asks WebKit to hand
//! finished frames over in shared memory and to skip the GL display: the
//! page itself is still drawn by the web process as before.
//!
//! A machine with a render node (`/dev/dri/renderD*`, any GPU) keeps
//! WebKit's defaults. So does one where any of these variables is already
//! set: whoever set it is choosing how WebKit draws.

use std::path::Path;

/// The settings applied when there is no render node, in WebKit's and GDK's
/// own words.
pub const SOFTWARE_ONLY: [(&str, &str); 3] = [
    // GDK: no GLX context in the window process.
    ("GDK_GL", "disable"),
    // WebKit: frames come over in shared memory, not as GPU buffers.
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    // WebKit otherwise opens an EGL display only to ask it for the render
    // node; naming the node (there is none: the path does not exist) skips
    // that query.
    ("WEBKIT_WEB_RENDER_DEVICE_FILE", "/dev/dri/no-render-node"),
];

/// Whether `dri` (normally `/dev/dri`) holds a GPU render node.
pub fn has_render_node(dri: &Path) -> bool {
    std::fs::read_dir(dri).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("renderD"))
    })
}

/// The variables to set: [`SOFTWARE_ONLY`], or nothing when there is a
/// render node or any of them is set already.
pub fn settings(
    render_node: bool,
    is_set: impl Fn(&str) -> bool,
) -> &'static [(&'static str, &'static str)] {
    if render_node || SOFTWARE_ONLY.iter().any(|(name, _)| is_set(name)) {
        return &[];
    }
    &SOFTWARE_ONLY
}

/// Applies [`settings`] to this process. Call it first thing in `main`,
/// before any thread starts: WebKit and GDK read these when they start and
/// pass them on to WebKit's child processes.
pub fn configure() {
    let chosen = settings(has_render_node(Path::new("/dev/dri")), |name| {
        std::env::var_os(name).is_some()
    });
    if chosen.is_empty() {
        return;
    }
    for (name, value) in chosen {
        std::env::set_var(name, value);
    }
    tracing::info!(
        "no GPU render node: the window skips OpenGL and takes frames in shared memory ({})",
        chosen
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_render_node_keeps_webkit_defaults() {
        assert!(settings(true, |_| false).is_empty());
    }

    #[test]
    fn without_one_every_setting_applies() {
        assert_eq!(settings(false, |_| false), SOFTWARE_ONLY);
    }

    #[test]
    fn any_variable_already_set_leaves_the_choice_to_whoever_set_it() {
        for (set, _) in SOFTWARE_ONLY {
            assert!(settings(false, |name| name == set).is_empty(), "{set}");
        }
    }

    #[test]
    fn render_nodes_are_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!has_render_node(dir.path()));
        assert!(!has_render_node(&dir.path().join("missing")));
        std::fs::write(dir.path().join("card0"), b"").unwrap();
        assert!(!has_render_node(dir.path()));
        std::fs::write(dir.path().join("renderD128"), b"").unwrap();
        assert!(has_render_node(dir.path()));
    }
}

//! A window on the test display that shows a QR code, as a browser showing
//! a sign-in page's enrollment code would.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt, CreateGCAux, CreateWindowAux, Rectangle, WindowClass,
};
use x11rb::rust_connection::RustConnection;

/// Pixels per QR module.
const MODULE: u16 = 6;
/// Light modules around the code, as the standard asks.
const QUIET: u16 = 4;

/// The window lives as long as this connection.
pub struct QrWindow {
    _conn: RustConnection,
}

impl QrWindow {
    /// Shows `payload` as a QR code at (`x`, `y`) on `display`. The code is
    /// the window's background, so the X server repaints it by itself when
    /// other windows move away.
    pub fn show(display: &str, payload: &str, x: i16, y: i16) -> Self {
        let code = qrcode::QrCode::new(payload.as_bytes()).unwrap();
        let modules = u16::try_from(code.width()).unwrap();
        let side = (modules + 2 * QUIET) * MODULE;
        let (conn, screen_num) = x11rb::connect(Some(display)).unwrap();
        let screen = conn.setup().roots[screen_num].clone();

        let pixmap = conn.generate_id().unwrap();
        conn.create_pixmap(screen.root_depth, pixmap, screen.root, side, side)
            .unwrap();
        let gc = conn.generate_id().unwrap();
        conn.create_gc(
            gc,
            pixmap,
            &CreateGCAux::new().foreground(screen.white_pixel),
        )
        .unwrap();
        let all = Rectangle {
            x: 0,
            y: 0,
            width: side,
            height: side,
        };
        conn.poly_fill_rectangle(pixmap, gc, &[all]).unwrap();
        let dark: Vec<Rectangle> = code
            .to_colors()
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == qrcode::Color::Dark)
            .map(|(i, _)| {
                let (col, row) = (i as u16 % modules, i as u16 / modules);
                Rectangle {
                    x: ((QUIET + col) * MODULE) as i16,
                    y: ((QUIET + row) * MODULE) as i16,
                    width: MODULE,
                    height: MODULE,
                }
            })
            .collect();
        conn.change_gc(gc, &ChangeGCAux::new().foreground(screen.black_pixel))
            .unwrap();
        conn.poly_fill_rectangle(pixmap, gc, &dark).unwrap();

        let window = conn.generate_id().unwrap();
        conn.create_window(
            screen.root_depth,
            window,
            screen.root,
            x,
            y,
            side,
            side,
            0,
            WindowClass::INPUT_OUTPUT,
            screen.root_visual,
            &CreateWindowAux::new().background_pixmap(pixmap),
        )
        .unwrap();
        conn.map_window(window).unwrap();
        // A round trip: the window is on the screen when this returns.
        conn.get_input_focus().unwrap().reply().unwrap();
        QrWindow { _conn: conn }
    }
}

/// What the X server shows on `display`, as RGB pixels, in the rectangle
/// at (`x`, `y`) of `width` × `height` (clipped to the screen).
pub fn screen_image(display: &str, x: i16, y: i16, width: u16, height: u16) -> image::RgbImage {
    use x11rb::protocol::xproto::ImageFormat;
    let (conn, screen_num) = x11rb::connect(Some(display)).unwrap();
    let screen = &conn.setup().roots[screen_num];
    assert_eq!(screen.root_depth, 24, "a 24-bit screen");
    let (x, y) = (x.max(0), y.max(0));
    let width = width.min(screen.width_in_pixels - x as u16);
    let height = height.min(screen.height_in_pixels - y as u16);
    let reply = conn
        .get_image(ImageFormat::Z_PIXMAP, screen.root, x, y, width, height, !0)
        .unwrap()
        .reply()
        .unwrap();
    // 24-bit ZPixmap: four bytes a pixel, blue green red unused.
    let rgb = reply
        .data
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    image::RgbImage::from_raw(u32::from(width), u32::from(height), rgb).unwrap()
}

/// How many pixels of the whole screen of `display` have the colour `rgb`:
/// what the X server shows, not what WebKit says it drew.
pub fn pixels_on_screen(display: &str, rgb: [u8; 3]) -> usize {
    screen_image(display, 0, 0, u16::MAX, u16::MAX)
        .pixels()
        .filter(|p| p.0 == rgb)
        .count()
}

//! Reads QR codes off the screen. On a laptop the sign-in page that shows
//! the enrollment code is on the same screen as the authenticator, so a
//! capture of the whole screen is the quickest way to add the account.
//!
//! Linux desktops on X11 (and X11 apps under XWayland, which may see only
//! their own windows) are captured through the X server; elsewhere the
//! capture answers [`Error::ScreenUnavailable`] and the user picks an image
//! file or the camera instead.

use std::time::Duration;

use countersign_core::qr::Scan;
use image::GrayImage;
use zeroize::Zeroize;

use crate::{scanner, Error};

/// Captures the screen and scans it for QR codes within `budget`. The
/// capture lives only in memory and is wiped once scanned (see
/// [`scanner::scan_frame`]): it may show anything that was on the screen.
pub fn scan_screen(budget: Duration) -> Result<Scan, Error> {
    let frame = capture()?;
    scanner::scan_frame(frame, budget)
}

/// One screen capture as a grey frame.
#[cfg(target_os = "linux")]
pub fn capture() -> Result<GrayImage, Error> {
    x11::capture()
}

/// One screen capture as a grey frame.
#[cfg(not(target_os = "linux"))]
pub fn capture() -> Result<GrayImage, Error> {
    Err(Error::ScreenUnavailable(
        "screen capture is not supported on this system".into(),
    ))
}

/// How the X server lays out the pixels of a captured image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelFormat {
    /// Bits per pixel: 8, 16, 24 or 32.
    pub bits_per_pixel: u8,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Whether multi-byte pixels are stored most significant byte first.
    pub big_endian: bool,
    /// Where red, green and blue sit in a pixel value.
    pub masks: [u32; 3],
}

/// Converts raw pixels of `width` × `height` in `format` to grey (ITU-R
/// BT.601 luma, as the image crate does for files).
pub fn to_grey(
    data: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<GrayImage, Error> {
    let bytes = match format.bits_per_pixel {
        8 | 16 | 24 | 32 => usize::from(format.bits_per_pixel / 8),
        other => {
            return Err(Error::ScreenUnavailable(format!(
                "the screen uses {other} bits per pixel, which is not supported"
            )))
        }
    };
    let (w, h) = (width as usize, height as usize);
    if format.stride < w * bytes || data.len() < format.stride * h.saturating_sub(1) + w * bytes {
        return Err(Error::ScreenUnavailable(
            "the screen capture came back short".into(),
        ));
    }
    let channels = format.masks.map(Channel::new);
    let mut grey = Vec::with_capacity(w * h);
    for row in data.chunks(format.stride).take(h) {
        for px in row[..w * bytes].chunks_exact(bytes) {
            let value = px.iter().enumerate().fold(0u32, |v, (i, b)| {
                let shift = if format.big_endian {
                    8 * (bytes - 1 - i)
                } else {
                    8 * i
                };
                v | u32::from(*b) << shift
            });
            let [r, g, b] = channels.map(|c| c.level(value));
            grey.push(((299 * r + 587 * g + 114 * b + 500) / 1000) as u8);
        }
    }
    GrayImage::from_raw(width, height, grey)
        .ok_or_else(|| Error::ScreenUnavailable("the screen capture came back short".into()))
}

/// One colour channel of a pixel value: its mask and width.
#[derive(Clone, Copy)]
struct Channel {
    mask: u32,
    shift: u32,
    max: u32,
}

impl Channel {
    fn new(mask: u32) -> Self {
        let shift = mask.trailing_zeros().min(31);
        Channel {
            mask,
            shift,
            max: (mask >> shift).max(1),
        }
    }

    /// The channel's level scaled to 0..=255.
    fn level(self, pixel: u32) -> u32 {
        ((pixel & self.mask) >> self.shift) * 255 / self.max
    }
}

impl Error {
    fn x11(what: &str, e: impl std::fmt::Display) -> Self {
        Error::ScreenUnavailable(format!("{what}: {e}"))
    }
}

#[cfg(target_os = "linux")]
mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{ConnectionExt, ImageFormat, ImageOrder};

    use super::*;

    /// Captures the X root window (every monitor) through `$DISPLAY`.
    pub(super) fn capture() -> Result<GrayImage, Error> {
        if std::env::var_os("DISPLAY").is_none() {
            return Err(Error::ScreenUnavailable(
                "no X11 display to capture (DISPLAY is not set)".into(),
            ));
        }
        let (conn, screen_num) =
            x11rb::connect(None).map_err(|e| Error::x11("cannot open the display", e))?;
        let setup = conn.setup();
        let screen = setup
            .roots
            .get(screen_num)
            .ok_or_else(|| Error::ScreenUnavailable("the display has no screen".into()))?;
        let (width, height) = (screen.width_in_pixels, screen.height_in_pixels);
        let mut reply = conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                screen.root,
                0,
                0,
                width,
                height,
                u32::MAX,
            )
            .map_err(|e| Error::x11("cannot capture the screen", e))?
            .reply()
            .map_err(|e| Error::x11("the display refused the capture", e))?;
        let pixmap = setup
            .pixmap_formats
            .iter()
            .find(|f| f.depth == reply.depth)
            .ok_or_else(|| Error::ScreenUnavailable("unknown screen pixel format".into()))?;
        let visual = screen
            .allowed_depths
            .iter()
            .flat_map(|d| &d.visuals)
            .find(|v| v.visual_id == reply.visual)
            .ok_or_else(|| Error::ScreenUnavailable("unknown screen colour layout".into()))?;
        let pad = usize::from(pixmap.scanline_pad.max(8)) / 8;
        let row = usize::from(width) * usize::from(pixmap.bits_per_pixel) / 8;
        let format = PixelFormat {
            bits_per_pixel: pixmap.bits_per_pixel,
            stride: row.div_ceil(pad) * pad,
            big_endian: setup.image_byte_order == ImageOrder::MSB_FIRST,
            masks: [visual.red_mask, visual.green_mask, visual.blue_mask],
        };
        let grey = to_grey(&reply.data, width.into(), height.into(), format);
        reply.data.zeroize();
        grey
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BGRX: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        stride: 8,
        big_endian: false,
        masks: [0xff_0000, 0x00_ff00, 0x00_00ff],
    };

    #[test]
    fn converts_bgrx_pixels_to_luma() {
        // Two rows of two pixels: white, red / blue, black.
        let data = [
            255, 255, 255, 0, 0, 0, 255, 0, //
            255, 0, 0, 0, 0, 0, 0, 0,
        ];
        let grey = to_grey(&data, 2, 2, BGRX).unwrap();
        assert_eq!(grey.into_raw(), [255, 76, 29, 0]);
    }

    #[test]
    fn converts_565_pixels_big_endian() {
        let format = PixelFormat {
            bits_per_pixel: 16,
            stride: 4,
            big_endian: true,
            masks: [0xf800, 0x07e0, 0x001f],
        };
        // Pure green (0x07e0) then white (0xffff), padded row.
        let grey = to_grey(&[0x07, 0xe0, 0xff, 0xff], 2, 1, format).unwrap();
        assert_eq!(grey.into_raw(), [150, 255]);
    }

    #[test]
    fn a_short_capture_is_an_error_not_a_panic() {
        let err = to_grey(&[0; 12], 2, 2, BGRX).unwrap_err();
        assert_eq!(err.code(), "screen");
        assert!(err.to_string().contains("short"), "{err}");
        let odd = PixelFormat {
            bits_per_pixel: 4,
            ..BGRX
        };
        assert!(to_grey(&[0; 64], 2, 2, odd)
            .unwrap_err()
            .to_string()
            .contains("4 bits"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn without_a_display_the_capture_says_so() {
        // Tests run in parallel threads; only this one reads DISPLAY here,
        // and it runs the capture in a child process to keep its env apart.
        if std::env::var_os("COUNTERSIGN_SCREEN_CHILD").is_some() {
            let err = capture().unwrap_err();
            println!("CHILD:{}:{err}", err.code());
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "screen::tests::without_a_display_the_capture_says_so",
                "--exact",
                "--nocapture",
            ])
            .env_remove("DISPLAY")
            .env("COUNTERSIGN_SCREEN_CHILD", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("CHILD:screen:no X11 display"), "{stdout}");
    }
}

//! Writes the browser-rendered QR corpus (`tests/fixtures/qr-browser/`):
//! pages with zero, one or two QR codes, drawn by headless Debian chromium
//! at several window sizes, zoom levels (75–150 %), device scale factors
//! (1, 1.5, 2), light and dark themes, with modals and overlays, saved as
//! PNG or as JPEG at quality 50 — the screenshots a person takes of a
//! sign-in page. `manifest.tsv` lists what each picture holds.
//!
//! Run it with `scripts/qr-browser-corpus.sh`; the same inputs give the
//! same pages (the payloads are fixed), so anyone can regenerate it.

// A generator, not a library: a failed step should stop it right there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use countersign_testkit::Session;

/// An enrolment link, as the registration page shows it (version 11).
const ENROL: &str = "countersign://enroll?v=1&server=https%3A%2F%2Fmfa.alacop.gov%3A8443&code=qll32w5qoevwzlvkfh6pocc6twyhtwaafcths7asbzivc6dg&pin=711cd28400c9b8c75053118d58810f10bae79c99cefac1db6c7240a7fdd74fe2&issuer=ALEA&account=cs0101%40alacop.gov";
/// A TOTP account (version 7).
const TOTP: &str = "otpauth://totp/ALEA:jd2468@alacop.gov?secret=HZHV7CIOLKROPPDLBG3R2IM74TIJ6T3K&issuer=ALEA&algorithm=SHA1&digits=6&period=30";
/// An app-store link beside the enrolment code (version 3).
const STORE: &str = "https://apps.alacop.gov/countersign";

/// What a page shows.
#[derive(Clone, Copy)]
enum Page {
    /// The registration page: text and one code `px` CSS pixels wide.
    Enrol {
        payload: &'static str,
        px: u32,
        pixelated: bool,
    },
    /// A small code in a column beside text.
    Small { px: u32 },
    /// Two codes: the app-store link and the enrolment code.
    Two { px: u32 },
    /// The code in a modal over a dimmed page.
    Modal { px: u32 },
    /// A translucent overlay (a cookie banner) across the code.
    Overlay { px: u32 },
    /// No code: text, a table, buttons and icons drawn with squares.
    Plain,
    /// No code: a grid of nested squares and stripes, like finder patterns.
    Patterns,
}

impl Page {
    fn payloads(self) -> Vec<&'static str> {
        match self {
            Page::Enrol { payload, .. } => vec![payload],
            Page::Small { .. } | Page::Modal { .. } | Page::Overlay { .. } => vec![ENROL],
            Page::Two { .. } => vec![STORE, ENROL],
            Page::Plain | Page::Patterns => vec![],
        }
    }
}

/// One picture of the corpus.
struct Case {
    name: &'static str,
    window: (u32, u32),
    scale: f32,
    zoom: f32,
    dark: bool,
    jpeg: bool,
    page: Page,
}

// One case a line: the table reads better than it formats.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    use Page::*;
    let c = |name, window, scale, zoom, dark, jpeg, page| Case { name, window, scale, zoom, dark, jpeg, page };
    let (laptop, full, wide) = ((1366, 768), (1920, 1080), (1280, 800));
    let enrol = |px, pixelated| Enrol { payload: ENROL, px, pixelated };
    let totp = |px, pixelated| Enrol { payload: TOTP, px, pixelated };
    vec![
        c("enrol_1920_s1", full, 1.0, 1.0, false, false, enrol(220, true)),
        c("enrol_1920_s1_smooth", full, 1.0, 1.0, false, false, enrol(180, false)),
        c("enrol_1366_s1", laptop, 1.0, 1.0, false, false, enrol(140, false)),
        c("enrol_1366_s1_z75", laptop, 1.0, 0.75, false, false, enrol(160, false)),
        c("enrol_1366_s1_z90_jpeg", laptop, 1.0, 0.9, false, true, enrol(150, false)),
        c("enrol_1920_s1_z125", full, 1.0, 1.25, false, false, enrol(140, false)),
        c("enrol_1920_s1_z150_jpeg", full, 1.0, 1.5, false, true, enrol(120, false)),
        c("enrol_1280_s2", wide, 2.0, 1.0, false, false, enrol(100, false)),
        c("enrol_1280_s2_jpeg", wide, 2.0, 1.0, false, true, enrol(100, false)),
        c("enrol_1280_s1p5", wide, 1.5, 1.0, false, false, enrol(110, false)),
        c("enrol_1280_s1p5_z75_jpeg", wide, 1.5, 0.75, false, true, enrol(130, false)),
        c("totp_1366_s1_tiny", laptop, 1.0, 1.0, false, false, totp(80, false)),
        c("totp_1366_s1_tiny_jpeg", laptop, 1.0, 1.0, false, true, totp(90, false)),
        c("totp_1920_s1_z75", full, 1.0, 0.75, false, false, totp(120, true)),
        c("small_1366_s1", laptop, 1.0, 1.0, false, false, Small { px: 110 }),
        c("small_1920_s1_jpeg", full, 1.0, 1.0, false, true, Small { px: 120 }),
        c("small_1280_s1p5", wide, 1.5, 1.0, false, false, Small { px: 100 }),
        c("dark_1920_s1", full, 1.0, 1.0, true, false, enrol(200, true)),
        c("dark_1366_s1_smooth", laptop, 1.0, 1.0, true, false, enrol(150, false)),
        c("dark_1366_s1_jpeg", laptop, 1.0, 1.0, true, true, enrol(160, false)),
        c("dark_1280_s2", wide, 2.0, 1.0, true, false, enrol(110, false)),
        c("dark_small_1366_s1", laptop, 1.0, 1.0, true, false, Small { px: 120 }),
        c("two_1920_s1", full, 1.0, 1.0, false, false, Two { px: 180 }),
        c("two_1366_s1_jpeg", laptop, 1.0, 1.0, false, true, Two { px: 150 }),
        c("two_1280_s2", wide, 2.0, 1.0, false, false, Two { px: 110 }),
        c("two_dark_1920_s1_z75", full, 1.0, 0.75, true, false, Two { px: 180 }),
        c("modal_1920_s1", full, 1.0, 1.0, false, false, Modal { px: 200 }),
        c("modal_1366_s1_jpeg", laptop, 1.0, 1.0, false, true, Modal { px: 150 }),
        c("modal_dark_1280_s1p5", wide, 1.5, 1.0, true, false, Modal { px: 130 }),
        c("overlay_1920_s1", full, 1.0, 1.0, false, false, Overlay { px: 200 }),
        c("overlay_1366_s1_jpeg", laptop, 1.0, 1.0, false, true, Overlay { px: 170 }),
        c("none_1920_s1", full, 1.0, 1.0, false, false, Plain),
        c("none_1366_s1_jpeg", laptop, 1.0, 1.0, false, true, Plain),
        c("none_dark_1280_s2", wide, 2.0, 1.0, true, false, Plain),
        c("patterns_1920_s1", full, 1.0, 1.0, false, false, Patterns),
        c("patterns_1366_s1_jpeg", laptop, 1.0, 1.0, false, true, Patterns),
        c("patterns_dark_1280_s1p5", wide, 1.5, 1.0, true, false, Patterns),
    ]
}

/// A QR code as a `data:` PNG, one pixel per module, dark on light or (for
/// a dark theme) light on dark.
fn qr(payload: &str, dark: bool) -> String {
    let code = qrcode::QrCode::new(payload.as_bytes()).unwrap();
    let mut img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(1, 1)
        .build();
    if dark {
        for p in img.pixels_mut() {
            p.0[0] = if p.0[0] < 128 { 0xe8 } else { 0x12 };
        }
    }
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&png)
    )
}

fn img(payload: &str, px: u32, pixelated: bool, dark: bool) -> String {
    let rendering = if pixelated { "pixelated" } else { "auto" };
    format!(
        "<img alt='QR code' src='{}' style='width:{px}px;height:{px}px;image-rendering:{rendering}'>",
        qr(payload, dark)
    )
}

const TEXT: &str = "<p>Your organization requires you to set up the following methods of proving who you are. \
Use the Countersign app to scan the QR code. This will connect the app with your account.</p>\
<p>WARNING This site is intended strictly for official law enforcement and criminal justice use only. \
All transactions are monitored and logged.</p>";

fn html(case: &Case) -> String {
    let (bg, fg, card) = if case.dark {
        ("#121212", "#e8e8e8", "#1e1e1e")
    } else {
        ("#f2f2f2", "#1b1b1b", "#ffffff")
    };
    let mut body = String::new();
    let d = case.dark;
    match case.page {
        Page::Enrol {
            payload,
            px,
            pixelated,
        } => {
            let _ = write!(body, "<main><h1>Keep your account secure</h1>{TEXT}{}<p>Waiting for the app to connect…</p>{TEXT}</main>", img(payload, px, pixelated, d));
        }
        Page::Small { px } => {
            let _ = write!(body, "<main style='display:flex;gap:16px'><div style='flex:1'><h1>Set up the app</h1>{TEXT}{TEXT}</div><div>{}<p style='font-size:12px'>Scan me</p></div></main>", img(ENROL, px, false, d));
        }
        Page::Two { px } => {
            let _ = write!(body, "<main><h1>Get the app, then scan</h1><div style='display:flex;gap:48px'><div><p>1. Get the app</p>{}</div><div><p>2. Connect it</p>{}</div></div>{TEXT}</main>", img(STORE, px * 2 / 3, false, d), img(ENROL, px, false, d));
        }
        Page::Modal { px } => {
            let _ = write!(body, "<main><h1>My sign-ins</h1>{TEXT}{TEXT}{TEXT}</main>\
                <div style='position:fixed;inset:0;background:rgba(0,0,0,.55)'></div>\
                <div style='position:fixed;top:80px;left:50%;transform:translateX(-50%);background:{card};padding:24px;border-radius:8px'>\
                <h2>Add the app</h2>{}<p>Scan with the Countersign app.</p></div>", img(ENROL, px, false, d));
        }
        Page::Overlay { px } => {
            let _ = write!(body, "<main><h1>Keep your account secure</h1>{TEXT}{}</main>\
                <div style='position:fixed;left:0;right:0;bottom:0;height:55%;background:rgba(40,40,40,.35);color:#fff;padding:16px'>We use cookies to keep you signed in.</div>", img(ENROL, px, false, d));
        }
        Page::Plain => {
            let _ = write!(
                body,
                "<main><h1>Recent activity</h1>{TEXT}<table border=1 cellpadding=6>"
            );
            for i in 0..8 {
                let _ = write!(body, "<tr><td>2026-12-0{} 10:{i}2 UTC</td><td>Signed in</td><td>■ □ ▪ ▫</td><td>127.0.0.{i}</td></tr>", i % 9 + 1);
            }
            body.push_str(
                "</table><button>Sign out</button> <button>Change password</button></main>",
            );
        }
        Page::Patterns => {
            body.push_str("<main><h1>Icons</h1><div style='display:grid;grid-template-columns:repeat(12,40px);gap:12px'>");
            for i in 0..48 {
                let inner = 6 + (i % 4) * 3;
                let _ = write!(body, "<div style='width:28px;height:28px;border:{}px solid {fg};display:flex;align-items:center;justify-content:center'><div style='width:{inner}px;height:{inner}px;background:{fg}'></div></div>", 3 + i % 3);
            }
            body.push_str("</div><div style='height:60px;margin-top:20px;background:repeating-linear-gradient(90deg,#000 0 3px,#fff 3px 7px)'></div></main>");
        }
    }
    format!(
        "<!doctype html><html><head><meta charset=utf-8><style>body{{margin:0;padding:24px;background:{bg};color:{fg};font:16px system-ui}} main{{max-width:820px;margin:auto;background:{card};padding:24px}}</style></head><body style='zoom:{}'>{body}</body></html>",
        case.zoom
    )
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fixtures/qr-browser".into()),
    );
    std::fs::create_dir_all(&out).unwrap();
    let pages = tempfile::tempdir().unwrap();
    let mut manifest = String::from("file\tpayloads\tnote\n");
    let mut cases = cases();
    // One browser per window size and scale factor (a launch setting).
    cases.sort_by(|a, b| {
        (a.window, (a.scale * 100.0) as u32).cmp(&(b.window, (b.scale * 100.0) as u32))
    });
    let mut open: Option<((u32, u32), u32, Session)> = None;
    for case in &cases {
        let key = (case.window, (case.scale * 100.0) as u32);
        if open.as_ref().map(|(w, s, _)| (*w, *s)) != Some(key) {
            drop(open.take());
            let scale = format!("--force-device-scale-factor={}", case.scale);
            open = Some((
                key.0,
                key.1,
                Session::chromium_with(case.window.0, case.window.1, &[scale.as_str()]),
            ));
        }
        let s = &open.as_ref().unwrap().2;
        let page = pages.path().join(format!("{}.html", case.name));
        std::fs::write(&page, html(case)).unwrap();
        s.goto(&format!("file://{}", page.display()));
        s.wait_for(
            "[...document.images].every(i => i.complete)",
            "the page's pictures",
        );
        let png = pages.path().join(format!("{}.png", case.name));
        s.screenshot(&png);
        let file = save(&png, &out, case);
        let size = image::image_dimensions(out.join(&file)).unwrap();
        let _ = writeln!(
            manifest,
            "{file}\t{}\t{}x{} window, scale {}, zoom {}%, {}{}",
            case.page.payloads().join(" "),
            case.window.0,
            case.window.1,
            case.scale,
            (case.zoom * 100.0).round(),
            if case.dark { "dark" } else { "light" },
            format_args!(", {}x{} px", size.0, size.1),
        );
        eprintln!("{file}");
    }
    std::fs::write(out.join("manifest.tsv"), manifest).unwrap();
}

/// Copies the screenshot into the corpus, as PNG or as JPEG at quality 50.
fn save(png: &Path, out: &Path, case: &Case) -> String {
    if !case.jpeg {
        let file = format!("{}.png", case.name);
        std::fs::copy(png, out.join(&file)).unwrap();
        return file;
    }
    let file = format!("{}.jpg", case.name);
    let img = image::open(png).unwrap().to_rgb8();
    let mut jpeg = std::fs::File::create(out.join(&file)).unwrap();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 50)
        .encode_image(&img)
        .unwrap();
    file
}

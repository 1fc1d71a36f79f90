//! Layouts the browser corpus does not hold, drawn here: which pass of the
//! scanner reads a code depends on where it lies and what lies beside it.

use countersign_core::qr;
use image::{GrayImage, Luma};

/// A code drawn with `module` pixels per module, its quiet zone included.
fn code(payload: &str, module: u32) -> GrayImage {
    bare(payload, module, true)
}

fn bare(payload: &str, module: u32, quiet_zone: bool) -> GrayImage {
    qrcode::QrCode::new(payload.as_bytes())
        .expect("a payload that fits")
        .render::<Luma<u8>>()
        .quiet_zone(quiet_zone)
        .module_dimensions(module, module)
        .build()
}

fn paste(frame: &mut GrayImage, what: &GrayImage, x: u32, y: u32) {
    image::imageops::replace(frame, what, i64::from(x), i64::from(y));
}

#[test]
fn a_small_code_that_is_not_a_patch_is_read_beside_a_large_one() {
    let mut frame = GrayImage::from_pixel(1920, 1080, Luma([255]));
    let large = code("https://apps.example/countersign", 8);
    let small = code("otpauth://totp/Portal:officer?secret=JBSWY3DPEHPK3PXP", 3);
    paste(&mut frame, &large, 120, 120);
    let (sx, sy) = (1000, 600);
    paste(&mut frame, &small, sx, sy);
    // A band of small print running on from the code's right edge: the
    // busy region is then long, not square, so the code is no patch.
    let right = sx + small.width();
    for y in sy + 12..sy + small.height() - 12 {
        for x in right..right + 640 {
            if (x / 2 + y / 3) % 3 == 0 {
                frame.put_pixel(x, y, Luma([0]));
            }
        }
    }
    let patches = qr::regions::candidates(&frame, 8);
    let inside = |(x, y, w, h): qr::regions::Patch| {
        x <= sx + small.width() / 2 && sx + small.width() / 2 < x + w && y <= sy + 40 && sy < y + h
    };
    assert!(
        !patches.iter().any(|&p| inside(p)),
        "the small code became a patch: {patches:?}"
    );

    let scan = qr::scan(&frame, &|| false);
    assert!(!scan.out_of_time);
    let mut read = scan.payloads.clone();
    read.sort();
    assert_eq!(
        read,
        [
            "https://apps.example/countersign",
            "otpauth://totp/Portal:officer?secret=JBSWY3DPEHPK3PXP"
        ],
        "{:?}",
        scan.payloads
    );
}

#[test]
fn a_second_code_in_a_patch_read_the_other_way_round_is_read() {
    // A dark card holding a light code (drawn inverted) and, beside it, a
    // dark code on its own white label. Both make one busy patch; its dark
    // surroundings have the patch read inverted first, which reads the
    // light code and nothing of the other. The whole-frame read has the
    // patch blanked; the second code is read by the look around the
    // decoded patch (without it, this fails).
    let mut frame = GrayImage::from_pixel(1920, 1080, Luma([255]));
    let mut light = bare(
        "https://enrol.example/activate?code=ABCD-EFGH-JKLM-NPQR",
        2,
        false,
    );
    image::imageops::invert(&mut light);
    let dark = bare("second", 2, false);
    let (cx, cy) = (700, 400);
    let (cw, ch) = (light.width() + dark.width() + 40, light.height() + 40);
    for y in cy..cy + ch {
        for x in cx..cx + cw {
            frame.put_pixel(x, y, Luma([25]));
        }
    }
    paste(&mut frame, &light, cx + 12, cy + 20);
    // The dark code's label: a white margin of two modules.
    let (lx, ly) = (cx + 12 + light.width() + 4, cy + 20);
    let label = GrayImage::from_pixel(dark.width() + 8, dark.height() + 8, Luma([255]));
    paste(&mut frame, &label, lx, ly);
    paste(&mut frame, &dark, lx + 4, ly + 4);
    let patches = qr::regions::candidates(&frame, 8);
    assert_eq!(patches.len(), 1, "one patch holds both codes: {patches:?}");

    let scan = qr::scan(&frame, &|| false);
    let mut read = scan.payloads.clone();
    read.sort();
    assert_eq!(
        read,
        [
            "https://enrol.example/activate?code=ABCD-EFGH-JKLM-NPQR",
            "second"
        ],
        "{:?}",
        scan.payloads
    );
}

//! A patch of a large frame, read closer: cut out with a margin, read as
//! it is, then enlarged so that small modules span several pixels; or read
//! as a small frame of its own, with the whole cascade.

use image::imageops::FilterType;
use image::GrayImage;

use super::{filters, read_region, regions, scan, Closer, Found, OutOfTime, Place, SMALL_PIXELS};

/// Cuts `patch` out with a margin and reads it: quickly (enlarged so that
/// small modules span several pixels, both ways round, two thresholds) or
/// thoroughly (as a small frame of its own, with its whole cascade); true
/// when it decoded.
pub(super) fn read_patch(
    img: &GrayImage,
    (x, y, w, h): regions::Patch,
    how: Closer,
    found: &mut Found,
    out_of_time: &OutOfTime<'_>,
) -> bool {
    let margin = w.max(h) / 8 + 8;
    let (x0, y0, cw, ch) = regions::widened((x, y, w, h), margin, img.dimensions());
    if cw * ch > SMALL_PIXELS {
        // As large as a frame of its own: left to the whole-frame steps.
        return false;
    }
    let crop = image::imageops::crop_imm(img, x0, y0, cw, ch).to_image();
    let before = found.payloads.len();
    match how {
        Closer::Quick => {
            // The code's own colour for light first: its quiet zone is.
            let inverted = filters::invert(&crop);
            let (first, second) = if quiet_zone_is_dark(img, (x, y, w, h)) {
                (&inverted, &crop)
            } else {
                (&crop, &inverted)
            };
            // As it is first: a code whose modules span a few pixels reads
            // without the enlargement's cost.
            for grey in [first, second] {
                let read = read_region(grey, None, Some(Place::at(x0, y0)), found, out_of_time);
                if out_of_time() || read && found.payloads.len() > before {
                    break;
                }
            }
            if found.payloads.len() == before && !out_of_time() {
                let factor = if cw.min(ch) < 200 { 3.0 } else { 2.0 };
                let at = Place {
                    x: x0,
                    y: y0,
                    scale: factor,
                };
                let first = filters::scale(first, factor, FilterType::Lanczos3);
                let second = filters::invert(&first);
                // The local mean first: an enlarged screen capture's soft edges
                // read better against their surroundings than against a row.
                for (grey, window) in [
                    (&first, Some(8)),
                    (&second, Some(8)),
                    (&first, None),
                    (&second, None),
                ] {
                    if out_of_time()
                        || read_region(grey, window, Some(at), found, out_of_time)
                            && found.payloads.len() > before
                    {
                        break;
                    }
                }
            }
        }
        Closer::Thorough => {
            for p in scan(&crop, out_of_time).payloads {
                found.add(p);
            }
        }
    }
    let decoded = found.payloads.len() > before;
    if decoded {
        found.areas.push((x0, y0, cw, ch));
    }
    decoded
}

/// Whether the band just outside `patch` (where a code's quiet zone lies)
/// is darker than the patch: a light code on a dark page, read inverted
/// first. Only an order: both ways are read when the first fails.
fn quiet_zone_is_dark(img: &GrayImage, (x, y, w, h): regions::Patch) -> bool {
    const BAND: u32 = 3;
    let mean = |x0: u32, y0: u32, x1: u32, y1: u32| -> Option<u64> {
        let (x1, y1) = (x1.min(img.width()), y1.min(img.height()));
        let area = u64::from(x1.saturating_sub(x0)) * u64::from(y1.saturating_sub(y0));
        let sum: u64 = (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .map(|(x, y)| u64::from(img.get_pixel(x, y).0[0]))
            .sum();
        (area > 0).then(|| sum / area)
    };
    let inside = mean(x, y, x + w, y + h);
    let band = [
        mean(x, y.saturating_sub(BAND), x + w, y),
        mean(x, y + h, x + w, y + h + BAND),
        mean(x.saturating_sub(BAND), y, x, y + h),
        mean(x + w, y, x + w + BAND, y + h),
    ];
    let band: Vec<u64> = band.into_iter().flatten().collect();
    match inside {
        Some(inside) if !band.is_empty() => band.iter().sum::<u64>() / (band.len() as u64) < inside,
        _ => false,
    }
}

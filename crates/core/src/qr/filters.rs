//! Image transforms that turn hard camera frames and screenshots into
//! something the QR detector can read.

use image::imageops::{self, FilterType};
use image::GrayImage;

/// Inverts a frame, for light-on-dark (dark mode) codes.
pub fn invert(img: &GrayImage) -> GrayImage {
    let mut out = img.clone();
    imageops::invert(&mut out);
    out
}

/// Stretches the grey levels so that the 1st and 99th percentiles become
/// black and white: faint grey-on-grey codes get full contrast.
pub fn stretch(img: &GrayImage) -> GrayImage {
    let mut hist = [0u32; 256];
    for p in img.as_raw() {
        hist[*p as usize] += 1;
    }
    let total = img.as_raw().len() as u32;
    let cut = total / 100;
    let low = percentile(&hist, cut);
    let high = 255 - percentile_rev(&hist, cut);
    if high <= low {
        return img.clone();
    }
    let span = f32::from(high - low);
    let mut out = img.clone();
    for p in out.iter_mut() {
        let v = (f32::from(p.saturating_sub(low)) * 255.0 / span).min(255.0);
        *p = v as u8;
    }
    out
}

fn percentile(hist: &[u32; 256], cut: u32) -> u8 {
    let mut seen = 0;
    for (level, count) in hist.iter().enumerate() {
        seen += count;
        if seen > cut {
            return level as u8;
        }
    }
    255
}

fn percentile_rev(hist: &[u32; 256], cut: u32) -> u8 {
    let mut seen = 0;
    for (level, count) in hist.iter().rev().enumerate() {
        seen += count;
        if seen > cut {
            return level as u8;
        }
    }
    255
}

/// Resamples a frame by `factor`. Upscaling restores
/// enough shape at 1.5–2 px per module for the finder patterns to be found.
pub fn scale(img: &GrayImage, factor: f32, filter: FilterType) -> GrayImage {
    let w = ((img.width() as f32 * factor).round() as u32).max(1);
    let h = ((img.height() as f32 * factor).round() as u32).max(1);
    let (kernel, support): (fn(f32) -> f32, f32) = match filter {
        FilterType::Triangle => (triangle, 1.0),
        FilterType::CatmullRom => (catmull_rom, 2.0),
        FilterType::Lanczos3 => (lanczos3, 3.0),
        _ => return imageops::resize(img, w, h, filter),
    };
    if img.width() == 0 || img.height() == 0 || (w, h) == img.dimensions() {
        return img.clone();
    }
    let column = resample(
        img.as_raw(),
        img.width() as usize,
        img.height() as usize,
        h as usize,
        true,
        kernel,
        support,
    );
    let row = resample(
        &column,
        img.width() as usize,
        h as usize,
        w as usize,
        false,
        kernel,
        support,
    );
    let out = row
        .iter()
        .map(|v| v.clamp(0.0, 255.0).round() as u8)
        .collect();
    GrayImage::from_raw(w, h, out).unwrap_or_else(|| imageops::resize(img, w, h, filter))
}

/// One separable pass of [`scale`] on a grey plane of `width` × `height`
/// (`down`: along the columns to `new` rows; else along the rows to `new`
/// columns), the same arithmetic as `image`'s resize (window, weights
/// normalised, f32), on one channel instead of four.
fn resample<T: Copy + Into<f32>>(
    src: &[T],
    width: usize,
    height: usize,
    new: usize,
    down: bool,
    kernel: fn(f32) -> f32,
    support: f32,
) -> Vec<f32> {
    let old = if down { height } else { width };
    let ratio = old as f32 / new as f32;
    let sratio = ratio.max(1.0);
    let reach = support * sratio;
    let (out_w, out_h) = if down { (width, new) } else { (new, height) };
    let mut out = vec![0f32; out_w * out_h];
    let mut weights = Vec::new();
    for o in 0..new {
        let centre = (o as f32 + 0.5) * ratio;
        let left = ((centre - reach).floor() as i64).clamp(0, old as i64 - 1) as usize;
        let right = ((centre + reach).ceil() as i64).clamp(left as i64 + 1, old as i64) as usize;
        let centre = centre - 0.5;
        weights.clear();
        weights.extend((left..right).map(|i| kernel((i as f32 - centre) / sratio)));
        let sum: f32 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        if down {
            let row = &mut out[o * width..(o + 1) * width];
            for (k, w) in weights.iter().enumerate() {
                let from = &src[(left + k) * width..(left + k + 1) * width];
                for (acc, &v) in row.iter_mut().zip(from) {
                    *acc += v.into() * w;
                }
            }
        } else {
            for y in 0..height {
                let from = &src[y * width + left..y * width + right];
                out[y * new + o] = from.iter().zip(&weights).map(|(&v, w)| v.into() * w).sum();
            }
        }
    }
    out
}

fn sinc(t: f32) -> f32 {
    if t == 0.0 {
        1.0
    } else {
        let a = t * std::f32::consts::PI;
        a.sin() / a
    }
}

fn lanczos3(x: f32) -> f32 {
    if x.abs() < 3.0 {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

fn triangle(x: f32) -> f32 {
    (1.0 - x.abs()).max(0.0)
}

/// Catmull-Rom: the cubic spline with b = 0, c = 0.5.
fn catmull_rom(x: f32) -> f32 {
    let a = x.abs();
    let k = if a < 1.0 {
        9.0 * a.powi(3) - 15.0 * a.powi(2) + 6.0
    } else if a < 2.0 {
        -3.0 * a.powi(3) + 15.0 * a.powi(2) - 24.0 * a + 12.0
    } else {
        0.0
    };
    k / 6.0
}

/// Gaussian blur: removes sensor noise and JPEG ringing.
pub fn blur(img: &GrayImage, sigma: f32) -> GrayImage {
    imageops::blur(img, sigma)
}

/// Unsharp mask: steepens edges softened by defocus.
pub fn sharpen(img: &GrayImage, sigma: f32) -> GrayImage {
    imageops::unsharpen(img, sigma, 0)
}

/// Binarises as the detector's own preparation does (rqrr's, after
/// quirc: a running average along each row, both ways, a pixel dark when 5 %
/// below it), with the same result to the pixel but without its two
/// divisions per pixel, which cost most of a large frame's read: a division
/// by the fixed window is a multiplication by its reciprocal, and the
/// comparison is multiplied out. Returns a bitmap: 1 for dark, 0 for light.
pub fn row_threshold(img: &GrayImage) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return GrayImage::new(img.width(), img.height());
    }
    let raw = img.as_raw();
    let s = (w / 8).max(1) as u64;
    // avg * (s - 1) / s, rounded down, is (avg * m) >> 64 with
    // m = ceil(2^64 (s - 1) / s): m overshoots by less than 1, so the
    // product by less than avg / 2^64, below the 1 / s that separates
    // floor(avg (s - 1) / s) from the next integer while avg < 2^64 / s
    // (avg stays at or below 255 s). One multiplication on the chain
    // that carries the average from pixel to pixel.
    let m = (((u128::from(s - 1) << 64) + u128::from(s - 1)) / u128::from(s)) as u64;
    let decay = |avg: u64| ((u128::from(avg) * u128::from(m)) >> 64) as u64;
    let mut out = vec![0u8; w * h];
    let mut sums = vec![0u64; w];
    let (mut avg_v, mut avg_u) = (0u64, 0u64);
    for (y, (row, dark)) in raw.chunks_exact(w).zip(out.chunks_exact_mut(w)).enumerate() {
        sums.fill(0);
        for x in 0..w {
            let (v, u) = if y % 2 == 0 {
                (w - 1 - x, x)
            } else {
                (x, w - 1 - x)
            };
            avg_v = decay(avg_v) + u64::from(row[v]);
            avg_u = decay(avg_u) + u64::from(row[u]);
            sums[v] += avg_v;
            sums[u] += avg_u;
        }
        // p < floor(sum * 95 / (200 s))  <=>  (p + 1) * 200 s <= sum * 95
        for ((dark, &p), &sum) in dark.iter_mut().zip(row).zip(&sums) {
            *dark = u8::from((u64::from(p) + 1) * 200 * s <= sum * 95);
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or_default()
}

/// Binarises with a local mean over a `window`-pixel square (from an
/// integral image), so a lighting gradient across a photo does not push one
/// side of the code to all black or all white. Returns a bitmap: 1 for
/// dark, 0 for light.
pub fn adaptive_threshold(img: &GrayImage, window: u32, bias: i32) -> GrayImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let stride = w + 1;
    let mut integral = vec![0u64; stride * (h + 1)];
    for y in 0..h {
        let mut row = 0u64;
        for x in 0..w {
            row += u64::from(img.as_raw()[y * w + x]);
            integral[(y + 1) * stride + x + 1] = integral[y * stride + x + 1] + row;
        }
    }
    let r = (window / 2).max(1) as usize;
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let sum = integral[y1 * stride + x1] + integral[y0 * stride + x0]
                - integral[y0 * stride + x1]
                - integral[y1 * stride + x0];
            let area = ((y1 - y0) * (x1 - x0)) as i64;
            // p < floor(sum / area) - bias  <=>  (p + bias + 1) * area <= sum
            let p = i64::from(img.as_raw()[y * w + x]);
            out[y * w + x] = u8::from((p + i64::from(bias) + 1) * area <= sum as i64);
        }
    }
    GrayImage::from_raw(w as u32, h as u32, out).unwrap_or_default()
}

/// Share of horizontally adjacent pixel pairs that differ strongly: near 0
/// for screenshots and photos, above 0.3 for sensor noise. Noisy frames are
/// smoothed before detection, which also keeps the detector from chasing
/// thousands of false finder patterns.
pub fn noise_level(img: &GrayImage) -> f32 {
    let w = img.width() as usize;
    let raw = img.as_raw();
    if w < 2 || raw.is_empty() {
        return 0.0;
    }
    // Every 4th row is plenty for an estimate.
    let mut jumps = 0u64;
    let mut pairs = 0u64;
    for row in raw.chunks_exact(w).step_by(4) {
        for pair in row.windows(2) {
            pairs += 1;
            if pair[0].abs_diff(pair[1]) > 48 {
                jumps += 1;
            }
        }
    }
    jumps as f32 / pairs.max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rqrr::PreparedImage;

    #[test]
    fn stretch_spreads_a_narrow_range() {
        let img = GrayImage::from_fn(100, 1, |x, _| image::Luma([if x < 50 { 150 } else { 200 }]));
        let out = stretch(&img);
        assert_eq!(out.get_pixel(0, 0).0[0], 0);
        assert_eq!(out.get_pixel(99, 0).0[0], 255);
    }

    #[test]
    fn adaptive_threshold_follows_a_gradient() {
        // Dark stripes on a background that brightens left to right.
        let img = GrayImage::from_fn(200, 20, |x, _| {
            let base = 60 + (x / 2) as u8;
            image::Luma([if x % 10 < 5 { base / 2 } else { base }])
        });
        let bits = adaptive_threshold(&img, 20, 2);
        let dark = |x| bits.get_pixel(x, 0).0[0] == 1;
        assert!(dark(2) && !dark(7) && dark(192) && !dark(197));
    }

    #[test]
    fn row_threshold_binarises_as_the_detector_does() {
        let mut state = 0x9e37_79b9_u32;
        let mut noise = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // Widths around the window's edge cases (1 and a power of two),
        // stripes, a gradient and noise.
        for (w, h) in [(1, 3), (7, 2), (9, 5), (64, 9), (301, 40), (1024, 4)] {
            let img = GrayImage::from_fn(w, h, |x, y| {
                let stripe = if (x / 3 + y) % 4 < 2 { 40 } else { 0 };
                image::Luma([((x * 200 / w) as u8).saturating_add(stripe) ^ (noise() >> 28) as u8])
            });
            let (wu, hu) = (w as usize, h as usize);
            let raw = img.as_raw();
            let theirs = PreparedImage::prepare_from_greyscale(wu, hu, |x, y| raw[y * wu + x]);
            let ours = row_threshold(&img);
            assert_eq!(ours.dimensions(), (w, h));
            for y in 0..hu {
                for x in 0..wu {
                    // The detector's colours as bytes: 0 white, 1 black.
                    let dark = theirs.get_pixel_at(x, y) == 1u8;
                    let ours = ours.get_pixel(x as u32, y as u32).0[0] == 1;
                    assert_eq!(ours, dark, "{w}x{h} at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn an_empty_frame_binarises_to_an_empty_bitmap() {
        for (w, h) in [(0, 5), (5, 0), (0, 0)] {
            let img = GrayImage::new(w, h);
            assert_eq!(row_threshold(&img).dimensions(), (w, h));
            assert_eq!(adaptive_threshold(&img, 15, 3).dimensions(), (w, h));
        }
    }

    #[test]
    fn noise_level_tells_noise_from_flat() {
        let flat = GrayImage::from_pixel(64, 64, image::Luma([200]));
        let mut state = 0x2545_f491_u32;
        let noisy = GrayImage::from_fn(64, 64, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            image::Luma([(state >> 24) as u8])
        });
        assert!(noise_level(&flat) < 0.01);
        assert!(noise_level(&noisy) > 0.3);
    }

    #[test]
    fn scaling_gives_what_image_resize_gives() {
        let mut img = GrayImage::new(37, 29);
        for (i, p) in img.iter_mut().enumerate() {
            *p = ((i * 7919) % 256) as u8;
        }
        for filter in [
            FilterType::Triangle,
            FilterType::CatmullRom,
            FilterType::Lanczos3,
        ] {
            for factor in [0.5, 2.0, 3.0, 1.5, 0.37] {
                let ours = scale(&img, factor, filter);
                let w = ((img.width() as f32 * factor).round() as u32).max(1);
                let h = ((img.height() as f32 * factor).round() as u32).max(1);
                let theirs = imageops::resize(&img, w, h, filter);
                assert_eq!(ours.dimensions(), theirs.dimensions());
                let worst = ours
                    .iter()
                    .zip(theirs.iter())
                    .map(|(a, b)| a.abs_diff(*b))
                    .max();
                assert!(worst <= Some(1), "{filter:?} ×{factor}: off by {worst:?}");
            }
        }
    }
}

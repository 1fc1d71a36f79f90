//! Finds and decodes every QR code in an image.
//!
//! Plain detection misses codes on camera frames and screenshots: small
//! modules, dark mode, low contrast, blur, noise, JPEG artefacts. The scanner
//! therefore runs a short cascade of preparations of the frame (each one a
//! different guess at what went wrong), and reads every grid it locates twice:
//! once as the detector binarised it and once resampled from the grey image.
//! A caller-supplied deadline is checked between steps, so a hostile or noisy
//! frame ends in "no QR code found" instead of a hang.

pub mod filters;
mod first;
mod patch;
pub mod regions;
mod sample;

use image::imageops::FilterType;
use image::GrayImage;
use rqrr::{BitGrid, PreparedImage};

use patch::read_patch;

use crate::Error;

/// Frames larger than this many pixels are shrunk before scanning: a phone
/// camera's 12 MP frame holds no detail a 2 MP one lacks for a QR code, and
/// detection time grows with the pixel count.
pub const MAX_PIXELS: u32 = 2_100_000;

/// Frames up to this many pixels get the full cascade, including upscaling.
const SMALL_PIXELS: u32 = 400_000;

/// Asked between steps whether the scan must stop (shared by the threads
/// of a step that looks two ways at once).
pub type OutOfTime<'a> = dyn Fn() -> bool + Sync + 'a;

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Decoded payloads, each once, in the order found.
    pub payloads: Vec<String>,
    /// True when the deadline ended the scan before every step had run.
    pub out_of_time: bool,
}

/// Decodes PNG or JPEG bytes into a grey frame.
pub fn decode_image(bytes: &[u8]) -> Result<GrayImage, Error> {
    let img = image::load_from_memory(bytes).map_err(|e| Error::Image(e.to_string()))?;
    Ok(img.to_luma8())
}

/// Decodes an image file's bytes and scans it. See [`scan`].
pub fn scan_bytes(bytes: &[u8], out_of_time: &OutOfTime<'_>) -> Result<Scan, Error> {
    Ok(scan(&decode_image(bytes)?, out_of_time))
}

/// Scans a grey frame for QR codes. `out_of_time` is asked between steps; once
/// it answers true the scan stops and returns what it has.
pub fn scan(frame: &GrayImage, out_of_time: &OutOfTime<'_>) -> Scan {
    if frame.width() == 0 || frame.height() == 0 {
        // Nothing to read (and the image crate's filters panic on it).
        return Scan::default();
    }
    let frame = shrink(frame);
    let mut found = Found::default();
    let small = frame.width() * frame.height() <= SMALL_PIXELS;
    // Small frames are cheap whatever they hold and have their own blur step;
    // fine detail at 1.5 px per module must not be mistaken for noise there.
    let noisy = !small && filters::noise_level(&frame) > 0.2;
    let base = if noisy {
        filters::blur(&frame, 1.0)
    } else {
        frame
    };

    for step in cascade(small, noisy) {
        if out_of_time() {
            return found.finish(true);
        }
        let complete = step.read(&base, &mut found, out_of_time);
        found.whole |= matches!(
            step,
            Step::Detector(_) | Step::LocalMean(..) | Step::Tiles(_)
        );
        // A large frame may hold a second, smaller code (an app-store link
        // beside the enrolment code): stop only once its patches were read.
        // And never on the patches alone: a large code with big modules
        // may not look like a patch, so one whole-frame pass must run.
        let looked_closer = small || (found.closer && found.whole);
        if complete && !found.payloads.is_empty() && looked_closer {
            break;
        }
    }
    found.finish(false)
}

/// One preparation of the frame: a transform, then a binarisation.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// The detector's own row-wise threshold, after a transform.
    Detector(Transform),
    /// Local-mean threshold over a window of 1/`n` of the shorter side.
    LocalMean(Transform, u32),
    /// The detector on overlapping tiles of a large frame. Text and icons
    /// near a code can pair up with its finder patterns and hide it from a
    /// whole-frame pass; a tile holds the code alone.
    Tiles(Transform),
    /// Square patches busy with edges ([`regions::candidates`]), cut out
    /// and read closer: codes of 1.5–2 screen pixels per module, and a
    /// second code on the page.
    Regions(Closer),
    /// A large frame's first look, two ways at once (on two threads): the
    /// whole frame with the patches blanked out, and the quick look at its
    /// patches, where small codes read; then the frame around each patch
    /// that decoded ([`first::looks`]).
    FirstLooks,
}

/// How closely a patch is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// As it is, then enlarged once; both ways round, two thresholds.
    Quick,
    /// The whole small-frame cascade.
    Thorough,
}

/// Patches of a large frame read closer, at most.
const PATCHES: usize = 8;

/// Tiles are this wide and overlap by half, so any code up to half a tile
/// across lies wholly inside one.
const TILE: u32 = 480;

#[derive(Debug, Clone, Copy)]
enum Transform {
    None,
    Invert,
    Stretch,
    Sharpen,
    Blur,
    /// Resize by a factor with a bicubic (Catmull-Rom) filter.
    Scale(f32),
    /// Resize by a factor with a Lanczos filter, sharper on 1.5 px modules.
    ScaleLanczos(f32),
    ScaleSharpen(f32),
}

impl Transform {
    /// At the frame's origin when the result keeps its geometry, so that
    /// a code found in it lies at the same place in the frame.
    fn at(self) -> Option<Place> {
        match self {
            Transform::None
            | Transform::Invert
            | Transform::Stretch
            | Transform::Sharpen
            | Transform::Blur => Some(Place::at(0, 0)),
            _ => None,
        }
    }

    fn apply(self, img: &GrayImage) -> GrayImage {
        match self {
            Transform::None => img.clone(),
            Transform::Invert => filters::invert(img),
            Transform::Stretch => filters::stretch(img),
            Transform::Sharpen => filters::sharpen(img, 1.5),
            Transform::Blur => filters::blur(img, 1.0),
            Transform::Scale(f) => filters::scale(img, f, FilterType::CatmullRom),
            Transform::ScaleLanczos(f) => filters::scale(img, f, FilterType::Lanczos3),
            Transform::ScaleSharpen(f) => {
                filters::sharpen(&filters::scale(img, f, FilterType::CatmullRom), 1.5 * f)
            }
        }
    }
}

impl Step {
    /// Prepares the frame, locates grids and reads them into `found`; true
    /// when every located grid decoded.
    fn read(self, img: &GrayImage, found: &mut Found, out_of_time: &OutOfTime<'_>) -> bool {
        match self {
            Step::Detector(t) => read_region(&t.apply(img), None, t.at(), found, out_of_time),
            Step::LocalMean(t, n) => {
                read_region(&t.apply(img), Some(n), t.at(), found, out_of_time)
            }
            Step::FirstLooks => first::looks(img, found, out_of_time),
            Step::Regions(how) => {
                found.closer = true;
                let mut complete = true;
                let patches = found
                    .patches
                    .get_or_insert_with(|| regions::candidates(img, PATCHES))
                    .clone();
                for patch in patches {
                    if out_of_time() {
                        return false;
                    }
                    if found.covers(patch) {
                        continue;
                    }
                    complete &= read_patch(img, patch, how, found, out_of_time);
                }
                complete
            }
            Step::Tiles(t) => {
                let grey = t.apply(img);
                let mut complete = true;
                for (x, y) in tile_origins(grey.width(), grey.height()) {
                    if out_of_time() {
                        return false;
                    }
                    let tile = image::imageops::crop_imm(&grey, x, y, TILE, TILE).to_image();
                    let at = t.at().map(|_| Place::at(x, y));
                    complete &= read_region(&tile, None, at, found, out_of_time);
                }
                complete
            }
        }
    }
}

/// Top-left corners of half-overlapping tiles covering a frame.
fn tile_origins(w: u32, h: u32) -> Vec<(u32, u32)> {
    let starts = |len: u32| {
        let last = len.saturating_sub(TILE);
        let mut v: Vec<u32> = (0..=last).step_by((TILE / 2) as usize).collect();
        if v.last() != Some(&last) {
            v.push(last);
        }
        v
    };
    let ys = starts(h);
    starts(w)
        .into_iter()
        .flat_map(|x| ys.iter().map(move |&y| (x, y)))
        .collect()
}

/// Where an image the scanner reads lies in the frame: the frame pixel
/// of its top-left corner, and how many of its pixels span one of the
/// frame's (2 for a patch enlarged twice).
#[derive(Debug, Clone, Copy)]
struct Place {
    x: u32,
    y: u32,
    scale: f32,
}

impl Place {
    /// Unscaled, at `(x, y)`.
    fn at(x: u32, y: u32) -> Place {
        Place { x, y, scale: 1.0 }
    }

    /// The frame box around a grid's corners (given in the read image).
    fn frame_box(self, bounds: &[rqrr::Point; 4]) -> regions::Patch {
        let to = |v: i32, origin: u32| origin + (v.max(0) as f32 / self.scale) as u32;
        let xs = bounds.iter().map(|p| to(p.x, self.x));
        let ys = bounds.iter().map(|p| to(p.y, self.y));
        let (x0, x1) = (xs.clone().min().unwrap_or(0), xs.max().unwrap_or(0));
        let (y0, y1) = (ys.clone().min().unwrap_or(0), ys.max().unwrap_or(0));
        (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
    }
}

/// Binarises `grey` (the detector's threshold, or a local mean over 1/`n`
/// of the shorter side), locates grids and reads each; true when every
/// located grid decoded.
fn read_region(
    grey: &GrayImage,
    local_window: Option<u32>,
    at: Option<Place>,
    found: &mut Found,
    out_of_time: &OutOfTime<'_>,
) -> bool {
    let dark = match local_window {
        None => filters::row_threshold(grey),
        Some(n) => {
            let window = (grey.width().min(grey.height()) / n).clamp(15, 201) | 1;
            filters::adaptive_threshold(grey, window, 3)
        }
    };
    read_bitmap(grey, dark, at, found, out_of_time)
}

/// Locates grids in `dark` (`grey` binarised: 1 dark, 0 light) and reads
/// each; true when every located grid decoded.
fn read_bitmap(
    grey: &GrayImage,
    dark: GrayImage,
    at: Option<Place>,
    found: &mut Found,
    out_of_time: &OutOfTime<'_>,
) -> bool {
    let mut detector = PreparedImage::without_preparation(dark);
    let mut complete = true;
    for grid in detector.detect_grids() {
        if out_of_time() {
            return false;
        }
        match decode_grid(&grid).or_else(|| resample(grey, &grid.bounds, grid.grid.size())) {
            Some(p) => {
                found.add(p);
                // Where it lay in the frame, for later looks to skip.
                if let Some(place) = at {
                    found.codes.push(place.frame_box(&grid.bounds));
                }
            }
            None => complete = false,
        }
    }
    complete
}

/// Reads a located grid again from the grey image.
fn resample(grey: &GrayImage, bounds: &[rqrr::Point; 4], size: usize) -> Option<String> {
    let values = sample::module_intensities(grey, bounds, size)?;
    [
        sample::global_grid(&values, size),
        sample::local_grid(&values, size, 3),
    ]
    .into_iter()
    .find_map(|g| decode_grid(&rqrr::Grid::new(g)))
}

/// The steps to try, cheapest and most likely first.
fn cascade(small: bool, noisy: bool) -> Vec<Step> {
    use Step::*;
    use Transform::*;
    if noisy {
        // Whole-frame detection on noise can chase thousands of false finder
        // patterns for seconds; on tiles the cost stays small and bounded.
        return vec![Tiles(None), Tiles(Invert)];
    }
    let mut steps = vec![
        Detector(None),
        Detector(Invert),
        LocalMean(None, 8),
        LocalMean(Invert, 8),
        Detector(Stretch),
        Detector(Blur),
        Detector(Sharpen),
    ];
    if small {
        steps.extend([
            LocalMean(None, 24),
            Detector(Scale(2.0)),
            Detector(ScaleLanczos(3.0)),
            Detector(ScaleLanczos(2.0)),
            Detector(Scale(4.0)),
            LocalMean(Scale(3.0), 8),
            Detector(ScaleSharpen(2.0)),
            Detector(ScaleSharpen(3.0)),
            Detector(Scale(0.5)),
        ]);
    } else {
        steps.insert(0, FirstLooks);
        steps.extend([Regions(Closer::Thorough), Tiles(None), Tiles(Invert)]);
    }
    steps
}

#[derive(Default)]
struct Found {
    payloads: Vec<String>,
    /// Patches already read into a payload (frame pixels).
    areas: Vec<regions::Patch>,
    /// Boxes of the codes read where their place in the frame is known.
    codes: Vec<regions::Patch>,
    /// Whether the closer look at patches has run.
    closer: bool,
    /// Whether a step over the whole frame has run.
    whole: bool,
    /// The frame's patches, found once for the quick and thorough looks.
    patches: Option<Vec<regions::Patch>>,
}

impl Found {
    /// Takes in the codes another look read, and where.
    fn absorb(&mut self, other: Found) {
        for p in other.payloads {
            self.add(p);
        }
        self.areas.extend(other.areas);
        self.codes.extend(other.codes);
    }

    fn add(&mut self, payload: String) {
        if !self.payloads.contains(&payload) {
            self.payloads.push(payload);
        }
    }

    /// Whether most of `patch` lies in a patch already read.
    fn covers(&self, (x, y, w, h): regions::Patch) -> bool {
        self.areas
            .iter()
            .chain(&self.codes)
            .any(|&(ax, ay, aw, ah)| {
                let ix = (x + w).min(ax + aw).saturating_sub(x.max(ax));
                let iy = (y + h).min(ay + ah).saturating_sub(y.max(ay));
                ix * iy * 2 > w * h
            })
    }

    fn finish(self, out_of_time: bool) -> Scan {
        Scan {
            payloads: self.payloads,
            out_of_time,
        }
    }
}

fn decode_grid<G: BitGrid>(grid: &rqrr::Grid<G>) -> Option<String> {
    let mut bytes = Vec::new();
    grid.decode_to(&mut bytes).ok()?;
    Some(text(bytes))
}

/// QR byte mode is UTF-8 in practice, ISO 8859-1 by the standard.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|e| e.into_bytes().iter().map(|&b| char::from(b)).collect())
}

fn shrink(frame: &GrayImage) -> GrayImage {
    let pixels = u64::from(frame.width()) * u64::from(frame.height());
    if pixels <= u64::from(MAX_PIXELS) {
        return frame.clone();
    }
    let factor = (f64::from(MAX_PIXELS) / pixels as f64).sqrt() as f32;
    filters::scale(frame, factor, FilterType::Triangle)
}

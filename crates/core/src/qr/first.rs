//! A large frame's first look ([`super::Step::FirstLooks`]), on two
//! threads. One finds the edge-busy patches and reads them. The other
//! binarises the whole frame, reads it with the patches blanked out, and
//! then reads patches as well, taking the next one in turn. Last, around
//! each patch that decoded, the whole frame is read again with only the
//! decoded codes blanked: so the look sees every code an unblanked
//! whole-frame pass would (up to a patch's own size beyond its box), and
//! no code's grid is fitted twice (the detector's grid fit is its dearest
//! step).
//!
//! Results merge in a fixed order: each patch's by its place in the list,
//! whichever thread read it, then the whole frame's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use image::GrayImage;

use super::{filters, read_bitmap, read_patch, regions, Closer, Found, OutOfTime};
use super::{Place, PATCHES};

/// What one thread read: whether every patch it read decoded, and what
/// each gave, by the patch's place in the list.
type Reads = (bool, Vec<(usize, Found)>);

/// Runs the first look into `found`; true when every located grid and
/// every patch decoded.
pub(super) fn looks(img: &GrayImage, found: &mut Found, out_of_time: &OutOfTime<'_>) -> bool {
    let next = AtomicUsize::new(0);
    let read_patches = |patches: &[regions::Patch]| -> Reads {
        let mut complete = true;
        let mut read = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&patch) = patches.get(i) else {
                break;
            };
            if out_of_time() {
                return (false, read);
            }
            // Each patch into a fresh record, so that a code the other
            // thread read already still counts as this patch's.
            let mut one = Found::default();
            complete &= read_patch(img, patch, Closer::Quick, &mut one, out_of_time);
            read.push((i, one));
        }
        (complete, read)
    };
    let (patches, full, reads) = std::thread::scope(|threads| {
        // Made inside the scope: should this thread unwind before sending,
        // the sender goes with it and the helper stops waiting.
        let (send, receive) = mpsc::channel::<Vec<regions::Patch>>();
        let helper = threads.spawn(move || {
            // Binarised while the other thread looks for patches; `None`
            // when out of time (the look is then incomplete).
            let dark = (!out_of_time()).then(|| filters::row_threshold(img));
            let patches = receive.recv().unwrap_or_default();
            let full = dark.map(|dark| full_frame(img, dark, &patches, out_of_time));
            (full, read_patches(&patches))
        });
        let patches = regions::candidates(img, PATCHES);
        let _ = send.send(patches.clone());
        drop(send);
        let mine = read_patches(&patches);
        let (full, theirs) = helper
            .join()
            .unwrap_or_else(|_| (None, (false, Vec::new())));
        let mut reads = mine.1;
        reads.extend(theirs.1);
        (patches, full, (mine.0 && theirs.0, reads))
    });
    let (mut complete, mut reads) = reads;
    reads.sort_by_key(|(i, _)| *i);
    let decoded: Vec<regions::Patch> = reads
        .iter()
        .filter(|(_, one)| !one.payloads.is_empty())
        .map(|&(i, _)| patches[i])
        .collect();
    for (_, one) in reads {
        found.absorb(one);
    }
    match full {
        Some((whole, whole_complete, dark)) => {
            complete &= whole_complete;
            found.absorb(whole);
            for patch in decoded {
                if out_of_time() {
                    return false;
                }
                complete &= around(img, &dark, patch, found, out_of_time);
            }
        }
        None => complete = false,
    }
    found.patches = Some(patches);
    found.closer = true;
    found.whole = true;
    complete
}

/// The whole frame (`dark`, binarised) with the patches blanked out: they
/// are read on their own (and again by [`around`] when they decode).
/// Returns what it read, whether every grid it located decoded, and `dark`
/// as it was.
fn full_frame(
    img: &GrayImage,
    dark: GrayImage,
    patches: &[regions::Patch],
    out_of_time: &OutOfTime<'_>,
) -> (Found, bool, GrayImage) {
    let mut blanked = dark.clone();
    for &area in patches {
        blank(&mut blanked, area, (0, 0));
    }
    let mut found = Found::default();
    if out_of_time() {
        return (found, false, dark);
    }
    let complete = read_bitmap(img, blanked, Some(Place::at(0, 0)), &mut found, out_of_time);
    (found, complete, dark)
}

/// Reads the bitmap `dark` again around a patch that decoded
/// (the patch's box widened by its own size on every side), with only the
/// codes read so far blanked: a second code in or reaching into the patch,
/// which the whole-frame read did not see and the patch's read may have
/// stopped before, is located here. True when every grid located decoded.
fn around(
    img: &GrayImage,
    dark: &GrayImage,
    (x, y, w, h): regions::Patch,
    found: &mut Found,
    out_of_time: &OutOfTime<'_>,
) -> bool {
    let (x0, y0, cw, ch) = regions::widened((x, y, w, h), w.max(h), img.dimensions());
    let grey = image::imageops::crop_imm(img, x0, y0, cw, ch).to_image();
    let mut bits = image::imageops::crop_imm(dark, x0, y0, cw, ch).to_image();
    for &code in &found.codes {
        blank(&mut bits, code, (x0, y0));
    }
    read_bitmap(&grey, bits, Some(Place::at(x0, y0)), found, out_of_time)
}

/// Paints `area` (frame pixels) light in a bitmap whose top-left corner
/// lies at `origin` in the frame, with two pixels more on every side for
/// the rounding of a code's box.
fn blank(bits: &mut GrayImage, area: regions::Patch, origin: (u32, u32)) {
    let (x, y, w, h) = regions::widened(area, 2, (u32::MAX, u32::MAX));
    let (x0, y0) = (x.saturating_sub(origin.0), y.saturating_sub(origin.1));
    let x1 = (x + w).saturating_sub(origin.0).min(bits.width());
    let y1 = (y + h).saturating_sub(origin.1).min(bits.height());
    for y in y0.min(y1)..y1 {
        for x in x0.min(x1)..x1 {
            bits.put_pixel(x, y, image::Luma([0]));
        }
    }
}

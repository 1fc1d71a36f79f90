//! A large frame's first look ([`super::Step::FirstLooks`]), on two
//! threads. One finds the edge-busy patches; the other reads the whole
//! frame at half size (a 2×2 average, cheap), where a code with modules of
//! four pixels or more reads, and when that read nothing binarises it at
//! full size. Then both read patches, taking the next one in turn. Last,
//! when the half size read nothing, the whole frame is read at full size,
//! with the codes the patches read blanked out: no code a whole-frame pass
//! can see is left to the patches alone, and no code is fitted twice (the
//! detector's grid fit is its most costly step).
//!
//! Results merge in a fixed order: each patch's by its place in the list,
//! whichever thread read it, then the half size's, then the full size's.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use image::GrayImage;

use super::{filters, read_bitmap, read_patch, read_region, regions, Closer, Found, OutOfTime};
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
    let (patches, half, full, reads) = std::thread::scope(|threads| {
        // Made inside the scope: should this thread unwind before sending,
        // the sender goes with it and the helper stops waiting.
        let (send, receive) = mpsc::channel::<Vec<regions::Patch>>();
        let helper = threads.spawn(move || {
            let mut half = Found::default();
            let complete = half_frame(img, &mut half, out_of_time);
            // Binarised now, while the other thread looks for patches;
            // read once the patches are.
            let full =
                (half.payloads.is_empty() && !out_of_time()).then(|| filters::row_threshold(img));
            let patches = receive.recv().unwrap_or_default();
            ((half, complete), full, read_patches(&patches))
        });
        let patches = regions::candidates(img, PATCHES);
        let _ = send.send(patches.clone());
        drop(send);
        let mine = read_patches(&patches);
        let (half, full, theirs) = helper.join().unwrap_or_else(|_| {
            let failed = (Found::default(), false);
            (failed, None, (false, Vec::new()))
        });
        let mut reads = mine.1;
        reads.extend(theirs.1);
        (patches, half, full, (mine.0 && theirs.0, reads))
    });
    let (mut complete, mut reads) = reads;
    reads.sort_by_key(|(i, _)| *i);
    for (_, one) in reads {
        found.absorb(one);
    }
    let (half, half_complete) = half;
    complete &= half_complete;
    found.absorb(half);
    if let Some(mut dark) = full {
        if out_of_time() {
            return false;
        }
        // Blanked to light: the patches read these codes already.
        for &(x, y, w, h) in &found.codes {
            blank(&mut dark, (x, y, w, h));
        }
        complete &= read_bitmap(img, dark, Some(Place::at(0, 0)), found, out_of_time);
    }
    found.patches = Some(patches);
    found.closer = true;
    found.whole = true;
    complete
}

/// The whole frame at half size; true when every grid located decoded.
fn half_frame(img: &GrayImage, found: &mut Found, out_of_time: &OutOfTime<'_>) -> bool {
    if img.width() < 2 || img.height() < 2 {
        return true;
    }
    read_region(&filters::half(img), None, None, found, out_of_time)
}

/// Paints a box of a bitmap light, with a margin of two pixels for the
/// rounding of the box's corners.
fn blank(dark: &mut GrayImage, (x, y, w, h): regions::Patch) {
    let (x0, y0) = (x.saturating_sub(2), y.saturating_sub(2));
    let x1 = x.saturating_add(w + 2).min(dark.width());
    let y1 = y.saturating_add(h + 2).min(dark.height());
    for y in y0..y1 {
        for x in x0..x1 {
            dark.put_pixel(x, y, image::Luma([0]));
        }
    }
}

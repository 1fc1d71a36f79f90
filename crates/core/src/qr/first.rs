//! A large frame's first look ([`super::Step::FirstLooks`]), on two
//! threads. One finds the edge-busy patches and reads them. The other
//! reads the whole frame at half size (a 2×2 average, cheap), where a code
//! with modules of four pixels or more reads; when that read nothing, at
//! full size too, with the patches blanked out; then it reads patches as
//! well, taking the next one in turn.
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
            // Binarised while the other thread looks for patches; `None`
            // inside when out of time (the look is then incomplete).
            let full = half
                .payloads
                .is_empty()
                .then(|| (!out_of_time()).then(|| filters::row_threshold(img)));
            let patches = receive.recv().unwrap_or_default();
            let full = full.map(|dark| match dark {
                Some(dark) => full_frame(img, dark, &patches, out_of_time),
                None => (Found::default(), false),
            });
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
    for (whole, whole_complete) in [Some(half), full].into_iter().flatten() {
        complete &= whole_complete;
        found.absorb(whole);
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

/// The whole frame at full size (`dark`, binarised) with the patches
/// blanked out: they are read on their own, and a patch that does not
/// decode leaves the look incomplete, so that the later whole-frame steps
/// still see it. What a grid costs (the detector's grid fit is its
/// dearest step) is then paid once per code.
fn full_frame(
    img: &GrayImage,
    mut dark: GrayImage,
    patches: &[regions::Patch],
    out_of_time: &OutOfTime<'_>,
) -> (Found, bool) {
    for &(x, y, w, h) in patches {
        let x1 = x.saturating_add(w).min(dark.width());
        let y1 = y.saturating_add(h).min(dark.height());
        for y in y.min(y1)..y1 {
            for x in x.min(x1)..x1 {
                dark.put_pixel(x, y, image::Luma([0]));
            }
        }
    }
    let mut found = Found::default();
    if out_of_time() {
        return (found, false);
    }
    let complete = read_bitmap(img, dark, Some(Place::at(0, 0)), &mut found, out_of_time);
    (found, complete)
}

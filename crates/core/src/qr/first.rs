//! A large frame's first look ([`super::Step::FirstLooks`]), on two
//! threads. One reads the whole frame: at half size first (a 2×2 average,
//! cheap), where a code with modules of four pixels or more reads; at full
//! size when that read nothing, so that no code a whole-frame pass can see
//! is left to the patches alone. The other finds the edge-busy patches;
//! then both read patches, taking the next one in turn. Results are merged
//! in a fixed order: the whole frame's, then each patch's by its place in
//! the list, whichever thread read it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use image::GrayImage;

use super::{filters, read_patch, read_region, regions, Closer, Found, OutOfTime, PATCHES};

/// What one thread read: whether everything it located decoded, and what
/// each patch gave, by the patch's place in the list.
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
    let (patches, whole, whole_complete, reads) = std::thread::scope(|threads| {
        // Made inside the scope: should this thread unwind before sending,
        // the sender goes with it and the helper stops waiting.
        let (send, receive) = mpsc::channel::<Vec<regions::Patch>>();
        let helper = threads.spawn(move || {
            let mut whole = Found::default();
            let complete = whole_frame(img, &mut whole, out_of_time);
            let patches = receive.recv().unwrap_or_default();
            (whole, complete, read_patches(&patches))
        });
        let patches = regions::candidates(img, PATCHES);
        let _ = send.send(patches.clone());
        drop(send);
        let mine = read_patches(&patches);
        let (whole, complete, theirs) = helper
            .join()
            .unwrap_or_else(|_| (Found::default(), false, (false, Vec::new())));
        let mut reads = mine.1;
        reads.extend(theirs.1);
        (patches, whole, complete, (mine.0 && theirs.0, reads))
    });
    let (patches_complete, mut reads) = reads;
    reads.sort_by_key(|(i, _)| *i);
    found.absorb(whole);
    for (_, one) in reads {
        found.absorb(one);
    }
    found.patches = Some(patches);
    found.closer = true;
    found.whole = true;
    whole_complete && patches_complete
}

/// The whole frame: at half size, then at full size if the half read
/// nothing; true when every grid located decoded.
fn whole_frame(img: &GrayImage, found: &mut Found, out_of_time: &OutOfTime<'_>) -> bool {
    let mut complete = true;
    if img.width() >= 2 && img.height() >= 2 {
        complete = read_region(&filters::half(img), None, None, found, out_of_time);
        if !found.payloads.is_empty() {
            return complete;
        }
    }
    if out_of_time() {
        return false;
    }
    complete & read_region(img, None, Some((0, 0)), found, out_of_time)
}

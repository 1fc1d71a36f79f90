//! Where a screenshot may hold a QR code: square patches busy with sharp
//! edges in both directions. On a page captured at 1.5–2 screen pixels per
//! module the detector cannot see the finder patterns in the whole frame;
//! cut out and enlarged, the same patch reads.

use image::GrayImage;

/// Side of the blocks the frame is judged in, in pixels.
const BLOCK: u32 = 8;
/// A step between neighbours this large counts as an edge.
const EDGE: i16 = 48;
/// Edges, across and down, that make a block busy.
const BUSY: u32 = 5;

/// A patch of the frame worth a closer look: `(x, y, width, height)`.
pub type Patch = (u32, u32, u32, u32);

/// `patch` widened by `by` on every side and cut to a frame of `width` ×
/// `height` pixels (starting at 0, 0).
pub fn widened((x, y, w, h): Patch, by: u32, (width, height): (u32, u32)) -> Patch {
    let (x0, y0) = (x.saturating_sub(by), y.saturating_sub(by));
    let x1 = x.saturating_add(w).saturating_add(by).min(width);
    let y1 = y.saturating_add(h).saturating_add(by).min(height);
    (x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

/// Up to `most` patches, largest first, that are roughly square, at least
/// 21 modules of 1.5 px across, and not the whole frame.
pub fn candidates(img: &GrayImage, most: usize) -> Vec<Patch> {
    let (bw, bh) = (img.width() / BLOCK, img.height() / BLOCK);
    if bw < 4 || bh < 4 {
        return Vec::new();
    }
    let busy = busy_blocks(img, bw, bh);
    // Close small gaps (a finder pattern's solid centre, a large module).
    let busy = dilate(&busy, bw, bh);
    let mut seen = vec![false; busy.len()];
    let mut patches = Vec::new();
    for start in 0..busy.len() {
        if !busy[start] || seen[start] {
            continue;
        }
        let (x0, y0, x1, y1, count) = component(&busy, &mut seen, bw, bh, start);
        let (w, h) = ((x1 - x0 + 1) * BLOCK, (y1 - y0 + 1) * BLOCK);
        // A code fills its square; a paragraph leaves gaps between lines.
        let filled = count * 4 >= (x1 - x0 + 1) * (y1 - y0 + 1) * 3;
        let square = filled && w.max(h) * 10 <= w.min(h) * 17;
        let big_enough = w.min(h) >= 32;
        let not_all = w < img.width() * 9 / 10 || h < img.height() * 9 / 10;
        if square && big_enough && not_all {
            patches.push((x0 * BLOCK, y0 * BLOCK, w, h));
        }
    }
    patches.sort_by_key(|&(_, _, w, h)| std::cmp::Reverse(w * h));
    patches.truncate(most);
    patches
}

/// Blocks with sharp edges both across and down.
fn busy_blocks(img: &GrayImage, bw: u32, bh: u32) -> Vec<bool> {
    let raw = img.as_raw();
    let width = img.width() as usize;
    let (bw, bh, block) = (bw as usize, bh as usize, BLOCK as usize);
    let mut across = vec![0u32; bw * bh];
    let mut down = vec![0u32; bw * bh];
    // Edge marks of one row (1 or 0), first computed for the whole row so
    // that the comparisons run many to an instruction.
    let mut right = vec![0u8; width];
    let mut below = vec![0u8; width];
    let edge = |a: u8, b: u8| u8::from(i16::from(a.abs_diff(b)) >= EDGE);
    for y in 0..bh * block {
        let row = &raw[y * width..(y + 1) * width];
        for (mark, pair) in right.iter_mut().zip(row.windows(2)) {
            *mark = edge(pair[0], pair[1]);
        }
        // The last pixel has no right neighbour (its mark stays 0).
        match raw.get((y + 1) * width..(y + 2) * width) {
            Some(next) => {
                for ((mark, &a), &b) in below.iter_mut().zip(row).zip(next) {
                    *mark = edge(a, b);
                }
            }
            None => below.fill(0),
        }
        let b_row = (y / block) * bw;
        let count = |marks: &[u8]| marks.iter().map(|&m| u32::from(m)).sum::<u32>();
        for (b, (r, d)) in right
            .chunks_exact(block)
            .zip(below.chunks_exact(block))
            .take(bw)
            .enumerate()
        {
            across[b_row + b] += count(r);
            down[b_row + b] += count(d);
        }
    }
    across
        .iter()
        .zip(&down)
        .map(|(&a, &d)| a >= BUSY && d >= BUSY)
        .collect()
}

fn dilate(busy: &[bool], bw: u32, bh: u32) -> Vec<bool> {
    let (bw, bh) = (bw as usize, bh as usize);
    let mut out = busy.to_vec();
    for y in 0..bh {
        for x in 0..bw {
            if busy[y * bw + x] {
                continue;
            }
            let near = |dx: isize, dy: isize| {
                let (nx, ny) = (x as isize + dx, y as isize + dy);
                nx >= 0
                    && ny >= 0
                    && (nx as usize) < bw
                    && (ny as usize) < bh
                    && busy[ny as usize * bw + nx as usize]
            };
            // Filled only between busy neighbours on both sides.
            out[y * bw + x] = (near(-1, 0) && near(1, 0)) || (near(0, -1) && near(0, 1));
        }
    }
    out
}

/// The bounding box, in blocks, of the busy component holding `start`, and
/// how many blocks it has.
fn component(
    busy: &[bool],
    seen: &mut [bool],
    bw: u32,
    bh: u32,
    start: usize,
) -> (u32, u32, u32, u32, u32) {
    let (bw, bh) = (bw as usize, bh as usize);
    let mut stack = vec![start];
    seen[start] = true;
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    let mut count = 0;
    while let Some(i) = stack.pop() {
        count += 1;
        let (x, y) = (i % bw, i / bw);
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
        let mut push = |j: usize| {
            if busy[j] && !seen[j] {
                seen[j] = true;
                stack.push(j);
            }
        };
        if x > 0 {
            push(i - 1);
        }
        if x + 1 < bw {
            push(i + 1);
        }
        if y > 0 {
            push(i - bw);
        }
        if y + 1 < bh {
            push(i + bw);
        }
    }
    (x0 as u32, y0 as u32, x1 as u32, y1 as u32, count)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_widened_patch_stays_inside_the_frame() {
        let frame = (100, 80);
        assert_eq!(super::widened((40, 30, 10, 10), 5, frame), (35, 25, 20, 20));
        assert_eq!(super::widened((2, 3, 10, 10), 5, frame), (0, 0, 17, 18));
        assert_eq!(super::widened((95, 75, 5, 5), 5, frame), (90, 70, 10, 10));
        // Past the frame's edge (a box found in a larger image), and at
        // the end of the numbers: empty, no overflow.
        assert_eq!(super::widened((120, 90, 5, 5), 5, frame).2, 0);
        assert_eq!(super::widened((u32::MAX - 1, 0, 5, 5), 5, frame).2, 0);
    }

    use super::*;

    /// Edge counts pixel by pixel, the plain way.
    fn busy_blocks_plain(img: &GrayImage, bw: u32, bh: u32) -> Vec<bool> {
        let width = img.width() as usize;
        let mut counts = vec![(0u32, 0u32); (bw * bh) as usize];
        for y in 0..(bh * BLOCK) {
            for x in 0..(bw * BLOCK) {
                let b = ((y / BLOCK) * bw + x / BLOCK) as usize;
                let here = i16::from(img.get_pixel(x, y).0[0]);
                if (x as usize + 1) < width
                    && (i16::from(img.get_pixel(x + 1, y).0[0]) - here).abs() >= EDGE
                {
                    counts[b].0 += 1;
                }
                if y + 1 < img.height()
                    && (i16::from(img.get_pixel(x, y + 1).0[0]) - here).abs() >= EDGE
                {
                    counts[b].1 += 1;
                }
            }
        }
        counts
            .iter()
            .map(|&(a, d)| a >= BUSY && d >= BUSY)
            .collect()
    }

    #[test]
    fn busy_blocks_count_as_the_plain_way_does() {
        let mut state = 0x2545_f491_u32;
        for (w, h) in [(32, 32), (45, 37), (64, 8), (200, 121)] {
            let img = GrayImage::from_fn(w, h, |x, y| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                // Sharp stripes on the left; on the right noise whose
                // jumps only sometimes reach an edge's height.
                let stripe = x < w / 2 && (x / 2 + y / 3) % 2 == 0;
                image::Luma([if stripe {
                    0
                } else {
                    120 + (state >> 28) as u8 * 4
                }])
            });
            let (bw, bh) = (w / BLOCK, h / BLOCK);
            let ours = busy_blocks(&img, bw, bh);
            assert_eq!(ours, busy_blocks_plain(&img, bw, bh), "{w}x{h}");
            assert!(ours.iter().any(|&b| b) && ours.iter().any(|&b| !b));
            assert_eq!(ours.len(), (bw * bh) as usize);
        }
    }

    #[test]
    fn a_busy_square_is_a_candidate_and_a_line_of_text_is_not() {
        let mut img = GrayImage::from_pixel(400, 300, image::Luma([255]));
        // A checkerboard of 2 px cells, 96 px square: QR-like.
        for y in 40..136 {
            for x in 60..156 {
                if (x / 2 + y / 2) % 2 == 0 {
                    img.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        // A long thin band: a line of text.
        for y in 200..216 {
            for x in 20..380 {
                if (x / 2 + y / 2) % 2 == 0 {
                    img.put_pixel(x, y, image::Luma([0]));
                }
            }
        }
        let found = candidates(&img, 8);
        assert_eq!(found.len(), 1, "{found:?}");
        let (x, y, w, h) = found[0];
        assert!(
            x <= 60 && y <= 40 && x + w >= 152 && y + h >= 128,
            "{found:?}"
        );
    }
}

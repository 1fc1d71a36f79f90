//! Reads the server's CAPTCHA the way a script would: dark pixels, eroded
//! so one-pixel lines and dots vanish; every glyph of the font is tried at
//! every place, and the five best non-overlapping matches, left to right,
//! are the answer. The tests use it to get through the recovery page; that
//! it works at all is why the threat model calls the CAPTCHA a speed bump.

/// Reads the characters in `png`, drawn with `font` (character, 5×7 rows
/// with bit 4 the left column) at `cell` pixels per font cell; `count`
/// characters are expected.
pub fn solve(png: &[u8], font: &[(char, [u8; 7])], cell: u32, count: usize) -> String {
    let img = image::load_from_memory(png)
        .expect("the CAPTCHA is an image")
        .to_luma8();
    let (w, h) = img.dimensions();
    let dark = |x: u32, y: u32| img.get_pixel(x, y).0[0] < 128;
    let mut core = vec![false; (w * h) as usize];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            core[(y * w + x) as usize] =
                (y - 1..=y + 1).all(|yy| (x - 1..=x + 1).all(|xx| dark(xx, yy)));
        }
    }
    let at = |x: u32, y: u32| x < w && y < h && core[(y * w + x) as usize];
    // Ink at a cell whose top-left pixel is (x, y): its middle 2×2, where
    // an eroded glyph cell always keeps pixels and a line never reaches.
    let mut inked = vec![false; (w * h) as usize];
    for y in 0..h {
        for x in 0..w {
            inked[(y * w + x) as usize] = [(1, 1), (2, 1), (1, 2), (2, 2)]
                .iter()
                .filter(|(dx, dy)| at(x + dx, y + dy))
                .count()
                >= 2;
        }
    }
    let ink = |x: u32, y: u32| x < w && y < h && inked[(y * w + x) as usize];
    let (gw, gh) = (5 * cell, 7 * cell);
    // The best (score, character) for a glyph box starting at each x.
    let mut best_at: Vec<(i32, char)> = Vec::new();
    for x in 0..w.saturating_sub(gw) {
        let mut best = (i32::MIN, '?');
        for y in 0..h.saturating_sub(gh) {
            for (c, rows) in font {
                let mut score = 0;
                for (r, bits) in rows.iter().enumerate() {
                    for col in 0..5u32 {
                        let want = bits & (0b10000 >> col) != 0;
                        let got = ink(x + col * cell, y + r as u32 * cell);
                        score += if want == got { 1 } else { -1 };
                    }
                }
                if score > best.0 {
                    best = (score, *c);
                }
            }
        }
        best_at.push(best);
    }
    // The best places, no two closer than a glyph's width.
    let mut taken: Vec<(u32, char)> = Vec::new();
    while taken.len() < count {
        let pick = best_at
            .iter()
            .enumerate()
            .filter(|(x, _)| {
                taken
                    .iter()
                    .all(|(t, _)| (*x as i64 - *t as i64).unsigned_abs() >= u64::from(gw))
            })
            .max_by_key(|(_, (score, _))| *score);
        match pick {
            Some((x, (_, c))) => taken.push((x as u32, *c)),
            None => break,
        }
    }
    taken.sort_unstable();
    taken.into_iter().map(|(_, c)| c).collect()
}

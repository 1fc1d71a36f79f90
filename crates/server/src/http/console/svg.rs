//! Small plots drawn on the server as inline SVG: no script, no external
//! asset, readable by screen readers through their title.

use maud::{html, Markup};

const W: u32 = 600;
const H: u32 = 160;
const AXIS: u32 = 20;

/// A bar per value, left to right, scaled to the largest.
pub fn bars(values: &[u32], title: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let n = values.len().max(1) as u32;
    let slot = (W - AXIS) / n;
    html! {
        svg.plot xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) ": most " (max) " in a minute" }
            line x1=(AXIS) y1=(H - AXIS) x2=(W) y2=(H - AXIS) stroke="currentColor" {}
            text x="0" y="12" font-size="11" fill="currentColor" { (max) }
            text x="0" y=(H - AXIS) font-size="11" fill="currentColor" { "0" }
            @for (i, v) in values.iter().enumerate() {
                @let h = (H - 2 * AXIS) * v / max;
                rect x=(AXIS + i as u32 * slot) y=(H - AXIS - h) width=(slot.saturating_sub(1).max(1)) height=(h) fill="currentColor" opacity="0.7" {}
            }
            text x=(AXIS) y=(H - 4) font-size="11" fill="currentColor" { "−60 min" }
            text x=(W - 30) y=(H - 4) font-size="11" fill="currentColor" { "now" }
        }
    }
}

/// Upper bounds (ms) of the latency histogram's buckets; the last is open.
const BUCKETS: [u64; 9] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000];

/// How many of `values` fall in each bucket (the last counts the rest).
pub fn buckets(values: &[u64]) -> [u32; 10] {
    let mut counts = [0u32; 10];
    for v in values {
        let i = BUCKETS.iter().position(|b| v < b).unwrap_or(BUCKETS.len());
        counts[i] += 1;
    }
    counts
}

/// A histogram of millisecond values in fixed, widening buckets.
pub fn histogram(values: &[u64], title: &str) -> Markup {
    let counts = buckets(values);
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let slot = (W - AXIS) / counts.len() as u32;
    let label = |i: usize| match i {
        0 => format!("<{}", BUCKETS[0]),
        i if i == BUCKETS.len() => format!("≥{}", BUCKETS[i - 1]),
        i => format!("{}–{}", BUCKETS[i - 1], BUCKETS[i]),
    };
    html! {
        svg.plot xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {W} {H}")) role="img" aria-label=(title) {
            title { (title) ": " (values.len()) " deliveries" }
            line x1=(AXIS) y1=(H - AXIS) x2=(W) y2=(H - AXIS) stroke="currentColor" {}
            @for (i, c) in counts.iter().enumerate() {
                @let h = (H - 2 * AXIS) * c / max;
                @let x = AXIS + i as u32 * slot;
                rect x=(x) y=(H - AXIS - h) width=(slot - 4) height=(h) fill="currentColor" opacity="0.7" {}
                @if *c > 0 { text x=(x) y=(H - AXIS - h - 3) font-size="11" fill="currentColor" { (c) } }
                text x=(x) y=(H - 4) font-size="10" fill="currentColor" { (label(i)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets() {
        let c = buckets(&[0, 9, 10, 99, 100, 4999, 5000, 60_000]);
        assert_eq!(c, [2, 1, 0, 1, 1, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn plots_are_svg_with_a_title_and_a_bar_per_value() {
        let s = bars(&[0, 3, 1], "Per minute").into_string();
        assert!(
            s.starts_with("<svg") && s.contains("<title>Per minute: most 3 in a minute</title>")
        );
        assert_eq!(s.matches("<rect").count(), 3);
        let h = histogram(&[5, 700], "Latency").into_string();
        assert_eq!(h.matches("<rect").count(), 10);
        assert!(h.contains("2 deliveries"));
    }
}

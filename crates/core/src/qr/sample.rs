//! Reads a located grid again from the grey image instead of the detector's
//! one-pixel-per-module binarisation. Averaging each module's centre and
//! thresholding against its neighbourhood recovers codes whose modules are
//! blurred, noisy or only 1.5 px wide.

use image::GrayImage;
use rqrr::{Point, SimpleGrid};

/// A plane projective map from the unit square onto a quadrilateral.
#[derive(Debug, Clone, Copy)]
struct Homography([f64; 8]);

impl Homography {
    /// Maps (0,0), (1,0), (1,1), (0,1) onto the quad's corners in order.
    fn square_to_quad(q: [(f64, f64); 4]) -> Option<Self> {
        let [(x0, y0), (x1, y1), (x2, y2), (x3, y3)] = q;
        let (dx1, dx2, dx3) = (x1 - x2, x3 - x2, x0 - x1 + x2 - x3);
        let (dy1, dy2, dy3) = (y1 - y2, y3 - y2, y0 - y1 + y2 - y3);
        let det = dx1 * dy2 - dx2 * dy1;
        if det.abs() < 1e-9 {
            return None;
        }
        let g = (dx3 * dy2 - dx2 * dy3) / det;
        let h = (dx1 * dy3 - dx3 * dy1) / det;
        Some(Self([
            x1 - x0 + g * x1,
            x3 - x0 + h * x3,
            x0,
            y1 - y0 + g * y1,
            y3 - y0 + h * y3,
            y0,
            g,
            h,
        ]))
    }

    fn map(&self, u: f64, v: f64) -> (f64, f64) {
        let [a, b, c, d, e, f, g, h] = self.0;
        let w = g * u + h * v + 1.0;
        ((a * u + b * v + c) / w, (d * u + e * v + f) / w)
    }
}

/// Bilinear interpolation; points off the image read as white.
fn bilinear(img: &GrayImage, x: f64, y: f64) -> f64 {
    let (w, h) = (img.width() as f64, img.height() as f64);
    if !(0.0..w - 1.0).contains(&x) || !(0.0..h - 1.0).contains(&y) {
        return 255.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let px = |dx: u32, dy: u32| f64::from(img.get_pixel(x0 as u32 + dx, y0 as u32 + dy).0[0]);
    let top = px(0, 0) * (1.0 - fx) + px(1, 0) * fx;
    let bottom = px(0, 1) * (1.0 - fx) + px(1, 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Module-centre intensities of a `size`×`size` grid whose outer corners
/// (grid coordinates 0 and `size + 1`, as the detector reports them) are
/// `bounds`.
pub fn module_intensities(img: &GrayImage, bounds: &[Point; 4], size: usize) -> Option<Vec<f64>> {
    let quad = bounds.map(|p| (f64::from(p.x), f64::from(p.y)));
    let map = Homography::square_to_quad(quad)?;
    let span = size as f64 + 1.0;
    // Five taps per module: the centre and four points a fifth of a module away.
    const TAPS: [(f64, f64); 5] = [(0.0, 0.0), (0.2, 0.0), (-0.2, 0.0), (0.0, 0.2), (0.0, -0.2)];
    let mut out = Vec::with_capacity(size * size);
    for gy in 0..size {
        for gx in 0..size {
            let sum: f64 = TAPS
                .iter()
                .map(|(du, dv)| {
                    let u = (gx as f64 + 0.5 + du) / span;
                    let v = (gy as f64 + 0.5 + dv) / span;
                    let (x, y) = map.map(u, v);
                    bilinear(img, x, y)
                })
                .sum();
            out.push(sum / TAPS.len() as f64);
        }
    }
    Some(out)
}

/// Thresholds module intensities at the midpoint of the two brightness
/// clusters (two-means), for evenly lit codes.
pub fn global_grid(values: &[f64], size: usize) -> SimpleGrid {
    let mut t = values.iter().sum::<f64>() / values.len().max(1) as f64;
    for _ in 0..8 {
        let (mut dark, mut nd, mut light, mut nl) = (0.0, 0usize, 0.0, 0usize);
        for &v in values {
            if v < t {
                dark += v;
                nd += 1;
            } else {
                light += v;
                nl += 1;
            }
        }
        if nd == 0 || nl == 0 {
            break;
        }
        t = (dark / nd as f64 + light / nl as f64) / 2.0;
    }
    SimpleGrid::from_func(size, |x, y| values[y * size + x] < t)
}

/// Thresholds each module against the mean of the modules around it, for
/// codes under a lighting gradient or blurred into their neighbours.
pub fn local_grid(values: &[f64], size: usize, radius: usize) -> SimpleGrid {
    SimpleGrid::from_func(size, |x, y| {
        let (x0, x1) = (x.saturating_sub(radius), (x + radius + 1).min(size));
        let (y0, y1) = (y.saturating_sub(radius), (y + radius + 1).min(size));
        let mut sum = 0.0;
        for yy in y0..y1 {
            sum += values[yy * size + x0..yy * size + x1].iter().sum::<f64>();
        }
        let mean = sum / ((x1 - x0) * (y1 - y0)) as f64;
        values[y * size + x] < mean
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homography_maps_corners() {
        let quad = [(10.0, 20.0), (110.0, 25.0), (105.0, 130.0), (5.0, 120.0)];
        let h = Homography::square_to_quad(quad).expect("non-degenerate quad");
        for ((u, v), (x, y)) in [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]
            .iter()
            .zip(quad)
        {
            let (mx, my) = h.map(*u, *v);
            assert!(
                (mx - x).abs() < 1e-6 && (my - y).abs() < 1e-6,
                "{mx},{my} vs {x},{y}"
            );
        }
    }

    #[test]
    fn degenerate_quad_is_refused() {
        let line = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
        assert!(Homography::square_to_quad(line).is_none());
    }

    #[test]
    fn global_threshold_splits_two_levels() {
        let values = vec![40.0, 200.0, 60.0, 220.0];
        let grid = global_grid(&values, 2);
        use rqrr::BitGrid;
        assert!(grid.bit(0, 0) && !grid.bit(0, 1) && grid.bit(1, 0) && !grid.bit(1, 1));
    }
}

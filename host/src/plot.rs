//! A small PNG line plot (loss against learning rate, log-scaled x) for `lthost lr-find`:
//! axes, decade ticks with labels, the curve, and a red dot at the suggestion. Drawn into
//! an RGB buffer with a built-in 3x5 pixel font and encoded as PNG (zlib via flate2).

use std::io::Write as _;

use anyhow::Result;

const W: usize = 720;
const H: usize = 480;
const LEFT: usize = 80;
const RIGHT: usize = 24;
const TOP: usize = 40;
const BOTTOM: usize = 56;

struct Canvas {
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn new() -> Self {
        Canvas { px: vec![[255, 255, 255]; W * H] }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < W && (y as usize) < H {
            self.px[y as usize * W + x as usize] = c;
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for ox in 0..thick {
                for oy in 0..thick {
                    self.set(x + ox, y + oy, c);
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    fn dot(&mut self, cx: i64, cy: i64, r: i64, c: [u8; 3]) {
        for y in -r..=r {
            for x in -r..=r {
                if x * x + y * y <= r * r {
                    self.set(cx + x, cy + y, c);
                }
            }
        }
    }

    /// Text in the 3x5 font, scaled; returns the width drawn.
    fn text(&mut self, x: i64, y: i64, s: &str, scale: i64) -> i64 {
        let mut cx = x;
        for ch in s.chars() {
            let rows = glyph(ch.to_ascii_uppercase());
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        for oy in 0..scale {
                            for ox in 0..scale {
                                self.set(cx + col * scale + ox, y + r as i64 * scale + oy, [0, 0, 0]);
                            }
                        }
                    }
                }
            }
            cx += 4 * scale;
        }
        cx - x
    }

    fn png(&self) -> Result<Vec<u8>> {
        let mut raw = Vec::with_capacity(H * (W * 3 + 1));
        for row in self.px.chunks(W) {
            raw.push(0);
            raw.extend(row.iter().flatten());
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw)?;
        let idat = z.finish()?;
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend((W as u32).to_be_bytes());
        ihdr.extend((H as u32).to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        for (kind, data) in [(b"IHDR", &ihdr[..]), (b"IDAT", &idat[..]), (b"IEND", &[][..])] {
            out.extend((data.len() as u32).to_be_bytes());
            let mut h = crc32fast::Hasher::new();
            h.update(kind);
            h.update(data);
            out.extend(kind);
            out.extend(data);
            out.extend(h.finalize().to_be_bytes());
        }
        Ok(out)
    }
}

fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '=' => [0, 7, 0, 7, 0],
        'A' => [2, 5, 7, 5, 5],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'G' => [7, 4, 5, 5, 7],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'N' => [5, 7, 7, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        _ => [0; 5],
    }
}

/// `1E-3`, `0.25`, `12.5`: short labels for ticks.
fn label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1e4 || v.abs() < 1e-2 {
        let e = v.abs().log10().floor() as i32;
        let m = v / 10f64.powi(e);
        if (m - m.round()).abs() < 1e-9 {
            format!("{}E{e}", m.round())
        } else {
            format!("{m:.1}E{e}")
        }
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Loss against learning rate (x log-scaled when `log_x`), with the suggestion marked.
pub fn lr_plot(lrs: &[f64], losses: &[f64], log_x: bool, suggested: Option<usize>) -> Result<Vec<u8>> {
    let mut c = Canvas::new();
    let pts: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(l, v)| l.is_finite() && **l > 0.0 && v.is_finite())
        .map(|(l, v)| (*l, *v))
        .collect();
    let fx = |l: f64| if log_x { l.log10() } else { l };
    let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(fx(p.0)), b.max(fx(p.0))));
    let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 > y0 { y1 } else { y0 + 1.0 });
    let (pw, ph) = ((W - LEFT - RIGHT) as f64, (H - TOP - BOTTOM) as f64);
    let to_px = |l: f64, v: f64| {
        ((LEFT as f64 + (fx(l) - x0) / (x1 - x0) * pw) as i64, ((TOP as f64) + (y1 - v) / (y1 - y0) * ph) as i64)
    };
    let black = [0, 0, 0];
    let (bl, br, tb) =
        ((LEFT as i64, (H - BOTTOM) as i64), ((W - RIGHT) as i64, (H - BOTTOM) as i64), (LEFT as i64, TOP as i64));
    c.line(bl, br, black, 1);
    c.line(bl, tb, black, 1);
    if pts.is_empty() {
        c.text(LEFT as i64 + 20, TOP as i64 + 20, "NO LOSSES", 3);
        return c.png();
    }
    // x ticks: each decade (log) or five even steps (linear).
    let ticks: Vec<f64> = if log_x {
        (x0.ceil() as i64..=x1.floor() as i64).map(|e| 10f64.powi(e as i32)).collect()
    } else {
        (0..=4).map(|i| x0 + (x1 - x0) * i as f64 / 4.0).collect()
    };
    for t in ticks {
        let (x, _) = to_px(t, y0);
        c.line((x, bl.1), (x, bl.1 + 6), black, 1);
        let s = label(t);
        c.text(x - (s.len() as i64 * 8) / 2, bl.1 + 12, &s, 2);
    }
    for i in 0..=4 {
        let v = y0 + (y1 - y0) * i as f64 / 4.0;
        let (_, y) = to_px(pts[0].0, v);
        c.line((LEFT as i64 - 6, y), (LEFT as i64, y), black, 1);
        let s = label(v);
        c.text(LEFT as i64 - 10 - s.len() as i64 * 8, y - 5, &s, 2);
    }
    c.text(W as i64 / 2 - 52, H as i64 - 20, "LEARNING RATE", 2);
    c.text(8, 8, "LOSS", 2);
    for w in pts.windows(2) {
        c.line(to_px(w[0].0, w[0].1), to_px(w[1].0, w[1].1), [31, 119, 180], 2);
    }
    if let Some(i) = suggested.filter(|&i| i < lrs.len() && i < losses.len() && losses[i].is_finite()) {
        let (x, y) = to_px(lrs[i], losses[i]);
        c.dot(x, y, 6, [214, 39, 40]);
        c.text(W as i64 - 300, 8, &format!("SUGGESTED LR = {}", label(lrs[i])), 2);
    }
    c.png()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_that_decodes_to_its_size() {
        let lrs: Vec<f64> = (0..50).map(|i| 1e-6 * 1.3f64.powi(i)).collect();
        let losses: Vec<f64> = (0..50).map(|i| 2.0 - i as f64 * 0.02).collect();
        let png = lr_plot(&lrs, &losses, true, Some(20)).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), W as u32);
        assert!(png.ends_with(&[0xAE, 0x42, 0x60, 0x82]), "IEND CRC");
        assert_eq!(label(0.001), "1E-3");
        assert_eq!(label(2.5), "2.5");
    }
}

//! The lr_find plot (`lthost lr-find`'s `lr_find.png`), as Lightning's `lr_finder.plot()`
//! draws it with matplotlib: loss against learning rate, x log-scaled for the exponential
//! mode, axis labels "Learning rate" and "Loss", the suggestion as a red dot. Drawn by
//! plotters into an RGB buffer (text through ab_glyph with DejaVu Sans embedded, so no
//! system font is needed) and encoded by png.

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const W: u32 = 720;
const H: u32 = 480;
/// DejaVu Sans (Bitstream Vera license, `host/assets/DejaVuSans.LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const BLUE: RGBColor = RGBColor(31, 119, 180);
const RED: RGBColor = RGBColor(214, 39, 40);

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The embedded font is known to parse (the plot test draws with it).
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Loss against learning rate (x log-scaled when `log_x`), with the suggestion marked.
pub fn lr_plot(lrs: &[f64], losses: &[f64], log_x: bool, suggested: Option<usize>) -> Result<Vec<u8>> {
    register_font();
    let pts: Vec<(f64, f64)> = lrs
        .iter()
        .zip(losses)
        .filter(|(l, v)| l.is_finite() && **l > 0.0 && v.is_finite())
        .map(|(l, v)| (*l, *v))
        .collect();
    let mut buf = vec![255u8; (W * H * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
        let failed = |e: &dyn std::fmt::Display| anyhow!("drawing the lr_find plot: {e}");
        let (x0, x1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let (y0, y1) = pts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let (x0, x1) = if pts.is_empty() {
            (1e-8, 1.0)
        } else if x1 > x0 {
            (x0, x1)
        } else {
            (x0 * 0.5, x0 * 2.0)
        };
        let pad = if y1 > y0 { (y1 - y0) * 0.05 } else { 1.0 };
        let (y0, y1) = if pts.is_empty() { (0.0, 1.0) } else { (y0 - pad, y1 + pad) };
        let caption = match suggested.filter(|&i| i < lrs.len()) {
            Some(i) => format!("suggested lr = {:.3e}", lrs[i]),
            None => "no suggestion".to_string(),
        };
        let mut builder = ChartBuilder::on(&root);
        builder.caption(caption, ("sans-serif", 18)).margin(12).x_label_area_size(44).y_label_area_size(64);
        // The suggestion, drawn last over the curve.
        let dot = suggested
            .filter(|&i| i < lrs.len() && i < losses.len() && losses[i].is_finite() && lrs[i] > 0.0)
            .map(|i| (lrs[i], losses[i]));
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc("Learning rate")
                    .y_desc("Loss")
                    .label_style(("sans-serif", 13))
                    .axis_desc_style(("sans-serif", 15))
                    .x_label_formatter(&|v| format!("{v:.0e}"))
                    .draw()
                    .map_err(|e| failed(&e))?;
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), BLUE.stroke_width(2)))
                    .map_err(|e| failed(&e))?;
                if let Some(p) = dot {
                    chart.draw_series(std::iter::once(Circle::new(p, 6, RED.filled()))).map_err(|e| failed(&e))?;
                }
            }};
        }
        if log_x {
            draw!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(|e| failed(&e))?);
        } else {
            draw!(builder.build_cartesian_2d(x0..x1, y0..y1).map_err(|e| failed(&e))?);
        }
        root.present().map_err(|e| failed(&e))?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, W, H);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| anyhow!("encoding lr_find.png: {e}"))?;
    w.write_image_data(&buf).map_err(|e| anyhow!("encoding lr_find.png: {e}"))?;
    w.finish().map_err(|e| anyhow!("encoding lr_find.png: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_that_decodes_to_its_size_with_the_curve_and_text() {
        let lrs: Vec<f64> = (0..50).map(|i| 1e-6 * 1.3f64.powi(i)).collect();
        let losses: Vec<f64> = (0..50).map(|i| 2.0 - i as f64 * 0.02).collect();
        for log_x in [true, false] {
            let bytes = lr_plot(&lrs, &losses, log_x, Some(20)).unwrap();
            let mut dec = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().unwrap();
            let mut img = vec![0; dec.output_buffer_size().unwrap()];
            let info = dec.next_frame(&mut img).unwrap();
            assert_eq!((info.width, info.height), (W, H));
            let count = |c: [u8; 3]| img.chunks(3).filter(|p| *p == c).count();
            assert!(count([31, 119, 180]) > 200, "the curve");
            assert!(count([214, 39, 40]) > 50, "the suggestion");
            // Text: dark anti-aliased glyph pixels beyond the axes' lines.
            assert!(img.chunks(3).filter(|p| p[0] < 128 && p[0] == p[1] && p[1] == p[2]).count() > 2000, "labels");
        }
        assert!(lr_plot(&[], &[], true, None).is_ok());
    }
}

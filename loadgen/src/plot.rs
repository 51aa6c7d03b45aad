//! The latency-by-percentile plot (SVG), drawn the way HdrHistogram's plotter
//! draws it: the x axis is `1/(1-percentile)` on a log scale, so 90%, 99%,
//! 99.9% … sit at equal distances and the tail gets the room it deserves.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// The deepest percentile shown: 99.9999%.
const MAX_NINES: f64 = 6.0;

/// Points (log10(1/(1-q)), milliseconds) of a histogram of microseconds.
fn points(hist: &Histogram<u64>) -> Vec<(f64, f64)> {
    hist.iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            let nines = (1.0 / (1.0 - v.quantile_iterated_to())).log10();
            (nines.min(MAX_NINES), v.value_iterated_to() as f64 / 1000.0)
        })
        .collect()
}

/// The percentile at `nines` (0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%, …).
fn percentile_label(nines: f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-nines));
    let digits = (nines - 2.0).ceil().max(0.0) as usize;
    format!("{p:.digits$}%")
}

/// Draws the given histograms (µs) into an SVG file.
pub fn write_svg(
    path: &Path,
    title: &str,
    series: &[(&str, &Histogram<u64>)],
) -> anyhow::Result<()> {
    let curves: Vec<(&str, Vec<(f64, f64)>)> =
        series.iter().map(|(name, h)| (*name, points(h))).collect();
    let x_max = curves
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.0))
        .fold(2.0f64, f64::max)
        .ceil();
    let y_max = series
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.001f64, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_labels(x_max as usize + 1)
        .x_label_formatter(&|x| percentile_label(*x))
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn percentile_labels_read_as_nines() {
        assert_eq!(percentile_label(0.0), "0%");
        assert_eq!(percentile_label(1.0), "90%");
        assert_eq!(percentile_label(2.0), "99%");
        assert_eq!(percentile_label(3.0), "99.9%");
        assert_eq!(percentile_label(5.0), "99.999%");
    }

    #[test]
    fn writes_an_svg_with_the_series() {
        let mut hist = new_histogram();
        for v in 1..=5000u64 {
            hist.record(v).unwrap();
        }
        let path = std::env::temp_dir().join(format!("loadgen-plot-{}.svg", std::process::id()));
        write_svg(&path, "test", &[("delivery", &hist)]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("delivery"));
        assert!(svg.contains("99.9%"));
        assert!(svg.contains("<polyline"));
    }
}

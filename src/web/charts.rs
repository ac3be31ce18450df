//! Server-side SVG charts: the miner page draws its history without any chart library, so it
//! works on a kiosk with no internet and costs the Pi nothing but a string.

use std::fmt::Write as _;

use maud::{html, Markup};

/// Maps `(x, y)` points onto a `w`×`h` box (y grows downwards in SVG) and returns an SVG path.
/// A `None` y is a gap: the line stops and starts again at the next value, so a miner that was
/// unplugged for an hour shows a hole rather than a straight line across it. A point alone
/// between gaps gets a tiny stroke (`l0.1,0`) so that, with round caps, it shows as a dot.
pub fn path(points: &[(f64, Option<f64>)], x: (f64, f64), y: (f64, f64), w: f64, h: f64) -> String {
    let span = |(lo, hi): (f64, f64)| if hi > lo { hi - lo } else { 1.0 };
    let (sx, sy) = (span(x), span(y));
    let mut d = String::with_capacity(points.len() * 14);
    // Points drawn in the current stretch of the line.
    let mut run = 0usize;
    for &(px, py) in points {
        let Some(py) = py.filter(|v| v.is_finite()) else {
            if run == 1 {
                d.push_str("l0.1,0");
            }
            run = 0;
            continue;
        };
        let cx = (px - x.0) / sx * w;
        let cy = h - (py - y.0) / sy * h;
        let _ = write!(d, "{}{:.1},{:.1}", if run > 0 { "L" } else { "M" }, cx, cy);
        run += 1;
    }
    if run == 1 {
        d.push_str("l0.1,0");
    }
    d
}

/// Lowest and highest finite value, padded so a flat line sits mid-chart; `floor_zero`
/// starts the axis at 0 (hashrate, shares), otherwise it hugs the data (temperature).
pub fn y_bounds(values: impl Iterator<Item = f64>, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if floor_zero {
        lo = 0.0;
    }
    let pad = ((hi - lo) * 0.1).max(if hi.abs() > 0.0 { hi.abs() * 0.05 } else { 1.0 });
    (if floor_zero { 0.0 } else { lo - pad }, hi + pad)
}

/// Width and height of the drawing area in SVG units (the element itself scales to its box).
const W: f64 = 600.0;
const H: f64 = 160.0;

/// One chart: title, y-axis extremes, a line, and `x_ends` under its left and right ends.
/// `label` formats axis values.
pub fn line_chart(
    title: &str,
    points: &[(f64, Option<f64>)],
    x: (f64, f64),
    x_ends: (&str, &str),
    floor_zero: bool,
    label: impl Fn(f64) -> String,
) -> Markup {
    let y = y_bounds(points.iter().filter_map(|p| p.1), floor_zero);
    let d = path(points, x, y, W, H);
    html! {
        figure.chart {
            figcaption { (title) }
            @if d.is_empty() {
                p.empty { "No data in this range." }
            } @else {
                svg viewBox={ "0 0 " (W) " " (H) } preserveAspectRatio="none" role="img" aria-label=(title) {
                    line.grid x1="0" y1="0" x2=(W) y2="0" {}
                    line.grid x1="0" y1=(H / 2.0) x2=(W) y2=(H / 2.0) {}
                    line.grid x1="0" y1=(H) x2=(W) y2=(H) {}
                    path.line d=(d) vector-effect="non-scaling-stroke" {}
                }
                div.axis { span { (label(y.1)) } span { (label((y.0 + y.1) / 2.0)) } span { (label(y.0)) } }
                div.xaxis { span { (x_ends.0) } span { (x_ends.1) } }
            }
        }
    }
}

/// A tiny hashrate line for the dashboard (no axes): values oldest first, scaled to their own
/// range (not from zero), so the wobble of a steady miner is visible.
pub fn sparkline(values: &[f64]) -> Markup {
    // One minute of data is a flat line across, not an invisible point.
    let values = if values.len() == 1 {
        &[values[0], values[0]][..]
    } else {
        values
    };
    let points: Vec<(f64, Option<f64>)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64, Some(*v)))
        .collect();
    let x = (0.0, values.len().saturating_sub(1) as f64);
    let d = path(
        &points,
        x,
        y_bounds(values.iter().copied(), false),
        100.0,
        24.0,
    );
    html! {
        svg.spark viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true" {
            path d=(d) vector-effect="non-scaling-stroke" {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_scales_and_flips() {
        let d = path(
            &[(0.0, Some(0.0)), (5.0, Some(10.0)), (10.0, Some(5.0))],
            (0.0, 10.0),
            (0.0, 10.0),
            100.0,
            50.0,
        );
        assert_eq!(d, "M0.0,50.0L50.0,0.0L100.0,25.0");
    }

    #[test]
    fn gaps_lift_the_pen() {
        let d = path(
            &[
                (0.0, Some(1.0)),
                (1.0, None),
                (2.0, Some(1.0)),
                (3.0, Some(f64::NAN)),
            ],
            (0.0, 2.0),
            (0.0, 2.0),
            2.0,
            2.0,
        );
        assert_eq!(d, "M0.0,1.0l0.1,0M2.0,1.0l0.1,0");
        assert_eq!(path(&[], (0.0, 1.0), (0.0, 1.0), 1.0, 1.0), "");
    }

    #[test]
    fn degenerate_ranges_do_not_divide_by_zero() {
        let d = path(&[(3.0, Some(7.0))], (3.0, 3.0), (7.0, 7.0), 10.0, 10.0);
        assert_eq!(d, "M0.0,10.0l0.1,0");
        assert_eq!(y_bounds(std::iter::empty(), true), (0.0, 1.0));
        let (lo, hi) = y_bounds([40.0, 50.0].into_iter(), false);
        assert!(lo < 40.0 && hi > 50.0);
        assert_eq!(y_bounds([5.0].into_iter(), true).0, 0.0);
    }

    #[test]
    fn charts_render_svg_or_a_note() {
        let chart = line_chart(
            "Hashrate",
            &[(0.0, Some(1.0)), (1.0, Some(2.0))],
            (0.0, 1.0),
            ("1 h ago", "now"),
            true,
            |v| format!("{v:.0}"),
        );
        assert!(chart.into_string().contains("<path class=\"line\" d=\"M"));
        let empty = line_chart("Hashrate", &[], (0.0, 1.0), ("", ""), true, |v| {
            format!("{v}")
        });
        assert!(empty.into_string().contains("No data"));
        assert!(sparkline(&[1.0, 2.0]).into_string().contains("<svg"));
        // Scaled to the data: the low point is near the bottom, not at half height.
        let s = sparkline(&[100.0, 110.0]).into_string();
        let low_y: f64 = s
            .split("M0.0,")
            .nth(1)
            .and_then(|r| r.split('L').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(low_y > 15.0, "{s}");
    }
}

//! Line plots drawn on the server as inline SVG: no script, no library, readable without
//! JavaScript, scaled by the browser to any width (a `viewBox`), and described for screen
//! readers (a title and a legend in HTML; the numbers themselves are in the tables beside).

use std::collections::BTreeMap;
use std::fmt::Write;

use maud::{Markup, PreEscaped, html};

/// Colours of the series, in order (distinguishable with the common colour-vision
/// deficiencies: the Okabe-Ito palette). The legend's swatches are `.swatch.c0`..`.c7` in
/// console.css, with the same colours.
const PALETTE: [&str; 8] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
];

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 26.0;

/// A plot of named series over the last `span` seconds: x is seconds relative to now
/// (negative), y starts at 0. `unit` labels the y axis ("webhooks/s", "events").
pub fn lines(
    id: &str,
    title: &str,
    unit: &str,
    span: f64,
    series: &BTreeMap<String, Vec<(f64, f64)>>,
) -> Markup {
    let max = series
        .values()
        .flatten()
        .filter(|(t, _)| *t >= -span)
        .map(|(_, y)| *y)
        .fold(0.0_f64, f64::max);
    let top = nice_ceiling(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: f64| LEFT + plot_w * ((t + span) / span).clamp(0.0, 1.0);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / top).clamp(0.0, 1.0));

    let mut svg = String::new();
    // Grid and y labels: 0, 1/4 .. top.
    for step in 0..=4 {
        let value = top * f64::from(step) / 4.0;
        let py = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{py:.1}" y2="{py:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            label(value)
        );
    }
    // x labels every quarter of the span.
    for step in 0..=4 {
        let t = -span + span * f64::from(step) / 4.0;
        let text = if step == 4 {
            "now".to_owned()
        } else {
            format!("−{} min", (-t / 60.0).round())
        };
        let anchor = match step {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" class="tick" text-anchor="{anchor}">{text}</text>"##,
            x(t),
            HEIGHT - 6.0
        );
    }
    for (index, (_, points)) in series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let visible: Vec<String> = points
            .iter()
            .filter(|(t, _)| *t >= -span)
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        if visible.len() == 1 {
            let (px, py) = visible[0].split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                svg,
                r##"<circle cx="{px}" cy="{py}" r="3" fill="{colour}"/>"##
            );
        } else if !visible.is_empty() {
            let _ = write!(
                svg,
                r##"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"##,
                visible.join(" ")
            );
        }
    }
    let title_id = format!("{id}-title");
    html! {
        figure class="plot" {
            svg id=(id) viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="img"
                aria-labelledby=(title_id) {
                title id=(title_id) { (title) " (" (unit) ", last " (span / 60.0) " minutes)" }
                (PreEscaped(svg))
            }
            figcaption {
                (title) " — " (unit)
                @if series.is_empty() {
                    " (no data yet)"
                }
                ul class="legend" {
                    @for (index, (name, points)) in series.iter().enumerate() {
                        li {
                            span class={"swatch c" (index % PALETTE.len())} {}
                            (display_name(name)) ": now " (label(points.last().map_or(0.0, |p| p.1)))
                        }
                    }
                }
            }
        }
    }
}

/// A source or consumer name for people ("" is requests to unknown sources).
pub fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "(unknown source)"
    } else {
        name
    }
}

/// The smallest of 1, 2, 5 × 10^n at or above `max` (at least 1).
fn nice_ceiling(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for factor in [1.0, 2.0, 5.0, 10.0] {
        if factor * magnitude >= max {
            return factor * magnitude;
        }
    }
    10.0 * magnitude
}

/// A number for an axis or legend: whole when it is, else two decimals.
fn label(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(1.5), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(42.0), 50.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(label(2.0), "2");
        assert_eq!(label(0.25), "0.25");
    }

    #[test]
    fn series_become_polylines_within_the_span() {
        let series = BTreeMap::from([(
            "arcadia".to_owned(),
            vec![(-7200.0, 9.0), (-3600.0, 0.0), (0.0, 2.0)],
        )]);
        let svg = lines("p", "Webhooks", "webhooks/s", 3600.0, &series).into_string();
        // The point two hours ago is left out; 2.0 is the top of the axis.
        assert!(
            svg.contains(
                r##"<polyline points="56.0,194.0 708.0,10.0" fill="none" stroke="#0072b2""##
            ),
            "{svg}"
        );
        assert!(svg.contains("arcadia: now 2"), "{svg}");
    }
}

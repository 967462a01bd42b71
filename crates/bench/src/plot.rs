//! PNG plots of a run: throughput per scenario, latency percentiles, RSS over time.
//!
//! Drawn with plotters' bitmap backend and `ab_glyph` text, so no fontconfig is needed: the
//! labels use a TrueType file given with `--font` or found in the usual system locations.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::report::{Report, Scenario};

const FONT: &str = "sans-serif";
const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// Registers the label font. Without one, plots are skipped with a warning (unless a font
/// was asked for explicitly).
fn register_font(font: Option<&Path>) -> anyhow::Result<bool> {
    let path: Option<PathBuf> = match font {
        Some(path) => Some(path.to_path_buf()),
        None => FONT_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists()),
    };
    let Some(path) = path else {
        eprintln!("warning: no TrueType font found; pass --font FILE.ttf to draw the plots");
        return Ok(false);
    };
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    // Registered fonts live for the whole process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a usable TrueType font", path.display()))?;
    Ok(true)
}

/// Writes throughput.png, latency.png and rss.png into `out`.
pub fn all(report: &Report, out: &Path, font: Option<&Path>) -> anyhow::Result<()> {
    if !register_font(font)? {
        return Ok(());
    }
    let file = out.join("throughput.png");
    throughput(report, &file)?;
    eprintln!("wrote {}", file.display());
    let file = out.join("latency.png");
    latency(report, &file)?;
    eprintln!("wrote {}", file.display());
    let file = out.join("rss.png");
    rss(report, &file)?;
    eprintln!("wrote {}", file.display());
    Ok(())
}

fn throughput(report: &Report, file: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(file, (1200, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(450);
    bars(
        &top,
        "Accepted webhooks/s (higher is better)",
        &report.scenarios,
        |s| s.accepted_per_s,
        &BLUE,
    )?;
    let with_subscribers: Vec<Scenario> = report
        .scenarios
        .iter()
        .filter(|s| s.subscribers > 0)
        .cloned()
        .collect();
    bars(
        &bottom,
        "Events delivered/s, all subscribers together",
        &with_subscribers,
        |s| s.delivered_per_s,
        &GREEN,
    )?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Horizontal bars, one per scenario, first scenario on top.
fn bars(
    area: &Area<'_>,
    title: &str,
    scenarios: &[Scenario],
    value: impl Fn(&Scenario) -> f64,
    color: &RGBColor,
) -> anyhow::Result<()> {
    let count = scenarios.len().max(1);
    let max = scenarios.iter().map(&value).fold(1.0_f64, f64::max) * 1.2;
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let row = |i: usize| (count - 1 - i) as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(290)
        .build_cartesian_2d(0.0..max, (0..count as i32 - 1).into_segmented())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(count)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(r) => {
                let i = count as i32 - 1 - r;
                usize::try_from(i)
                    .ok()
                    .and_then(|i| names.get(i))
                    .cloned()
                    .unwrap_or_default()
            }
            _ => String::new(),
        })
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(scenarios.iter().enumerate().map(|(i, s)| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row(i))),
                    (value(s), SegmentValue::Exact(row(i) + 1)),
                ],
                color.mix(0.7).filled(),
            );
            bar.set_margin(6, 6, 0, 0);
            bar
        }))
        .map_err(plot_error)?;
    chart
        .draw_series(scenarios.iter().enumerate().map(|(i, s)| {
            Text::new(
                format!(" {:.0}", value(s)),
                (value(s), SegmentValue::CenterOf(row(i))),
                (FONT, 14),
            )
        }))
        .map_err(plot_error)?;
    Ok(())
}

fn latency(report: &Report, file: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(file, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(700);
    let fixed: Vec<&Scenario> = report
        .scenarios
        .iter()
        .filter(|s| s.rate.is_some())
        .collect();
    let max: Vec<&Scenario> = report
        .scenarios
        .iter()
        .filter(|s| s.rate.is_none())
        .collect();
    let mut rates: Vec<f64> = fixed.iter().filter_map(|s| s.rate).collect();
    rates.dedup();
    let rates: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    percentiles(
        &left,
        &format!(
            "Latency at a fixed {} webhooks/s (ms, log)",
            rates.join(" or ")
        ),
        &fixed,
    )?;
    percentiles(&right, "Latency at maximum rate (ms, log)", &max)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// One line per scenario over p50..max: end to end where there are subscribers, else HTTP.
fn percentiles(area: &Area<'_>, title: &str, scenarios: &[&Scenario]) -> anyhow::Result<()> {
    let series: Vec<(String, [(&str, f64); 5])> = scenarios
        .iter()
        .map(|s| match s.e2e_latency_ms {
            Some(e2e) => (format!("{} (e2e)", s.name), e2e.points()),
            None => (format!("{} (http)", s.name), s.http_latency_ms.points()),
        })
        .collect();
    let values = series.iter().flat_map(|(_, p)| p.iter().map(|(_, v)| *v));
    let high = values.clone().fold(1.0_f64, f64::max) * 2.0;
    let low = values.fold(f64::MAX, f64::min).clamp(0.001, 1.0) / 2.0;
    let labels = ["p50", "p90", "p99", "p99.9", "max"];
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((0..4).into_segmented(), (low..high).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| labels.get(i))
                .map(|l| (*l).to_owned())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| format!("{v}"))
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_error)?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        let line: Vec<(SegmentValue<i32>, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, (_, v))| (SegmentValue::CenterOf(i as i32), v.max(low)))
            .collect();
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn rss(report: &Report, file: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(file, (1000, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let with_samples: Vec<&Scenario> = report
        .scenarios
        .iter()
        .filter(|s| s.server != "noop" && !s.rss_mib.is_empty())
        .collect();
    let max_t = with_samples
        .iter()
        .flat_map(|s| s.rss_mib.iter().map(|(t, _)| *t))
        .fold(1.0_f64, f64::max);
    let max_rss = with_samples
        .iter()
        .flat_map(|s| s.rss_mib.iter().map(|(_, r)| *r))
        .fold(1.0_f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption("Server RSS during each scenario (MiB)", (FONT, 20))
        .margin(12)
        .x_label_area_size(35)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_t, 0.0..max_rss)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the load started")
        .label_style((FONT, 14))
        .draw()
        .map_err(plot_error)?;
    for (index, s) in with_samples.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(
                s.rss_mib.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(s.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

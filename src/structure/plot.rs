//! Figures of the structure statistics, drawn with plotters as PNG or SVG (by the
//! file extension): the similarity distributions of several corpora in the style of
//! the paper's Figure 3 with a table of their distances, and the bar-by-bar
//! self-similarity matrix of one song.

use super::similarity::{Distribution, DistributionDistance};
use crate::plot::{self, drawing, Figure, COLORS, FONT};
use anyhow::{bail, Result};
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;

/// Light grid lines and empty matrix cells.
const GRID: RGBColor = RGBColor(225, 225, 225);
/// The vertical rules at multiples of 4.
const RULE: RGBColor = RGBColor(200, 200, 200);

/// The interval axis 0.5..T+0.5, labelled at 1 and the multiples of 4.
struct IntervalAxis {
    t_max: usize,
}

impl Ranged for IntervalAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let r = self.range();
        let frac = (value - r.start) / (r.end - r.start);
        limit.0 + (frac * (limit.1 - limit.0) as f64).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, _hint: H) -> Vec<f64> {
        std::iter::once(1)
            .chain((4..=self.t_max).step_by(4))
            .map(|t| t as f64)
            .collect()
    }

    fn range(&self) -> Range<f64> {
        0.5..self.t_max as f64 + 0.5
    }
}

impl ValueFormatter<f64> for IntervalAxis {
    fn format(value: &f64) -> String {
        format!("{value:.0}")
    }
}

/// One corpus in the similarity figure.
pub struct Series<'a> {
    /// Name in the legend.
    pub name: &'a str,
    /// Its distribution.
    pub distribution: &'a Distribution,
    /// Intervals drawn dark in its bar panel (the bars `select-bars` would choose).
    pub highlight: &'a [usize],
    /// Intervals with pairs from fewer songs than this are drawn hollow.
    pub min_songs: u64,
}

/// One row of the distance table.
pub struct DistanceRow<'a> {
    /// First corpus.
    pub a: &'a str,
    /// Second corpus.
    pub b: &'a str,
    /// Their distance (`None`: no interval with pairs in both).
    pub distance: Option<&'a DistributionDistance>,
}

/// Height of the overlay panel, of each corpus panel and of a table row, in pixels.
const OVERLAY_H: u32 = 420;
const PANEL_H: u32 = 250;
const ROW_H: u32 = 24;
const WIDTH: u32 = 1200;

/// Draws the similarity figure: an overlay of every corpus' `L_t` (lines), one
/// bar panel per corpus as in the paper's Figure 3 (dark bars: `highlight`), and the
/// table of pairwise distances, into a PNG or SVG file.
pub fn similarity_figure(path: &Path, series: &[Series], distances: &[DistanceRow]) -> Result<()> {
    if series.is_empty() {
        bail!("no distribution to draw");
    }
    let table_h = 70 + ROW_H * distances.len().max(1) as u32;
    let height = 50 + OVERLAY_H + PANEL_H * series.len() as u32 + table_h;
    struct Similarity<'a>(&'a [Series<'a>], &'a [DistanceRow<'a>]);
    impl Figure for Similarity<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
            draw_similarity(root, self.0, self.1)
        }
    }
    plot::save(path, (WIDTH, height), &Similarity(series, distances))
}

fn draw_similarity<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    distances: &[DistanceRow],
) -> Result<()> {
    root.fill(&WHITE).map_err(drawing)?;
    let t_max = series[0].distribution.max_interval();
    let (title, rest) = root.split_vertically(50);
    title
        .draw(&Text::new(
            "Bar-similarity distribution: mean similarity L_t of bars t bars apart (Museformer Eq. 5, Figure 3)",
            (20, 15),
            (FONT, 22).into_font(),
        ))
        .map_err(drawing)?;
    let (overlay, rest) = rest.split_vertically(OVERLAY_H);
    // Headroom above the highest mean for the legend (about 22 px per corpus).
    let legend = (30.0 + 22.0 * series.len() as f64) / (OVERLAY_H as f64 - 90.0);
    let ymax = series
        .iter()
        .flat_map(|s| s.distribution.iter().filter_map(|(_, st)| st.mean()))
        .fold(0.05f64, f64::max)
        * 1.05
        / (1.0 - legend.min(0.6));

    let mut chart = ChartBuilder::on(&overlay)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .caption(
            "all corpora (grey lines at multiples of 4; hollow points: pairs from few songs)",
            (FONT, 18),
        )
        .build_cartesian_2d(IntervalAxis { t_max }, 0f64..ymax)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_max_light_lines(1)
        .light_line_style(GRID)
        .x_desc("interval t (bars)")
        .y_desc("L_t")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(drawing)?;
    for t in (4..=t_max).step_by(4) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t as f64, 0.0), (t as f64, ymax)],
                RULE.stroke_width(1),
            )))
            .map_err(drawing)?;
    }
    for (k, s) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let d = s.distribution;
        // One line per run of intervals with pairs (gaps stay gaps).
        let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
        for (t, st) in d.iter() {
            match st.mean() {
                Some(m) => runs.last_mut().expect("non-empty").push((t as f64, m)),
                None if !runs.last().expect("non-empty").is_empty() => runs.push(Vec::new()),
                None => {}
            }
        }
        for run in &runs {
            chart
                .draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))
                .map_err(drawing)?;
        }
        let label = if d.total_pairs() == 0 {
            format!("{} (no bar pairs)", s.name)
        } else {
            format!(
                "{} ({} songs, {} pairs)",
                s.name,
                d.counts.songs_used,
                d.total_pairs()
            )
        };
        let sparse = |t: usize| d.interval(t).is_some_and(|st| st.songs < s.min_songs);
        chart
            .draw_series(runs.concat().into_iter().map(|(t, m)| {
                let style = if sparse(t as usize) {
                    WHITE.filled()
                } else {
                    color.filled()
                };
                EmptyElement::at((t, m))
                    + Circle::new((0, 0), 4, style)
                    + Circle::new((0, 0), 4, color.stroke_width(1))
            }))
            .map_err(drawing)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 15))
        .draw()
        .map_err(drawing)?;

    let (panels, table) = rest.split_vertically(PANEL_H * series.len() as u32);
    for (k, (s, area)) in series
        .iter()
        .zip(panels.split_evenly((series.len(), 1)))
        .enumerate()
    {
        let color = COLORS[k % COLORS.len()];
        let caption = format!(
            "{}: dark: the {} highest L_t (stats select-bars); hollow: pairs from fewer than {} songs",
            s.name,
            s.highlight.len(),
            s.min_songs
        );
        // Each panel on its own scale, to read its shape; the overlay compares levels.
        let panel_max = s
            .distribution
            .iter()
            .filter_map(|(_, st)| st.mean())
            .fold(0.05f64, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(&area)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(60)
            .caption(caption, (FONT, 16))
            .build_cartesian_2d(IntervalAxis { t_max }, 0f64..panel_max)
            .map_err(drawing)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_max_light_lines(1)
            .light_line_style(GRID)
            .y_desc("L_t")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()
            .map_err(drawing)?;
        chart
            .draw_series(s.distribution.iter().filter_map(|(t, st)| {
                let m = st.mean()?;
                let style = if st.songs < s.min_songs {
                    color.stroke_width(1)
                } else if s.highlight.contains(&t) {
                    color.filled()
                } else {
                    color.mix(0.35).filled()
                };
                Some(Rectangle::new(
                    [(t as f64 - 0.4, 0.0), (t as f64 + 0.4, m)],
                    style,
                ))
            }))
            .map_err(drawing)?;
    }
    draw_table(&table, distances)
}

/// The distance table under the panels.
fn draw_table<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[DistanceRow],
) -> Result<()> {
    let head = (FONT, 16).into_font();
    let cell = (FONT, 15).into_font();
    let cols = [20, 300, 580, 790, 1000];
    area.draw(&Text::new(
        "Distances between the distributions over the intervals both have pairs at (|ΔL_t| in percentage points)",
        (20, 10),
        (FONT, 17).into_font(),
    ))
    .map_err(drawing)?;
    let headers = [
        "corpus A",
        "corpus B",
        "mean |ΔL_t| (SE)",
        "max |ΔL_t| (at t)",
        "Pearson r of L_t",
    ];
    for (x, h) in cols.iter().zip(headers) {
        area.draw(&Text::new(h, (*x, 40), head.clone()))
            .map_err(drawing)?;
    }
    if rows.is_empty() {
        area.draw(&Text::new(
            "one corpus: nothing to compare",
            (cols[0], 40 + ROW_H as i32),
            cell.clone(),
        ))
        .map_err(drawing)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = 40 + ROW_H as i32 * (i as i32 + 1);
        let cells = match r.distance {
            Some(d) => [
                r.a.to_string(),
                r.b.to_string(),
                format!("{:.2}", d.mean_abs_diff * 100.0),
                format!("{:.2} (t = {})", d.max_abs_diff * 100.0, d.max_at),
                d.pearson.map_or("n/a".into(), |p| format!("{p:.3}")),
            ],
            None => [
                r.a.to_string(),
                r.b.to_string(),
                "no common pairs".into(),
                String::new(),
                String::new(),
            ],
        };
        for (x, c) in cols.iter().zip(cells) {
            area.draw(&Text::new(c, (*x, y), cell.clone()))
                .map_err(drawing)?;
        }
    }
    Ok(())
}

/// The color of a similarity in the matrix: white (0) to dark blue (1).
fn heat(v: f64) -> RGBColor {
    let v = v.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * v).round() as u8;
    RGBColor(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}

/// Draws the bar-by-bar self-similarity matrix of one song (cell (i, j) is
/// `l(i, j)`; grey where both bars are empty) with a color scale, into a PNG or SVG
/// file. Repetitions t bars apart show as diagonals t cells off the main diagonal.
pub fn matrix_figure(path: &Path, title: &str, matrix: &[Vec<Option<f64>>]) -> Result<()> {
    let n = matrix.len();
    if n == 0 {
        bail!("the song has no bars: nothing to draw");
    }
    let side = (n as u32 * 8).clamp(640, 1000);
    struct Matrix<'a>(&'a str, &'a [Vec<Option<f64>>]);
    impl Figure for Matrix<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
            draw_matrix(root, self.0, self.1)
        }
    }
    plot::save(path, (side + 200, side + 110), &Matrix(title, matrix))
}

fn draw_matrix<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    matrix: &[Vec<Option<f64>>],
) -> Result<()> {
    root.fill(&WHITE).map_err(drawing)?;
    // Bar k (1-based) is the cell k - 0.5..k + 0.5, so ticks fall on cell centres.
    let n = matrix.len() as f64 + 0.5;
    let (w, _) = root.dim_in_pixel();
    let (main, scale) = root.split_horizontally(w - 120);
    let mut chart = ChartBuilder::on(&main)
        .margin(15)
        .caption(title, (FONT, 18))
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5..n, n..0.5)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("bar")
        .y_desc("bar")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(drawing)?;
    chart
        .draw_series(matrix.iter().enumerate().flat_map(|(i, row)| {
            row.iter().enumerate().map(move |(j, v)| {
                let color = v.map_or(GRID, heat);
                let (x, y) = (j as f64 + 0.5, i as f64 + 0.5);
                Rectangle::new([(x, y), (x + 1.0, y + 1.0)], color.filled())
            })
        }))
        .map_err(drawing)?;
    let mut bar = ChartBuilder::on(&scale)
        .margin_top(60)
        .margin_bottom(55)
        .margin_left(10)
        .margin_right(10)
        .right_y_label_area_size(45)
        .caption("l(i, j)", (FONT, 14))
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(drawing)?;
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 13))
        .draw()
        .map_err(drawing)?;
    bar.draw_series((0..100).map(|k| {
        let v = k as f64 / 100.0;
        Rectangle::new([(0.0, v), (1.0, v + 0.01)], heat(v + 0.005).filled())
    }))
    .map_err(drawing)?;
    Ok(())
}

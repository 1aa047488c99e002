//! The repetition perplexity of every row ([`crate::eval::repetition`]): the
//! perplexity of the tokens of bars that repeat an earlier bar, by the distance to
//! the nearest earlier copy, against the bars without one, as a table
//! (`repetition.{md,csv}`) and a figure with one panel per row
//! (`repetition.{png,svg}`).

use super::seeds::{spread_cell, Spread};
use super::{ReportInput, RowResult};
use crate::plot::{self, FONT};
use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The groups shown: the distances, `other` and `none` (`outside`, the `</s>`
/// tokens, is in the CSV only).
fn groups(input: &ReportInput) -> Vec<String> {
    let mut out = Vec::new();
    for row in &input.rows {
        for run in &row.runs {
            for r in &run.repetition {
                if r.distance != "outside" && !out.contains(&r.distance) {
                    out.push(r.distance.clone());
                }
            }
        }
    }
    out
}

/// The runs' perplexities of one group.
fn values(row: &RowResult, group: &str) -> Vec<f64> {
    row.runs
        .iter()
        .filter_map(|run| run.repetition.iter().find(|r| r.distance == group)?.ppl)
        .collect()
}

/// Tokens of a group (the same test tokens for every row: the first run's).
fn tokens(input: &ReportInput, group: &str) -> Option<u64> {
    let run = input.rows.first()?.runs.first()?;
    Some(run.repetition.iter().find(|r| r.distance == group)?.tokens)
}

fn header(group: &str) -> String {
    match group {
        "none" => "no copy".to_string(),
        "other" => "other t".to_string(),
        t => format!("t={t}"),
    }
}

/// The Markdown table: a row of token counts, then per model the mean ± std PPL
/// of each group.
fn markdown(input: &ReportInput, groups: &[String]) -> String {
    let mut s = format!(
        "| model | {} |\n| --- |{}\n",
        groups
            .iter()
            .map(|g| header(g))
            .collect::<Vec<_>>()
            .join(" | "),
        " ---: |".repeat(groups.len())
    );
    s.push_str(&format!(
        "| (test tokens) | {} |\n",
        groups
            .iter()
            .map(|g| tokens(input, g).map_or("–".into(), |t| t.to_string()))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    for row in &input.rows {
        let cells: Vec<String> = groups
            .iter()
            .map(|g| spread_cell(&values(row, g), 2).unwrap_or_else(|| "–".into()))
            .collect();
        s.push_str(&format!(
            "| {} | {} |\n",
            row.label.replace('|', "\\|"),
            cells.join(" | ")
        ));
    }
    s
}

/// The CSV: one line per (model, seed, group).
fn csv(input: &ReportInput) -> String {
    let mut s = String::from("model,seed,distance,ppl,nll,bars,tokens\n");
    let f = |x: Option<f64>| x.map_or(String::new(), |x| format!("{x:.6}"));
    for row in &input.rows {
        for run in &row.runs {
            for r in &run.repetition {
                s.push_str(&format!(
                    "\"{}\",{},{},{},{},{},{}\n",
                    row.label.replace('"', "\"\""),
                    run.seed,
                    r.distance,
                    f(r.ppl),
                    f(r.nll),
                    r.bars,
                    r.tokens
                ));
            }
        }
    }
    s
}

fn intro(input: &ReportInput) -> String {
    format!(
        "Perplexity of the tokens of test bars that repeat an earlier bar of the same song \
         (the same set of notes: Eq. 4 similarity 1), by the distance t to the nearest \
         earlier copy (the paper's fine-grained distances; `other t`: any other distance), \
         and of the bars without an earlier copy (`no copy`), over the first {} tokens of \
         each test song; {}. A model that uses the bars it attends to in full should gain \
         most where the copy is one of them.",
        input.lengths.iter().max().copied().unwrap_or(0),
        if input.seeds > 1 {
            format!("mean ± std over {} seeds", input.seeds)
        } else {
            "one seed".to_string()
        }
    )
}

/// The README's section.
pub fn section(input: &ReportInput) -> String {
    if groups(input).is_empty() {
        return "## Repetition perplexity\n\nNot measured in these runs.".to_string();
    }
    format!(
        "## Repetition perplexity\n\n{}\n\n{}\n![Repetition perplexity](repetition.png) \
         ([SVG](repetition.svg), [CSV](repetition.csv))",
        intro(input),
        markdown(input, &groups(input))
    )
}

/// Writes `repetition.md`, `repetition.csv` and the figure; nothing when no run
/// measured it (returns the files written).
pub fn write(input: &ReportInput, out: &Path) -> Result<Vec<PathBuf>> {
    let groups = groups(input);
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut written = Vec::new();
    let md = out.join("repetition.md");
    crate::io::write_atomic(
        &md,
        format!("{}\n\n{}", intro(input), markdown(input, &groups)).as_bytes(),
    )?;
    written.push(md);
    let c = out.join("repetition.csv");
    crate::io::write_atomic(&c, csv(input).as_bytes())?;
    written.push(c);
    let cols = 4usize.min(input.rows.len()).max(1);
    let lines = input.rows.len().div_ceil(cols) as u32;
    for ext in ["png", "svg"] {
        let path = out.join(format!("repetition.{ext}"));
        plot::save(
            &path,
            (300 * cols as u32, 40 + 250 * lines),
            &Panels {
                input,
                groups: &groups,
                cols,
            },
        )?;
        written.push(path);
    }
    Ok(written)
}

struct Panels<'a> {
    input: &'a ReportInput,
    groups: &'a [String],
    cols: usize,
}

impl plot::Figure for Panels<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let err = plot::drawing;
        root.fill(&WHITE).map_err(err)?;
        let root = root
            .titled(
                "perplexity of repeated bars by distance to the nearest copy",
                (FONT, 18),
            )
            .map_err(err)?;
        let lines = self.input.rows.len().div_ceil(self.cols);
        let panels = root.split_evenly((lines, self.cols));
        let top = self
            .input
            .rows
            .iter()
            .flat_map(|r| self.groups.iter().flat_map(|g| values(r, g)))
            .fold(1.0f64, f64::max)
            * 1.1;
        let n = self.groups.len();
        for (i, (panel, row)) in panels.iter().zip(&self.input.rows).enumerate() {
            let color = plot::COLORS[i % plot::COLORS.len()];
            let mut chart = ChartBuilder::on(panel)
                .caption(&row.label, (FONT, 14))
                .margin(8)
                .x_label_area_size(36)
                .y_label_area_size(36)
                .build_cartesian_2d(-0.5..n as f64 - 0.5, 1.0..top)
                .map_err(err)?;
            let groups = self.groups;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|x| {
                    let k = x.round();
                    if (x - k).abs() > 0.01 || k < 0.0 {
                        return String::new();
                    }
                    match groups.get(k as usize).map(String::as_str) {
                        Some("none") => "no".into(),
                        Some("other") => "oth".into(),
                        Some(t) => t.into(),
                        None => String::new(),
                    }
                })
                .y_desc("PPL")
                .x_desc("bars back to the nearest copy (no: none)")
                .label_style((FONT, 10))
                .axis_desc_style((FONT, 11))
                .draw()
                .map_err(err)?;
            for (k, g) in self.groups.iter().enumerate() {
                let Some(s) = Spread::of(&values(row, g)) else {
                    continue;
                };
                let x = k as f64;
                let fill = if g == "none" {
                    plot::COLORS[7].mix(0.6).filled()
                } else {
                    color.mix(0.8).filled()
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(x - 0.38, 1.0), (x + 0.38, s.mean)],
                        fill,
                    )))
                    .map_err(err)?;
                if let Some(std) = s.std {
                    chart
                        .draw_series(std::iter::once(PathElement::new(
                            vec![(x, (s.mean - std).max(1.0)), (x, s.mean + std)],
                            BLACK.stroke_width(1),
                        )))
                        .map_err(err)?;
                }
            }
        }
        Ok(())
    }
}

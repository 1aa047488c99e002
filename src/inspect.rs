//! `museformer inspect layout`: who attends to what in one piece under an
//! experiment's Museformer layout, as JSON (token and summary indices per query)
//! and as a figure in the style of the paper's Figure 2b.

use crate::config::ExperimentConfig;
use crate::data::DatasetConfig;
use crate::model::bar_beat_indices;
use crate::model::layout::{Attends, Layout, LayoutConfig};
use crate::model::museformer::MuseformerConfig;
use crate::plot::{self, FONT};
use crate::registry::ModelSection;
use crate::tokens::{parse_tokens, vocab::BOS_ID, Vocab};
use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// What one query attends to, as written to JSON.
#[derive(Debug, Serialize)]
pub struct QueryKeys {
    /// Token index (for tokens) or bar index (for summaries).
    pub index: usize,
    /// The query's bar.
    pub bar: usize,
    /// Token indices it attends to.
    pub tokens: Vec<usize>,
    /// Summary (bar) indices it attends to.
    pub summaries: Vec<usize>,
}

/// The layout of one piece.
#[derive(Debug, Serialize)]
pub struct LayoutReport {
    /// The layout configuration.
    pub layout: LayoutConfig,
    /// Token strings, `<s>` first (index 0).
    pub symbols: Vec<String>,
    /// Tokens `0..prefix` are the global prefix (`<s>`): in no bar, seen by every
    /// token.
    pub prefix: usize,
    /// Per token.
    pub tokens: Vec<QueryKeys>,
    /// Per bar summary.
    pub summaries: Vec<QueryKeys>,
}

/// The layout of the token file `tokens` (`<s>` is prepended, as the model sees a
/// piece) under the experiment's layout configuration (`model.museformer.layout`;
/// the default layout for an experiment of another kind).
pub fn layout_of(experiment: &Path, tokens: &Path) -> Result<LayoutReport> {
    let cfg = ExperimentConfig::load(experiment, &[])?;
    let dataset = DatasetConfig::load(&cfg.dataset)
        .with_context(|| format!("the dataset of {}", experiment.display()))?;
    let vocab = Vocab::new(dataset.encoding.pos_per_beat);
    let text = std::fs::read_to_string(tokens)
        .with_context(|| format!("cannot read {}", tokens.display()))?;
    let toks = parse_tokens(&text, &vocab).with_context(|| format!("{}", tokens.display()))?;
    let mut ids = vec![BOS_ID];
    ids.extend(toks.iter().map(|&t| vocab.id(t)));
    // The bar indices the model reads (never clamped: the layout of the whole
    // piece, as in training), then the model's own layout function.
    let (bars, _) = bar_beat_indices(&ids, &vocab);
    let ids: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    let layout = Layout::of_sequence(&ids, &bars);
    let lc = match cfg.model.section {
        ModelSection::Museformer(m) => m.layout,
        _ => MuseformerConfig::default().layout,
    };
    let keys = |index, bar, a: Attends| QueryKeys {
        index,
        bar,
        tokens: a.tokens,
        summaries: a.summaries,
    };
    Ok(LayoutReport {
        symbols: ids.iter().map(|&id| vocab.symbol(id as u16)).collect(),
        prefix: layout.prefix,
        tokens: (0..layout.len())
            .map(|t| keys(t, layout.token_bar[t], layout.token(t, &lc)))
            .collect(),
        summaries: (0..layout.bars.len())
            .map(|i| keys(i, i, layout.summary(i)))
            .collect(),
        layout: lc,
    })
}

/// Cell colors of the figure.
const OWN_BAR: RGBColor = RGBColor(44, 160, 44);
const FINE: RGBColor = RGBColor(31, 119, 180);
const COARSE: RGBColor = RGBColor(255, 127, 14);
const SUMMARIZE: RGBColor = RGBColor(148, 103, 189);
const PREFIX: RGBColor = RGBColor(127, 127, 127);

/// Draws the layout (PNG or SVG by extension): rows are queries, columns keys, both
/// in sequence order with each bar's summary after its tokens, as in Figure 2b.
/// Gray: the prefix (`<s>`); green: the token's own bar; blue: fine-grained bars;
/// orange: coarse-grained summaries; purple: summarization.
pub fn draw(report: &LayoutReport, path: &Path) -> Result<()> {
    // Sequence order: tokens of bar 0, summary 0, tokens of bar 1, summary 1, ...
    let mut order = Vec::new(); // (is_summary, index)
    let mut t = 0;
    for i in 0..report.summaries.len() {
        while t < report.tokens.len() && report.tokens[t].bar == i {
            order.push((false, t));
            t += 1;
        }
        order.push((true, i));
    }
    let w = order.len();
    anyhow::ensure!(
        w <= 4000,
        "{} tokens and summaries are too many to draw; inspect a shorter piece (the JSON has no limit)",
        w
    );
    let mut col = vec![0usize; report.tokens.len()];
    let mut scol = vec![0usize; report.summaries.len()];
    for (pos, &(s, i)) in order.iter().enumerate() {
        if s {
            scol[i] = pos;
        } else {
            col[i] = pos;
        }
    }
    let cell = (1000 / w.max(1)).clamp(1, 16) as i32;
    let (margin, legend) = (10, 40);
    let side = cell * w as i32;
    let size = (
        (side + 2 * margin) as u32,
        (side + 2 * margin + legend) as u32,
    );
    let geometry = Geometry {
        order,
        col,
        scol,
        cell,
        margin,
        side,
    };
    struct Figure2b<'a>(&'a LayoutReport, &'a Geometry);
    impl plot::Figure for Figure2b<'_> {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
            render(root.clone(), self.0, self.1)
        }
    }
    plot::save(path, size, &Figure2b(report, &geometry))
}

struct Geometry {
    order: Vec<(bool, usize)>,
    col: Vec<usize>,
    scol: Vec<usize>,
    cell: i32,
    margin: i32,
    side: i32,
}

fn render<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    report: &LayoutReport,
    g: &Geometry,
) -> Result<()> {
    let (order, col, scol, cell, margin, side) =
        (&g.order, &g.col, &g.scol, g.cell, g.margin, g.side);
    root.fill(&WHITE).map_err(plot::drawing)?;
    let rect = |r: usize, c: usize, color: RGBColor| {
        let (x, y) = (margin + c as i32 * cell, margin + r as i32 * cell);
        Rectangle::new([(x, y), (x + cell, y + cell)], color.filled())
    };
    for (row, &(s, i)) in order.iter().enumerate() {
        if s {
            let q = &report.summaries[i];
            for &k in &q.tokens {
                root.draw(&rect(row, col[k], SUMMARIZE))
                    .map_err(plot::drawing)?;
            }
            root.draw(&rect(row, scol[i], SUMMARIZE))
                .map_err(plot::drawing)?;
        } else {
            let q = &report.tokens[i];
            for &k in &q.tokens {
                let color = if k < report.prefix {
                    PREFIX
                } else if report.tokens[k].bar == q.bar {
                    OWN_BAR
                } else {
                    FINE
                };
                root.draw(&rect(row, col[k], color))
                    .map_err(plot::drawing)?;
            }
            for &k in &q.summaries {
                root.draw(&rect(row, scol[k], COARSE))
                    .map_err(plot::drawing)?;
            }
        }
    }
    // Bar boundaries.
    for &c in scol {
        let p = margin + (c as i32 + 1) * cell;
        let style = RGBColor(200, 200, 200).stroke_width(1);
        root.draw(&PathElement::new(
            vec![(p, margin), (p, margin + side)],
            style,
        ))
        .map_err(plot::drawing)?;
        root.draw(&PathElement::new(
            vec![(margin, p), (margin + side, p)],
            style,
        ))
        .map_err(plot::drawing)?;
    }
    let y = margin + side + 14;
    let mut x = margin;
    for (label, color) in [
        ("prefix", PREFIX),
        ("own bar", OWN_BAR),
        ("fine-grained bars", FINE),
        ("coarse-grained summaries", COARSE),
        ("summarization", SUMMARIZE),
    ] {
        root.draw(&Rectangle::new([(x, y), (x + 12, y + 12)], color.filled()))
            .map_err(plot::drawing)?;
        root.draw(&Text::new(label, (x + 16, y), (FONT, 13).into_font()))
            .map_err(plot::drawing)?;
        x += 22 + 7 * label.len() as i32;
    }
    Ok(())
}

//! The paper's report of a suite, written into `results/<suite>/`: Table 1
//! (`table1.{md,csv,tex}`: perplexity at three lengths and the similarity error of
//! every row, the paper's numbers in the adjacent columns), Figure 3
//! (`figure3.{png,svg}`: the training data's bar-similarity distribution), an
//! Appendix-C-style figure (`appendix-c.{png,svg}`: each model's generated
//! distribution against the training data), `provenance.json` and a `README.md`
//! linking everything, and Figure 4 (`figure4.{png,svg,csv}`, the attention
//! benchmark) when the suite names a `museformer bench attention` CSV. This module
//! owns what Table 1 shows ([`ReportInput`], [`RowResult`], the paper's numbers
//! [`PaperNumbers`]); the suite pipeline (`museformer reproduce`) gathers the
//! inputs from its stages.
//!
//! Tables 2 and 3 (the listening test) are added by `museformer report --ratings`
//! through `crate::listening`.

use crate::eval::repetition::RepetitionRow;
use crate::format::{self, Style};
use crate::provenance::Provenance;
use crate::structure::plot::{self, DistanceRow, Series};
use crate::structure::{distribution_distance, select_bars, BootstrapInterval, Distribution};
use anyhow::{Context, Result};
use polars::prelude::*;
use seeds::{mark, spread_cell, Spread};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub mod repetition;
pub mod seeds;

/// The paper's three prefix lengths of Table 1, beside which our lengths are shown.
pub const PAPER_LENGTHS: [usize; 3] = [1024, 5120, 10_240];

/// How Table 1's numbers print: two decimals, missing cells as an en dash.
pub const TABLE1_STYLE: Style<'static> = Style::fixed(2);

/// The paper's numbers for one row of Table 1 (a suite row's `paper:`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperNumbers {
    /// Perplexity at 1,024, 5,120 and 10,240 tokens.
    pub ppl: [f64; 3],
    /// Similarity error in percent.
    pub se: f64,
}

/// `provenance.json` of a report: the common fields ([`Provenance`]) and these.
#[derive(Debug, Clone, Serialize)]
pub struct ReportProvenance {
    /// Suite name.
    pub suite: String,
    /// The suite file.
    pub suite_file: PathBuf,
    /// BLAKE3 (hex) of the resolved suite as JSON.
    pub suite_hash: String,
    /// The code version of the stage keys (a hash of the executable).
    pub code_version: String,
    /// The folder of the stage records the report was made from.
    pub stages_folder: PathBuf,
    /// Per row: the experiment and its run.
    pub experiments: Vec<ExperimentProvenance>,
    /// Every stage the report read, in running order.
    pub stages: Vec<StageProvenance>,
    /// Σ of the stages' wall times, seconds.
    pub total_stage_seconds: f64,
}

/// One row's experiment in a report's provenance.
#[derive(Debug, Clone, Serialize)]
pub struct ExperimentProvenance {
    /// Row label.
    pub label: String,
    /// Seed index of the run (0..seeds).
    pub seed: usize,
    /// Experiment file.
    pub experiment: PathBuf,
    /// Hash of the resolved experiment (the run folder's name).
    pub config_hash: String,
    /// The run folder.
    pub run_dir: PathBuf,
    /// Training steps done.
    pub steps: usize,
    /// Trainable parameters of the model (`None`: not in its train record).
    pub params: Option<u64>,
    /// Training wall time, seconds.
    pub train_seconds: f64,
}

/// One stage in a report's provenance.
#[derive(Debug, Clone, Serialize)]
pub struct StageProvenance {
    /// Stage name.
    pub stage: String,
    /// The key it ran under.
    pub key: String,
    /// When it finished (RFC 3339, UTC).
    pub finished_at: String,
    /// Its wall time, seconds.
    pub wall_seconds: f64,
}

/// Intervals of the training data with pairs from fewer songs are drawn hollow.
const MIN_SONGS: u64 = 10;
/// The same for generated pieces (a model has only a few).
const MIN_GENERATED_SONGS: u64 = 2;

/// One run (one seed) of a row.
#[derive(Debug, Clone)]
pub struct RunResult {
    /// Seed index (0..seeds).
    pub seed: usize,
    /// Trainable parameters of the model (`None`: unknown, shown as a dash).
    pub params: Option<u64>,
    /// Perplexity at the suite's three lengths.
    pub ppl: Vec<f64>,
    /// Similarity error in percent (`None` when the generated pieces have no bar
    /// pair in common with the training data; see the row's `se_note`).
    pub se: Option<f64>,
    /// Its bootstrap confidence interval over the pieces.
    pub se_interval: Option<BootstrapInterval>,
    /// Intervals the SE averaged over.
    pub se_intervals: usize,
    /// Pieces generated.
    pub pieces: usize,
    /// Bars per piece: the fewest and the mean.
    pub bars: Option<(u64, f64)>,
    /// Repetition perplexity by distance group.
    pub repetition: Vec<RepetitionRow>,
}

/// One row of Table 1 (all its seeds' runs) with what the figures need.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// Row label.
    pub label: String,
    /// The runs, one per seed, in seed order (at least one).
    pub runs: Vec<RunResult>,
    /// Why a run has no SE, or which intervals it left out.
    pub se_note: Option<String>,
    /// The paper's numbers (`None`: the paper has no row for it, as for the
    /// full-attention control; its paper cells are dashes).
    pub paper: Option<PaperNumbers>,
    /// Similarity distribution of the generated pieces of every run.
    pub generated: Distribution,
}

impl RowResult {
    /// Trainable parameters (the same for every seed; the first run's).
    pub fn params(&self) -> Option<u64> {
        self.runs.first().and_then(|r| r.params)
    }

    /// Pieces generated over all runs.
    pub fn pieces(&self) -> usize {
        self.runs.iter().map(|r| r.pieces).sum()
    }

    /// The runs' perplexities at the k-th length.
    pub fn ppl(&self, k: usize) -> Vec<f64> {
        self.runs
            .iter()
            .filter_map(|r| r.ppl.get(k).copied())
            .collect()
    }

    /// The runs' similarity errors (runs without one are left out).
    pub fn se(&self) -> Vec<f64> {
        self.runs.iter().filter_map(|r| r.se).collect()
    }
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// Suite name.
    pub suite: String,
    /// The suite's three perplexity lengths.
    pub lengths: Vec<usize>,
    /// What the numbers are, in one sentence (model sizes, steps, data).
    pub setting: String,
    /// The label of the row the others are compared with (Museformer).
    pub reference: String,
    /// Seeds per row.
    pub seeds: usize,
    /// The rows, in suite order.
    pub rows: Vec<RowResult>,
    /// Name of the training data in the figures.
    pub training_name: String,
    /// The training split's similarity distribution.
    pub training: Distribution,
    /// Provenance, written as `provenance.json`.
    pub provenance: Provenance<ReportProvenance>,
    /// The attention benchmark's measurements (Figure 4), when the suite names them.
    pub attention: Option<Vec<crate::bench::Measurement>>,
}

/// The columns both forms of Table 1 start with: the model and its trainable
/// parameters (`params`, an exact count).
fn model_columns(input: &ReportInput) -> Vec<Column> {
    vec![
        Column::new(
            "model".into(),
            input
                .rows
                .iter()
                .map(|r| r.label.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "params".into(),
            input.rows.iter().map(|r| r.params()).collect::<Vec<_>>(),
        ),
    ]
}

/// The paper's number `f` of every row (null where the paper has none).
fn paper_column(input: &ReportInput, name: String, f: impl Fn(&PaperNumbers) -> f64) -> Column {
    Column::new(
        name.into(),
        input
            .rows
            .iter()
            .map(|r| r.paper.as_ref().map(&f))
            .collect::<Vec<_>>(),
    )
}

/// One measure of Table 1: its column name, the runs' values of a row, and the
/// paper's column beside it.
type Measure<'a> = (String, Box<dyn Fn(&RowResult) -> Vec<f64> + 'a>, Column);

/// Our measures of Table 1 with the paper's: per length the runs' perplexities,
/// then their similarity errors.
fn measures(input: &ReportInput) -> Vec<Measure<'_>> {
    let mut out: Vec<Measure<'_>> = input
        .lengths
        .iter()
        .enumerate()
        .map(|(k, len)| {
            (
                format!("PPL@{len}"),
                Box::new(move |r: &RowResult| r.ppl(k)) as Box<dyn Fn(&RowResult) -> Vec<f64>>,
                paper_column(input, format!("paper PPL@{}", PAPER_LENGTHS[k]), move |p| {
                    p.ppl[k]
                }),
            )
        })
        .collect();
    out.push((
        "SE (%)".into(),
        Box::new(|r: &RowResult| r.se()),
        paper_column(input, "paper SE (%)".into(), |p| p.se),
    ));
    out
}

/// Table 1 as a frame (its CSV form): model, its trainable parameters (`params`,
/// an exact count), the seeds, then for each length our mean PPL over the seeds,
/// its sample standard deviation (`std`, empty with one seed) and the paper's, then
/// the same for SE. A row without paper numbers has null paper cells.
pub fn table1(input: &ReportInput) -> Result<DataFrame> {
    let mut cols = model_columns(input);
    cols.push(Column::new(
        "seeds".into(),
        input
            .rows
            .iter()
            .map(|r| r.runs.len() as u64)
            .collect::<Vec<_>>(),
    ));
    for (name, values, paper) in measures(input) {
        let spreads: Vec<Option<Spread>> =
            input.rows.iter().map(|r| Spread::of(&values(r))).collect();
        let means: Vec<Option<f64>> = spreads.iter().map(|s| s.map(|s| s.mean)).collect();
        let stds: Vec<Option<f64>> = spreads.iter().map(|s| s.and_then(|s| s.std)).collect();
        cols.push(Column::new(name.clone().into(), means));
        cols.push(Column::new(format!("{name} std").into(), stds));
        cols.push(paper);
    }
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Table 1 as shown (Markdown and LaTeX): model, params, then per length our PPL
/// as `mean ± std` over the seeds (the mean alone with one seed), marked `*` when
/// it is distinguishable from the reference row's ([`seeds::distinguishable`]),
/// and the paper's; then the same for SE.
pub fn table1_display(input: &ReportInput) -> Result<DataFrame> {
    let reference = input.rows.iter().find(|r| r.label == input.reference);
    let mut cols = model_columns(input);
    for (name, values, paper) in measures(input) {
        let cells: Vec<Option<String>> = input
            .rows
            .iter()
            .map(|r| {
                let here = values(r);
                let m = match reference {
                    Some(reference) if reference.label != r.label => {
                        mark(&here, &values(reference))
                    }
                    _ => "",
                };
                spread_cell(&here, 2).map(|c| format!("{c}{m}"))
            })
            .collect();
        cols.push(Column::new(name.into(), cells));
        cols.push(paper);
    }
    Ok(DataFrame::new_infer_height(cols)?)
}

/// The note above Table 1.
fn table_note(input: &ReportInput) -> String {
    format!(
        "Table 1 of the `{}` suite: the number of trainable parameters of each model (params), \
         perplexity (PPL) on the test split over the first {} tokens of each song, \
         and the similarity error (SE, Eq. 6, %, T = {}) of generated pieces against the training data. {} \
         {} The paper's numbers (LMD, full-size models, lengths {}) stand in the adjacent columns for reference; \
         small-scale numbers are not expected to match them.{}",
        input.suite,
        join(&input.lengths),
        input.training.max_interval(),
        input.setting,
        seeds::seeds_note(input.seeds, &input.reference),
        join(&PAPER_LENGTHS),
        no_paper_note(input),
    )
}

/// The sentence naming the rows the paper has no numbers for (the full-attention
/// control), whose paper cells are dashes; empty when every row has them.
fn no_paper_note(input: &ReportInput) -> String {
    let labels: Vec<&str> = input
        .rows
        .iter()
        .filter(|r| r.paper.is_none())
        .map(|r| r.label.as_str())
        .collect();
    match labels.as_slice() {
        [] => String::new(),
        [one] => format!(" The paper has no numbers for {one}: its paper cells are dashes."),
        many => format!(
            " The paper has no numbers for {}: their paper cells are dashes.",
            many.join(", ")
        ),
    }
}

fn join(xs: &[usize]) -> String {
    xs.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The similarity-error notes under Table 1 (rows without SE, intervals left out).
fn se_notes(input: &ReportInput) -> Vec<String> {
    input
        .rows
        .iter()
        .filter_map(|r| {
            r.se_note
                .as_ref()
                .map(|n| format!("{}: {n} ({} pieces)", r.label, r.pieces()))
        })
        .collect()
}

/// Writes the report into `out` (created); returns the files written.
pub fn write(input: &ReportInput, out: &Path) -> Result<Vec<PathBuf>> {
    crate::io::create_dir_all(out)?;
    let mut written = Vec::new();
    let mut df = table1(input)?;
    let shown = table1_display(input)?;
    let note = table_note(input);
    let notes = se_notes(input);

    let md_table = format::markdown(&shown, &TABLE1_STYLE)?;
    let mut md = format!("{note}\n\n{md_table}");
    for n in &notes {
        md.push_str(&format!("\n- {n}"));
    }
    md.push('\n');
    written.push(write_file(&out.join("table1.md"), &md)?);
    let csv = out.join("table1.csv");
    format::write_csv(&csv, &mut df)?;
    written.push(csv);
    written.push(write_file(
        &out.join("table1.tex"),
        &format::latex(
            &shown,
            &TABLE1_STYLE,
            &note,
            Some(&format!("tab:{}-table1", input.suite)),
        )?,
    )?);
    written.extend(seeds::write_se_table(input, out)?);
    written.extend(repetition::write(input, out)?);

    let training_highlight = select_bars(&input.training, 8, MIN_SONGS, &[])
        .map(|s| s.chosen)
        .unwrap_or_default();
    let training = Series {
        name: &input.training_name,
        distribution: &input.training,
        highlight: &training_highlight,
        min_songs: MIN_SONGS,
    };
    for ext in ["png", "svg"] {
        let path = out.join(format!("figure3.{ext}"));
        plot::similarity_figure(&path, std::slice::from_ref(&training), &[])
            .with_context(|| format!("cannot draw {}", path.display()))?;
        written.push(path);
    }

    let names: Vec<String> = input
        .rows
        .iter()
        .map(|r| format!("{} (generated)", r.label))
        .collect();
    let t_max = input.training.max_interval();
    let distances: Vec<_> = input
        .rows
        .iter()
        .map(|r| distribution_distance(&r.generated, &input.training, t_max))
        .collect();
    // A model's handful of pieces: intervals are drawn hollow below 2 pieces.
    let highlights: Vec<Vec<usize>> = input
        .rows
        .iter()
        .map(|r| {
            select_bars(&r.generated, 8, MIN_GENERATED_SONGS, &[])
                .map(|s| s.chosen)
                .unwrap_or_default()
        })
        .collect();
    let mut series = vec![training];
    for ((r, name), highlight) in input.rows.iter().zip(&names).zip(&highlights) {
        series.push(Series {
            name,
            distribution: &r.generated,
            highlight,
            min_songs: MIN_GENERATED_SONGS,
        });
    }
    let rows: Vec<DistanceRow> = names
        .iter()
        .zip(&distances)
        .map(|(name, d)| DistanceRow {
            a: name,
            b: &input.training_name,
            distance: d.as_ref(),
        })
        .collect();
    for ext in ["png", "svg"] {
        let path = out.join(format!("appendix-c.{ext}"));
        plot::similarity_figure(&path, &series, &rows)
            .with_context(|| format!("cannot draw {}", path.display()))?;
        written.push(path);
    }

    if let Some(rows) = &input.attention {
        for ext in ["png", "svg"] {
            let path = out.join(format!("figure4.{ext}"));
            crate::bench::figure(rows, &path)?;
            written.push(path);
        }
        let path = out.join("figure4.csv");
        crate::bench::write_csv(&path, rows)?;
        written.push(path);
    }

    let path = out.join("provenance.json");
    input.provenance.write(&path)?;
    written.push(path);
    written.push(write_file(
        &out.join("README.md"),
        &readme(input, &note, &md_table, &notes),
    )?);
    Ok(written)
}

fn write_file(path: &Path, text: &str) -> Result<PathBuf> {
    crate::io::write_atomic(path, text.as_bytes())?;
    Ok(path.to_path_buf())
}

/// `results/<suite>/README.md`: the table and links to every file.
fn readme(input: &ReportInput, note: &str, md_table: &str, notes: &[String]) -> String {
    let mut s = format!(
        "# Results of the `{}` suite\n\nWritten by `museformer reproduce` / `museformer report` \
         (see `docs/reproduce.md`); where and when: [`provenance.json`](provenance.json).\n\n\
         ## Table 1\n\n{note}\n\n{md_table}",
        input.suite
    );
    for n in notes {
        s.push_str(&format!("\n- {n}"));
    }
    let figure4 = match &input.attention {
        Some(rows) => format!(
            "## Figure 4: memory and time of a training step against the length\n\n\
             From `museformer bench attention` on {} (batch 1, forward and backward; \
             measurements in [figure4.csv](figure4.csv)).\n\n\
             ![Figure 4](figure4.png) ([SVG](figure4.svg))\n\n",
            rows.first().map_or("the CPU", |m| m.device.as_str())
        ),
        None => "Figure 4 is not in this report: name a `museformer bench attention` CSV \
                 under `attention:` in the suite.\n\n"
            .to_string(),
    };
    s.push_str(&format!(
        "\n\nAlso as [CSV](table1.csv) and [LaTeX](table1.tex).\n\n\
         ## Figure 3: the training data's bar-similarity distribution\n\n\
         ![Figure 3](figure3.png) ([SVG](figure3.svg))\n\n\
         ## Appendix C: generated pieces against the training data\n\n\
         Each model's similarity distribution of its generated pieces (all seeds) beside the training \
         data's; the table under the panels gives the mean |ΔL_t| (the similarity error).\n\n\
         ![Appendix C](appendix-c.png) ([SVG](appendix-c.svg))\n\n\
         {}\n\n{}\n\n\
         {figure4}\
         ## Not in this report yet\n\n\
         - Tables 2 and 3 (listening test): `museformer report --ratings RATINGS.csv [--key key.csv]` \
         adds them from a listening test's ratings.\n",
        seeds::se_section(input),
        repetition::section(input),
    ));
    let mut per_row = String::from(
        "\n## Generated pieces\n\n| model | pieces | SE intervals |\n| --- | ---: | --- |\n",
    );
    for r in &input.rows {
        per_row.push_str(&format!(
            "| {} | {} | {} |\n",
            r.label,
            r.pieces(),
            r.se_note.as_deref().unwrap_or("all")
        ));
    }
    s.push_str(&per_row);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structure::{InstrumentSelection, SongBars};
    use crate::tokens::Token;

    fn dist(shift: u8) -> Distribution {
        let mut d = Distribution::new(4).unwrap();
        for s in 0..3u8 {
            let mut toks = Vec::new();
            for bar in 0..6u8 {
                toks.extend([
                    Token::Position(0),
                    Token::Instrument(0),
                    Token::Pitch(60 + (bar + s + shift) % 3),
                    Token::Duration(4),
                    Token::Velocity(10),
                    Token::Bar,
                ]);
            }
            d.add_song(&SongBars::from_tokens(toks, InstrumentSelection::Pitched));
        }
        d
    }

    /// One run of seed `seed` with these numbers.
    pub(crate) fn run(seed: usize, params: Option<u64>, ppl: &[f64], se: Option<f64>) -> RunResult {
        RunResult {
            seed,
            params,
            ppl: ppl.to_vec(),
            se,
            se_interval: None,
            se_intervals: 4,
            pieces: 2,
            bars: Some((6, 6.0)),
            repetition: Vec::new(),
        }
    }

    fn input() -> ReportInput {
        ReportInput {
            suite: "t".into(),
            lengths: vec![16, 64, 128],
            setting: "Tiny models.".into(),
            reference: "A".into(),
            seeds: 1,
            rows: vec![
                RowResult {
                    label: "A".into(),
                    runs: vec![run(0, Some(1_234_567), &[3.0, 2.5, 2.25], Some(1.5))],
                    se_note: None,
                    paper: Some(PaperNumbers {
                        ppl: [1.64, 1.41, 1.35],
                        se: 0.95,
                    }),
                    generated: dist(1),
                },
                RowResult {
                    label: "B".into(),
                    runs: vec![run(0, None, &[4.0, 3.5, 3.25], None)],
                    se_note: Some("no bar pairs".into()),
                    paper: None,
                    generated: Distribution::new(4).unwrap(),
                },
            ],
            training_name: "train".into(),
            training: dist(0),
            provenance: Provenance::new(
                None,
                ReportProvenance {
                    suite: "t".into(),
                    suite_file: "t.yaml".into(),
                    suite_hash: "h".into(),
                    code_version: "c".into(),
                    stages_folder: "stages".into(),
                    experiments: Vec::new(),
                    stages: Vec::new(),
                    total_stage_seconds: 0.0,
                },
            ),
            attention: None,
        }
    }

    #[test]
    fn table1_pairs_ours_with_the_papers() {
        let csv_names: Vec<String> = table1(&input())
            .unwrap()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        assert_eq!(
            csv_names,
            [
                "model",
                "params",
                "seeds",
                "PPL@16",
                "PPL@16 std",
                "paper PPL@1024",
                "PPL@64",
                "PPL@64 std",
                "paper PPL@5120",
                "PPL@128",
                "PPL@128 std",
                "paper PPL@10240",
                "SE (%)",
                "SE (%) std",
                "paper SE (%)"
            ]
        );
        let df = table1_display(&input()).unwrap();
        let names: Vec<String> = df.columns().iter().map(|c| c.name().to_string()).collect();
        assert_eq!(
            names,
            [
                "model",
                "params",
                "PPL@16",
                "paper PPL@1024",
                "PPL@64",
                "paper PPL@5120",
                "PPL@128",
                "paper PPL@10240",
                "SE (%)",
                "paper SE (%)"
            ]
        );
        let md = format::markdown(&df, &TABLE1_STYLE).unwrap();
        assert!(
            md.contains("| A | 1234567 | 3.00 | 1.64 | 2.50 | 1.41 | 2.25 | 1.35 | 1.50 | 0.95 |"),
            "{md}"
        );
        assert!(
            md.contains("| B | – | 4.00 | – | 3.50 | – | 3.25 | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains("| --- | ---: | ---: |"),
            "params is right-aligned: {md}"
        );
    }

    /// The full-attention control: our numbers, no paper numbers. Its paper cells
    /// are dashes in Markdown and LaTeX and empty in CSV, its parameter count the
    /// same digits in all three, and the note names it.
    #[test]
    fn a_row_without_paper_numbers_renders_in_every_format() {
        let mut input = input();
        input.rows[1] = RowResult {
            label: "Transformer (full-attention control)".into(),
            runs: vec![run(0, Some(98_765), &[4.0, 3.5, 3.25], Some(2.0))],
            se_note: None,
            paper: None,
            generated: dist(2),
        };
        let dir = tempfile::tempdir().unwrap();
        write(&input, dir.path()).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        let md = read("table1.md");
        assert!(
            md.contains(
                "| Transformer (full-attention control) | 98765 | 4.00 | – | 3.50 | – | 3.25 | – | 2.00 | – |"
            ),
            "{md}"
        );
        assert!(
            md.contains("The paper has no numbers for Transformer (full-attention control): its paper cells are dashes."),
            "{md}"
        );
        let csv = read("table1.csv");
        assert!(
            csv.starts_with("model,params,seeds,PPL@16,PPL@16 std,paper PPL@1024,"),
            "{csv}"
        );
        assert!(
            csv.contains("Transformer (full-attention control),98765,1,4.0,,,3.5,,,3.25,,,2.0,,\n"),
            "{csv}"
        );
        assert!(csv.contains("A,1234567,1,3.0,,1.64,"), "{csv}");
        let tex = read("table1.tex");
        assert!(
            tex.contains(
                "Transformer (full-attention control) & 98765 & 4.00 & -- & 3.50 & -- & 3.25 & -- & 2.00 & -- \\\\"
            ),
            "{tex}"
        );
        assert!(tex.contains("A & 1234567 & 3.00 & 1.64"), "{tex}");
        // With paper numbers on every row there is no such sentence.
        input.rows.remove(1);
        assert!(!table_note(&input).contains("no numbers"));
    }

    #[test]
    fn the_report_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = write(&input(), dir.path()).unwrap();
        for name in [
            "table1.md",
            "table1.csv",
            "table1.tex",
            "figure3.png",
            "figure3.svg",
            "appendix-c.png",
            "appendix-c.svg",
            "provenance.json",
            "README.md",
            "se.md",
            "se.csv",
        ] {
            let p = dir.path().join(name);
            assert!(files.contains(&p), "{name} not listed");
            assert!(std::fs::metadata(&p).unwrap().len() > 0, "{name} is empty");
        }
        let csv = std::fs::read_to_string(dir.path().join("table1.csv")).unwrap();
        assert!(
            csv.starts_with("model,params,seeds,PPL@16,PPL@16 std,paper PPL@1024,"),
            "{csv}"
        );
        assert!(csv.contains("B,,1,4.0,,,3.5,,,3.25,,,,,"), "{csv}");
        let md = std::fs::read_to_string(dir.path().join("table1.md")).unwrap();
        assert!(md.contains("B: no bar pairs (2 pieces)"), "{md}");
        let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        for link in [
            "figure3.png",
            "appendix-c.svg",
            "table1.tex",
            "provenance.json",
        ] {
            assert!(readme.contains(link), "{link} not linked");
        }
    }
}

#[cfg(test)]
mod seeded_tests {
    use super::tests::run;
    use super::*;
    use crate::eval::repetition::RepetitionRow;

    fn rep(distance: &str, ppl: f64) -> RepetitionRow {
        RepetitionRow {
            distance: distance.into(),
            ppl: Some(ppl),
            nll: Some(ppl.ln()),
            bars: 3,
            tokens: 12,
        }
    }

    fn row(label: &str, ppls: &[f64], paper: bool) -> RowResult {
        RowResult {
            label: label.into(),
            runs: ppls
                .iter()
                .enumerate()
                .map(|(k, &p)| {
                    let mut r = run(k, Some(10), &[p, p, p], Some(p));
                    r.repetition = vec![rep("1", p - 1.0), rep("none", p), rep("outside", 9.0)];
                    r
                })
                .collect(),
            se_note: None,
            paper: paper.then_some(PaperNumbers {
                ppl: [1.0, 1.0, 1.0],
                se: 1.0,
            }),
            generated: Distribution::new(4).unwrap(),
        }
    }

    /// Three seeds: cells are mean ± std, a row far from the reference is marked,
    /// one within the spread is not, the reference never is, and the note says how.
    #[test]
    fn table1_shows_the_seeds_spread_and_marks_distinguishable_rows() {
        let mut d = Distribution::new(4).unwrap();
        d.add_song(&crate::structure::SongBars::from_tokens(
            [crate::tokens::Token::Pitch(60), crate::tokens::Token::Bar]
                .into_iter()
                .cycle()
                .take(12),
            crate::structure::InstrumentSelection::Pitched,
        ));
        let input = ReportInput {
            suite: "s".into(),
            lengths: vec![8, 16, 32],
            setting: "Tiny.".into(),
            reference: "Ref".into(),
            seeds: 3,
            rows: vec![
                row("Far", &[5.0, 5.1, 4.9], true),
                row("Near", &[3.05, 3.2, 2.9], false),
                row("Ref", &[3.0, 3.1, 2.9], true),
            ],
            training_name: "train".into(),
            training: d,
            provenance: Provenance::new(
                None,
                ReportProvenance {
                    suite: "s".into(),
                    suite_file: "s.yaml".into(),
                    suite_hash: "h".into(),
                    code_version: "c".into(),
                    stages_folder: "stages".into(),
                    experiments: Vec::new(),
                    stages: Vec::new(),
                    total_stage_seconds: 0.0,
                },
            ),
            attention: None,
        };
        let md = format::markdown(&table1_display(&input).unwrap(), &TABLE1_STYLE).unwrap();
        assert!(md.contains("| Far | 10 | 5.00 ± 0.10* |"), "{md}");
        assert!(md.contains("| Near | 10 | 3.05 ± 0.15 |"), "{md}");
        assert!(md.contains("| Ref | 10 | 3.00 ± 0.10 |"), "{md}");
        assert!(
            table_note(&input).contains("Welch"),
            "{}",
            table_note(&input)
        );
        let csv = table1(&input).unwrap();
        let std = csv
            .column("PPL@8 std")
            .unwrap()
            .f64()
            .unwrap()
            .get(0)
            .unwrap();
        assert!((std - 0.1).abs() < 1e-9, "{std}");

        let dir = tempfile::tempdir().unwrap();
        let files = write(&input, dir.path()).unwrap();
        for name in [
            "repetition.md",
            "repetition.csv",
            "repetition.png",
            "repetition.svg",
        ] {
            assert!(files.contains(&dir.path().join(name)), "{name} not written");
        }
        let rep_md = std::fs::read_to_string(dir.path().join("repetition.md")).unwrap();
        assert!(rep_md.contains("| model | t=1 | no copy |"), "{rep_md}");
        assert!(
            rep_md.contains("| Far | 4.00 ± 0.10 | 5.00 ± 0.10 |"),
            "{rep_md}"
        );
        let rep_csv = std::fs::read_to_string(dir.path().join("repetition.csv")).unwrap();
        assert_eq!(rep_csv.lines().count(), 1 + 3 * 3 * 3, "{rep_csv}");
        let se = std::fs::read_to_string(dir.path().join("se.csv")).unwrap();
        assert_eq!(se.lines().count(), 1 + 9, "{se}");
        let readme = std::fs::read_to_string(dir.path().join("README.md")).unwrap();
        assert!(readme.contains("## Repetition perplexity"), "{readme}");
        assert!(readme.contains("repetition.png"), "{readme}");
    }
}

//! The listening test of the paper (Tables 2 and 3): [`kit`] builds the material
//! for raters (anonymous groups of pieces, one per model, rendered to WAV when
//! FluidSynth is installed, a blank ratings sheet and the key), [`stats`] reads the
//! filled-in ratings and computes the tables. This module holds their command
//! arguments of `museformer stats listening` and writes the tables (the command
//! lines are in `crate::cli`); `docs/listening.md` describes the workflow and the definitions.

pub mod kit;
pub mod stats;

pub use kit::{build_kit, KitOptions, KitPiece, KitReport};
pub use stats::{
    table2, table3, wilcoxon_signed_rank, Key, Method, ModelSummary, Pairwise, Ratings, Scale,
    Wilcoxon,
};

use crate::format;
use crate::provenance::{file_hash, Provenance};
use anyhow::{bail, Result};
use polars::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `museformer stats listening`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// The ratings CSV: header rater,group,model,musicality,short_term,long_term,overall,
    /// scores on the --scale (whole or not: 6, 6.0, 7.0329), one row per rater, group
    /// and model.
    pub ratings: PathBuf,
    /// Output folder (created): table2.{md,csv,tex}, table3.{md,csv,tex}, provenance.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The kit's key.csv: the model column then holds anonymous piece ids (piece-A,
    /// ...), mapped back to models per group. Without it the column holds model labels.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The model compared with every other in Table 3 (listed last in Table 2);
    /// matched ignoring case when no label is exactly it.
    #[arg(long, default_value = "Museformer")]
    pub reference: String,
    /// The rating scale MIN..MAX: every score must lie in it.
    #[arg(long, default_value = "1..10")]
    pub scale: Scale,
}

/// The tables of a listening test.
#[derive(Debug, Clone)]
pub struct ListeningTables {
    /// Table 2, the other models sorted by label, then the reference model.
    pub table2: Vec<ModelSummary>,
    /// Table 3, the reference model against each other model.
    pub table3: Vec<Pairwise>,
    /// (rater, group) pairs rated.
    pub units: usize,
}

impl ListeningTables {
    /// Reads and checks the ratings (mapped through the key when one is given) and
    /// computes both tables.
    pub fn compute(
        ratings: &Path,
        key: Option<&Path>,
        reference: &str,
        scale: Scale,
    ) -> Result<ListeningTables> {
        let key = key.map(Key::load).transpose()?;
        let ratings = Ratings::load(ratings, key.as_ref(), scale)?;
        let Some(r) = ratings.model_index(reference) else {
            let looks_anonymous =
                key.is_none() && ratings.models.iter().all(|m| m.starts_with("piece-"));
            bail!(
                "{}: the reference model `{reference}` is not among the rated models ({}); pass --reference LABEL{}",
                ratings.path.display(),
                ratings.models.join(", "),
                if looks_anonymous {
                    ", and --key key.csv: the model column holds the kit's anonymous ids"
                } else {
                    ""
                }
            );
        };
        let others: Vec<usize> = (0..ratings.models.len()).filter(|&m| m != r).collect();
        let order: Vec<usize> = others.iter().copied().chain([r]).collect();
        Ok(ListeningTables {
            table2: table2(&ratings, &order),
            table3: table3(&ratings, r, &others)?,
            units: ratings.units.len(),
        })
    }

    /// Table 2 as data (CSV: every number in full) and for display (Markdown and
    /// LaTeX: `mean ± std` with two decimals, preference with three).
    pub fn table2_frames(&self) -> Result<(DataFrame, DataFrame)> {
        let rows = &self.table2;
        let mut data = vec![
            Column::new(
                "model".into(),
                rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "n".into(),
                rows.iter().map(|r| r.n as u32).collect::<Vec<_>>(),
            ),
        ];
        let mut display = vec![data[0].clone()];
        for (k, metric) in stats::METRICS.iter().enumerate() {
            data.push(Column::new(
                format!("{metric}_mean").into(),
                rows.iter().map(|r| r.mean[k]).collect::<Vec<_>>(),
            ));
            data.push(Column::new(
                format!("{metric}_std").into(),
                rows.iter().map(|r| r.std[k]).collect::<Vec<_>>(),
            ));
            display.push(Column::new(
                metric_title(metric).into(),
                rows.iter()
                    .map(|r| match r.std[k] {
                        Some(s) => format!("{:.2} ± {s:.2}", r.mean[k]),
                        None => format!("{:.2}", r.mean[k]),
                    })
                    .collect::<Vec<_>>(),
            ));
        }
        data.push(Column::new(
            "preference".into(),
            rows.iter().map(|r| r.preference).collect::<Vec<_>>(),
        ));
        data.push(Column::new(
            "sole_top".into(),
            rows.iter().map(|r| r.sole_top as u32).collect::<Vec<_>>(),
        ));
        data.push(Column::new(
            "shared_top".into(),
            rows.iter().map(|r| r.shared_top as u32).collect::<Vec<_>>(),
        ));
        display.push(Column::new(
            "preference".into(),
            rows.iter()
                .map(|r| format!("{:.3}", r.preference))
                .collect::<Vec<_>>(),
        ));
        Ok((
            DataFrame::new_infer_height(data)?,
            DataFrame::new_infer_height(display)?,
        ))
    }

    /// Table 3 as data (CSV) and for display (Markdown and LaTeX: p with four
    /// decimals, or two significant digits below 0.0001).
    pub fn table3_frames(&self) -> Result<(DataFrame, DataFrame)> {
        let rows = &self.table3;
        let count =
            |f: fn(&Pairwise) -> usize| rows.iter().map(|r| f(r) as u32).collect::<Vec<_>>();
        let data = df!(
            "reference" => rows.iter().map(|r| r.reference.as_str()).collect::<Vec<_>>(),
            "model" => rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
            "wins" => count(|r| r.wins),
            "ties" => count(|r| r.ties),
            "losses" => count(|r| r.losses),
            "n_nonzero" => count(|r| r.test.n),
            "w_plus" => rows.iter().map(|r| r.test.w_plus).collect::<Vec<_>>(),
            "w_minus" => rows.iter().map(|r| r.test.w_minus).collect::<Vec<_>>(),
            "z" => rows.iter().map(|r| r.test.z).collect::<Vec<_>>(),
            "p_value" => rows.iter().map(|r| r.test.p_value).collect::<Vec<_>>(),
            "method" => rows.iter().map(|r| r.test.method.name()).collect::<Vec<_>>(),
        )?;
        let display = df!(
            "comparison" => rows.iter().map(|r| format!("{} vs {}", r.reference, r.model)).collect::<Vec<_>>(),
            "wins" => count(|r| r.wins),
            "ties" => count(|r| r.ties),
            "losses" => count(|r| r.losses),
            "p" => rows.iter().map(|r| format_p(r.test.p_value)).collect::<Vec<_>>(),
            "test" => rows.iter().map(|r| match r.test.z {
                Some(z) => format!("{} (z = {z:.2})", r.test.method.name()),
                None => r.test.method.name().to_string(),
            }).collect::<Vec<_>>(),
        )?;
        Ok((data, display))
    }

    /// Writes table2.{md,csv,tex} and table3.{md,csv,tex} into `dir` (created).
    pub fn write(&self, dir: &Path) -> Result<()> {
        crate::io::create_dir_all(dir)?;
        let reference = self.table3.first().map_or("", |r| r.reference.as_str());
        let (mut data, display) = self.table2_frames()?;
        let caption = format!(
            "Subjective evaluation over {} (rater, group) pairs: mean ± sample standard deviation (n − 1) \
             of the 1–10 scores, and the preference score (share of pairs in which the model has the \
             highest overall score; a tie at the top between k models gives each 1/k).",
            self.units
        );
        format::write_table(dir, "table2", &mut data, &display, &caption)?;
        let (mut data, display) = self.table3_frames()?;
        let caption = format!(
            "Overall score of {reference} against each model over {} (rater, group) pairs: wins, ties, \
             losses and the two-sided Wilcoxon signed-rank p-value (zero differences dropped; exact null \
             distribution for at most {} non-zero differences without zeros or tied magnitudes, \
             otherwise the normal approximation with tie-corrected variance, no continuity correction).",
            self.units,
            stats::EXACT_MAX_N
        );
        format::write_table(dir, "table3", &mut data, &display, &caption)
    }
}

/// The title of a metric column in Table 2.
fn metric_title(metric: &str) -> &'static str {
    match metric {
        "musicality" => "musicality",
        "short_term" => "short-term structure",
        "long_term" => "long-term structure",
        _ => "overall",
    }
}

/// A p-value for display: four decimals, or two significant digits below 0.0001.
pub fn format_p(p: f64) -> String {
    if p >= 0.0001 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

/// What `stats listening` adds to its `provenance.json` ([`Provenance`]).
#[derive(Debug, Serialize)]
pub struct StatsDetails {
    /// The ratings file.
    pub ratings: String,
    /// BLAKE3 of its bytes.
    pub ratings_blake3: String,
    /// The key file, when given.
    pub key: Option<String>,
    /// BLAKE3 of its bytes.
    pub key_blake3: Option<String>,
    /// The model of Table 3.
    pub reference: String,
    /// The rating scale.
    pub scale: Scale,
    /// (rater, group) pairs rated.
    pub units: usize,
}

/// `museformer stats listening`: computes the tables, prints them and writes them
/// with a provenance file into `--out`.
pub fn run_stats(args: &StatsArgs) -> Result<ListeningTables> {
    let start = Instant::now();
    let tables = ListeningTables::compute(
        &args.ratings,
        args.key.as_deref(),
        &args.reference,
        args.scale,
    )?;
    tables.write(&args.out)?;
    Provenance::new(
        Some(start.elapsed().as_secs_f64()),
        StatsDetails {
            ratings: args.ratings.display().to_string(),
            ratings_blake3: file_hash(&args.ratings)?,
            key: args.key.as_ref().map(|k| k.display().to_string()),
            key_blake3: args.key.as_deref().map(file_hash).transpose()?,
            reference: args.reference.clone(),
            scale: args.scale,
            units: tables.units,
        },
    )
    .write(&args.out.join("provenance.json"))?;
    println!(
        "{}: {} (rater, group) pairs, {} models\n",
        args.ratings.display(),
        tables.units,
        tables.table2.len()
    );
    println!(
        "Table 2\n\n{}",
        format::markdown(&tables.table2_frames()?.1, &format::Style::PLAIN)?
    );
    println!(
        "Table 3\n\n{}",
        format::markdown(&tables.table3_frames()?.1, &format::Style::PLAIN)?
    );
    println!(
        "wrote table2.{{md,csv,tex}}, table3.{{md,csv,tex}}, provenance.json to {}",
        args.out.display()
    );
    Ok(tables)
}

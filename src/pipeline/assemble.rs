//! The report assembly: gathers Table 1's inputs and the provenance from the stage
//! records and the files they name, and hands them to [`crate::report`].

use super::layout::WorkFolder;
use super::runner::stage_name;
use super::stage::{StageOutput, StageRecord};
use super::stages::{
    self, EvalOutput, GenerateOutput, PrepareOutput, SeOutput, SeResult, SimilarityOutput,
    TrainOutput,
};
use super::suite::{Row, Suite};
use crate::provenance::Provenance;
use crate::report::{
    self, ExperimentProvenance, ReportInput, ReportProvenance, RowResult, RunResult,
    StageProvenance,
};
use crate::structure::Distribution;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The records a report reads.
pub(super) struct Records {
    pub prepare: StageRecord<PrepareOutput>,
    pub similarity: StageRecord<SimilarityOutput>,
    /// Per row, its runs (one per seed).
    pub rows: Vec<Vec<RowRecords>>,
}

/// The records of one row's stages.
pub(super) struct RowRecords {
    pub train: StageRecord<TrainOutput>,
    pub eval: StageRecord<EvalOutput>,
    pub generate: StageRecord<GenerateOutput>,
    pub se: StageRecord<SeOutput>,
}

/// The record of a finished stage, refusing when there is none.
fn finished<T: StageOutput>(work: &WorkFolder, row: Option<&Row>) -> Result<StageRecord<T>> {
    let name = stage_name::<T>(row);
    let path = work.record(&name);
    StageRecord::load(&path)?.with_context(|| {
        format!(
            "stage {name} has not finished (no {}); run `museformer reproduce` on the suite first",
            path.display()
        )
    })
}

impl Records {
    /// Reads the records of every stage a report needs, refusing when one is
    /// missing or does not match its stage's output.
    pub fn load(suite: &Suite, work: &WorkFolder) -> Result<Records> {
        Ok(Records {
            prepare: finished(work, None)?,
            similarity: finished(work, None)?,
            rows: suite
                .rows
                .iter()
                .map(|row| {
                    suite
                        .runs(row)
                        .iter()
                        .map(|run| {
                            let run = Some(run);
                            Ok(RowRecords {
                                train: finished(work, run)?,
                                eval: finished(work, run)?,
                                generate: finished(work, run)?,
                                se: finished(work, run)?,
                            })
                        })
                        .collect::<Result<_>>()
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Every stage, in running order, as the provenance lists it.
    fn stages(&self) -> Vec<StageProvenance> {
        fn entry<T>(s: &StageRecord<T>) -> StageProvenance {
            StageProvenance {
                stage: s.stage.clone(),
                key: s.key.clone(),
                finished_at: s.finished_at.clone(),
                wall_seconds: s.wall_seconds,
            }
        }
        let mut all = vec![entry(&self.prepare), entry(&self.similarity)];
        for r in self.rows.iter().flatten() {
            all.extend([
                entry(&r.train),
                entry(&r.eval),
                entry(&r.generate),
                entry(&r.se),
            ]);
        }
        all
    }
}

/// Gathers the report's inputs from the records and writes it into `out`; returns
/// the files written.
pub(super) fn write_report(
    suite: &Suite,
    suite_path: &Path,
    records: &Records,
    work: &WorkFolder,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let training = stages::training_distribution(work)?;
    let mut rows = Vec::new();
    let mut experiments = Vec::new();
    for (row, recs) in suite.rows.iter().zip(&records.rows) {
        let mut runs = Vec::new();
        let mut notes = Vec::new();
        let mut generated = Distribution::new(suite.eval.max_interval)?;
        for (run, rec) in suite.runs(row).iter().zip(recs) {
            let se: SeResult = crate::io::read_json(&work.se(run))?;
            let which = if suite.seeds > 1 {
                format!("seed {}: ", run.seed)
            } else {
                String::new()
            };
            match (&se.error, se.missing.is_empty()) {
                (Some(e), _) => notes.push(format!("{which}no SE: {e}")),
                (None, false) => notes.push(format!(
                    "{which}SE over {} of {} intervals (the pieces have no bar pairs at t = {})",
                    se.intervals.len(),
                    suite.eval.max_interval,
                    compact(&se.missing)
                )),
                (None, true) => {}
            }
            generated.merge(&se.distribution);
            runs.push(RunResult {
                seed: run.seed,
                params: rec.train.output.params,
                ppl: rec.eval.output.perplexity.iter().map(|p| p.ppl).collect(),
                se: se.se_percent,
                se_interval: se.interval,
                se_intervals: se.intervals.len(),
                pieces: se.pieces,
                bars: se.bars,
                repetition: rec.eval.output.repetition.clone(),
            });
            let train = &rec.train.output;
            experiments.push(ExperimentProvenance {
                label: row.label.clone(),
                seed: run.seed,
                experiment: row.experiment.clone(),
                config_hash: train.config_hash.clone(),
                run_dir: train.run_dir.clone(),
                steps: train.steps,
                params: train.params,
                train_seconds: train.train_seconds,
            });
        }
        rows.push(RowResult {
            label: row.label.clone(),
            runs,
            se_note: (!notes.is_empty()).then(|| notes.join("; ")),
            paper: row.paper,
            generated,
        });
    }
    let stages = records.stages();
    let cfg = suite.experiment(&suite.rows[0])?;
    let t = &cfg.train;
    let mut batch = format!("batches of up to {} tokens", t.batch_tokens);
    if t.batch_size > 0 {
        let plural = if t.batch_size == 1 { "" } else { "s" };
        batch += &format!(" and {} sequence{plural}", t.batch_size);
    }
    if t.accumulate > 1 {
        batch = format!("{} {batch} each", t.accumulate);
    }
    let g = &suite.generate;
    let lengths = match g.min_len {
        0 | 1 => format!("at most {} tokens", g.max_len),
        min => format!("at least {min} and at most {} tokens", g.max_len),
    };
    let setting = format!(
        "Models trained {} steps on {batch} (sequences cut at {}) on the dataset of {}; \
         SE from {} generated pieces per model of {lengths} (top-k {}).",
        records.rows[0][0].train.output.steps,
        t.max_tokens,
        suite.dataset.display(),
        g.num,
        g.top_k
    );
    let provenance = Provenance::new(
        None,
        ReportProvenance {
            suite: suite.name.clone(),
            suite_file: suite_path.to_path_buf(),
            suite_hash: blake3::hash(serde_json::to_string(suite)?.as_bytes())
                .to_hex()
                .to_string(),
            code_version: super::stage::code_version()?,
            stages_folder: work.stages(),
            experiments,
            total_stage_seconds: stages.iter().map(|s| s.wall_seconds).sum(),
            stages,
        },
    );
    report::write(
        &ReportInput {
            suite: suite.name.clone(),
            lengths: suite.eval.lengths.clone(),
            setting,
            reference: suite.reference.clone(),
            seeds: suite.seeds,
            rows,
            training_name: format!("{} (training data)", training.name),
            training: training.distribution,
            provenance,
            attention: match &suite.attention {
                Some(path) => Some(crate::bench::read_csv(path)?),
                None => None,
            },
        },
        out,
    )
}

/// `1, 2, 3, 7` → `1-3, 7`.
fn compact(xs: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < xs.len() {
        let mut j = i;
        while j + 1 < xs.len() && xs[j + 1] == xs[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            xs[i].to_string()
        } else {
            format!("{}-{}", xs[i], xs[j])
        });
        i = j + 1;
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_lists_are_compacted() {
        assert_eq!(compact(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        assert_eq!(compact(&[]), "");
    }
}

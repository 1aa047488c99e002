//! The stage runner: reuses a stage whose record is reusable ("cached"), redoes
//! the ones `--force` names, runs the others, writes their records, and moves one
//! progress bar over all stages weighted by their expected cost.

use super::layout::WorkFolder;
use super::stage::{StageOutput, StageRecord};
use super::stages::{
    EvalOutput, GenerateOutput, PrepareOutput, ReportOutput, SeOutput, SimilarityOutput,
    TrainOutput,
};
use super::suite::{Row, Suite};
use super::{Options, Outcome};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The kinds of stages, in the order they run.
pub const STAGE_KINDS: [&str; 7] = [
    PrepareOutput::KIND,
    SimilarityOutput::KIND,
    TrainOutput::KIND,
    EvalOutput::KIND,
    GenerateOutput::KIND,
    SeOutput::KIND,
    ReportOutput::KIND,
];

/// The name of a stage whose output is `T`: its kind, then `:<row>` for a row's
/// stage (`train:museformer`).
pub fn stage_name<T: StageOutput>(row: Option<&Row>) -> String {
    match row {
        Some(row) => format!("{}:{}", T::KIND, row.stage_slug()),
        None => T::KIND.to_string(),
    }
}

/// Every stage name of a suite, in running order.
pub fn stage_names(suite: &Suite) -> Vec<String> {
    let mut names = vec![
        stage_name::<PrepareOutput>(None),
        stage_name::<SimilarityOutput>(None),
    ];
    for row in suite.rows.iter().flat_map(|r| suite.runs(r)) {
        let row = Some(&row);
        names.extend([
            stage_name::<TrainOutput>(row),
            stage_name::<EvalOutput>(row),
            stage_name::<GenerateOutput>(row),
            stage_name::<SeOutput>(row),
        ]);
    }
    names.push(stage_name::<ReportOutput>(None));
    names
}

/// Refuses `--force` values that name no stage of the suite.
pub(super) fn check_force(suite: &Suite, force: &[String]) -> Result<()> {
    let names = stage_names(suite);
    for f in force {
        if !STAGE_KINDS.contains(&f.as_str()) && !names.contains(f) {
            bail!(
                "--force {f}: no such stage; give a kind ({}) or a stage name ({})",
                STAGE_KINDS.join(", "),
                names.join(", ")
            );
        }
    }
    Ok(())
}

/// Expected cost of each stage, in rough seconds on a 2-core CPU for the small
/// models (only the overall bar's proportions and ETA depend on it).
fn weights(suite: &Suite) -> Result<Vec<(String, u64)>> {
    let mut w = vec![
        (stage_name::<PrepareOutput>(None), 5),
        (stage_name::<SimilarityOutput>(None), 2),
    ];
    let g = &suite.generate;
    for row in suite.rows.iter().flat_map(|r| suite.runs(r)) {
        let cfg = suite.experiment(&row)?;
        let per_step = cfg.train.batch_tokens as u64 * cfg.train.accumulate.max(1) as u64;
        let train = (cfg.train.steps as u64 * per_step / 8000).max(1);
        let row = Some(&row);
        w.push((stage_name::<TrainOutput>(row), train));
        w.push((stage_name::<EvalOutput>(row), (train / 10).max(2)));
        w.push((
            stage_name::<GenerateOutput>(row),
            (g.num as u64 * g.max_len as u64 / 800).max(1),
        ));
        w.push((stage_name::<SeOutput>(row), 1));
    }
    w.push((stage_name::<ReportOutput>(None), 3));
    Ok(w)
}

/// A suite being run: its folders, the code version and the overall progress bar.
pub(super) struct Runner<'a> {
    /// The suite.
    pub suite: &'a Suite,
    /// Its file.
    pub suite_path: &'a Path,
    /// Its work folder.
    pub work: WorkFolder,
    /// Its report folder, `<results>/<suite>/`.
    pub results: PathBuf,
    /// The code version of every key.
    pub code: String,
    force: &'a [String],
    weights: Vec<(String, u64)>,
    bar: ProgressBar,
    ran: Vec<String>,
    cached: Vec<String>,
}

/// The outputs of a stage that just ran.
pub(super) struct Done<T> {
    /// Its files or folders.
    pub outputs: Vec<PathBuf>,
    /// Hash of what the next stages read of them.
    pub output_hash: String,
    /// Its typed output, kept in the record.
    pub output: T,
}

impl<'a> Runner<'a> {
    /// Starts the overall bar of a suite (`--force` checked by [`check_force`]).
    pub fn new(suite: &'a Suite, opts: &'a Options) -> Result<Runner<'a>> {
        let weights = weights(suite)?;
        crate::progress::install();
        let bar = crate::progress::bar(
            weights.iter().map(|w| w.1).sum(),
            &format!("suite {}", suite.name),
            crate::progress::Counter::Percent,
        );
        Ok(Runner {
            suite,
            suite_path: &opts.suite,
            work: WorkFolder::new(&opts.work, suite),
            results: opts.results.join(&suite.name),
            code: super::stage::code_version()?,
            force: &opts.force,
            weights,
            bar,
            ran: Vec::new(),
            cached: Vec::new(),
        })
    }

    /// Whether `--force` names this stage or its kind.
    pub fn forced(&self, name: &str) -> bool {
        let kind = name.split(':').next().unwrap_or(name);
        self.force.iter().any(|f| f == name || f == kind)
    }

    /// Prints a line above the bars.
    pub fn say(&self, line: &str) {
        crate::progress::println(line);
    }

    fn weight(&self, name: &str) -> u64 {
        self.weights.iter().find(|w| w.0 == name).map_or(1, |w| w.1)
    }

    /// Runs a stage unless its record is reusable under `key`; returns its record.
    pub fn stage<T: StageOutput>(
        &mut self,
        name: &str,
        key: String,
        run: impl FnOnce(&mut Self) -> Result<Done<T>>,
    ) -> Result<StageRecord<T>> {
        debug_assert_eq!(name.split(':').next(), Some(T::KIND));
        let weight = self.weight(name);
        let path = self.work.record(name);
        if !self.forced(name) {
            if let Some(rec) = StageRecord::<T>::reusable_at(&path, &key)? {
                self.say(&format!(
                    "cached  {name}  (finished {}, {:.1} s)",
                    rec.finished_at, rec.wall_seconds
                ));
                self.bar
                    .set_length(self.bar.length().unwrap_or(0).saturating_sub(weight));
                self.cached.push(name.to_string());
                return Ok(rec);
            }
        }
        self.say(&format!("run     {name}"));
        self.bar.set_message(name.to_string());
        let start = Instant::now();
        let done = run(self).with_context(|| format!("stage {name}"))?;
        let rec = StageRecord {
            stage: name.to_string(),
            key,
            outputs: done.outputs,
            output_hash: done.output_hash,
            wall_seconds: start.elapsed().as_secs_f64(),
            finished_at: crate::provenance::now(),
            output: done.output,
        };
        rec.write(&path)?;
        self.bar.inc(weight);
        self.say(&format!("done    {name}  ({:.1} s)", rec.wall_seconds));
        self.ran.push(name.to_string());
        if crate::train::interrupt_requested() {
            bail!("interrupted after stage {name}; run the same command again to continue (finished stages are kept)");
        }
        Ok(rec)
    }

    /// Clears the bar; what ran and what was reused since `start`.
    pub fn finish(self, start: Instant) -> Outcome {
        self.bar.finish_and_clear();
        Outcome {
            ran: self.ran,
            cached: self.cached,
            results: self.results,
            seconds: start.elapsed().as_secs_f64(),
        }
    }
}

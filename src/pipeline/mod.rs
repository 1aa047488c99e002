//! `museformer reproduce SUITE`: the paper's experiments as cached stages.
//!
//! ```text
//! prepare ─▶ similarity ─────────────────────────────┐
//!    └─▶ per row: train ─▶ eval                       │
//!                   └────▶ generate ─▶ se (Eq. 6) ◀───┘ ─▶ report
//! ```
//!
//! Every stage has a key ([`stage::stage_key`]) over its settings, the output
//! hashes of its inputs and the code version; a finished stage leaves a record in
//! `<work>/<suite>/stages/`, and a later run skips it ("cached") while the key is
//! the same and its outputs exist. `--force STAGE` redoes a stage by name
//! (`train:museformer`) or kind (`train`). An interrupted training resumes from its
//! checkpoint. One progress bar runs over all stages, weighted by expected cost.
//!
//! Each stage's record keeps its typed output ([`StageRecord`] of
//! [`PrepareOutput`], [`TrainOutput`], ...), which the next stages and the report
//! read; a record that does not match its type is an error naming the file.
//!
//! The folders of a suite's work are known to [`WorkFolder`] only; the report goes
//! to `<results>/<suite>/` ([`crate::report`]).
//!
//! The code by job: [`runner`] (caching, `--force`, progress), [`stages`] (the
//! stage bodies and their outputs), [`assemble`] (Table 1's inputs and the
//! provenance from the records), [`layout`] (the work folder), [`stage`] (keys and
//! records), [`suite`] (suite files).

pub mod assemble;
pub mod layout;
pub mod runner;
pub mod stage;
pub mod stages;
pub mod suite;

pub use layout::WorkFolder;
pub use runner::{stage_name, stage_names, STAGE_KINDS};
pub use stage::{StageOutput, StageRecord};
pub use stages::{
    EvalOutput, GenerateOutput, PrepareOutput, ReportOutput, SeOutput, SeResult, SimilarityOutput,
    TrainOutput, TrainingDistribution,
};

use crate::data::{self, DatasetConfig};
use anyhow::{bail, Context, Result};
use assemble::{Records, RowRecords};
use runner::Runner;
use std::path::{Path, PathBuf};
use std::time::Instant;
use suite::Suite;

/// Where and how a suite runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The suite file.
    pub suite: PathBuf,
    /// Folder of the stages' work (`<work>/<suite>/`).
    pub work: PathBuf,
    /// Folder of the reports (`<results>/<suite>/`).
    pub results: PathBuf,
    /// Stages to redo, by name (`train:museformer`) or kind (`train`).
    pub force: Vec<String>,
}

/// What a finished `reproduce` did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Stages run.
    pub ran: Vec<String>,
    /// Stages reused.
    pub cached: Vec<String>,
    /// The report folder.
    pub results: PathBuf,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Runs a suite: every stage whose record is not reusable, then the report.
pub fn reproduce(opts: &Options) -> Result<Outcome> {
    let start = Instant::now();
    let suite = Suite::load(&opts.suite)?;
    runner::check_force(&suite, &opts.force)?;
    let data_cfg = DatasetConfig::load(&suite.dataset)?;
    data::prepare::check_midi_dir(&data_cfg).with_context(|| {
        format!(
            "dataset {} of suite {}",
            suite.dataset.display(),
            opts.suite.display()
        )
    })?;
    // One `reproduce` at a time per suite work folder.
    let _lock =
        crate::io::FolderLock::acquire(&opts.work.join(&suite.name), "the suite's work folder")?;
    let mut r = Runner::new(&suite, opts)?;
    let prepare = stages::prepare(&mut r, &data_cfg)?;
    let similarity = stages::similarity(&mut r, &data_cfg, &prepare)?;
    let mut rows = Vec::new();
    for row in &suite.rows {
        let mut runs = Vec::new();
        for run in suite.runs(row) {
            let train = stages::train(&mut r, &run, &prepare)?;
            let eval = stages::eval(&mut r, &run, &train)?;
            let generate = stages::generate(&mut r, &run, &train)?;
            let se = stages::se(&mut r, &run, &data_cfg, &generate, &similarity)?;
            runs.push(RowRecords {
                train,
                eval,
                generate,
                se,
            });
        }
        rows.push(runs);
    }
    let records = Records {
        prepare,
        similarity,
        rows,
    };
    stages::report(&mut r, &records)?;
    Ok(r.finish(start))
}

/// A listening test's ratings for the report's Tables 2 and 3.
#[derive(Debug, Clone)]
pub struct Ratings {
    /// The ratings CSV (`rater,group,model,musicality,short_term,long_term,overall`).
    pub ratings: PathBuf,
    /// The kit's `key.csv` when the model column holds anonymous piece ids.
    pub key: Option<PathBuf>,
    /// The rating scale.
    pub scale: crate::listening::Scale,
}

/// `museformer report SUITE`: writes the report from the suite's finished stages,
/// and Tables 2 and 3 ([`crate::listening`], the suite's `reference` row against
/// the others) when ratings are given.
pub fn report(
    suite_path: &Path,
    work: &Path,
    results: &Path,
    ratings: Option<&Ratings>,
) -> Result<Vec<PathBuf>> {
    let suite = Suite::load(suite_path)?;
    let work = WorkFolder::new(work, &suite);
    let records = Records::load(&suite, &work)?;
    let out = results.join(&suite.name);
    let mut files = assemble::write_report(&suite, suite_path, &records, &work, &out)?;
    if let Some(r) = ratings {
        let tables = crate::listening::ListeningTables::compute(
            &r.ratings,
            r.key.as_deref(),
            &suite.reference,
            r.scale,
        )?;
        tables.write(&out)?;
        let readme_path = out.join("README.md");
        let mut readme = crate::io::read_to_string(&readme_path)?;
        readme.push_str(&format!(
            "\n## Tables 2 and 3: the listening test\n\nFrom {} ({} (rater, group) pairs): \
             [Table 2](table2.md) ([CSV](table2.csv), [LaTeX](table2.tex)) and \
             [Table 3](table3.md) ([CSV](table3.csv), [LaTeX](table3.tex)).\n",
            r.ratings.display(),
            tables.units
        ));
        crate::io::write_atomic(&readme_path, readme.as_bytes())?;
        for t in ["table2", "table3"] {
            for ext in ["md", "csv", "tex"] {
                files.push(out.join(format!("{t}.{ext}")));
            }
        }
    }
    Ok(files)
}

/// The generated-pieces folder of every row of a suite, by row label
/// (`<work>/<suite>/generated/<row>/`), for `museformer listening kit SUITE`;
/// refuses a row that has none yet, saying what to run.
pub fn generated_folders(suite_path: &Path, work: &Path) -> Result<Vec<(String, PathBuf)>> {
    let suite = Suite::load(suite_path)?;
    let work = WorkFolder::new(work, &suite);
    suite
        .rows
        .iter()
        .map(|row| {
            let dir = work.generated(row);
            if !dir.is_dir() {
                bail!(
                    "{}: row `{}` has no generated pieces in {}; run `museformer reproduce {}` first",
                    suite_path.display(),
                    row.label,
                    dir.display(),
                    suite_path.display()
                );
            }
            Ok((row.label.clone(), dir))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stage::stage_key;

    #[test]
    fn the_prepare_key_follows_the_midi_files_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let midi = dir.path().join("midi");
        std::fs::create_dir_all(&midi).unwrap();
        std::fs::write(midi.join("a.mid"), b"MThd").unwrap();
        let mut cfg = DatasetConfig::for_folder(midi.clone(), dir.path().join("out"));
        let key = |cfg: &DatasetConfig| {
            let f = data::prepare::input_fingerprint(cfg).unwrap();
            stage_key("prepare", cfg, &[&f], "code").unwrap()
        };
        let k1 = key(&cfg);
        assert_eq!(k1, key(&cfg));
        std::fs::write(midi.join("b.mid"), b"MThd").unwrap();
        let k2 = key(&cfg);
        assert_ne!(k1, k2, "a new MIDI file keeps the key");
        cfg.encoding.ignore_ts = !cfg.encoding.ignore_ts;
        assert_ne!(k2, key(&cfg), "a new setting keeps the key");
        cfg.midi_dir = dir.path().join("nowhere");
        cfg.missing_help = Some("download it".into());
        let err = format!("{:#}", data::prepare::input_fingerprint(&cfg).unwrap_err());
        assert!(
            err.contains("nowhere") && err.contains("download it"),
            "{err}"
        );
    }

    /// A folder with a dataset file `data.yaml` and an experiment `e.yaml`.
    fn dataset_and_experiment() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("data.yaml"),
            "name: d\nmidi_dir: m\nout: o\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("e.yaml"), "name: e\n").unwrap();
        dir
    }

    #[test]
    fn the_train_key_follows_the_resolved_experiment() {
        let dir = dataset_and_experiment();
        let d = dir.path().display();
        let suite_text = |set: &str| {
            format!(
                "name: s\ndataset: {d}/data.yaml\nreference: A\nset: [{set}]\nrows:\n  - {{label: A, experiment: {d}/e.yaml}}\n"
            )
        };
        let key = |set: &str| {
            let p = dir.path().join("s.yaml");
            std::fs::write(&p, suite_text(set)).unwrap();
            let s = Suite::load(&p).unwrap();
            let cfg = s.experiment(&s.rows[0]).unwrap();
            stage_key("train:a", &cfg, &["data"], "code").unwrap()
        };
        let k = key("train.steps=5");
        assert_eq!(k, key("train.steps=5"));
        assert_ne!(k, key("train.steps=6"));
        assert_ne!(k, key("train.steps=5, model.layers=1"));
    }

    #[test]
    fn a_suites_generated_folders_are_found_by_its_layout() {
        let dir = dataset_and_experiment();
        let d = dir.path().display();
        let suite_file = dir.path().join("s.yaml");
        std::fs::write(
            &suite_file,
            format!(
                "name: s\ndataset: {d}/data.yaml\nreference: A\nrows:\n  - {{label: A, experiment: {d}/e.yaml}}\n  - {{label: w/o B, experiment: {d}/e.yaml}}\n"
            ),
        )
        .unwrap();
        let work = dir.path().join("work");
        let a = work.join("s/generated/a");
        std::fs::create_dir_all(&a).unwrap();
        let err = format!("{:#}", generated_folders(&suite_file, &work).unwrap_err());
        assert!(
            err.contains("row `w/o B`")
                && err.contains("generated/w-o-b")
                && err.contains("museformer reproduce"),
            "{err}"
        );
        let b = work.join("s/generated/w-o-b");
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(
            generated_folders(&suite_file, &work).unwrap(),
            [("A".to_string(), a), ("w/o B".to_string(), b)]
        );
    }
}

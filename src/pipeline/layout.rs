//! The layout of a suite's work folder, `<work>/<suite>/`, known here only: the
//! stages, the report assembly and `museformer listening kit SUITE` all ask a
//! [`WorkFolder`] where things are.
//!
//! ```text
//! <work>/<suite>/
//!   stages/<stage>.json        stage records (`train:x` → `train.x.json`)
//!   stages/train.<row>.started the key an unfinished training started under
//!   train/<row>/               the row's runs root (run folder `<name>/<hash>/`)
//!   eval/<row>.json            perplexities
//!   generated/<row>/           generated pieces
//!   similarity/                the training data's distribution
//!   se/<row>.json              the pieces' similarity error
//! ```
//!
//! `<row>` is a row run's [`Row::stage_slug`]: the row label's slug, with
//! `-seed<k>` for the runs of seed index k > 0 of a suite with `seeds: N`.

use super::suite::{Row, Suite};
use std::path::{Path, PathBuf};

/// A suite's work folder, `<work>/<suite>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkFolder {
    root: PathBuf,
}

impl WorkFolder {
    /// The work folder of `suite` under `work` (`museformer reproduce --work`).
    pub fn new(work: &Path, suite: &Suite) -> WorkFolder {
        WorkFolder {
            root: work.join(&suite.name),
        }
    }

    /// `<work>/<suite>/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `stages/`: the stage records.
    pub fn stages(&self) -> PathBuf {
        self.root.join("stages")
    }

    /// `stages/<stage>.json`, the record of a stage (`train:x` → `train.x.json`).
    pub fn record(&self, stage: &str) -> PathBuf {
        record_file(&self.stages(), stage)
    }

    /// `stages/<stage>.started`: which key a training's run folder belongs to, so
    /// only an interrupted run of the same stage is resumed.
    pub fn started(&self, stage: &str) -> PathBuf {
        self.record(stage).with_extension("started")
    }

    /// `train/<row>/`: the runs root of a row's training (the run folder is
    /// `<name>/<hash>/` under it, see `ExperimentConfig::run_dir`).
    pub fn train(&self, row: &Row) -> PathBuf {
        self.root.join("train").join(row.stage_slug())
    }

    /// `eval/<row>.json`: the row's perplexities.
    pub fn eval(&self, row: &Row) -> PathBuf {
        self.root
            .join("eval")
            .join(format!("{}.json", row.stage_slug()))
    }

    /// `generated/<row>/`: the row's generated pieces.
    pub fn generated(&self, row: &Row) -> PathBuf {
        self.root.join("generated").join(row.stage_slug())
    }

    /// `similarity/`: the training data's similarity distribution.
    pub fn similarity(&self) -> PathBuf {
        self.root.join("similarity")
    }

    /// `similarity/distribution.json`.
    pub fn distribution(&self) -> PathBuf {
        self.similarity().join("distribution.json")
    }

    /// `se/<row>.json`: the row's similarity error.
    pub fn se(&self, row: &Row) -> PathBuf {
        self.root
            .join("se")
            .join(format!("{}.json", row.stage_slug()))
    }
}

/// The record file of a stage in a `stages/` folder (`train:x` → `train.x.json`).
pub fn record_file(stages: &Path, stage: &str) -> PathBuf {
    stages.join(format!("{}.json", stage.replace(':', ".")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_place_is_under_the_suite_folder() {
        let row = Row {
            label: "w/o bar selection".into(),
            experiment: "e.yaml".into(),
            set: Vec::new(),
            paper: None,
            seed: 0,
        };
        let w = WorkFolder {
            root: PathBuf::from("runs/suites/mini"),
        };
        let r = "runs/suites/mini";
        assert_eq!(
            w.record("train:w-o-bar-selection"),
            Path::new(&format!("{r}/stages/train.w-o-bar-selection.json"))
        );
        assert_eq!(
            w.started("train:x"),
            Path::new(&format!("{r}/stages/train.x.started"))
        );
        assert_eq!(
            w.train(&row),
            Path::new(&format!("{r}/train/w-o-bar-selection"))
        );
        assert_eq!(
            w.eval(&row),
            Path::new(&format!("{r}/eval/w-o-bar-selection.json"))
        );
        assert_eq!(
            w.generated(&row),
            Path::new(&format!("{r}/generated/w-o-bar-selection"))
        );
        assert_eq!(
            w.distribution(),
            Path::new(&format!("{r}/similarity/distribution.json"))
        );
        // A second seed's run has places of its own.
        let seed2 = row.with_seed(2);
        assert_eq!(
            w.train(&seed2),
            Path::new(&format!("{r}/train/w-o-bar-selection-seed2"))
        );
        assert_eq!(
            w.generated(&seed2),
            Path::new(&format!("{r}/generated/w-o-bar-selection-seed2"))
        );
        assert_eq!(
            w.se(&seed2),
            Path::new(&format!("{r}/se/w-o-bar-selection-seed2.json"))
        );
        assert_eq!(
            w.se(&row),
            Path::new(&format!("{r}/se/w-o-bar-selection.json"))
        );
    }
}

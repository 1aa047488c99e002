//! The run folder `runs/<name>/<hash>/` that `museformer train` writes and
//! `eval`, `generate` and the suite's stages read: its layout ([`RunPaths`]), the
//! prepared dataset it trains on ([`open_dataset`]), checkpoint weights
//! ([`load_weights`]) and a whole trained run ([`load_run`]).

use crate::config::ExperimentConfig;
use crate::data::{DatasetConfig, Manifest, TokenStore};
use crate::model::LanguageModel;
use crate::registry;
use crate::tokens::Vocab;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use tch::nn;

/// Snapshot folders are `step-` and the step with at least this many digits
/// (zero-padded, so that they sort by step up to 9,999,999 steps).
const SNAPSHOT_DIGITS: usize = 7;
const SNAPSHOT_PREFIX: &str = "step-";

/// Files of a run folder: the one place that knows its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    /// The run folder.
    pub dir: PathBuf,
}

impl RunPaths {
    /// The run folder `dir`.
    pub fn new(dir: &Path) -> RunPaths {
        RunPaths {
            dir: dir.to_path_buf(),
        }
    }
    /// The resolved experiment (`config.yaml`).
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }
    /// Training metrics, one row per step.
    pub fn train_csv(&self) -> PathBuf {
        self.dir.join("train.csv")
    }
    /// Validation metrics.
    pub fn valid_csv(&self) -> PathBuf {
        self.dir.join("valid.csv")
    }
    /// Test perplexities as CSV (`museformer eval`).
    pub fn eval_csv(&self) -> PathBuf {
        self.dir.join("eval.csv")
    }
    /// Test perplexities as JSON (`museformer eval`).
    pub fn eval_json(&self) -> PathBuf {
        self.dir.join("eval.json")
    }
    /// Test perplexity of repeated bars by distance to the nearest earlier copy, as
    /// CSV (`museformer eval`).
    pub fn repetition_csv(&self) -> PathBuf {
        self.dir.join("repetition.csv")
    }
    /// The checkpoints folder.
    pub fn checkpoints(&self) -> PathBuf {
        self.dir.join("checkpoints")
    }
    /// The last checkpoint.
    pub fn last(&self) -> PathBuf {
        self.checkpoints().join("last")
    }
    /// The checkpoint with the best validation loss.
    pub fn best(&self) -> PathBuf {
        self.checkpoints().join("best")
    }
    /// The numbered snapshot kept after optimizer step `step`
    /// (`checkpoints/step-0005000/`, `train.keep_snapshots`): a checkpoint folder
    /// like [`last`](Self::last), never overwritten by later steps.
    pub fn snapshot(&self, step: usize) -> PathBuf {
        self.checkpoints()
            .join(format!("{SNAPSHOT_PREFIX}{step:0SNAPSHOT_DIGITS$}"))
    }
    /// The snapshots that exist, as (step, folder), by step.
    pub fn snapshots(&self) -> Result<Vec<(usize, PathBuf)>> {
        let dir = self.checkpoints();
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let name = entry.file_name();
            let step = name
                .to_str()
                .and_then(|n| n.strip_prefix(SNAPSHOT_PREFIX))
                .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<usize>().ok());
            if let Some(step) = step {
                if entry.path().is_dir() {
                    found.push((step, entry.path()));
                }
            }
        }
        found.sort();
        Ok(found)
    }
    /// The weights file of a checkpoint folder.
    pub fn weights(checkpoint: &Path) -> PathBuf {
        checkpoint.join("model.safetensors")
    }
    /// The weights files that exist, best first (what evaluation and generation
    /// read).
    pub fn weight_files(&self) -> Vec<PathBuf> {
        [self.best(), self.last()]
            .iter()
            .map(|c| Self::weights(c))
            .filter(|p| p.is_file())
            .collect()
    }
}

/// The prepared dataset an experiment names, with the command that prepares it
/// when it is missing.
pub fn open_dataset(cfg: &ExperimentConfig) -> Result<(TokenStore, Manifest)> {
    let data_cfg = DatasetConfig::load(&cfg.dataset)?;
    let hint = || {
        format!(
            "run `museformer data prepare {}` first",
            cfg.dataset.display()
        )
    };
    let manifest = Manifest::load(&data_cfg.out).with_context(hint)?;
    let store = TokenStore::open(&data_cfg.out).with_context(hint)?;
    Ok((store, manifest))
}

/// Loads the weights of a checkpoint folder into a store (refusing a corrupt file
/// with its name).
pub fn load_weights(vs: &mut nn::VarStore, dir: &Path) -> Result<()> {
    let file = RunPaths::weights(dir);
    vs.load(&file).map_err(|e| {
        anyhow::anyhow!(
            "{} is corrupt or not this model's checkpoint: {e}",
            file.display()
        )
    })
}

/// A trained model loaded from its run folder.
pub struct LoadedRun {
    /// The run's resolved configuration.
    pub cfg: ExperimentConfig,
    /// The model (weights of the best checkpoint, else the last).
    pub model: Box<dyn LanguageModel>,
    /// The vocabulary of its dataset.
    pub vocab: Vocab,
    /// The dataset's token store.
    pub store: TokenStore,
    /// Encoding settings of the dataset.
    pub encoding: crate::tokens::EncodeOptions,
    /// The checkpoint the weights came from.
    pub checkpoint: PathBuf,
    /// Device the model is on.
    pub device: tch::Device,
    _vs: nn::VarStore,
}

/// Loads a run folder written by `museformer train`.
pub fn load_run(run_dir: &Path, device: Option<tch::Device>) -> Result<LoadedRun> {
    let paths = RunPaths::new(run_dir);
    let cfg_path = paths.config();
    let text = std::fs::read_to_string(&cfg_path).with_context(|| {
        format!(
            "{} is not a run folder (no config.yaml); `museformer train` writes one",
            run_dir.display()
        )
    })?;
    let cfg: ExperimentConfig = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is damaged", cfg_path.display()))?;
    let (store, manifest) = open_dataset(&cfg)?;
    let vocab = Vocab::new(manifest.config.encoding.pos_per_beat);
    let device = match device {
        Some(d) => d,
        None => cfg.train.device.device()?,
    };
    let mut vs = nn::VarStore::new(device);
    let model = registry::build(&vs.root(), &cfg.model, vocab.len() as i64)?;
    let checkpoint = [paths.best(), paths.last()]
        .into_iter()
        .find(|p| RunPaths::weights(p).exists())
        .with_context(|| {
            format!(
                "{} has no checkpoint yet; train it first",
                run_dir.display()
            )
        })?;
    load_weights(&mut vs, &checkpoint)?;
    Ok(LoadedRun {
        cfg,
        model,
        vocab,
        store,
        encoding: manifest.config.encoding,
        checkpoint,
        device,
        _vs: vs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_are_numbered_folders_listed_by_step() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path());
        assert_eq!(
            paths.snapshot(5000),
            dir.path().join("checkpoints/step-0005000")
        );
        assert_eq!(
            paths.snapshot(12_345_678),
            dir.path().join("checkpoints/step-12345678")
        );
        assert!(paths.snapshots().unwrap().is_empty());
        for step in [20_000, 5000, 10_000_000, 15_000] {
            std::fs::create_dir_all(paths.snapshot(step)).unwrap();
        }
        // Neither the other checkpoints, a half-written folder nor a file count.
        for other in ["last", "best", ".partial-step-0020000", "step-x"] {
            std::fs::create_dir_all(paths.checkpoints().join(other)).unwrap();
        }
        std::fs::write(paths.checkpoints().join("step-0025000"), b"").unwrap();
        let steps: Vec<usize> = paths.snapshots().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(steps, [5000, 15_000, 20_000, 10_000_000]);
        assert_eq!(paths.snapshots().unwrap()[0].1, paths.snapshot(5000));
    }
}

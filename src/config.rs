//! Experiment files (`experiments/*.yaml`): the dataset, the model, training and
//! evaluation settings of one run. A file may `extends:` a base file (relative to
//! itself); maps merge key by key, the child winning. `--set a.b=value` overrides
//! come last. Unknown keys and wrong types are errors naming the file, line and key;
//! the resolved configuration is saved in the run folder `runs/<name>/<hash>/`.

use crate::model::ModelConfig;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Which device to train and evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device (an error where there is none).
    Cuda,
}

impl DeviceChoice {
    /// Its name in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
        }
    }

    /// The tch device, or an error when CUDA is asked for and missing.
    pub fn device(self) -> Result<tch::Device> {
        match self {
            DeviceChoice::Cpu => Ok(tch::Device::Cpu),
            DeviceChoice::Auto => Ok(tch::Device::cuda_if_available()),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
            DeviceChoice::Cuda => {
                bail!("train.device is `cuda` but no CUDA device is available on this machine")
            }
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Training settings (defaults: the paper's, Section 4.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Device.
    pub device: DeviceChoice,
    /// Seed of initialization, shuffling and dropout.
    pub seed: u64,
    /// Training sequences are truncated to this many tokens.
    pub max_tokens: usize,
    /// 0: each training song (truncated at `max_tokens`) is one sample. More: each
    /// truncated song is cut into consecutive chunks of this many tokens, each
    /// chunk a sample (the Music Transformer's training in the paper); validation
    /// and evaluation stay full-length. Left out of the saved configuration when 0,
    /// so runs from before the option keep their folder.
    #[serde(skip_serializing_if = "is_zero")]
    pub chunk: usize,
    /// Validation sequences are truncated to this many tokens.
    pub valid_max_tokens: usize,
    /// Token budget of one batch (sequences × padded length).
    pub batch_tokens: usize,
    /// Batches accumulated per optimizer step.
    pub accumulate: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps (then inverse-square-root decay).
    pub warmup: usize,
    /// Adam betas.
    pub betas: (f64, f64),
    /// Adam epsilon.
    pub eps: f64,
    /// Decoupled weight decay on weight matrices.
    pub weight_decay: f64,
    /// Gradient-norm clipping (0: none).
    pub clip: f64,
    /// Validate every this many steps (0: only at the end).
    pub valid_every: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Mixed precision (bf16 autocast) on CUDA.
    pub bf16: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            device: DeviceChoice::Auto,
            seed: 1,
            max_tokens: 15_360,
            chunk: 0,
            valid_max_tokens: 10_240,
            batch_tokens: 15_360,
            accumulate: 1,
            steps: 100_000,
            lr: 5e-4,
            warmup: 16_000,
            betas: (0.9, 0.98),
            eps: 1e-9,
            weight_decay: 0.01,
            clip: 0.1,
            valid_every: 1000,
            checkpoint_every: 1000,
            bf16: true,
        }
    }
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Perplexity over the first this many tokens of each test song.
    pub lengths: Vec<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            lengths: vec![1024, 5120, 10_240],
        }
    }
}

/// One experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// A base file this one extends (relative to this file).
    #[serde(skip_serializing)]
    pub extends: Option<PathBuf>,
    /// Experiment name (default: the file name without extension).
    pub name: String,
    /// Dataset file (`experiments/data/*.yaml`) whose prepared dataset to use.
    pub dataset: PathBuf,
    /// The model.
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Evaluation.
    pub eval: EvalConfig,
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            extends: None,
            name: String::new(),
            dataset: PathBuf::from("experiments/data/default.yaml"),
            model: ModelConfig::default(),
            train: TrainConfig::default(),
            eval: EvalConfig::default(),
        }
    }
}

/// Reads one file as a YAML map, checking it against the schema on its own so that
/// errors carry its name and line; follows `extends` and merges.
fn load_value(path: &Path, depth: usize) -> Result<Value> {
    if depth > 16 {
        bail!(
            "{}: `extends` nests more than 16 files deep (a cycle?)",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read experiment file {}", path.display()))?;
    serde_yaml::from_str::<ExperimentConfig>(&text)
        .with_context(|| format!("{} is not a valid experiment file", path.display()))?;
    let mut value: Value =
        serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    if value.is_null() {
        value = Value::Mapping(Default::default());
    }
    let extends = value.as_mapping_mut().and_then(|m| m.remove("extends"));
    match extends {
        Some(Value::String(base)) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
            let mut merged = load_value(&base_path, depth + 1)
                .with_context(|| format!("in the base file of {}", path.display()))?;
            merge(&mut merged, value);
            Ok(merged)
        }
        Some(_) => bail!("{}: `extends` must be a file name", path.display()),
        None => Ok(value),
    }
}

/// Merges `over` into `base`: maps key by key, anything else replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Applies one `a.b.c=value` override (the value read as YAML).
fn apply_set(value: &mut Value, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set `{assignment}`: expected key.path=value"))?;
    let parsed: Value = serde_yaml::from_str(raw)
        .with_context(|| format!("--set `{assignment}`: the value is not YAML"))?;
    let mut slot = value;
    for part in key.split('.') {
        if !slot.is_mapping() {
            *slot = Value::Mapping(Default::default());
        }
        let map = slot.as_mapping_mut().expect("a mapping");
        slot = map
            .entry(Value::String(part.to_string()))
            .or_insert(Value::Null);
    }
    *slot = parsed;
    Ok(())
}

impl ExperimentConfig {
    /// Loads an experiment file with its bases and `--set` overrides.
    pub fn load(path: &Path, sets: &[String]) -> Result<ExperimentConfig> {
        let mut value = load_value(path, 0)?;
        for s in sets {
            apply_set(&mut value, s)?;
            serde_yaml::from_value::<ExperimentConfig>(value.clone())
                .with_context(|| format!("--set `{s}`"))?;
        }
        let mut cfg: ExperimentConfig =
            serde_yaml::from_value(value).with_context(|| format!("{}", path.display()))?;
        if cfg.name.is_empty() {
            cfg.name = path
                .file_stem()
                .map_or("experiment".into(), |s| s.to_string_lossy().into_owned());
        }
        Ok(cfg)
    }

    /// Hash of the resolved configuration (hex, 12 characters): the run folder name.
    /// `train.steps` is left out, so raising it and passing `--resume` continues
    /// the same run.
    pub fn hash(&self) -> String {
        let mut same_run = self.clone();
        same_run.train.steps = 0;
        let json = serde_json::to_string(&same_run).expect("serializable");
        blake3::hash(json.as_bytes()).to_hex()[..12].to_string()
    }

    /// The run folder `runs/<name>/<hash>/` under `root`.
    pub fn run_dir(&self, root: &Path) -> PathBuf {
        root.join(&self.name).join(self.hash())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "e.yaml",
            "name: x\nmodel:\n  layers: 2\n  hiden: 3\n",
        );
        let err = format!("{:#}", ExperimentConfig::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("e.yaml") && err.contains("hiden") && err.contains("line 4"),
            "{err}"
        );
        let p = write(dir.path(), "t.yaml", "train:\n  steps: many\n");
        let err = format!("{:#}", ExperimentConfig::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("t.yaml") && err.contains("steps") && err.contains("line 2"),
            "{err}"
        );
        write(dir.path(), "base.yaml", "train:\n  lrr: 1\n");
        let child = write(dir.path(), "child.yaml", "extends: base.yaml\n");
        let err = format!("{:#}", ExperimentConfig::load(&child, &[]).unwrap_err());
        assert!(
            err.contains("base.yaml") && err.contains("lrr") && err.contains("line 2"),
            "{err}"
        );
        let ok = write(dir.path(), "ok.yaml", "name: ok\n");
        let err = format!(
            "{:#}",
            ExperimentConfig::load(&ok, &["model.layer=3".into()]).unwrap_err()
        );
        assert!(
            err.contains("model.layer=3") && err.contains("layer"),
            "{err}"
        );
    }

    #[test]
    fn extends_merges_and_set_overrides() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.yaml",
            "model:\n  layers: 2\n  hidden: 64\ntrain:\n  lr: 0.001\n",
        );
        let p = write(
            dir.path(),
            "child.yaml",
            "extends: base.yaml\nmodel:\n  hidden: 32\n",
        );
        let cfg =
            ExperimentConfig::load(&p, &["train.steps=7".into(), "model.kind=uniform".into()])
                .unwrap();
        assert_eq!(
            (cfg.model.layers, cfg.model.hidden, cfg.model.heads),
            (2, 32, 8)
        );
        assert_eq!((cfg.train.lr, cfg.train.steps), (0.001, 7));
        assert_eq!(cfg.model.kind, "uniform");
        assert_eq!(cfg.name, "child");
        let again =
            ExperimentConfig::load(&p, &["train.steps=7".into(), "model.kind=uniform".into()])
                .unwrap();
        assert_eq!(cfg.hash(), again.hash());
        let longer =
            ExperimentConfig::load(&p, &["train.steps=8".into(), "model.kind=uniform".into()])
                .unwrap();
        assert_eq!(cfg.hash(), longer.hash());
        let other = ExperimentConfig::load(&p, &["train.steps=7".into()]).unwrap();
        assert_ne!(cfg.hash(), other.hash());
    }
}

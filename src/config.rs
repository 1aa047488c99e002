//! Experiment files (`experiments/*.yaml`): the dataset, the model, training and
//! evaluation settings of one run. A file may `extends:` a base file (relative to
//! itself); maps merge key by key, the child winning. `--set a.b=value` overrides
//! come last. Unknown keys and wrong types are errors naming the file, line and key;
//! the resolved configuration is saved in the run folder `runs/<name>/<hash>/`.
//!
//! The `model:` map holds the shared sizes, the `kind` and the section of that kind
//! only ([`crate::registry`]); each file's sections are checked against the kind it
//! names or, naming none, inherits. A file (or a `--set model.kind=...`) that names
//! another kind than its base replaces the model's kind: the base's section of the
//! old kind is dropped (it would not belong to the new kind), the shared sizes stay.

use crate::registry::{self, ModelConfig, ModelKind};
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

/// Which parameters weight decay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecayRule {
    /// Every trainable parameter: biases, layer norms and embedding tables too, as
    /// fairseq's Adam does (one parameter group), so as the release trained.
    All,
    /// Only the weight matrices of linear layers: parameters of two or more
    /// dimensions, except embedding tables (those under a path component named
    /// `emb_*`, the convention of `docs/training.md`, "Adding a model").
    #[default]
    Matrices,
}

impl DecayRule {
    /// Its name in files.
    pub fn name(self) -> &'static str {
        match self {
            DecayRule::All => "all",
            DecayRule::Matrices => "matrices",
        }
    }
}

/// Training settings. The defaults are the paper's optimizer, schedule and
/// truncation (Section 4.1: Adam (0.9, 0.98, 1e-9), weight decay 0.01, 16,000
/// warm-up steps to 5e-4, 15,360 / 10,240 tokens); the batch, the clipping, the
/// decay rule and the checkpoint intervals default to what suits short runs and
/// differ from the release, whose whole setting `experiments/transformer.yaml`
/// states (docs/training.md, "The paper's setting").
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
    /// and evaluation stay full-length.
    pub chunk: usize,
    /// Validation sequences are truncated to this many tokens.
    pub valid_max_tokens: usize,
    /// Token budget of one batch (sequences × padded length).
    pub batch_tokens: usize,
    /// At most this many samples (songs, or chunks with `chunk`) per batch, within
    /// the token budget; 0: as many as the budget allows. The release: 1
    /// (fairseq's `--batch-size 1`).
    pub batch_size: usize,
    /// Batches accumulated per optimizer step. The gradient of a step is that of
    /// the summed token losses of all its batches divided by their total number
    /// of target tokens, as fairseq's cross-entropy normalizes an update.
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
    /// Decoupled weight decay (scaled by the learning rate, as fairseq's Adam).
    pub weight_decay: f64,
    /// Which parameters `weight_decay` applies to (the release: `all`).
    pub decay: DecayRule,
    /// Gradient-norm clipping (0: none, the release's setting). The default 0.1
    /// is this trainer's for short runs, not the paper's.
    pub clip: f64,
    /// Validate every this many steps (0: only at the end).
    pub valid_every: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Also keep a numbered checkpoint `checkpoints/step-NNNNNNN/` every this many
    /// steps (0: none), as fairseq's `--save-interval-updates`.
    pub keep_snapshots: usize,
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
            batch_size: 0,
            accumulate: 1,
            steps: 100_000,
            lr: 5e-4,
            warmup: 16_000,
            betas: (0.9, 0.98),
            eps: 1e-9,
            weight_decay: 0.01,
            decay: DecayRule::Matrices,
            clip: 0.1,
            valid_every: 1000,
            checkpoint_every: 1000,
            keep_snapshots: 0,
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

/// The kind a merged experiment value's model has (the default where none is named).
fn kind_of(value: &Value) -> ModelKind {
    value
        .get("model")
        .and_then(registry::kind_in)
        .unwrap_or(ModelKind::Transformer)
}

/// Reads one file as a YAML map, following `extends` and merging; checks the file
/// against the schema on its own, so that errors carry its name and line, its model
/// sections against the kind it names or inherits.
fn load_value(path: &Path, depth: usize) -> Result<Value> {
    load_chain(path, depth, &mut Vec::new())
}

/// [`load_value`], `chain` the files that extend this one (to name a cycle).
fn load_chain(path: &Path, depth: usize, chain: &mut Vec<PathBuf>) -> Result<Value> {
    let here = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(i) = chain.iter().position(|p| *p == here) {
        let names: Vec<String> = chain[i..]
            .iter()
            .chain([&here])
            .map(|p| {
                p.file_name().map_or(p.display().to_string(), |n| {
                    n.to_string_lossy().into_owned()
                })
            })
            .collect();
        bail!("`extends` makes a cycle: {}", names.join(" → "));
    }
    if depth > 16 {
        bail!(
            "{}: `extends` nests more than 16 files deep",
            path.display()
        );
    }
    chain.push(here);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read experiment file {}", path.display()))?;
    let invalid = || format!("{} is not a valid experiment file", path.display());
    let mut value: Value = serde_yaml::from_str(&text).with_context(invalid)?;
    if value.is_null() {
        value = Value::Mapping(Default::default());
    }
    let own_kind = value.get("model").and_then(registry::kind_in);
    let extends = value.as_mapping_mut().and_then(|m| m.remove("extends"));
    let base = match extends {
        Some(Value::String(base)) => {
            let base_path = path.parent().unwrap_or(Path::new(".")).join(base);
            let base = match load_chain(&base_path, depth + 1, chain) {
                Ok(base) => base,
                // A cycle is named once, from the file that closes it.
                Err(e) if format!("{e}").starts_with("`extends` makes a cycle") => return Err(e),
                Err(e) => return Err(e.context(format!("in the base file of {}", path.display()))),
            };
            Some(base)
        }
        Some(_) => bail!("{}: `extends` must be a file name", path.display()),
        None => None,
    };
    let kind = own_kind.unwrap_or_else(|| base.as_ref().map_or(ModelKind::Transformer, kind_of));
    registry::read_as(kind, || serde_yaml::from_str::<ExperimentConfig>(&text))
        .with_context(invalid)?;
    match base {
        Some(mut merged) => {
            if let Some(kind) = own_kind {
                drop_other_sections(&mut merged, kind);
            }
            merge(&mut merged, value);
            Ok(merged)
        }
        None => Ok(value),
    }
}

/// Drops from the model of `value` the sections of kinds other than `kind`.
fn drop_other_sections(value: &mut Value, kind: ModelKind) {
    if let Some(Value::Mapping(model)) = value.get_mut("model") {
        registry::drop_other_sections(model, kind);
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
    if key == "model.kind" {
        if let Some(kind) = parsed.as_str().and_then(ModelKind::from_name) {
            drop_other_sections(value, kind);
        }
    }
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
        cfg.check()
            .with_context(|| format!("{} (with its bases and overrides)", path.display()))?;
        Ok(cfg)
    }

    /// The range of every numeric setting that a wrong value would make hang,
    /// panic or run silently wrong: sizes at least 1, dropouts in [0, 1), sequence
    /// lengths at least 2, batch budgets and accumulation at least 1, a positive
    /// finite learning rate, Adam's betas in [0, 1), non-negative decay and
    /// clipping. The error names the key and the value.
    pub fn check(&self) -> Result<()> {
        let m = &self.model.sizes;
        for (key, v) in [
            ("model.layers", m.layers),
            ("model.hidden", m.hidden),
            ("model.heads", m.heads),
            ("model.ffn", m.ffn),
            ("model.token_embed", m.token_embed),
        ] {
            if v < 1 {
                bail!("`{key}: {v}` must be at least 1");
            }
        }
        for (key, v) in [
            ("model.bar_embed", m.bar_embed),
            ("model.beat_embed", m.beat_embed),
        ] {
            if v < 0 {
                bail!("`{key}: {v}` must be 0 (none) or more");
            }
        }
        for (key, v) in [
            ("model.dropout", m.dropout),
            ("model.attention_dropout", m.attention_dropout),
            ("model.activation_dropout", m.activation_dropout),
        ] {
            if !(0.0..1.0).contains(&v) {
                bail!("`{key}: {v}` must be in [0, 1)");
            }
        }
        let t = &self.train;
        for (key, v) in [
            ("train.max_tokens", t.max_tokens),
            ("train.valid_max_tokens", t.valid_max_tokens),
        ] {
            if v < 2 {
                bail!("`{key}: {v}` must be at least 2 (a token and its successor)");
            }
        }
        for (key, v) in [
            ("train.batch_tokens", t.batch_tokens),
            ("train.accumulate", t.accumulate),
        ] {
            if v < 1 {
                bail!("`{key}: {v}` must be at least 1");
            }
        }
        if t.chunk == 1 {
            bail!("`train.chunk: 1` must be 0 (whole songs) or at least 2");
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            bail!("`train.lr: {}` must be a positive number", t.lr);
        }
        for (key, v) in [("train.betas[0]", t.betas.0), ("train.betas[1]", t.betas.1)] {
            if !(0.0..1.0).contains(&v) {
                bail!("`{key}: {v}` must be in [0, 1)");
            }
        }
        for (key, v) in [
            ("train.eps", t.eps),
            ("train.weight_decay", t.weight_decay),
            ("train.clip", t.clip),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("`{key}: {v}` must be 0 or a positive number");
            }
        }
        if let Some(l) = self.eval.lengths.iter().find(|&&l| l == 0) {
            bail!("`eval.lengths` holds {l}: every length must be at least 1");
        }
        Ok(())
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
    use crate::baselines::longformer::LongformerConfig;
    use crate::baselines::transformer_xl::TransformerXlConfig;
    use crate::model::ModelSizes;
    use crate::registry::ModelSection;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Values that would hang, panic or train silently wrong are refused at load,
    /// naming the key and the value; a cycle of `extends` is named as one.
    #[test]
    fn out_of_range_settings_and_extends_cycles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = write(dir.path(), "base.yaml", "name: b\n");
        for (set, words) in [
            (
                "train.max_tokens=0",
                vec!["train.max_tokens: 0", "at least 2"],
            ),
            (
                "train.batch_tokens=0",
                vec!["train.batch_tokens: 0", "at least 1"],
            ),
            ("train.accumulate=0", vec!["train.accumulate: 0"]),
            ("model.dropout=2.0", vec!["model.dropout: 2", "[0, 1)"]),
            ("model.layers=0", vec!["model.layers: 0"]),
            ("model.hidden=-4", vec!["model.hidden: -4"]),
            ("train.lr=0", vec!["train.lr: 0", "positive"]),
            ("train.clip=-1", vec!["train.clip: -1"]),
            ("eval.lengths=[0, 10]", vec!["eval.lengths", "at least 1"]),
        ] {
            let err = format!(
                "{:#}",
                ExperimentConfig::load(&base, &[set.to_string()]).unwrap_err()
            );
            assert!(err.contains("base.yaml"), "{set}: {err}");
            for w in words {
                assert!(err.contains(w), "{set}: `{w}` not in {err}");
            }
        }
        assert!(ExperimentConfig::load(&base, &[]).is_ok());
        write(dir.path(), "a.yaml", "extends: b.yaml\n");
        write(dir.path(), "b.yaml", "extends: c.yaml\n");
        let c = write(dir.path(), "c.yaml", "extends: a.yaml\n");
        let err = format!("{:#}", ExperimentConfig::load(&c, &[]).unwrap_err());
        assert!(
            err.contains("`extends` makes a cycle: c.yaml → a.yaml → b.yaml → c.yaml"),
            "{err}"
        );
        assert!(err.len() < 300, "{err}");
        let selfish = write(dir.path(), "self.yaml", "extends: self.yaml\n");
        let err = format!("{:#}", ExperimentConfig::load(&selfish, &[]).unwrap_err());
        assert!(err.contains("cycle: self.yaml → self.yaml"), "{err}");
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
            (
                cfg.model.sizes.layers,
                cfg.model.sizes.hidden,
                cfg.model.sizes.heads
            ),
            (2, 32, 8)
        );
        assert_eq!((cfg.train.lr, cfg.train.steps), (0.001, 7));
        assert_eq!(cfg.model.kind(), ModelKind::Uniform);
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

    #[test]
    fn a_section_or_key_of_another_kind_is_refused_with_file_line_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "key.yaml",
            "name: x\nmodel:\n  kind: museformer\n  window: 64\n",
        );
        let err = format!("{:#}", ExperimentConfig::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("key.yaml")
                && err.contains("`window`")
                && err.contains("longformer")
                && err.contains("line 4"),
            "{err}"
        );
        let p = write(
            dir.path(),
            "section.yaml",
            "model:\n  kind: museformer\n  layers: 2\n  longformer:\n    window: 64\n",
        );
        let err = format!("{:#}", ExperimentConfig::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("section.yaml") && err.contains("`longformer`") && err.contains("line 4"),
            "{err}"
        );
        // A child naming no kind is checked against the kind it inherits.
        write(dir.path(), "base.yaml", "model:\n  kind: museformer\n");
        let p = write(
            dir.path(),
            "child.yaml",
            "extends: base.yaml\nmodel:\n  transformer_xl: {segment: 8}\n",
        );
        let err = format!("{:#}", ExperimentConfig::load(&p, &[]).unwrap_err());
        assert!(
            err.contains("child.yaml")
                && err.contains("`transformer_xl`")
                && err.contains("`museformer`")
                && err.contains("line 3"),
            "{err}"
        );
        // So are overrides.
        let ok = write(dir.path(), "ok.yaml", "model: {kind: museformer}\n");
        let err = format!(
            "{:#}",
            ExperimentConfig::load(&ok, &["model.longformer.window=8".into()]).unwrap_err()
        );
        assert!(
            err.contains("model.longformer.window=8") && err.contains("`longformer`"),
            "{err}"
        );
    }

    #[test]
    fn a_child_adjusts_or_replaces_the_model_of_its_base() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base.yaml",
            "model:\n  kind: longformer\n  layers: 2\n  longformer: {window: 16}\n",
        );
        let adjust = write(
            dir.path(),
            "adjust.yaml",
            "extends: base.yaml\nmodel:\n  longformer: {window: 8}\n",
        );
        let cfg = ExperimentConfig::load(&adjust, &[]).unwrap();
        assert_eq!(
            cfg.model.section,
            ModelSection::Longformer(LongformerConfig { window: 8 })
        );
        // Another kind drops the base's section and keeps its sizes.
        let replace = write(
            dir.path(),
            "replace.yaml",
            "extends: base.yaml\nmodel:\n  kind: transformer_xl\n  transformer_xl: {memory: 4}\n",
        );
        let cfg = ExperimentConfig::load(&replace, &[]).unwrap();
        assert_eq!(cfg.model.sizes.layers, 2);
        assert_eq!(
            cfg.model.section,
            ModelSection::TransformerXl(TransformerXlConfig {
                memory: 4,
                ..Default::default()
            })
        );
        let cfg = ExperimentConfig::load(&adjust, &["model.kind=museformer".into()]).unwrap();
        assert_eq!(
            cfg.model,
            ModelConfig {
                sizes: ModelSizes {
                    layers: 2,
                    ..ModelSizes::default()
                },
                ..ModelConfig::of(ModelKind::Museformer)
            }
        );
    }

    #[test]
    fn the_hash_covers_only_what_the_chosen_model_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "m.yaml", "name: m\nmodel: {kind: museformer}\n");
        let cfg = ExperimentConfig::load(&p, &[]).unwrap();
        // What is hashed: the shared sizes and the Museformer's section, so no
        // other model's default (the Longformer's window, ...) can rename the run.
        let hashed = serde_json::to_value(&cfg).unwrap();
        let mut keys: Vec<&str> = hashed["model"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let sizes = serde_json::to_value(ModelSizes::default()).unwrap();
        let mut expected = vec!["kind", "museformer"];
        expected.extend(sizes.as_object().unwrap().keys().map(String::as_str));
        expected.sort_unstable();
        assert_eq!(keys, expected);
        // Defaults are filled in: writing them out names the same run.
        let explicit = write(
            dir.path(),
            "explicit.yaml",
            "name: m\nmodel:\n  kind: museformer\n  museformer:\n    layout:\n      fine_grained_bars: [1, 2, 4, 8, 12, 16, 24, 32]\n      coarse: all_other\n",
        );
        assert_eq!(
            ExperimentConfig::load(&explicit, &[]).unwrap().hash(),
            cfg.hash()
        );
        // A kind that changes and changes back leaves no trace.
        let back = ExperimentConfig::load(
            &p,
            &[
                "model.kind=longformer".into(),
                "model.longformer.window=8".into(),
                "model.kind=museformer".into(),
            ],
        )
        .unwrap();
        assert_eq!(back.hash(), cfg.hash());
        // The section itself is hashed.
        let other =
            ExperimentConfig::load(&p, &["model.museformer.layout.coarse=none".into()]).unwrap();
        assert_ne!(other.hash(), cfg.hash());
    }
}

//! Evaluation of a trained run: perplexity on the test split over the first 1,024,
//! 5,120 and 10,240 tokens of each song (configurable), token-weighted over songs
//! (Table 1 of the paper), and generation ([`generate`]).

pub mod generate;

use crate::config::ExperimentConfig;
use crate::data::{Split, TokenStore};
use crate::model::LanguageModel;
use crate::registry;
use crate::tokens::Vocab;
use crate::train::data::{sequence, TrainBatch, IGNORE};
use crate::train::{load_weights, open_dataset, RunPaths};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use tch::{nn, Kind, Tensor};

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
    let cfg_path = run_dir.join("config.yaml");
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
    let paths = RunPaths {
        dir: run_dir.to_path_buf(),
    };
    let checkpoint = [paths.best(), paths.last()]
        .into_iter()
        .find(|p| p.join("model.safetensors").exists())
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

/// Perplexity over the first `length` tokens of each song.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PplRow {
    /// Prefix length in tokens.
    pub length: usize,
    /// Perplexity: `exp(total negative log-likelihood / tokens)`.
    pub ppl: f64,
    /// Mean negative log-likelihood per token (nats).
    pub nll: f64,
    /// Songs that contributed (every song contributes its first `length` tokens,
    /// or all of them when shorter).
    pub songs: usize,
    /// Of those, songs with at least `length` tokens.
    pub full_songs: usize,
    /// Tokens the figure covers.
    pub tokens: u64,
}

/// Token-weighted perplexity of a model over the songs of a split at each prefix
/// length (targets include the closing `</s>`).
pub fn perplexity(
    model: &dyn LanguageModel,
    store: &TokenStore,
    vocab: &Vocab,
    cfg: &ExperimentConfig,
    split: Split,
    lengths: &[usize],
    device: tch::Device,
) -> Result<Vec<PplRow>> {
    let songs = store.split_indices(split);
    anyhow::ensure!(
        !songs.is_empty(),
        "the {} split of {} is empty",
        split.name(),
        store.dir().display()
    );
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let mut nll = vec![0.0f64; lengths.len()];
    let mut tokens = vec![0u64; lengths.len()];
    let mut full = vec![0usize; lengths.len()];
    tch::no_grad(|| {
        for &i in &songs {
            let seq = sequence(store, i, vocab, cfg.model.sizes.positions, longest);
            let n = seq.targets.len();
            let tb = TrainBatch::collate(&[seq]).to(device);
            let logits = model.forward(&tb.batch, false).to_kind(Kind::Float);
            let v = logits.size()[2];
            let per_token = logits.view([-1, v]).cross_entropy_loss::<Tensor>(
                &tb.targets.view([-1]),
                None,
                tch::Reduction::None,
                IGNORE,
                0.0,
            );
            let cumulative =
                Vec::<f64>::try_from(per_token.to_kind(Kind::Double).cumsum(0, Kind::Double))
                    .expect("a vector");
            for (k, &len) in lengths.iter().enumerate() {
                let m = len.min(n);
                nll[k] += cumulative[m - 1];
                tokens[k] += m as u64;
                full[k] += usize::from(n >= len);
            }
        }
    });
    Ok(lengths
        .iter()
        .enumerate()
        .map(|(k, &length)| {
            let mean = nll[k] / tokens[k] as f64;
            PplRow {
                length,
                ppl: mean.exp(),
                nll: mean,
                songs: songs.len(),
                full_songs: full[k],
                tokens: tokens[k],
            }
        })
        .collect())
}

/// Evaluates a run folder on its test split and writes `eval.csv` and `eval.json`
/// there.
pub fn evaluate(run_dir: &Path, lengths: Option<Vec<usize>>) -> Result<Vec<PplRow>> {
    let run = load_run(run_dir, None)?;
    let lengths = lengths.unwrap_or_else(|| run.cfg.eval.lengths.clone());
    let rows = perplexity(
        run.model.as_ref(),
        &run.store,
        &run.vocab,
        &run.cfg,
        Split::Test,
        &lengths,
        run.device,
    )?;
    let mut csv = String::from("length,ppl,nll,songs,full_songs,tokens\n");
    for r in &rows {
        csv.push_str(&format!(
            "{},{:.4},{:.6},{},{},{}\n",
            r.length, r.ppl, r.nll, r.songs, r.full_songs, r.tokens
        ));
    }
    std::fs::write(run_dir.join("eval.csv"), csv)?;
    let json = serde_json::json!({
        "experiment": run.cfg.name,
        "checkpoint": run.checkpoint,
        "split": "test",
        "perplexity": rows,
    });
    std::fs::write(
        run_dir.join("eval.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::store::StoreWriter;

    #[test]
    fn a_uniform_model_has_the_vocabulary_size_as_perplexity() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(dir.path()).unwrap();
        w.push(&[10, 11, 12, 4], &[0], Split::Test).unwrap();
        w.push(
            &(0..3000).map(|i| 5 + (i % 7) as u16).collect::<Vec<_>>(),
            &[0],
            Split::Test,
        )
        .unwrap();
        w.push(&[9], &[0], Split::Train).unwrap();
        w.finish().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let vocab = Vocab::new(12);
        let cfg = ExperimentConfig::default();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let uniform = registry::build(
            &vs.root(),
            &registry::ModelConfig::of(registry::ModelKind::Uniform),
            vocab.len() as i64,
        )
        .unwrap();
        let rows = perplexity(
            uniform.as_ref(),
            &store,
            &vocab,
            &cfg,
            Split::Test,
            &[2, 1024, 5120],
            tch::Device::Cpu,
        )
        .unwrap();
        for r in &rows {
            assert!(
                (r.ppl - vocab.len() as f64).abs() < 1e-6 * vocab.len() as f64,
                "{r:?}"
            );
        }
        // Song lengths with </s>: 5 and 3001.
        assert_eq!(
            rows.iter()
                .map(|r| (r.tokens, r.full_songs))
                .collect::<Vec<_>>(),
            [(4, 2), (1029, 1), (3006, 0)]
        );
    }
}

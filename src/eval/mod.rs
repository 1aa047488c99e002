//! Evaluation of a trained run: perplexity on the test split over the first 1,024,
//! 5,120 and 10,240 tokens of each song (configurable), token-weighted over songs
//! (Table 1 of the paper), and generation ([`generate`]).

pub mod generate;

use crate::data::batch::{sequence, TrainBatch, IGNORE};
use crate::data::{Split, TokenStore};
use crate::model::LanguageModel;
use crate::run::{load_run, RunPaths};
use crate::tokens::Vocab;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::{Kind, Tensor};

/// Perplexity over the first `length` tokens of each song.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Perplexities of a run, as `museformer eval` prints them.
pub struct PerplexityTable<'a> {
    /// The run folder.
    pub run_dir: &'a Path,
    /// Its perplexities.
    pub rows: &'a [PplRow],
}

impl std::fmt::Display for PerplexityTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "perplexity on the test split of {}:",
            self.run_dir.display()
        )?;
        for r in self.rows {
            writeln!(
                f,
                "  first {:>6} tokens: PPL {:.4}  ({} songs, {} at full length, {} tokens)",
                r.length, r.ppl, r.songs, r.full_songs, r.tokens
            )?;
        }
        Ok(())
    }
}

/// Token-weighted perplexity of a model over the songs of a split at each prefix
/// length (targets include the closing `</s>`).
pub fn perplexity(
    model: &dyn LanguageModel,
    store: &TokenStore,
    vocab: &Vocab,
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
            let seq = sequence(store, i, vocab, longest);
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
    let paths = RunPaths::new(run_dir);
    crate::io::write_atomic(&paths.eval_csv(), csv.as_bytes())?;
    let json = serde_json::json!({
        "experiment": run.cfg.name,
        "checkpoint": run.checkpoint,
        "split": "test",
        "perplexity": rows,
    });
    crate::io::write_json(&paths.eval_json(), &json)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::store::StoreWriter;
    use crate::registry;
    use tch::nn;

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

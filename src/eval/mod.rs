//! Evaluation of a trained run: perplexity on the test split over the first 1,024,
//! 5,120 and 10,240 tokens of each song (configurable), token-weighted over songs
//! (Table 1 of the paper), the perplexity of bars that repeat an earlier bar, by
//! distance ([`repetition`]), and generation ([`generate`]).

pub mod generate;
pub mod repetition;

use crate::data::batch::{sequence, TrainBatch, IGNORE};
use crate::data::{Split, TokenStore};
use crate::model::LanguageModel;
use crate::run::{load_run, RunPaths};
use crate::structure::InstrumentSelection;
use crate::tokens::Vocab;
use anyhow::Result;
use repetition::{RepetitionCounter, RepetitionRow};
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
    Ok(score(model, store, vocab, split, lengths, None, device)?.perplexity)
}

/// What `museformer eval` measures on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Perplexity at each prefix length ([`perplexity`]).
    pub perplexity: Vec<PplRow>,
    /// Perplexity of the tokens of repeated bars by distance to the nearest earlier
    /// copy, of the other bars and of the tokens outside bars, over the first
    /// `repetition_length` tokens of each song ([`repetition`]).
    pub repetition: Vec<RepetitionRow>,
    /// The prefix length the repetition rows cover: the longest of the lengths.
    pub repetition_length: usize,
    /// The notes that make a bar's set for the repetition rows.
    pub selection: InstrumentSelection,
}

/// [`perplexity`] at `lengths`, and the repetition perplexity over the first
/// `max(lengths)` tokens of each song with bar sets of the notes `selection` takes,
/// from the same forward passes.
pub fn evaluate_split(
    model: &dyn LanguageModel,
    store: &TokenStore,
    vocab: &Vocab,
    split: Split,
    lengths: &[usize],
    selection: InstrumentSelection,
    device: tch::Device,
) -> Result<Evaluation> {
    score(model, store, vocab, split, lengths, Some(selection), device)
}

fn score(
    model: &dyn LanguageModel,
    store: &TokenStore,
    vocab: &Vocab,
    split: Split,
    lengths: &[usize],
    selection: Option<InstrumentSelection>,
    device: tch::Device,
) -> Result<Evaluation> {
    let songs = store.split_indices(split);
    anyhow::ensure!(
        !songs.is_empty(),
        "the {} split of {} is empty",
        split.name(),
        store.dir().display()
    );
    anyhow::ensure!(
        !lengths.is_empty() && !lengths.contains(&0),
        "the evaluation lengths must be at least 1 token each (got {lengths:?})"
    );
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let mut nll = vec![0.0f64; lengths.len()];
    let mut tokens = vec![0u64; lengths.len()];
    let mut full = vec![0usize; lengths.len()];
    let mut counter = selection.map(|s| RepetitionCounter::new(vocab, s));
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
            if let Some(c) = counter.as_mut() {
                let scores =
                    Vec::<f64>::try_from(per_token.to_kind(Kind::Double)).expect("a vector");
                c.add_song(store.song(i), vocab, &scores);
            }
        }
    });
    let perplexity = lengths
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
        .collect();
    Ok(Evaluation {
        perplexity,
        repetition: counter.map_or_else(Vec::new, |c| c.rows()),
        repetition_length: longest,
        selection: selection.unwrap_or(InstrumentSelection::All),
    })
}

/// Evaluates a run folder on its test split and writes `eval.csv`, `eval.json` and
/// `repetition.csv` there (repetition with bar sets of every note,
/// [`InstrumentSelection::All`]); returns the perplexity rows.
pub fn evaluate(run_dir: &Path, lengths: Option<Vec<usize>>) -> Result<Vec<PplRow>> {
    Ok(evaluate_with(run_dir, lengths, InstrumentSelection::All)?.perplexity)
}

/// [`evaluate`] with the notes that make a bar's set for the repetition rows;
/// returns everything it measured.
pub fn evaluate_with(
    run_dir: &Path,
    lengths: Option<Vec<usize>>,
    selection: InstrumentSelection,
) -> Result<Evaluation> {
    let run = load_run(run_dir, None)?;
    let lengths = lengths.unwrap_or_else(|| run.cfg.eval.lengths.clone());
    let eval = evaluate_split(
        run.model.as_ref(),
        &run.store,
        &run.vocab,
        Split::Test,
        &lengths,
        selection,
        run.device,
    )?;
    let rows = &eval.perplexity;
    let mut csv = String::from("length,ppl,nll,songs,full_songs,tokens\n");
    for r in rows {
        csv.push_str(&format!(
            "{},{:.4},{:.6},{},{},{}\n",
            r.length, r.ppl, r.nll, r.songs, r.full_songs, r.tokens
        ));
    }
    let paths = RunPaths::new(run_dir);
    crate::io::write_atomic(&paths.eval_csv(), csv.as_bytes())?;
    crate::io::write_atomic(
        &paths.repetition_csv(),
        repetition::repetition_csv(&eval.repetition).as_bytes(),
    )?;
    let json = serde_json::json!({
        "experiment": run.cfg.name,
        "checkpoint": run.checkpoint,
        "split": "test",
        "perplexity": rows,
        "repetition": eval.repetition,
        "repetition_length": eval.repetition_length,
        "repetition_instrument": eval.selection.to_string(),
    });
    crate::io::write_json(&paths.eval_json(), &json)?;
    Ok(eval)
}

/// Repetition perplexities of a run, as `museformer eval` prints them.
pub struct RepetitionTable<'a>(pub &'a Evaluation);

impl std::fmt::Display for RepetitionTable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.0;
        writeln!(
            f,
            "perplexity of repeated bars (first {} tokens; bar notes: {}), by distance to the nearest earlier copy:",
            e.repetition_length, e.selection
        )?;
        for r in &e.repetition {
            let name = match r.distance.as_str() {
                "none" => "no earlier copy".to_string(),
                "outside" => "outside bars (</s>)".to_string(),
                "other" => "other distances".to_string(),
                "1" => "1 bar back".to_string(),
                d => format!("{d} bars back"),
            };
            match r.ppl {
                Some(ppl) => writeln!(
                    f,
                    "  {name:>20}: PPL {ppl:.4}  ({} bars, {} tokens)",
                    r.bars, r.tokens
                )?,
                None => writeln!(f, "  {name:>20}: -  (no tokens)")?,
            }
        }
        Ok(())
    }
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
        let uniform = uniform_model(&vocab, &vs);
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

    fn uniform_model(vocab: &Vocab, vs: &nn::VarStore) -> Box<dyn LanguageModel> {
        registry::build(
            &vs.root(),
            &registry::ModelConfig::of(registry::ModelKind::Uniform),
            vocab.len() as i64,
        )
        .unwrap()
    }

    #[test]
    fn repetition_rows_count_each_group_s_tokens_at_the_uniform_perplexity() {
        let vocab = Vocab::new(4);
        let song = repetition::tests::pattern_ids(&vocab);
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(dir.path()).unwrap();
        w.push(&song, &[0], Split::Test).unwrap();
        w.push(&song, &[0], Split::Train).unwrap();
        w.finish().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let uniform = uniform_model(&vocab, &vs);
        let run = |lengths: &[usize]| {
            evaluate_split(
                uniform.as_ref(),
                &store,
                &vocab,
                Split::Test,
                lengths,
                InstrumentSelection::All,
                tch::Device::Cpu,
            )
            .unwrap()
        };
        fn counts(e: &Evaluation) -> Vec<(&str, u64, u64)> {
            e.repetition
                .iter()
                .map(|r| (r.distance.as_str(), r.bars, r.tokens))
                .collect()
        }
        // Bars A B A C A B D D _ _ A B: 6 tokens per note bar (`o i p d v b-1`, the
        // `b-1` in the bar it closes), 1 per empty bar; `</s>` outside. Groups
        // (repetition.rs): none 0 1 3 6 8 9, 1: 7, 2: 2 4, 4: 5, other: 10 11.
        let full = run(&[10, 1024]);
        assert_eq!(full.repetition_length, 1024);
        assert_eq!(
            counts(&full),
            [
                ("1", 1, 6),
                ("2", 2, 12),
                ("4", 1, 6),
                ("8", 0, 0),
                ("12", 0, 0),
                ("16", 0, 0),
                ("24", 0, 0),
                ("32", 0, 0),
                ("other", 2, 12),
                ("none", 6, 26),
                ("outside", 0, 1)
            ]
        );
        let v = vocab.len() as f64;
        for r in &full.repetition {
            match r.ppl {
                Some(ppl) => assert!((ppl - v).abs() < 1e-6 * v, "{r:?}"),
                None => assert_eq!((r.tokens, r.nll), (0, None), "{r:?}"),
            }
        }
        // The groups partition the tokens of the longest length.
        let total: u64 = full.repetition.iter().map(|r| r.tokens).sum();
        assert_eq!(total, full.perplexity[1].tokens);
        // The first 32 targets: bars 0..=4 (30 tokens) and 2 tokens of bar 5.
        let cut = run(&[32]);
        assert_eq!(
            counts(&cut)
                .into_iter()
                .filter(|c| c.2 > 0)
                .collect::<Vec<_>>(),
            [("2", 2, 12), ("4", 1, 2), ("none", 3, 18)]
        );
    }
}

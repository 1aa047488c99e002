//! Generation: top-k sampling through the model's incremental-decoding state (the
//! prefix is never recomputed), until `</s>` or a maximum length, `</s>` forbidden
//! before a minimum length (fairseq's `--min-len`); tokens that break
//! the grammar are dropped and an unfinished last bar cut (counted, never a crash);
//! tokens and MIDI files are written for each piece.

use crate::midi;
use crate::model::{LanguageModel, PositionTracker};
use crate::run::load_run;
use crate::tokens::vocab::{BOS_ID, EOS_ID, NUM_SPECIALS};
use crate::tokens::{self, EncodeOptions, Token, Vocab};
use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Sampling settings: the flags of `museformer generate` and a suite's
/// `generate:` section (`num`, `max_len`, `min_len`, `top_k`, `temperature`, `seed`; unknown
/// keys are errors, missing ones take [`GenerateOptions::default`]).
#[derive(Debug, Clone, PartialEq, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenerateOptions {
    /// Number of pieces.
    #[arg(long, default_value_t = 1)]
    pub num: usize,
    /// Sample among the k most likely tokens.
    #[arg(long, default_value_t = GenerateOptions::default().top_k)]
    pub top_k: i64,
    /// Softmax temperature.
    #[arg(long, default_value_t = GenerateOptions::default().temperature)]
    pub temperature: f64,
    /// Sampling seed.
    #[arg(long, default_value_t = GenerateOptions::default().seed)]
    pub seed: u64,
    /// Maximum tokens per piece (the prompt included), as fairseq's `--max-len-b`.
    #[arg(long, default_value_t = GenerateOptions::default().max_len)]
    pub max_len: usize,
    /// `</s>` cannot be sampled before the piece has this many tokens (the prompt
    /// included), as fairseq's `--min-len`; 0 or 1: from the first token on.
    #[arg(long, default_value_t = GenerateOptions::default().min_len)]
    pub min_len: usize,
    /// Token file to continue from (as `museformer encode` prints); not a suite key.
    #[arg(long)]
    #[serde(skip)]
    pub prompt: Option<PathBuf>,
    /// Recompute the prefix at every step instead of using the decoding state
    /// (slow; for measuring the cache); not a suite key.
    #[arg(long)]
    #[serde(skip)]
    pub no_cache: bool,
}

impl Default for GenerateOptions {
    /// The defaults of a suite's `generate:` section: 10 pieces of at most 20,480
    /// tokens and no minimum, top-k 8, temperature 1, seed 0 (`museformer generate`
    /// makes 1 piece unless `--num` says otherwise).
    fn default() -> Self {
        GenerateOptions {
            num: 10,
            top_k: 8,
            temperature: 1.0,
            seed: 0,
            max_len: 20_480,
            min_len: 0,
            prompt: None,
            no_cache: false,
        }
    }
}

/// What happened to one piece.
#[derive(Debug, Clone, Serialize)]
pub struct PieceReport {
    /// Token file.
    pub tokens_file: PathBuf,
    /// MIDI file.
    pub midi_file: PathBuf,
    /// Tokens sampled.
    pub sampled: usize,
    /// Tokens kept after the grammar repair.
    pub kept: usize,
    /// Whether generation ended with `</s>` (else at the maximum length).
    pub ended: bool,
    /// Tokens dropped or cut by the grammar repair.
    pub cut: usize,
    /// Sampling speed in tokens per second.
    pub tokens_per_sec: f64,
}

impl std::fmt::Display for PieceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} tokens sampled ({}), {} kept, {:.0} tokens/s",
            self.midi_file.display(),
            self.sampled,
            if self.ended {
                "ended with </s>"
            } else {
                "maximum length"
            },
            self.kept,
            self.tokens_per_sec
        )
    }
}

/// Repairs a sampled sequence: tokens the grammar does not accept where they stand
/// are dropped, and the piece ends with the last bar that has notes (an unfinished
/// last bar and trailing empty bars are cut, as the encoder would not produce them).
/// Returns the kept tokens.
pub fn repair(tokens: &[Token], vocab: &Vocab) -> Vec<Token> {
    let mut grammar = tokens::Grammar::new(vocab);
    let mut kept = Vec::with_capacity(tokens.len());
    let (mut end, mut has_note) = (0, false);
    for &t in tokens {
        if grammar.accept(t).is_err() {
            continue;
        }
        kept.push(t);
        match t {
            Token::Velocity(_) => has_note = true,
            Token::Bar => {
                if has_note {
                    end = kept.len();
                }
                has_note = false;
            }
            _ => {}
        }
    }
    kept.truncate(end);
    kept
}

impl GenerateOptions {
    /// Checks the lengths: `min_len` at most `max_len` (fairseq refuses the same).
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(
            self.min_len <= self.max_len,
            "the minimum length ({}) is above the maximum length ({}); lower min_len or raise max_len",
            self.min_len,
            self.max_len
        );
        Ok(())
    }
}

/// Whether `</s>` may follow a piece of `len` tokens (the prompt included): from
/// `min_len` tokens on, as fairseq forbids it at steps before `--min-len`.
fn may_end(len: usize, min_len: usize) -> bool {
    len >= min_len
}

/// Samples the next id from `logits` among the `top_k` most likely tokens that
/// may come: REMIGEN2 tokens, and `</s>` where `may_end`.
fn sample(logits: &Tensor, opts: &GenerateOptions, may_end: bool) -> i64 {
    let mut logits = logits.to_kind(Kind::Float) / opts.temperature.max(1e-6);
    // Only REMIGEN2 tokens and </s> may be sampled, </s> only where it may end.
    let specials: Vec<i64> = (0..NUM_SPECIALS as i64)
        .filter(|&i| i != EOS_ID as i64 || !may_end)
        .collect();
    let _ = logits.index_fill_(
        0,
        &Tensor::from_slice(&specials).to_device(logits.device()),
        f64::NEG_INFINITY,
    );
    let k = opts.top_k.clamp(1, logits.size()[0]);
    let (values, indices) = logits.topk(k, -1, true, true);
    let probs = values.softmax(-1, Kind::Float);
    indices
        .gather(0, &probs.multinomial(1, false), false)
        .int64_value(&[0])
}

/// Samples one piece; returns its ids (without `<s>`), whether it ended, and the
/// sampling time.
fn sample_piece(
    model: &dyn LanguageModel,
    vocab: &Vocab,
    prompt: &[u16],
    opts: &GenerateOptions,
    device: Device,
    bar: &ProgressBar,
) -> (Vec<u16>, bool) {
    let mut tracker = PositionTracker::new();
    let mut ids: Vec<u16> = vec![BOS_ID];
    ids.extend_from_slice(prompt);
    let mut bars = Vec::new();
    let mut beats = Vec::new();
    for &id in &ids {
        let (b, t) = tracker.next(vocab.token(id));
        bars.push(b);
        beats.push(t);
    }
    let scalar = |x: i64| Tensor::from_slice(&[x]).to_device(device);
    let mut decoder = model.decoder(1);
    let mut logits = Tensor::zeros([1], (Kind::Float, device));
    if !opts.no_cache {
        for i in 0..ids.len() {
            logits = decoder.step(&scalar(ids[i] as i64), &scalar(bars[i]), &scalar(beats[i]));
        }
    }
    let mut ended = false;
    while ids.len() - 1 < opts.max_len {
        if opts.no_cache {
            let as_i64 = |v: &[u16]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
            let batch = crate::model::Batch::single(&as_i64(&ids), &bars, &beats, device);
            logits = model.forward(&batch, false).select(1, ids.len() as i64 - 1);
        }
        let next = sample(
            &logits.squeeze_dim(0),
            opts,
            may_end(ids.len() - 1, opts.min_len),
        ) as u16;
        if next == EOS_ID {
            ended = true;
            break;
        }
        let (b, t) = tracker.next(vocab.token(next));
        ids.push(next);
        bars.push(b);
        beats.push(t);
        bar.inc(1);
        if !opts.no_cache {
            logits = decoder.step(&scalar(next as i64), &scalar(b), &scalar(t));
        }
    }
    (ids[1..].to_vec(), ended)
}

/// Generates pieces from a run folder into `out`: `piece-NNN.txt` (the repaired
/// piece in canonical token order: exactly what `piece-NNN.mid` encodes to with the
/// dataset's settings, key normalization off), `piece-NNN.sampled.txt` (everything
/// sampled), `piece-NNN.mid` and `generation.json` (settings and per-piece reports).
pub fn generate(run_dir: &Path, opts: &GenerateOptions, out: &Path) -> Result<Vec<PieceReport>> {
    opts.check()?;
    let run = load_run(run_dir, None)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let prompt: Vec<u16> = match &opts.prompt {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            tokens::parse_tokens(&text, &run.vocab)
                .with_context(|| format!("{}", path.display()))?
                .into_iter()
                .map(|t| run.vocab.id(t))
                .collect()
        }
        None => Vec::new(),
    };
    tch::manual_seed(opts.seed as i64);
    let bar = crate::progress::bar(
        (opts.num * opts.max_len) as u64,
        "generating",
        crate::progress::Counter::Units("tokens"),
    );
    let mut reports = Vec::new();
    for n in 0..opts.num {
        bar.set_message(format!("(piece {}/{})", n + 1, opts.num));
        let start = Instant::now();
        let (ids, ended) = tch::no_grad(|| {
            sample_piece(
                run.model.as_ref(),
                &run.vocab,
                &prompt,
                opts,
                run.device,
                &bar,
            )
        });
        let secs = start.elapsed().as_secs_f64();
        let sampled: Vec<Token> = ids.iter().filter_map(|&id| run.vocab.token(id)).collect();
        let repaired = repair(&sampled, &run.vocab);
        let score = tokens::decode(&repaired, &run.vocab).context("decoding a repaired piece")?;
        // The canonical token order of the notes (what the MIDI file encodes to):
        // a model may emit instruments or notes of one position in another order.
        // Our own encoder even for a `compat: release` dataset: the release's
        // refuses instruments outside its order, which a model may still emit.
        let canonical = EncodeOptions {
            normalize_key: false,
            compat: crate::midi::Compat::Ours,
            ..run.encoding
        };
        let kept = if repaired.is_empty() {
            repaired
        } else {
            tokens::encode(&score, &canonical)?
        };
        let stem = format!("piece-{n:03}");
        let tokens_file = out.join(format!("{stem}.txt"));
        let midi_file = out.join(format!("{stem}.mid"));
        crate::io::write_atomic(&tokens_file, (tokens::to_text(&kept) + "\n").as_bytes())?;
        crate::io::write_atomic(
            &out.join(format!("{stem}.sampled.txt")),
            (tokens::to_text(&sampled) + "\n").as_bytes(),
        )?;
        midi::write_file(&score, &midi_file)
            .with_context(|| format!("cannot write {}", midi_file.display()))?;
        reports.push(PieceReport {
            tokens_file,
            midi_file,
            sampled: ids.len() - prompt.len(),
            kept: kept.len(),
            ended,
            cut: sampled.len() - kept.len(),
            tokens_per_sec: (ids.len() - prompt.len()) as f64 / secs,
        });
    }
    bar.finish_and_clear();
    let json = serde_json::json!({
        "run": run_dir,
        "checkpoint": run.checkpoint,
        "top_k": opts.top_k,
        "temperature": opts.temperature,
        "seed": opts.seed,
        "max_len": opts.max_len,
        "min_len": opts.min_len,
        "cache": !opts.no_cache,
        "pieces": reports,
    });
    crate::io::write_json(&out.join("generation.json"), &json)?;
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, Decoder};

    /// A model that gives `</s>` almost all the probability at every position.
    struct WantsToEnd {
        vocab: i64,
    }

    impl WantsToEnd {
        fn logits(&self, shape: &[i64]) -> Tensor {
            let logits = Tensor::zeros(shape, (Kind::Float, Device::Cpu));
            let _ = logits.narrow(-1, EOS_ID as i64, 1).fill_(50.0);
            logits
        }
    }

    struct Steps<'a>(&'a WantsToEnd, usize);

    impl Decoder for Steps<'_> {
        fn step(&mut self, token: &Tensor, _bar: &Tensor, _beat: &Tensor) -> Tensor {
            self.1 += 1;
            self.0.logits(&[token.size()[0], self.0.vocab])
        }
        fn len(&self) -> usize {
            self.1
        }
    }

    impl LanguageModel for WantsToEnd {
        fn forward(&self, batch: &Batch, _train: bool) -> Tensor {
            let (b, t) = batch.tokens.size2().unwrap();
            self.logits(&[b, t, self.vocab])
        }
        fn decoder(&self, _batch: i64) -> Box<dyn Decoder + '_> {
            Box::new(Steps(self, 0))
        }
    }

    #[test]
    fn end_of_sequence_cannot_come_before_the_minimum_length() {
        let vocab = Vocab::new(12);
        let model = WantsToEnd {
            vocab: vocab.len() as i64,
        };
        let prompt: Vec<u16> = tokens::parse_tokens("t-35 o-0 i-0", &vocab)
            .unwrap()
            .into_iter()
            .map(|t| vocab.id(t))
            .collect();
        let piece = |prompt: &[u16], min_len: usize, max_len: usize, no_cache: bool| {
            let opts = GenerateOptions {
                min_len,
                max_len,
                no_cache,
                ..GenerateOptions::default()
            };
            tch::manual_seed(1);
            let (ids, ended) = sample_piece(
                &model,
                &vocab,
                prompt,
                &opts,
                Device::Cpu,
                &ProgressBar::hidden(),
            );
            assert!(!ids.contains(&EOS_ID) && !ids.contains(&BOS_ID));
            (ids.len(), ended)
        };
        for no_cache in [false, true] {
            // Without a minimum the piece ends at once; with one it runs to it
            // (the prompt counts, as fairseq's steps do) and ends there.
            assert_eq!(piece(&[], 0, 100, no_cache), (0, true));
            assert_eq!(piece(&[], 1, 100, no_cache), (1, true));
            assert_eq!(piece(&[], 40, 100, no_cache), (40, true));
            assert_eq!(piece(&prompt, 0, 100, no_cache), (3, true));
            assert_eq!(piece(&prompt, 10, 100, no_cache), (10, true));
            // The maximum length still stops it.
            assert_eq!(piece(&[], 30, 30, no_cache), (30, false));
        }
        // With </s> allowed and overwhelmingly likely it is sampled; forbidden,
        // never, even among the top 1.
        let logits = model.logits(&[model.vocab]);
        for top_k in [1, 8] {
            let opts = GenerateOptions {
                top_k,
                ..GenerateOptions::default()
            };
            assert_eq!(sample(&logits, &opts, true), EOS_ID as i64);
            for _ in 0..50 {
                let id = sample(&logits, &opts, false);
                assert!(id >= NUM_SPECIALS as i64, "special id {id} sampled");
            }
        }
        let bad = GenerateOptions {
            min_len: 2048,
            max_len: 1024,
            ..GenerateOptions::default()
        };
        let err = format!("{:#}", bad.check().unwrap_err());
        assert!(err.contains("2048") && err.contains("1024"), "{err}");
    }

    #[test]
    fn repair_cuts_at_the_fault_and_drops_trailing_empty_bars() {
        let v = Vocab::new(12);
        let parse = |s: &str| tokens::parse_tokens(s, &v).unwrap();
        let good = "t-35 o-0 i-0 p-60 d-4 v-20 b-1 t-35 b-1";
        assert_eq!(
            tokens::to_text(&repair(&parse(good), &v)),
            "t-35 o-0 i-0 p-60 d-4 v-20 b-1"
        );
        // A stray d-8, a position going back and an unfinished last bar.
        let broken =
            "t-35 o-0 i-0 p-60 d-4 d-8 v-20 b-1 t-35 o-3 i-0 p-62 d-4 v-20 o-2 b-1 t-35 o-0 p-60";
        assert_eq!(
            tokens::to_text(&repair(&parse(broken), &v)),
            "t-35 o-0 i-0 p-60 d-4 v-20 b-1 t-35 o-3 i-0 p-62 d-4 v-20 b-1"
        );
        assert!(repair(&parse("o-0 p-60"), &v).is_empty());
    }
}

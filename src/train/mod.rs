//! The shared trainer: every model trains through [`train`] on equal terms. Adam
//! with decoupled weight decay, warm-up then inverse-square-root decay (both as
//! fairseq's), gradient clipping and accumulation (an update's gradient is that of
//! its summed token losses over its total target tokens, as fairseq normalizes),
//! periodic validation with a best checkpoint, metrics in CSV, and checkpoints
//! (weights, optimizer state, step, data position) written atomically every N
//! steps, on Ctrl-C and at the end, with numbered snapshots every M steps kept.
//! `--resume` continues exactly:
//! the data order depends only on (seed, epoch) and dropout is reseeded from (seed,
//! step). A NaN or infinite loss stops training, keeping the last good checkpoint.

pub mod loader;
pub mod optim;

use crate::config::ExperimentConfig;
use crate::data::batch::{batch_loss, TrainBatch};
use crate::data::{Split, TokenStore};
use crate::model::LanguageModel;
use crate::registry;
use crate::run::{load_weights, open_dataset, RunPaths};
use crate::tokens::Vocab;
use anyhow::{bail, Context, Result};
use loader::{DataPosition, Loader, LoaderConfig};
use optim::{learning_rate, Adam};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::nn;

/// What a checkpoint's `state.json` holds besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Optimizer steps done.
    pub step: usize,
    /// Where the data stands.
    pub data: DataPosition,
    /// Best validation loss so far.
    pub best_valid: Option<f64>,
    /// Target tokens trained on.
    pub tokens: u64,
    /// Training wall time so far, in seconds.
    pub seconds: f64,
}

/// Writes a checkpoint folder atomically: into a temporary folder, then renamed over
/// the old one, which stays intact if anything fails.
fn save_checkpoint(dir: &Path, vs: &nn::VarStore, opt: &Adam, state: &TrainState) -> Result<()> {
    let tmp = crate::io::temp_dir_beside(dir, ".partial-")?;
    let weights = RunPaths::weights(tmp.path());
    vs.save(&weights)
        .with_context(|| format!("cannot write {}", weights.display()))?;
    opt.save(&tmp.path().join("optimizer.safetensors"))?;
    crate::io::write_json(&tmp.path().join("state.json"), state)?;
    crate::io::replace_dir(tmp, dir)
}

fn load_checkpoint(dir: &Path, vs: &mut nn::VarStore, opt: &mut Adam) -> Result<TrainState> {
    load_weights(vs, dir)?;
    opt.load(&dir.join("optimizer.safetensors"))?;
    let file = dir.join("state.json");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is corrupt", file.display()))
}

/// Mean validation loss per token over the valid split: the token-weighted
/// negative log-likelihood of each song's first `train.valid_max_tokens` targets,
/// computed by the evaluator's [`perplexity`](crate::eval::perplexity).
pub fn validate(
    model: &dyn LanguageModel,
    store: &TokenStore,
    vocab: &Vocab,
    cfg: &ExperimentConfig,
    device: tch::Device,
) -> Result<f64> {
    let length = cfg.train.valid_max_tokens;
    let rows = crate::eval::perplexity(model, store, vocab, Split::Valid, &[length], device)?;
    Ok(rows[0].nll)
}

fn append_csv(path: &Path, header: &str, row: &str) -> Result<()> {
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if new {
        writeln!(f, "{header}")?;
    }
    writeln!(f, "{row}")?;
    Ok(())
}

/// Forward and backward passes over the batches of one update, each batch's mean
/// token loss weighted by its share of the update's target tokens: the gradient
/// is that of the summed token losses divided by their total number, as fairseq's
/// cross-entropy normalizes an update over its batches and GPUs (not the mean of
/// the batches' means). Returns the summed token loss and the target tokens.
fn backward_update(
    model: &dyn LanguageModel,
    batches: Vec<TrainBatch>,
    device: tch::Device,
    autocast: bool,
) -> (f64, i64) {
    let tokens: i64 = batches.iter().map(|tb| tb.tokens).sum();
    let mut loss_sum = 0.0;
    for tb in batches {
        let tb = tb.to(device);
        let loss = tch::autocast(autocast, || batch_loss(model, &tb, true));
        (&loss * (tb.tokens as f64 / tokens.max(1) as f64)).backward();
        loss_sum += loss.double_value(&[]) * tb.tokens as f64;
    }
    (loss_sum, tokens)
}

/// How a training run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSummary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The steps the run is to reach (`train.steps`).
    pub target_steps: usize,
    /// The final state.
    pub state: TrainState,
    /// Trainable parameters of the model ([`crate::model::trainable_parameters`]).
    pub params: u64,
    /// Training loss of the last step this call ran (none when the run was
    /// already finished).
    pub last_loss: Option<f64>,
    /// True when stopped by Ctrl-C before the last step.
    pub interrupted: bool,
}

impl std::fmt::Display for TrainSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.state;
        let verb = if self.interrupted {
            "interrupted at"
        } else {
            "finished"
        };
        writeln!(
            f,
            "{verb} step {} of {}: last loss {}, best valid loss {}, {} tokens in {:.1} s",
            s.step,
            self.target_steps,
            self.last_loss
                .map_or("-".to_string(), |v| format!("{v:.4}")),
            s.best_valid.map_or("-".to_string(), |v| format!("{v:.4}")),
            s.tokens,
            s.seconds
        )?;
        writeln!(f, "trainable parameters: {}", self.params)?;
        write!(f, "run folder: {}", self.run_dir.display())
    }
}

/// Set by Ctrl-C: the loop checkpoints and stops.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since [`train`] installed its handler and last
/// started. Training stops by itself; commands that run other work after a
/// training (`museformer reproduce`) check this between their steps.
pub fn interrupt_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Trains an experiment in `runs_root/<name>/<hash>/`, resuming from its last
/// checkpoint when `resume` is set.
pub fn train(cfg: &ExperimentConfig, runs_root: &Path, resume: bool) -> Result<TrainSummary> {
    let (store, manifest) = open_dataset(cfg)?;
    let vocab = Vocab::new(manifest.config.encoding.pos_per_beat);
    let device = cfg.train.device.device()?;
    let paths = RunPaths::new(&cfg.run_dir(runs_root));
    crate::io::create_dir_all(&paths.dir)?;
    if paths.last().exists() && !resume {
        bail!("{} already has a checkpoint; pass --resume to continue it, or remove the folder to start over", paths.dir.display());
    }
    crate::io::write_atomic(&paths.config(), serde_yaml::to_string(cfg)?.as_bytes())?;

    tch::manual_seed(cfg.train.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = registry::build(&vs.root(), &cfg.model, vocab.len() as i64)?;
    let params = crate::model::trainable_parameters(&vs);
    let t = &cfg.train;
    let mut opt = Adam::new(&vs, t.betas, t.eps, t.weight_decay, t.decay);
    let mut state = TrainState {
        step: 0,
        data: DataPosition::default(),
        best_valid: None,
        tokens: 0,
        seconds: 0.0,
    };
    if resume && paths.last().exists() {
        state = load_checkpoint(&paths.last(), &mut vs, &mut opt)?;
    }
    if state.step >= t.steps {
        return Ok(TrainSummary {
            run_dir: paths.dir,
            target_steps: cfg.train.steps,
            state,
            params,
            last_loss: None,
            interrupted: false,
        });
    }
    let _ = ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst));
    INTERRUPTED.store(false, Ordering::SeqCst);

    let store = Arc::new(store);
    let loader = Loader::start(
        store.clone(),
        vocab.clone(),
        LoaderConfig {
            split: Split::Train,
            max_len: t.max_tokens,
            chunk: t.chunk,
            budget: t.batch_tokens,
            max_samples: t.batch_size,
            seed: t.seed,
        },
        state.data,
    )?;
    let bar = crate::progress::bar(
        t.steps as u64,
        "training",
        crate::progress::Counter::Units("steps"),
    );
    bar.set_position(state.step as u64);
    let metrics = paths.train_csv();
    let valid_csv = paths.valid_csv();
    let started = Instant::now();
    let seconds_before = state.seconds;
    let mut last_loss = None;
    let autocast = t.bf16 && device.is_cuda();
    while state.step < t.steps {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bar.finish_and_clear();
            save_checkpoint(&paths.last(), &vs, &opt, &state)?;
            return Ok(TrainSummary {
                run_dir: paths.dir,
                target_steps: cfg.train.steps,
                state,
                params,
                last_loss,
                interrupted: true,
            });
        }
        let step_start = Instant::now();
        tch::manual_seed(
            (t.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(state.step as i64),
        );
        opt.zero_grad();
        let batches: Vec<_> = (0..t.accumulate.max(1))
            .map(|_| loader.next_batch())
            .collect();
        let position = batches.last().map_or(state.data, |(_, pos)| *pos);
        let batches = batches.into_iter().map(|(tb, _)| tb).collect();
        let (loss_sum, tokens) = backward_update(model.as_ref(), batches, device, autocast);
        let loss = loss_sum / tokens.max(1) as f64;
        if !loss.is_finite() {
            bar.finish_and_clear();
            bail!(
                "the training loss is {loss} at step {}; stopped, keeping the last good checkpoint in {}",
                state.step + 1,
                paths.last().display()
            );
        }
        let grad_norm = opt.clip_grad_norm(t.clip);
        let lr = learning_rate(state.step + 1, t.lr, t.warmup);
        opt.step(lr);
        state.step += 1;
        state.data = position;
        state.tokens += tokens as u64;
        last_loss = Some(loss);
        let tps = tokens as f64 / step_start.elapsed().as_secs_f64();
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        append_csv(
            &metrics,
            "step,loss,lr,grad_norm,tokens,tokens_per_sec,seconds",
            &format!(
                "{},{loss:.6},{lr:.6e},{grad_norm:.4},{tokens},{tps:.1},{:.3}",
                state.step, state.seconds
            ),
        )?;
        bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s"));
        bar.set_position(state.step as u64);
        let last_step = state.step == t.steps;
        if (t.valid_every > 0 && state.step % t.valid_every == 0) || last_step {
            let v = validate(model.as_ref(), &store, &vocab, cfg, device)?;
            append_csv(
                &valid_csv,
                "step,valid_loss,valid_ppl",
                &format!("{},{v:.6},{:.4}", state.step, v.exp()),
            )?;
            if state.best_valid.is_none_or(|b| v < b) {
                state.best_valid = Some(v);
                save_checkpoint(&paths.best(), &vs, &opt, &state)?;
            }
        }
        if (t.checkpoint_every > 0 && state.step % t.checkpoint_every == 0) || last_step {
            save_checkpoint(&paths.last(), &vs, &opt, &state)?;
        }
        if t.keep_snapshots > 0 && state.step % t.keep_snapshots == 0 {
            save_checkpoint(&paths.snapshot(state.step), &vs, &opt, &state)?;
        }
    }
    bar.finish_and_clear();
    Ok(TrainSummary {
        run_dir: paths.dir,
        target_steps: cfg.train.steps,
        state,
        params,
        last_loss,
        interrupted: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::Sequence;
    use crate::model::ModelSizes;
    use crate::registry::{ModelConfig, ModelKind};
    use tch::Tensor;

    fn grads(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
        let mut g: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, p)| p.grad().defined())
            .map(|(n, p)| (n, p.grad().copy()))
            .collect();
        g.sort_by(|a, b| a.0.cmp(&b.0));
        g
    }

    #[test]
    fn an_update_averages_over_its_tokens_not_over_its_batches() {
        let vocab = Vocab::new(12);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let cfg = ModelConfig {
            sizes: ModelSizes {
                layers: 1,
                hidden: 16,
                heads: 2,
                ffn: 32,
                token_embed: 16,
                bar_embed: 4,
                beat_embed: 4,
                dropout: 0.0,
                attention_dropout: 0.0,
                ..ModelSizes::default()
            },
            ..ModelConfig::of(ModelKind::Transformer)
        };
        let model = registry::build(&vs.root(), &cfg, vocab.len() as i64).unwrap();
        // A song of 3 targets and one of 12: their means weigh 1 : 1, their
        // tokens 1 : 4.
        let song = |song: usize, n: usize| {
            let ids: Vec<i64> = (0..=n as i64)
                .map(|i| 10 + (i * 7 + song as i64) % 40)
                .collect();
            Sequence {
                song,
                inputs: ids[..n].to_vec(),
                targets: ids[1..].to_vec(),
                bars: (0..n as i64).map(|i| i / 4).collect(),
                beats: (0..n as i64).map(|i| i % 4).collect(),
            }
        };
        let (a, b) = (song(0, 3), song(1, 12));
        let cpu = tch::Device::Cpu;
        let zero = |vs: &nn::VarStore| {
            for (_, p) in vs.variables() {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
        };
        // One batch holding both songs: the mean over all their target tokens.
        let (sum, tokens) = backward_update(
            model.as_ref(),
            vec![TrainBatch::collate(&[a.clone(), b.clone()])],
            cpu,
            false,
        );
        assert_eq!(tokens, 15);
        let together = grads(&vs);
        // The same songs as two accumulated batches: the same gradient and loss.
        zero(&vs);
        let (sum2, tokens2) = backward_update(
            model.as_ref(),
            vec![
                TrainBatch::collate(std::slice::from_ref(&a)),
                TrainBatch::collate(std::slice::from_ref(&b)),
            ],
            cpu,
            false,
        );
        assert_eq!(tokens2, 15);
        assert!((sum - sum2).abs() < 1e-4 * sum.abs(), "{sum} vs {sum2}");
        let mut largest = 0.0f64;
        for ((name, g1), (_, g2)) in together.iter().zip(grads(&vs)) {
            let diff = (g1 - &g2).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{name}: the gradients differ by {diff}");
            largest = largest.max(g1.abs().max().double_value(&[]));
        }
        assert!(largest > 1e-3, "no gradient flowed");
        // The mean of the two batches' means is another gradient.
        zero(&vs);
        for tb in [TrainBatch::collate(&[a]), TrainBatch::collate(&[b])] {
            (batch_loss(model.as_ref(), &tb, true) / 2.0).backward();
        }
        let differs = together
            .iter()
            .zip(grads(&vs))
            .any(|((_, g1), (_, g2))| (g1 - &g2).abs().max().double_value(&[]) > 1e-4);
        assert!(differs, "the test cannot tell the two normalizations apart");
    }
}

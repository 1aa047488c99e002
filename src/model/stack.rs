//! A pre-norm decoder stack with a pluggable attention: the shape the full-attention
//! Transformer has (`x + attn(ln(x))`, then `x + ffn(ln(x))`, the paper's input
//! embedding, a final norm and the output head), for models that differ from it only
//! in how queries meet keys. A model supplies a [`CausalAttention`]: what it computes
//! over a whole sequence and what it keeps to decode one token at a time (a window of
//! keys, a recurrent state). The Longformer and Linear Transformer baselines are such
//! models (`baselines/`).

use super::layers::{FeedForward, HeadProjections, InputEmbedding};
use super::{Batch, DecodeState, LanguageModel, ModelConfig};
use tch::nn::{self, Module};
use tch::Tensor;

/// Causal self-attention over queries, keys and values already split into heads
/// (`(batch, heads, time, head_dim)`), with its own incremental-decoding cache.
pub trait CausalAttention: Send {
    /// What one layer keeps between decoding steps; `Default` is the empty cache.
    type Cache: Default + Send + 'static;

    /// Attention over a whole sequence: position `t` reads only positions `<= t`.
    /// Returns `(batch, heads, time, head_dim)`; `train` turns attention dropout on.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor;

    /// Attention of one new position (`(batch, heads, 1, head_dim)` each) over the
    /// cached past and itself; updates the cache. Equals [`forward`](Self::forward)
    /// at that position.
    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor;
}

/// One pre-norm block around an attention `A`.
#[derive(Debug)]
struct Block<A> {
    ln_attn: nn::LayerNorm,
    attn: HeadProjections,
    mixer: A,
    ln_ffn: nn::LayerNorm,
    ffn: FeedForward,
    dropout: f64,
}

impl<A: CausalAttention> Block<A> {
    fn new(path: &nn::Path, cfg: &ModelConfig, mixer: A) -> Block<A> {
        Block {
            ln_attn: nn::layer_norm(path / "ln_attn", vec![cfg.hidden], Default::default()),
            attn: HeadProjections::new(&(path / "attn"), cfg.hidden, cfg.heads),
            mixer,
            ln_ffn: nn::layer_norm(path / "ln_ffn", vec![cfg.hidden], Default::default()),
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.dropout),
            dropout: cfg.dropout,
        }
    }

    /// The residual feed-forward half, shared by the full and the one-step pass.
    fn feed_forward(&self, x: &Tensor, train: bool) -> Tensor {
        x + self
            .ffn
            .forward(&self.ln_ffn.forward(x), train)
            .dropout(self.dropout, train)
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let y = self.mixer.forward(&q, &k, &v, train);
        let x = x + self.attn.output(&y).dropout(self.dropout, train);
        self.feed_forward(&x, train)
    }

    fn step(&self, x: &Tensor, cache: &mut A::Cache) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let y = self.mixer.step(&q, &k, &v, cache);
        let x = x + self.attn.output(&y);
        self.feed_forward(&x, false)
    }
}

/// A decoder-only language model: input embedding, pre-norm blocks around the
/// attention `A`, final layer norm, output head. Parameter names match the
/// full-attention Transformer's (`embed`, `blocks/<i>/{ln_attn,attn,ln_ffn,ffn}`,
/// `ln_out`, `head`).
#[derive(Debug)]
pub struct DecoderStack<A> {
    embed: InputEmbedding,
    blocks: Vec<Block<A>>,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    dropout: f64,
}

/// The decoding state of a [`DecoderStack`]: one attention cache per layer.
pub struct StackState<C> {
    layers: Vec<C>,
    len: usize,
}

impl<C: Send + 'static> DecodeState for StackState<C> {
    fn len(&self) -> usize {
        self.len
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl<A: CausalAttention> DecoderStack<A> {
    /// Parameters under `path`; `attention(layer)` gives each layer its attention.
    pub fn new(
        path: &nn::Path,
        cfg: &ModelConfig,
        vocab_size: i64,
        attention: impl Fn(i64) -> A,
    ) -> anyhow::Result<DecoderStack<A>> {
        anyhow::ensure!(
            cfg.heads > 0 && cfg.hidden % cfg.heads == 0,
            "model.hidden ({}) must be a multiple of model.heads ({})",
            cfg.hidden,
            cfg.heads
        );
        Ok(DecoderStack {
            embed: InputEmbedding::new(&(path / "embed"), cfg, vocab_size),
            blocks: (0..cfg.layers)
                .map(|i| Block::new(&(path / "blocks" / i), cfg, attention(i)))
                .collect(),
            ln_out: nn::layer_norm(path / "ln_out", vec![cfg.hidden], Default::default()),
            head: nn::linear(path / "head", cfg.hidden, vocab_size, Default::default()),
            dropout: cfg.dropout,
        })
    }
}

impl<A: CausalAttention> LanguageModel for DecoderStack<A> {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let mut x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        self.head.forward(&self.ln_out.forward(&x))
    }

    fn new_state(&self, _batch: i64) -> Box<dyn DecodeState> {
        Box::new(StackState::<A::Cache> {
            layers: self.blocks.iter().map(|_| A::Cache::default()).collect(),
            len: 0,
        })
    }

    fn step(
        &self,
        state: &mut dyn DecodeState,
        token: &Tensor,
        bar: &Tensor,
        beat: &Tensor,
    ) -> Tensor {
        let state = state
            .as_any_mut()
            .downcast_mut::<StackState<A::Cache>>()
            .expect("a decoding state made by this model's new_state");
        let mut x = self
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1));
        for (block, cache) in self.blocks.iter().zip(state.layers.iter_mut()) {
            x = block.step(&x, cache);
        }
        state.len += 1;
        self.head.forward(&self.ln_out.forward(&x)).squeeze_dim(1)
    }
}

/// Checks the models built on the stack share: attention against a reference,
/// incremental decoding against the full forward, causality.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::model::PositionLimits;
    use tch::{Device, Kind};

    /// A small configuration of the given kind.
    pub fn small(kind: &str) -> ModelConfig {
        ModelConfig {
            kind: kind.into(),
            layers: 2,
            hidden: 32,
            heads: 4,
            ffn: 64,
            token_embed: 32,
            bar_embed: 8,
            beat_embed: 8,
            positions: PositionLimits {
                max_bars: 16,
                max_beats: 8,
            },
            ..ModelConfig::default()
        }
    }

    /// Random float32 queries, keys and values `(batch, heads, n, dim)` that require
    /// gradients.
    pub fn random_qkv(batch: i64, heads: i64, n: i64, dim: i64) -> [Tensor; 3] {
        let r = || {
            Tensor::randn([batch, heads, n, dim], (Kind::Float, Device::Cpu))
                .set_requires_grad(true)
        };
        [r(), r(), r()]
    }

    /// Asserts that two attention functions agree on `qkv` in their outputs and in the
    /// gradients of a random linear function of the outputs with respect to q, k and
    /// v, to `tol` (absolute).
    pub fn assert_same_attention(
        what: &str,
        efficient: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        reference: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        qkv: &[Tensor; 3],
        tol: f64,
    ) {
        let [q, k, v] = qkv;
        let a = efficient(q, k, v);
        let b = reference(q, k, v);
        assert_eq!(a.size(), b.size(), "{what}: output shapes");
        let diff = (&a - &b).abs().max().double_value(&[]);
        assert!(diff < tol, "{what}: outputs differ by {diff}");
        let w = Tensor::randn_like(&a);
        let grads =
            |y: &Tensor| Tensor::run_backward(&[(y * &w).sum(Kind::Float)], qkv, false, false);
        for (name, (ga, gb)) in ["q", "k", "v"].iter().zip(grads(&a).iter().zip(grads(&b))) {
            let diff = (ga - gb).abs().max().double_value(&[]);
            assert!(
                diff < tol,
                "{what}: gradients w.r.t. {name} differ by {diff}"
            );
        }
    }

    /// A batch of two random sequences of `n` tokens (vocabulary 50).
    fn batch(n: i64) -> Batch {
        let cpu = (Kind::Int64, Device::Cpu);
        Batch {
            tokens: Tensor::randint(50, [2, n], cpu),
            bars: Tensor::arange(n, cpu)
                .divide_scalar_mode(6, "floor")
                .repeat([2, 1]),
            beats: Tensor::arange(n, cpu).remainder(8).repeat([2, 1]),
        }
    }

    /// Asserts that stepping through `n` tokens gives the full forward's logits.
    pub fn assert_incremental_equals_forward(model: &dyn LanguageModel, n: i64) {
        let batch = batch(n);
        let full = tch::no_grad(|| model.forward(&batch, false));
        let mut state = model.new_state(2);
        for t in 0..n {
            let step = tch::no_grad(|| {
                model.step(
                    state.as_mut(),
                    &batch.tokens.select(1, t),
                    &batch.bars.select(1, t),
                    &batch.beats.select(1, t),
                )
            });
            let diff = (step - full.select(1, t)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "position {t}: max difference {diff}");
        }
        assert_eq!(state.len(), n as usize);
    }

    /// Per position of an `n`-token batch, the largest change of the logits when the
    /// token at `at` is replaced by another.
    fn change_of_logits(model: &dyn LanguageModel, n: i64, at: i64) -> Vec<f64> {
        let a = batch(n);
        let tokens = a.tokens.copy();
        tokens
            .narrow(1, at, 1)
            .copy_(&((a.tokens.narrow(1, at, 1) + 1).remainder(50)));
        let b = Batch {
            tokens,
            bars: a.bars.shallow_clone(),
            beats: a.beats.shallow_clone(),
        };
        let (la, lb) = tch::no_grad(|| (model.forward(&a, false), model.forward(&b, false)));
        let per_position = (la - lb).abs().amax([0, 2], false);
        (0..n).map(|t| per_position.double_value(&[t])).collect()
    }

    /// Which positions' logits change when the first token of an `n`-token
    /// sequence changes: the model's receptive field seen from position 0.
    pub fn positions_reached_from_the_first(model: &dyn LanguageModel, n: i64) -> Vec<bool> {
        change_of_logits(model, n, 0)
            .iter()
            .map(|&c| c > 1e-6)
            .collect()
    }

    /// Asserts that changing the token at `changed` leaves every earlier position's
    /// logits unchanged and changes its own.
    pub fn assert_causal(model: &dyn LanguageModel, n: i64, changed: i64) {
        let change = change_of_logits(model, n, changed);
        let before = change[..changed as usize]
            .iter()
            .fold(0.0, |m: f64, &c| m.max(c));
        assert!(
            before < 1e-6,
            "the token at {changed} changed earlier logits by {before}"
        );
        let own = change[changed as usize];
        assert!(
            own > 1e-4,
            "the token at {changed} did not change its own logits"
        );
    }
}

//! A pre-norm decoder stack with a pluggable attention: the shape the full-attention
//! Transformer has (`x + attn(ln(x))`, then `x + ffn(ln(x))`, the paper's input
//! embedding, a final norm and the output head), for models that differ from it only
//! in how queries meet keys. A model supplies a [`CausalAttention`]: what it computes
//! over a whole sequence and what it keeps to decode one token at a time (a window of
//! keys, a recurrent state). The Longformer and Linear Transformer baselines are such
//! models (`baselines/`).

use super::layers::{InputEmbedding, PreNorm};
use super::{Batch, Decoder, LanguageModel, ModelSizes};
use tch::nn::{self, Module};
use tch::Tensor;

/// Causal self-attention over queries, keys and values already split into heads
/// (`(batch, heads, time, head_dim)`), with its own incremental-decoding cache.
pub trait CausalAttention: Send {
    /// What one layer keeps between decoding steps; `Default` is the empty cache.
    type Cache: Default;

    /// Attention over a whole sequence: position `t` reads only positions `<= t`.
    /// Returns `(batch, heads, time, head_dim)`; `train` turns attention dropout on.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor;

    /// Attention of one new position (`(batch, heads, 1, head_dim)` each) over the
    /// cached past and itself; updates the cache. Equals [`forward`](Self::forward)
    /// at that position.
    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor;
}

/// One layer: the shared pre-norm block around an attention `A`.
#[derive(Debug)]
struct Block<A> {
    mixer: A,
    layer: PreNorm,
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

impl<A: CausalAttention> DecoderStack<A> {
    /// Parameters under `path`; `attention(layer)` gives each layer its attention
    /// (made before the layer's other parameters).
    pub fn new(
        path: &nn::Path,
        cfg: &ModelSizes,
        vocab_size: i64,
        attention: impl Fn(i64) -> A,
    ) -> anyhow::Result<DecoderStack<A>> {
        cfg.head_dim()?;
        Ok(DecoderStack {
            embed: InputEmbedding::new(&(path / "embed"), cfg, vocab_size),
            blocks: (0..cfg.layers)
                .map(|i| Block {
                    mixer: attention(i),
                    layer: PreNorm::new(&(path / "blocks" / i), cfg),
                })
                .collect(),
            ln_out: nn::layer_norm(path / "ln_out", vec![cfg.hidden], Default::default()),
            head: nn::linear(path / "head", cfg.hidden, vocab_size, Default::default()),
            dropout: cfg.dropout,
        })
    }
}

/// The decoder of a [`DecoderStack`]: one attention cache per layer.
struct StackDecoder<'a, A: CausalAttention> {
    model: &'a DecoderStack<A>,
    caches: Vec<A::Cache>,
    len: usize,
}

impl<A: CausalAttention> Decoder for StackDecoder<'_, A> {
    fn step(&mut self, token: &Tensor, bar: &Tensor, beat: &Tensor) -> Tensor {
        let model = self.model;
        let mut x = model
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1));
        for (block, cache) in model.blocks.iter().zip(self.caches.iter_mut()) {
            x = block
                .layer
                .forward(&x, |q, k, v| block.mixer.step(q, k, v, cache), false);
        }
        self.len += 1;
        model.head.forward(&model.ln_out.forward(&x)).squeeze_dim(1)
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl<A: CausalAttention> LanguageModel for DecoderStack<A> {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let mut x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        for block in &self.blocks {
            x = block
                .layer
                .forward(&x, |q, k, v| block.mixer.forward(q, k, v, train), train);
        }
        self.head.forward(&self.ln_out.forward(&x))
    }

    fn decoder(&self, _batch: i64) -> Box<dyn Decoder + '_> {
        Box::new(StackDecoder {
            model: self,
            caches: self.blocks.iter().map(|_| A::Cache::default()).collect(),
            len: 0,
        })
    }
}

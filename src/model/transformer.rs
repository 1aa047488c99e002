//! The full-attention Transformer: decoder-only, pre-norm, GELU, the paper's token +
//! bar + beat input embedding, attention through libtorch's scaled-dot-product
//! attention (flash or memory-efficient kernels on a GPU). It is the "full attention
//! counterpart" of the paper's Figure 4 and the base the baselines build on.

use super::layers::{FeedForward, HeadProjections, InputEmbedding};
use super::{Batch, DecodeState, LanguageModel, ModelConfig};
use tch::nn::{self, Module};
use tch::Tensor;

/// One pre-norm block: `x + attn(ln(x))`, then `x + ffn(ln(x))`.
#[derive(Debug)]
struct Block {
    ln_attn: nn::LayerNorm,
    attn: HeadProjections,
    ln_ffn: nn::LayerNorm,
    ffn: FeedForward,
    dropout: f64,
    attention_dropout: f64,
    explicit: bool,
}

/// Causal attention with the score matrix written out: `(b, h, t, t)` scores.
fn explicit_attention(q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64, train: bool) -> Tensor {
    let t = q.size()[2];
    let dh = q.size()[3] as f64;
    let scores = q.matmul(&k.transpose(-2, -1)) / dh.sqrt();
    let future = Tensor::ones([t, t], (tch::Kind::Bool, q.device())).triu(1);
    scores
        .masked_fill(&future, f64::NEG_INFINITY)
        .softmax(-1, scores.kind())
        .dropout(dropout, train)
        .matmul(v)
}

impl Block {
    fn new(path: &nn::Path, cfg: &ModelConfig) -> Block {
        Block {
            ln_attn: nn::layer_norm(path / "ln_attn", vec![cfg.hidden], Default::default()),
            attn: HeadProjections::new(&(path / "attn"), cfg.hidden, cfg.heads),
            ln_ffn: nn::layer_norm(path / "ln_ffn", vec![cfg.hidden], Default::default()),
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.dropout),
            dropout: cfg.dropout,
            attention_dropout: cfg.attention_dropout,
            explicit: cfg.attention == super::FullAttention::Explicit,
        }
    }

    /// Causal self-attention over the whole sequence.
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let p = if train { self.attention_dropout } else { 0.0 };
        let y = if self.explicit {
            explicit_attention(&q, &k, &v, p, train)
        } else {
            Tensor::scaled_dot_product_attention::<Tensor>(&q, &k, &v, None, p, true, None, false)
        };
        let x = x + self.attn.output(&y).dropout(self.dropout, train);
        &x + self
            .ffn
            .forward(&self.ln_ffn.forward(&x), train)
            .dropout(self.dropout, train)
    }

    /// One new position attending to the cached keys and values and itself.
    fn step(&self, x: &Tensor, cache: &mut Option<(Tensor, Tensor)>) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let (k, v) = match cache.take() {
            Some((ck, cv)) => (Tensor::cat(&[ck, k], 2), Tensor::cat(&[cv, v], 2)),
            None => (k, v),
        };
        let y = Tensor::scaled_dot_product_attention::<Tensor>(
            &q, &k, &v, None, 0.0, false, None, false,
        );
        *cache = Some((k, v));
        let x = x + self.attn.output(&y);
        &x + self.ffn.forward(&self.ln_ffn.forward(&x), false)
    }
}

/// The full-attention Transformer language model.
#[derive(Debug)]
pub struct Transformer {
    embed: InputEmbedding,
    blocks: Vec<Block>,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    dropout: f64,
}

/// Key/value cache: per layer the keys and values of every consumed position.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl DecodeState for KvCache {
    fn len(&self) -> usize {
        self.len
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Transformer {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &ModelConfig, vocab_size: i64) -> anyhow::Result<Transformer> {
        anyhow::ensure!(
            cfg.hidden % cfg.heads == 0,
            "model.hidden ({}) must be a multiple of model.heads ({})",
            cfg.hidden,
            cfg.heads
        );
        Ok(Transformer {
            embed: InputEmbedding::new(&(path / "embed"), cfg, vocab_size),
            blocks: (0..cfg.layers)
                .map(|i| Block::new(&(path / "blocks" / i), cfg))
                .collect(),
            ln_out: nn::layer_norm(path / "ln_out", vec![cfg.hidden], Default::default()),
            head: nn::linear(path / "head", cfg.hidden, vocab_size, Default::default()),
            dropout: cfg.dropout,
        })
    }
}

impl LanguageModel for Transformer {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let mut x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        self.head.forward(&self.ln_out.forward(&x))
    }

    fn new_state(&self, _batch: i64) -> Box<dyn DecodeState> {
        Box::new(KvCache {
            layers: (0..self.blocks.len()).map(|_| None).collect(),
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
        let cache = state
            .as_any_mut()
            .downcast_mut::<KvCache>()
            .expect("a Transformer decoding state");
        let mut x = self
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1));
        for (block, layer) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.step(&x, layer);
        }
        cache.len += 1;
        self.head.forward(&self.ln_out.forward(&x)).squeeze_dim(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PositionLimits;
    use tch::{Device, Kind};

    fn small() -> ModelConfig {
        ModelConfig {
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

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Transformer::new(&vs.root(), &small(), 50).unwrap();
        let n = 24;
        let tokens = Tensor::randint(50, [2, n], (Kind::Int64, Device::Cpu));
        let bars = Tensor::arange(n, (Kind::Int64, Device::Cpu))
            .divide_scalar_mode(6, "floor")
            .repeat([2, 1]);
        let beats = Tensor::arange(n, (Kind::Int64, Device::Cpu))
            .remainder(8)
            .repeat([2, 1]);
        let batch = Batch {
            tokens: tokens.shallow_clone(),
            bars: bars.shallow_clone(),
            beats: beats.shallow_clone(),
        };
        let full = tch::no_grad(|| model.forward(&batch, false));
        let mut state = model.new_state(2);
        for t in 0..n {
            let step = tch::no_grad(|| {
                model.step(
                    state.as_mut(),
                    &tokens.select(1, t),
                    &bars.select(1, t),
                    &beats.select(1, t),
                )
            });
            let diff = (step - full.select(1, t)).abs().max().double_value(&[]);
            assert!(diff < 1e-4, "position {t}: max difference {diff}");
        }
        assert_eq!(state.len(), n as usize);
    }

    #[test]
    fn explicit_attention_equals_the_fused_kernel() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut model = Transformer::new(&vs.root(), &small(), 50).unwrap();
        let tokens = Tensor::randint(50, [2, 30], (Kind::Int64, Device::Cpu));
        let zeros = tokens.zeros_like();
        let batch = Batch {
            tokens,
            bars: zeros.shallow_clone(),
            beats: zeros,
        };
        let fused = model.forward(&batch, false);
        for block in &mut model.blocks {
            block.explicit = true;
        }
        let explicit = model.forward(&batch, false);
        let d = (fused - explicit).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn the_forward_is_causal() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = Transformer::new(&vs.root(), &small(), 50).unwrap();
        let tokens = Tensor::randint(50, [1, 10], (Kind::Int64, Device::Cpu));
        let zeros = Tensor::zeros([1, 10], (Kind::Int64, Device::Cpu));
        let a = model.forward(
            &Batch {
                tokens: tokens.shallow_clone(),
                bars: zeros.shallow_clone(),
                beats: zeros.shallow_clone(),
            },
            false,
        );
        let changed = tokens.copy();
        let _ = changed.narrow(1, 9, 1).fill_(7);
        let b = model.forward(
            &Batch {
                tokens: changed,
                bars: zeros.shallow_clone(),
                beats: zeros,
            },
            false,
        );
        let prefix_diff = (a.narrow(1, 0, 9) - b.narrow(1, 0, 9))
            .abs()
            .max()
            .double_value(&[]);
        assert!(
            prefix_diff < 1e-6,
            "a later token changed earlier logits by {prefix_diff}"
        );
    }
}

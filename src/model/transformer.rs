//! The full-attention Transformer: decoder-only, pre-norm, GELU, the paper's token +
//! bar + beat input embedding, attention through libtorch's scaled-dot-product
//! attention (flash or memory-efficient kernels on a GPU) or, with
//! `model.attention: explicit`, with the score matrix written out. It is the "full
//! attention counterpart" of the paper's Figure 4. The layers are the shared
//! [`DecoderStack`]; this file holds only the attention and its key/value cache.

use super::stack::{CausalAttention, DecoderStack};
use super::{FullAttention, ModelConfig};
use tch::nn;
use tch::Tensor;

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

/// Full causal self-attention.
#[derive(Debug, Clone, Copy)]
pub struct Full {
    dropout: f64,
    explicit: bool,
}

impl CausalAttention for Full {
    /// Keys and values of every consumed position.
    type Cache = Option<(Tensor, Tensor)>;

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor {
        let p = if train { self.dropout } else { 0.0 };
        if self.explicit {
            explicit_attention(q, k, v, p, train)
        } else {
            Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, p, true, None, false)
        }
    }

    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor {
        let (k, v) = match cache.take() {
            Some((ck, cv)) => (
                Tensor::cat(&[ck, k.shallow_clone()], 2),
                Tensor::cat(&[cv, v.shallow_clone()], 2),
            ),
            None => (k.shallow_clone(), v.shallow_clone()),
        };
        let y = Tensor::scaled_dot_product_attention::<Tensor>(
            q, &k, &v, None, 0.0, false, None, false,
        );
        *cache = Some((k, v));
        y
    }
}

/// The full-attention Transformer language model.
pub type Transformer = DecoderStack<Full>;

/// The full-attention Transformer with its parameters under `path`.
pub fn new(path: &nn::Path, cfg: &ModelConfig, vocab_size: i64) -> anyhow::Result<Transformer> {
    let attention = Full {
        dropout: cfg.attention_dropout,
        explicit: cfg.attention == FullAttention::Explicit,
    };
    DecoderStack::new(path, cfg, vocab_size, |_| attention)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Batch, LanguageModel, PositionLimits};
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
        let model = new(&vs.root(), &small(), 50).unwrap();
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
        let model = new(&vs.root(), &small(), 50).unwrap();
        let mut vs_explicit = nn::VarStore::new(Device::Cpu);
        let explicit_cfg = ModelConfig {
            attention: FullAttention::Explicit,
            ..small()
        };
        let explicit_model = new(&vs_explicit.root(), &explicit_cfg, 50).unwrap();
        vs_explicit.copy(&vs).unwrap();
        let tokens = Tensor::randint(50, [2, 30], (Kind::Int64, Device::Cpu));
        let zeros = tokens.zeros_like();
        let batch = Batch {
            tokens,
            bars: zeros.shallow_clone(),
            beats: zeros,
        };
        let fused = model.forward(&batch, false);
        let explicit = explicit_model.forward(&batch, false);
        let d = (fused - explicit).abs().max().double_value(&[]);
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn the_forward_is_causal() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = new(&vs.root(), &small(), 50).unwrap();
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

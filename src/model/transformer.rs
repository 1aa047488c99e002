//! The full-attention Transformer: decoder-only, pre-norm, GELU, the paper's token +
//! bar + beat input embedding, attention through libtorch's scaled-dot-product
//! attention (flash or memory-efficient kernels on a GPU) or, with
//! `transformer: {attention: explicit}`, with the score matrix written out. It is the
//! "full attention counterpart" of the paper's Figure 4. The layers are the shared
//! [`DecoderStack`]; this file holds only the attention and its key/value cache.

use super::stack::{CausalAttention, DecoderStack};
use super::Init;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// How the full-attention Transformer computes its attention. Both give the same
/// result; they differ in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FullAttention {
    /// libtorch's scaled-dot-product attention, which picks a fused kernel (flash
    /// attention on CPU and GPU where it applies): memory linear in the length.
    #[default]
    Fused,
    /// The n × n score matrix written out, softmax, then the values, as the
    /// paper's fairseq counterpart does: memory quadratic in the length.
    Explicit,
}

/// The Transformer's section of an experiment's `model:` (`transformer: {...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerConfig {
    /// libtorch's fused kernel or explicit scores.
    pub attention: FullAttention,
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
pub fn new(init: Init, cfg: &TransformerConfig) -> anyhow::Result<Transformer> {
    let (path, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
    let attention = Full {
        dropout: sizes.attention_dropout,
        explicit: cfg.attention == FullAttention::Explicit,
    };
    DecoderStack::new(path, sizes, vocab_size, |_| attention)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::*;
    use crate::model::{Batch, LanguageModel};
    use tch::nn;
    use tch::{Device, Kind};

    fn model(vs: &nn::VarStore, attention: FullAttention) -> Transformer {
        new(init(&vs.root(), &small()), &TransformerConfig { attention }).unwrap()
    }

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        assert_incremental_equals_forward(&model(&vs, FullAttention::Fused), 24);
    }

    #[test]
    fn explicit_attention_equals_the_fused_kernel() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let fused = model(&vs, FullAttention::Fused);
        let mut vs_explicit = nn::VarStore::new(Device::Cpu);
        let explicit = model(&vs_explicit, FullAttention::Explicit);
        vs_explicit.copy(&vs).unwrap();
        let tokens = Tensor::randint(50, [2, 30], (Kind::Int64, Device::Cpu));
        let zeros = tokens.zeros_like();
        let batch = Batch {
            tokens,
            bars: zeros.shallow_clone(),
            beats: zeros,
        };
        let d = max_diff(
            &fused.forward(&batch, false),
            &explicit.forward(&batch, false),
        );
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn the_forward_is_causal() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        assert_causal(&model(&vs, FullAttention::Fused), 10, 9);
    }
}

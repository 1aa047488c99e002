//! Longformer (Beltagy et al., 2020), the paper's "sliding window sparse attention"
//! baseline, in its causal form: token `t` attends to itself and the `window`
//! tokens before it, positions `max(0, t - window) ..= t`, in every layer, so
//! information travels at most `layers x window` tokens back.
//!
//! The attention is computed in chunks of `window` queries. A chunk's queries can
//! only reach keys in the previous chunk and their own, so each chunk attends to
//! those `2 x window` keys (gathered with one `unfold`, no copy per chunk) under a
//! small band mask shared by all chunks: memory and time `O(n x window)`, never an
//! `n x n` matrix. Decoding keeps a rolling cache of the last `window` keys and values
//! per layer.
//!
//! Everything else (embedding, pre-norm blocks, head) is the full-attention
//! Transformer's, through [`DecoderStack`].

use crate::model::stack::{CausalAttention, DecoderStack};
use crate::model::Init;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// The Longformer's section of an experiment's `model:` (`longformer: {window: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LongformerConfig {
    /// Each token attends to itself and this many previous tokens (at least 1).
    pub window: i64,
}

impl Default for LongformerConfig {
    fn default() -> Self {
        LongformerConfig { window: 1024 }
    }
}

/// Causal sliding-window attention of one layer.
#[derive(Debug, Clone, Copy)]
pub struct SlidingWindow {
    /// Previous tokens each token attends to (besides itself).
    pub window: i64,
    /// Dropout on the attention weights during training.
    pub dropout: f64,
}

/// The Longformer language model.
pub type Longformer = DecoderStack<SlidingWindow>;

/// Builds a Longformer from the shared sizes and its section, its parameters under
/// `path`.
pub fn new(init: Init, cfg: &LongformerConfig) -> anyhow::Result<Longformer> {
    let (path, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
    anyhow::ensure!(
        cfg.window >= 1,
        "model.longformer.window must be at least 1 (got {}): each token attends to itself \
         and `window` previous tokens",
        cfg.window
    );
    let attention = SlidingWindow {
        window: cfg.window,
        dropout: sizes.attention_dropout,
    };
    DecoderStack::new(path, sizes, vocab_size, |_| attention)
}

/// Which key slots each query of a chunk may read: `(chunks, len, 2 len)`, true where
/// key position `s` (slot `j` of chunk `c` is `s = (c - 1) len + j`) satisfies
/// `0 <= s` and `t - window <= s <= t` for the query position `t = c len + i`.
fn chunk_mask(window: i64, len: i64, chunks: i64, device: Device) -> Tensor {
    let opts = (Kind::Int64, device);
    let chunk = Tensor::arange(chunks, opts).view([chunks, 1, 1]);
    let query = &chunk * len + Tensor::arange(len, opts).view([1, len, 1]);
    let key = (chunk - 1) * len + Tensor::arange(2 * len, opts).view([1, 1, 2 * len]);
    let back = &query - &key;
    back.ge(0)
        .logical_and(&back.le(window))
        .logical_and(&key.ge(0))
}

/// Causal sliding-window attention over `(batch, heads, time, dim)` queries, keys and
/// values: position `t` attends to positions `max(0, t - window) ..= t`, softmax of
/// scaled dot products. Computed in chunks of `min(window, time)` queries, each
/// against the keys of the previous chunk and its own; `dropout` applies to the
/// attention weights.
pub fn sliding_window_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    window: i64,
    dropout: f64,
) -> Tensor {
    let (b, h, n, d) = q.size4().expect("queries (batch, heads, time, head_dim)");
    let dv = v.size()[3];
    if n == 0 {
        return v.shallow_clone();
    }
    let len = window.min(n);
    let chunks = (n + len - 1) / len;
    let pad = chunks * len - n;
    // Queries: chunk c holds positions [c len, (c + 1) len).
    let q = q
        .constant_pad_nd([0, 0, 0, pad])
        .reshape([b * h, chunks, len, d]);
    // Keys and values: chunk c sees positions [(c - 1) len, (c + 1) len); one chunk of
    // zeros in front stands for the keys before position 0 (masked).
    let around = |x: &Tensor, width: i64| {
        x.constant_pad_nd([0, 0, len, pad])
            .unfold(2, 2 * len, len)
            .transpose(-1, -2)
            .reshape([b * h, chunks, 2 * len, width])
    };
    // `(1, chunks, len, 2 len)`: a four-dimensional mask (broadcast over the batch
    // × heads dimension) is one libtorch's fused CPU kernel takes; a
    // three-dimensional one sends the call to the unfused "math" path, which writes
    // every chunk's scores out and checks each row of its softmax (about twice
    // the time; `docs/performance.md`, "Faster CPU training").
    let mask = chunk_mask(window, len, chunks, q.device()).unsqueeze(0);
    Tensor::scaled_dot_product_attention(
        &q,
        &around(k, d),
        &around(v, dv),
        Some(mask),
        dropout,
        false,
        None,
        false,
    )
    .reshape([b, h, chunks * len, dv])
    .narrow(2, 0, n)
}

impl CausalAttention for SlidingWindow {
    /// The last `window` keys and values, `(batch, heads, <= window, head_dim)`.
    type Cache = Option<(Tensor, Tensor)>;

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor {
        let p = if train { self.dropout } else { 0.0 };
        sliding_window_attention(q, k, v, self.window, p)
    }

    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor {
        let (k, v) = match cache.take() {
            Some((ck, cv)) => (Tensor::cat(&[&ck, k], 2), Tensor::cat(&[&cv, v], 2)),
            None => (k.shallow_clone(), v.shallow_clone()),
        };
        let y = Tensor::scaled_dot_product_attention::<Tensor>(
            q, &k, &v, None, 0.0, false, None, false,
        );
        let n = k.size()[2];
        let keep = n.min(self.window);
        *cache = Some((k.narrow(2, n - keep, keep), v.narrow(2, n - keep, keep)));
        y
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::*;
    use tch::nn;

    /// The quadratic reference: dense `n x n` band mask, softmax, weighted values.
    fn naive(q: &Tensor, k: &Tensor, v: &Tensor, window: i64) -> Tensor {
        let (n, d) = (q.size()[2], q.size()[3]);
        let pos = Tensor::arange(n, (Kind::Int64, Device::Cpu));
        let back = pos.view([n, 1]) - pos.view([1, n]);
        let allowed = back.ge(0).logical_and(&back.le(window));
        (q.matmul(&k.transpose(-1, -2)) / (d as f64).sqrt())
            .masked_fill(&allowed.logical_not(), f64::NEG_INFINITY)
            .softmax(-1, Kind::Float)
            .matmul(v)
    }

    #[test]
    fn chunked_attention_equals_the_dense_band_mask() {
        tch::manual_seed(0);
        // (length, window): a multiple of the window, not a multiple, window longer
        // than the sequence, equal to it, window 1, a single token.
        for (n, window) in [(12, 4), (13, 4), (7, 16), (7, 7), (9, 1), (1, 3)] {
            let qkv = random_qkv(2, 3, n, 5);
            assert_same_attention(
                &format!("length {n}, window {window}"),
                |q, k, v| sliding_window_attention(q, k, v, window, 0.0),
                |q, k, v| naive(q, k, v, window),
                &qkv,
                1e-5,
            );
        }
    }

    #[test]
    fn the_window_is_a_real_limit() {
        // The reference itself distinguishes windows, so the comparison above would
        // catch an implementation that ignored the window.
        tch::manual_seed(1);
        let [q, k, v] = random_qkv(1, 2, 12, 4);
        let diff = (naive(&q, &k, &v, 3) - naive(&q, &k, &v, 12))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff > 1e-3);
    }

    #[test]
    fn long_sequences_never_form_an_n_by_n_matrix() {
        // 2^18 positions: an n x n float matrix would take 256 GiB; the chunks take
        // n x 2 window scores.
        let n = 1 << 18;
        let x = Tensor::randn([1, 1, n, 8], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| sliding_window_attention(&x, &x, &x, 32, 0.0));
        assert_eq!(y.size(), [1, 1, n, 8]);
        // The last position sees only the window: its output is the reference's on
        // the last window + 1 positions.
        let tail = x.narrow(2, n - 33, 33);
        let expected = naive(&tail, &tail, &tail, 32).narrow(2, 32, 1);
        let diff = (y.narrow(2, n - 1, 1) - expected)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-5, "last position differs by {diff}");
    }

    fn model(window: i64) -> Longformer {
        let vs = nn::VarStore::new(Device::Cpu);
        new(init(&vs.root(), &small()), &LongformerConfig { window }).unwrap()
    }

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(2);
        // 24 tokens through a window of 5: the cache rolls over several times.
        assert_incremental_equals_forward(&model(5), 24);
    }

    #[test]
    fn the_forward_is_causal() {
        tch::manual_seed(3);
        assert_causal(&model(4), 12, 9);
    }

    #[test]
    fn information_travels_at_most_layers_times_window() {
        tch::manual_seed(4);
        // Two layers of window 3: the first token reaches positions up to 6 only.
        let reached = positions_reached_from_the_first(&model(3), 12);
        assert_eq!(reached, (0..12).map(|t| t <= 6).collect::<Vec<_>>());
    }

    #[test]
    fn a_window_of_zero_is_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LongformerConfig { window: 0 };
        let err = new(init(&vs.root(), &small()), &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.longformer.window"), "{err}");
    }
}

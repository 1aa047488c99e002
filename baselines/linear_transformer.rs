//! Linear Transformer (Katharopoulos et al., 2020), the paper's "kernel-based
//! attention of linear complexity" baseline. Softmax similarity is replaced by the
//! feature map `phi(x) = elu(x) + 1`, so causal attention becomes
//!
//! ```text
//! out_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps),
//! S_i = sum_{j <= i} phi(k_j) v_j^T,   z_i = sum_{j <= i} phi(k_j)
//! ```
//!
//! and every position sees the whole prefix at linear cost.
//!
//! Over a sequence it is computed in chunks of `chunk` positions: within a chunk a
//! masked `chunk x chunk` product, across chunks the state `S`, `z` carried as
//! exclusive prefix sums of the per-chunk `phi(K)^T V` and `phi(K)` sums. Memory is
//! `O(n d^2 / chunk + n chunk)` per head, never `n x n`. Decoding is the recurrent
//! form: per layer and head the running `S` and `z`, one rank-one update per token.
//! Both run in float32 (autocast off) since the running sums span the whole sequence.
//!
//! There is no attention matrix, so `model.attention_dropout` is unused. Everything
//! else is the full-attention Transformer's, through [`DecoderStack`].

use crate::model::stack::{CausalAttention, DecoderStack};
use crate::model::Init;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The Linear Transformer's section of an experiment's `model:`
/// (`linear_transformer: {chunk: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearTransformerConfig {
    /// Chunk length of the chunked causal prefix sums (at least 1): speed and memory
    /// only, not results.
    pub chunk: i64,
}

impl Default for LinearTransformerConfig {
    fn default() -> Self {
        LinearTransformerConfig { chunk: 128 }
    }
}

/// Added to the denominator `phi(q)^T z` in every path (forward and step alike).
pub const EPS: f64 = 1e-6;

/// The feature map `elu(x) + 1`: positive, so the denominator never vanishes.
pub fn feature_map(x: &Tensor) -> Tensor {
    x.elu() + 1.0
}

/// Causal linear attention of one layer.
#[derive(Debug, Clone, Copy)]
pub struct LinearAttention {
    /// Chunk length of the chunked prefix sums.
    pub chunk: i64,
}

/// The Linear Transformer language model.
pub type LinearTransformer = DecoderStack<LinearAttention>;

/// Builds a Linear Transformer from the shared sizes and its section, its
/// parameters under `path`.
pub fn new(init: Init, cfg: &LinearTransformerConfig) -> anyhow::Result<LinearTransformer> {
    let (path, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
    anyhow::ensure!(
        cfg.chunk >= 1,
        "model.linear_transformer.chunk must be at least 1 (got {}): the chunk length of \
         the linear attention's prefix sums",
        cfg.chunk
    );
    let attention = LinearAttention { chunk: cfg.chunk };
    DecoderStack::new(path, sizes, vocab_size, |_| attention)
}

/// `x` summed along `dim` up to but excluding each index.
fn exclusive_cumsum(x: &Tensor, dim: i64) -> Tensor {
    let n = x.size()[dim as usize];
    Tensor::cat(
        &[
            x.narrow(dim, 0, 1).zeros_like(),
            x.cumsum(dim, Kind::Float).narrow(dim, 0, n - 1),
        ],
        dim,
    )
}

/// Causal linear attention over `(batch, heads, time, dim)` queries, keys and values,
/// computed in chunks of `min(chunk, time)` positions (see the module
/// documentation). Returns `(batch, heads, time, value_dim)` in the queries' kind.
pub fn causal_linear_attention(q: &Tensor, k: &Tensor, v: &Tensor, chunk: i64) -> Tensor {
    let kind = q.kind();
    tch::autocast(false, || {
        let (b, h, n, d) = q.size4().expect("queries (batch, heads, time, head_dim)");
        let dv = v.size()[3];
        if n == 0 {
            return v.shallow_clone();
        }
        let len = chunk.min(n);
        let chunks = (n + len - 1) / len;
        let pad = chunks * len - n;
        // Padding goes after the last position, where causality keeps it unseen.
        let split = |x: Tensor, width: i64| {
            x.to_kind(Kind::Float)
                .constant_pad_nd([0, 0, 0, pad])
                .view([b, h, chunks, len, width])
        };
        let q = split(feature_map(q), d);
        let k = split(feature_map(k), d);
        let v = split(v.shallow_clone(), dv);
        // Across chunks: the state S, z left by all earlier chunks.
        let s = exclusive_cumsum(&k.transpose(-1, -2).matmul(&v), 2); // (b, h, c, d, dv)
        let z = exclusive_cumsum(&k.sum_dim_intlist(3, false, Kind::Float), 2); // (b, h, c, d)
                                                                                // Within a chunk: the masked quadratic term.
        let causal = Tensor::ones([len, len], (Kind::Float, q.device())).tril(0);
        let a = q.matmul(&k.transpose(-1, -2)) * causal; // (b, h, c, len, len)
        let num = q.matmul(&s) + a.matmul(&v);
        let den = q.matmul(&z.unsqueeze(-1)) + a.sum_dim_intlist(-1, true, Kind::Float);
        (num / (den + EPS))
            .view([b, h, chunks * len, dv])
            .narrow(2, 0, n)
            .to_kind(kind)
    })
}

impl CausalAttention for LinearAttention {
    /// Per head the running `S = sum phi(k) v^T` `(batch, heads, dim, value_dim)` and
    /// `z = sum phi(k)` `(batch, heads, 1, dim)`.
    type Cache = Option<(Tensor, Tensor)>;

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, _train: bool) -> Tensor {
        causal_linear_attention(q, k, v, self.chunk)
    }

    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor {
        let kind = q.kind();
        let float = |x: &Tensor| x.to_kind(Kind::Float);
        let (q, k, v) = (feature_map(&float(q)), feature_map(&float(k)), float(v));
        let (s, z) = (k.transpose(-1, -2).matmul(&v), k);
        let (s, z) = match cache.take() {
            Some((cs, cz)) => (cs + s, cz + z),
            None => (s, z),
        };
        let den = (&q * &z).sum_dim_intlist(-1, true, Kind::Float);
        let y = q.matmul(&s) / (den + EPS);
        *cache = Some((s, z));
        y.to_kind(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::*;
    use tch::nn;
    use tch::Device;

    /// The quadratic reference: the full `n x n` matrix `phi(Q) phi(K)^T`, lower
    /// triangle, normalized by its row sums.
    fn naive(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
        let n = q.size()[2];
        let a = feature_map(q).matmul(&feature_map(k).transpose(-1, -2))
            * Tensor::ones([n, n], (Kind::Float, Device::Cpu)).tril(0);
        a.matmul(v) / (a.sum_dim_intlist(-1, true, Kind::Float) + EPS)
    }

    #[test]
    fn chunked_attention_equals_the_quadratic_form() {
        tch::manual_seed(0);
        // (length, chunk): not a multiple, a multiple, chunk longer than the
        // sequence, chunk 1, a single token.
        for (n, chunk) in [(13, 4), (12, 4), (5, 8), (9, 1), (1, 4)] {
            let qkv = random_qkv(2, 3, n, 5);
            assert_same_attention(
                &format!("length {n}, chunk {chunk}"),
                |q, k, v| causal_linear_attention(q, k, v, chunk),
                naive,
                &qkv,
                1e-5,
            );
        }
    }

    #[test]
    fn the_recurrent_form_equals_the_quadratic_form() {
        tch::manual_seed(1);
        let [q, k, v] = random_qkv(2, 3, 11, 5);
        let reference = naive(&q, &k, &v);
        let attention = LinearAttention { chunk: 4 };
        let mut cache = None;
        for t in 0..11 {
            let at = |x: &Tensor| x.narrow(2, t, 1);
            let y = tch::no_grad(|| attention.step(&at(&q), &at(&k), &at(&v), &mut cache));
            let diff = (y - at(&reference)).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "position {t}: differs by {diff}");
        }
    }

    #[test]
    fn long_sequences_never_form_an_n_by_n_matrix() {
        // 2^18 positions: an n x n float matrix would take 256 GiB; the chunks take
        // n x chunk scores and n / chunk carried states.
        let n = 1 << 18;
        let x = Tensor::randn([1, 1, n, 8], (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| causal_linear_attention(&x, &x, &x, 64));
        assert_eq!(y.size(), [1, 1, n, 8]);
        // The last position is the normalized sum over the whole prefix.
        let (q, k) = (feature_map(&x.narrow(2, n - 1, 1)), feature_map(&x));
        let weights = q.matmul(&k.transpose(-1, -2)); // (1, 1, 1, n)
        let expected = weights.matmul(&x) / (weights.sum(Kind::Float) + EPS);
        let diff = (y.narrow(2, n - 1, 1) - expected)
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-4, "last position differs by {diff}");
    }

    fn model(chunk: i64) -> LinearTransformer {
        let vs = nn::VarStore::new(Device::Cpu);
        new(
            init(&vs.root(), &small()),
            &LinearTransformerConfig { chunk },
        )
        .unwrap()
    }

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(2);
        // 23 tokens in chunks of 5: several carried states and a partial last chunk.
        assert_incremental_equals_forward(&model(5), 23);
    }

    #[test]
    fn the_forward_is_causal() {
        tch::manual_seed(3);
        assert_causal(&model(4), 12, 9);
        // The first token reaches every position: the receptive field is global.
        assert!(positions_reached_from_the_first(&model(4), 12)
            .iter()
            .all(|&r| r));
    }

    #[test]
    fn a_chunk_of_zero_is_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = LinearTransformerConfig { chunk: 0 };
        let err = new(init(&vs.root(), &small()), &cfg)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.linear_transformer.chunk"), "{err}");
    }
}

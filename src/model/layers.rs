//! Building blocks shared by the models: the paper's input embedding (token, bar
//! and beat embeddings concatenated and projected to the model width), the
//! feed-forward block, multi-head projections, the pre-norm residual block every
//! model's layer is built on, and the relative-position attention of the Music
//! Transformer and Transformer-XL.

use super::{Batch, ModelSizes, PositionEmbedding};
use crate::tokens::vocab::BOS_ID;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// The release's sinusoidal table (`SinusoidalEmbedding.get_embedding`, the
/// tensor2tensor variant): row `p` is `[sin(p·ω_0..h), cos(p·ω_0..h)]` with `h =
/// dim / 2` and `ω_j = exp(−j·ln(10000)/(h − 1))`, and row 0 (padding: the prefix,
/// or "no beat") is zero. `(rows, dim)` float32.
pub fn sinusoids(rows: i64, dim: i64, device: tch::Device) -> Tensor {
    sinusoid_rows(&Tensor::arange(rows, (Kind::Int64, device)), dim)
}

/// The rows of [`sinusoids`] for `ids` (any int64 shape), computed directly so no
/// table limits the index.
fn sinusoid_rows(ids: &Tensor, dim: i64) -> Tensor {
    let half = dim / 2;
    let step = (10000f64).ln() / ((half - 1).max(1)) as f64;
    let freq = (Tensor::arange(half, (Kind::Float, ids.device())) * -step).exp();
    let angle = ids.to_kind(Kind::Float).unsqueeze(-1) * freq;
    let mut rows = Tensor::cat(&[angle.sin(), angle.cos()], -1);
    if dim % 2 == 1 {
        let mut shape = ids.size();
        shape.push(1);
        rows = Tensor::cat(
            &[&rows, &Tensor::zeros(shape, (Kind::Float, ids.device()))],
            -1,
        );
    }
    rows * ids.ne(0).unsqueeze(-1).to_kind(Kind::Float)
}

/// A bar or beat embedding: fixed sinusoids or a learned table.
#[derive(Debug)]
enum Positions {
    Sinusoidal { dim: i64 },
    Learned { table: nn::Embedding, last: i64 },
}

impl Positions {
    fn new(
        path: &nn::Path,
        name: &str,
        kind: PositionEmbedding,
        max: i64,
        dim: i64,
    ) -> Option<Positions> {
        (dim > 0).then(|| match kind {
            PositionEmbedding::Sinusoidal => Positions::Sinusoidal { dim },
            PositionEmbedding::Learned => Positions::Learned {
                table: nn::embedding(path / name, max + 1, dim, Default::default()),
                last: max,
            },
        })
    }

    /// The embedding of ids `(batch, time)` (0: none).
    fn forward(&self, ids: &Tensor) -> Tensor {
        match self {
            Positions::Sinusoidal { dim } => sinusoid_rows(ids, *dim),
            Positions::Learned { table, last } => table.forward(&ids.clamp_max(*last)),
        }
    }
}

/// The parameter names of an [`InputEmbedding`].
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingNames {
    /// The token table.
    pub token: &'static str,
    /// The learned bar table.
    pub bar: &'static str,
    /// The learned beat table.
    pub beat: &'static str,
    /// The projection of the concatenation.
    pub proj: &'static str,
}

impl EmbeddingNames {
    /// The names the baselines use.
    pub const OURS: EmbeddingNames = EmbeddingNames {
        token: "emb_token",
        bar: "emb_bar",
        beat: "emb_beat",
        proj: "proj",
    };
}

/// The input embedding: `Linear(concat(s·token, bar, beat))` (Section 4.1: 512 + 256 +
/// 128 projected to 512; `s` = √512 as in fairseq unless `scale_embedding` is off).
/// The bar id of a music token is its bar + 1 and that of `<s>` (the prefix) 0;
/// the beat id is the batch's (0: none). Id 0 is the zero vector of the sinusoids
/// (or row 0 of a learned table), as in the release. Without bar and beat widths
/// it is a plain token embedding.
#[derive(Debug)]
pub struct InputEmbedding {
    token: nn::Embedding,
    bar: Option<Positions>,
    beat: Option<Positions>,
    proj: nn::Linear,
    scale: f64,
}

impl InputEmbedding {
    /// Parameters under `path`, with the baselines' names.
    pub fn new(path: &nn::Path, cfg: &ModelSizes, vocab_size: i64) -> InputEmbedding {
        InputEmbedding::named(path, cfg, vocab_size, EmbeddingNames::OURS)
    }

    /// Parameters under `path` with these names.
    pub fn named(
        path: &nn::Path,
        cfg: &ModelSizes,
        vocab_size: i64,
        names: EmbeddingNames,
    ) -> InputEmbedding {
        let p = cfg.positions;
        let width = cfg.token_embed + cfg.bar_embed + cfg.beat_embed;
        InputEmbedding {
            token: nn::embedding(
                path / names.token,
                vocab_size,
                cfg.token_embed,
                Default::default(),
            ),
            bar: Positions::new(path, names.bar, p.embedding, p.max_bars, cfg.bar_embed),
            beat: Positions::new(path, names.beat, p.embedding, p.max_beats, cfg.beat_embed),
            proj: nn::linear(path / names.proj, width, cfg.hidden, Default::default()),
            scale: if cfg.scale_embedding {
                (cfg.token_embed as f64).sqrt()
            } else {
                1.0
            },
        }
    }

    /// The scaled token embedding of ids `(batch, time)`.
    pub fn tokens(&self, tokens: &Tensor) -> Tensor {
        self.scaled(&self.token.forward(tokens))
    }

    /// `x` times the token embedding's scale (√`token_embed`, or 1): for
    /// embeddings of the token width kept elsewhere, such as Museformer's summary.
    pub fn scaled(&self, x: &Tensor) -> Tensor {
        x * self.scale
    }

    /// The bar embedding of bar ids `(batch, time)` (0: none; bar `i` is id i + 1),
    /// if the model has one.
    pub fn bar_ids(&self, ids: &Tensor) -> Option<Tensor> {
        self.bar.as_ref().map(|b| b.forward(ids))
    }

    /// Embeds `(batch, time)` token, bar and beat indices into `(batch, time, hidden)`.
    pub fn forward(&self, tokens: &Tensor, bars: &Tensor, beats: &Tensor) -> Tensor {
        let mut parts = vec![self.tokens(tokens)];
        if let Some(bar) = &self.bar {
            let ids = (bars + 1).masked_fill(&tokens.eq(BOS_ID as i64), 0);
            parts.push(bar.forward(&ids));
        }
        if let Some(beat) = &self.beat {
            parts.push(beat.forward(beats));
        }
        let x = Tensor::cat(&parts, -1);
        self.proj.forward(&x)
    }

    /// Embeds a batch.
    pub fn forward_batch(&self, batch: &Batch) -> Tensor {
        self.forward(&batch.tokens, &batch.bars, &batch.beats)
    }
}

/// The position-wise feed-forward block: Linear, GELU, dropout (`activation_dropout`;
/// the release has none), Linear.
#[derive(Debug)]
pub struct FeedForward {
    up: nn::Linear,
    down: nn::Linear,
    dropout: f64,
}

impl FeedForward {
    /// Parameters `up` and `down` under `path`.
    pub fn new(path: &nn::Path, hidden: i64, ffn: i64, dropout: f64) -> FeedForward {
        FeedForward::named(path, ("up", "down"), hidden, ffn, dropout)
    }

    /// Parameters with these names under `path`.
    pub fn named(
        path: &nn::Path,
        (up, down): (&str, &str),
        hidden: i64,
        ffn: i64,
        dropout: f64,
    ) -> FeedForward {
        FeedForward {
            up: nn::linear(path / up, hidden, ffn, Default::default()),
            down: nn::linear(path / down, ffn, hidden, Default::default()),
            dropout,
        }
    }

    /// Applies the block.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.down
            .forward(&self.up.forward(x).gelu("none").dropout(self.dropout, train))
    }
}

/// Query, key and value projections split into heads, and the output projection.
#[derive(Debug)]
pub struct HeadProjections {
    qkv: nn::Linear,
    out: nn::Linear,
    heads: i64,
}

impl HeadProjections {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, hidden: i64, heads: i64) -> HeadProjections {
        assert!(
            hidden % heads == 0,
            "hidden width {hidden} is not a multiple of {heads} heads"
        );
        HeadProjections {
            qkv: nn::linear(path / "qkv", hidden, 3 * hidden, Default::default()),
            out: nn::linear(path / "out", hidden, hidden, Default::default()),
            heads,
        }
    }

    /// Splits `(batch, time, hidden)` into queries, keys and values of shape
    /// `(batch, heads, time, head_dim)`.
    pub fn qkv(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        let (b, t, d) = x.size3().expect("(batch, time, hidden)");
        let qkv = self
            .qkv
            .forward(x)
            .view([b, t, 3, self.heads, d / self.heads])
            .permute([2, 0, 3, 1, 4]);
        (qkv.get(0), qkv.get(1), qkv.get(2))
    }

    /// Merges heads `(batch, heads, time, head_dim)` back and projects.
    pub fn output(&self, y: &Tensor) -> Tensor {
        let (b, h, t, dh) = y.size4().expect("(batch, heads, time, head_dim)");
        self.out
            .forward(&y.transpose(1, 2).contiguous().view([b, t, h * dh]))
    }
}

/// The pre-norm residual layer every model is made of: `x + attention(ln_attn(x))`,
/// then `x + ffn(ln_ffn(x))`, dropout on both residual branches. What the attention
/// computes from the normalized queries, keys and values is the model's own: the
/// decoder stack's pluggable attention, Museformer's two FC-attention steps,
/// Transformer-XL's attention over memory and segment. Parameters `ln_attn`, `attn`
/// (the projections), `ln_ffn` and `ffn` under the layer's path.
#[derive(Debug)]
pub struct PreNorm {
    ln_attn: nn::LayerNorm,
    attn: HeadProjections,
    ln_ffn: nn::LayerNorm,
    ffn: FeedForward,
    dropout: f64,
}

impl PreNorm {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &ModelSizes) -> PreNorm {
        PreNorm::with(path, cfg, |_| ()).0
    }

    /// Parameters under `path`, and the model's own parameters of the layer made by
    /// `extra` between the attention projections and the feed-forward block: the
    /// order parameters are made in fixes what a seed initializes them to.
    pub fn with<T>(
        path: &nn::Path,
        cfg: &ModelSizes,
        extra: impl FnOnce(&nn::Path) -> T,
    ) -> (PreNorm, T) {
        let ln_attn = nn::layer_norm(path / "ln_attn", vec![cfg.hidden], Default::default());
        let attn = HeadProjections::new(&(path / "attn"), cfg.hidden, cfg.heads);
        let own = extra(path);
        let block = PreNorm {
            ln_attn,
            attn,
            ln_ffn: nn::layer_norm(path / "ln_ffn", vec![cfg.hidden], Default::default()),
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.activation_dropout),
            dropout: cfg.dropout,
        };
        (block, own)
    }

    /// Queries, keys and values `(batch, heads, time, head_dim)` of the normalized
    /// `x` `(batch, time, hidden)`.
    pub fn qkv(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        self.attn.qkv(&self.ln_attn.forward(x))
    }

    /// The attention's residual branch: `x` plus the projected attention output `y`
    /// `(batch, heads, time, head_dim)`.
    pub fn add_attention(&self, x: &Tensor, y: &Tensor, train: bool) -> Tensor {
        x + self.attn.output(y).dropout(self.dropout, train)
    }

    /// The feed-forward residual branch.
    pub fn add_feed_forward(&self, x: &Tensor, train: bool) -> Tensor {
        x + self
            .ffn
            .forward(&self.ln_ffn.forward(x), train)
            .dropout(self.dropout, train)
    }

    /// The whole layer over `x` `(batch, time, hidden)`, with `attend(q, k, v)` the
    /// attention over its own queries, keys and values.
    pub fn forward(
        &self,
        x: &Tensor,
        attend: impl FnOnce(&Tensor, &Tensor, &Tensor) -> Tensor,
        train: bool,
    ) -> Tensor {
        let (q, k, v) = self.qkv(x);
        let x = self.add_attention(x, &attend(&q, &k, &v), train);
        self.add_feed_forward(&x, train)
    }
}

/// The memory-efficient "skewing" of relative logits (Huang et al. 2018, Section
/// 3.4.1; the `_rel_shift` of Transformer-XL): `x` is `(..., queries, keys)` whose
/// column `m` holds the logit of distance `keys - 1 - m` (the farthest first,
/// distance 0 last), the `queries` being the last positions of the keys. Returns
/// `out[i][j] = x[i][j + queries - 1 - i]`, the logit of query `i` against key `j`
/// at their distance `(keys - queries) + i - j`. Entries of keys after the query
/// (the causal mask hides them) hold unrelated values. Done by padding a zero
/// column on the left, reshaping to `(keys + 1, queries)`, dropping the first row
/// and reshaping back: no `(queries, keys)` index tensor is built.
pub fn relative_shift(x: &Tensor) -> Tensor {
    let size = x.size();
    let n = size.len();
    assert!(
        n >= 2,
        "relative_shift needs (..., queries, keys), got {size:?}"
    );
    let (q, k) = (size[n - 2], size[n - 1]);
    assert!(q <= k, "relative_shift: {q} queries but only {k} keys");
    let lead = &size[..n - 2];
    let padded = x.constant_pad_nd([1, 0]);
    let rows = padded.reshape([lead, &[k + 1, q][..]].concat());
    rows.narrow(-2, 1, k).reshape(size)
}

/// Queries per block of [`relative_attention`] on the CPU.
pub const RELATIVE_QUERY_BLOCK: i64 = 128;

/// Causal attention with relative-position logits: `softmax((q·kᵀ + S)/√d + causal)
/// v`, where `S = relative_shift(R)`. `q` is `(batch, heads, queries, head_dim)`,
/// the queries being the last `queries` of the `k` and `v` positions.
/// `rel_logits(first, rows, keys)` gives `R` for the query rows `first..first +
/// rows` against the first `keys` keys (those rows being the last of those keys):
/// `(batch, heads, rows, keys)`, column `m` the logit of distance `keys - 1 - m`.
/// `dropout` applies to the attention weights.
///
/// On a GPU, `S/√d` of all queries and the causal mask go to libtorch's
/// scaled-dot-product attention as an additive mask (memory-efficient kernels). On
/// the CPU that call falls back to its unfused "math" path (no fused kernel takes a
/// mask that needs a gradient), which writes the scores out anyway, with a separate
/// bias, a copy for the scaling, a masked softmax and its checks. So there the
/// scores are written out directly, in blocks of [`RELATIVE_QUERY_BLOCK`] queries,
/// each over only the keys it can see (the causal prefix; about 5/8 of the
/// `queries × keys` scores for 512 queries over themselves): one batched `(q·kᵀ +
/// S)/√d` (`baddbmm`), the causal mask added in place, the softmax and the values.
/// The same sums, in fewer and smaller passes (`docs/performance.md`, "Faster CPU
/// training").
pub fn relative_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rel_logits: impl Fn(i64, i64, i64) -> Tensor,
    dropout: f64,
) -> Tensor {
    let (b, h, queries, head_dim) = q.size4().expect("(batch, heads, queries, head_dim)");
    let keys = k.size()[2];
    let scale = 1.0 / (head_dim as f64).sqrt();
    if q.device() != tch::Device::Cpu {
        let future =
            Tensor::ones([queries, keys], (tch::Kind::Bool, q.device())).triu(keys - queries + 1);
        let bias = (relative_shift(&rel_logits(0, queries, keys)) * scale)
            .masked_fill(&future, f64::NEG_INFINITY)
            .to_kind(q.kind());
        return Tensor::scaled_dot_product_attention(
            q,
            k,
            v,
            Some(bias),
            dropout,
            false,
            None,
            false,
        );
    }
    let mut outs = Vec::new();
    let mut first = 0;
    while first < queries {
        let rows = RELATIVE_QUERY_BLOCK.min(queries - first);
        // The block's last query is key `seen - 1`: it sees keys `0..seen`.
        let seen = keys - queries + first + rows;
        let (kb, vb) = (k.narrow(2, 0, seen), v.narrow(2, 0, seen));
        // The causal mask as an additive bias (0, or -inf above the diagonal),
        // added in place: a vectorized add with nothing to do in the backward
        // pass, where `masked_fill` runs an unvectorized loop forward and again
        // backward.
        let causal = Tensor::full([rows, seen], f64::NEG_INFINITY, (q.kind(), q.device()))
            .triu(seen - rows + 1);
        let mut scores = relative_shift(&rel_logits(first, rows, seen))
            .to_kind(q.kind())
            .reshape([b * h, rows, seen])
            .baddbmm(
                &q.narrow(2, first, rows).reshape([b * h, rows, head_dim]),
                &kb.reshape([b * h, seen, head_dim]).transpose(1, 2),
                scale,
                scale,
            )
            .view([b, h, rows, seen]);
        let _ = scores.g_add_(&causal);
        outs.push(
            scores
                .softmax(-1, q.kind())
                .dropout(dropout, dropout > 0.0)
                .matmul(&vb),
        );
        first += rows;
    }
    match outs.len() {
        0 => Tensor::zeros([b, h, 0, v.size()[3]], (q.kind(), q.device())),
        1 => outs.pop().expect("one block"),
        _ => Tensor::cat(&outs, 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::max_diff;
    use tch::Device;

    /// The CPU path (blocks of queries, each over its causal prefix of keys) gives
    /// the values and gradients of one scaled-dot-product attention call with the
    /// shifted logits and the causal mask as its additive mask (the GPU path, and
    /// the CPU path before the blocks).
    #[test]
    fn blocked_relative_attention_equals_one_masked_attention_call() {
        tch::manual_seed(7);
        let opts = (Kind::Float, Device::Cpu);
        // Three blocks, the last one partial, the queries the last of the keys.
        let (queries, keys) = (2 * RELATIVE_QUERY_BLOCK + 44, 2 * RELATIVE_QUERY_BLOCK + 84);
        let leaf = |shape: [i64; 4]| Tensor::randn(shape, opts).set_requires_grad(true);
        let (q, k, v) = (
            leaf([2, 3, queries, 8]),
            leaf([2, 3, keys, 8]),
            leaf([2, 3, keys, 8]),
        );
        let rel = leaf([2, 3, queries, keys]);
        let blocked = relative_attention(
            &q,
            &k,
            &v,
            |first, rows, seen| rel.narrow(2, first, rows).narrow(3, keys - seen, seen),
            0.0,
        );
        let future =
            Tensor::ones([queries, keys], (Kind::Bool, Device::Cpu)).triu(keys - queries + 1);
        let bias = (relative_shift(&rel) / 8f64.sqrt()).masked_fill(&future, f64::NEG_INFINITY);
        let reference =
            Tensor::scaled_dot_product_attention(&q, &k, &v, Some(bias), 0.0, false, None, false);
        assert!(max_diff(&blocked, &reference) < 1e-5);
        let weights = Tensor::randn([2, 3, queries, 8], opts);
        let grads = |out: &Tensor| {
            Tensor::run_backward(
                &[(out * &weights).sum(Kind::Float)],
                &[&q, &k, &v, &rel],
                false,
                false,
            )
        };
        for (name, (a, b)) in ["q", "k", "v", "rel"]
            .iter()
            .zip(grads(&blocked).iter().zip(grads(&reference).iter()))
        {
            let d = max_diff(a, b);
            assert!(d < 1e-5, "the gradients of {name} differ by {d}");
        }
    }

    #[test]
    fn sinusoids_are_the_releases() {
        let t = sinusoids(70, 8, Device::Cpu);
        // Row 0 is padding.
        assert_eq!(t.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        // Row p: sin(p·ω_j) then cos(p·ω_j), ω_j = 10000^(−j/3) for j < 4.
        for p in [1i64, 5, 69] {
            for j in 0..4 {
                let w = (-(j as f64) * (10000f64).ln() / 3.0).exp();
                let (sin, cos) = ((p as f64 * w).sin(), (p as f64 * w).cos());
                assert!(
                    (t.double_value(&[p, j]) - sin).abs() < 1e-5,
                    "row {p} sin {j}"
                );
                assert!(
                    (t.double_value(&[p, j + 4]) - cos).abs() < 1e-5,
                    "row {p} cos {j}"
                );
            }
        }
        // Looked up by id, far past any table.
        let ids = Tensor::from_slice(&[0i64, 5, 69, 100_000]).view([1, 4]);
        let rows = sinusoid_rows(&ids, 8);
        assert!(
            max_diff(
                &rows.get(0).narrow(0, 0, 3),
                &t.index_select(0, &Tensor::from_slice(&[0i64, 5, 69]))
            ) < 1e-6
        );
        assert!(rows.get(0).get(3).abs().sum(Kind::Float).double_value(&[]) > 1.0);
    }

    #[test]
    fn the_input_embedding_scales_tokens_and_numbers_bars_from_one() {
        let sizes = ModelSizes {
            hidden: 16,
            token_embed: 16,
            bar_embed: 8,
            beat_embed: 4,
            ..ModelSizes::default()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let e = InputEmbedding::new(&vs.root(), &sizes, 20);
        let t = |v: &[i64]| Tensor::from_slice(v).view([1, -1]);
        let tok = e.token.forward(&t(&[7]));
        assert!(max_diff(&e.tokens(&t(&[7])), &(tok * 4.0)) < 1e-6);
        // Bar 0 of a music token is sinusoid row 1; <s> gets row 0 (zeros).
        let x = e.forward(&t(&[BOS_ID as i64, 7]), &t(&[0, 0]), &t(&[0, 3]));
        let concat = |token: i64, bar_row: i64, beat_row: i64| {
            Tensor::cat(
                &[
                    e.tokens(&t(&[token])),
                    sinusoids(2, 8, Device::Cpu).get(bar_row).view([1, 1, 8]),
                    sinusoids(4, 4, Device::Cpu).get(beat_row).view([1, 1, 4]),
                ],
                -1,
            )
        };
        assert!(
            max_diff(
                &x.narrow(1, 0, 1),
                &e.proj.forward(&concat(BOS_ID as i64, 0, 0))
            ) < 1e-5
        );
        assert!(max_diff(&x.narrow(1, 1, 1), &e.proj.forward(&concat(7, 1, 3))) < 1e-5);
    }
}

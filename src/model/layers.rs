//! Building blocks shared by the models: the paper's input embedding (token, bar
//! and beat embeddings concatenated and projected to the model width), the
//! feed-forward block, multi-head projections, the pre-norm residual block every
//! model's layer is built on, and the relative-position attention of the Music
//! Transformer and Transformer-XL.

use super::{Batch, ModelSizes};
use tch::nn::{self, Module};
use tch::Tensor;

/// The input embedding: `Linear(concat(token, bar, beat))` (Section 4.1: 512 + 256 +
/// 128 projected to 512). Without bar and beat widths it is a plain token embedding.
#[derive(Debug)]
pub struct InputEmbedding {
    token: nn::Embedding,
    bar: Option<nn::Embedding>,
    beat: Option<nn::Embedding>,
    proj: nn::Linear,
    /// Bars past the table's last row share it.
    last_bar: i64,
}

impl InputEmbedding {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &ModelSizes, vocab_size: i64) -> InputEmbedding {
        let emb = |name: &str, n: i64, d: i64| {
            (d > 0).then(|| nn::embedding(path / name, n, d, Default::default()))
        };
        let width = cfg.token_embed + cfg.bar_embed + cfg.beat_embed;
        InputEmbedding {
            token: nn::embedding(
                path / "emb_token",
                vocab_size,
                cfg.token_embed,
                Default::default(),
            ),
            bar: emb("emb_bar", cfg.positions.max_bars, cfg.bar_embed),
            beat: emb("emb_beat", cfg.positions.max_beats, cfg.beat_embed),
            proj: nn::linear(path / "proj", width, cfg.hidden, Default::default()),
            last_bar: cfg.positions.max_bars - 1,
        }
    }

    /// Embeds `(batch, time)` token, bar and beat indices into `(batch, time, hidden)`;
    /// bars past `positions.max_bars - 1` are looked up as the last row.
    pub fn forward(&self, tokens: &Tensor, bars: &Tensor, beats: &Tensor) -> Tensor {
        let mut parts = vec![self.token.forward(tokens)];
        if let Some(bar) = &self.bar {
            parts.push(bar.forward(&bars.clamp_max(self.last_bar)));
        }
        if let Some(beat) = &self.beat {
            parts.push(beat.forward(beats));
        }
        self.proj.forward(&Tensor::cat(&parts, -1))
    }

    /// Embeds a batch.
    pub fn forward_batch(&self, batch: &Batch) -> Tensor {
        self.forward(&batch.tokens, &batch.bars, &batch.beats)
    }
}

/// The position-wise feed-forward block: Linear, GELU, dropout, Linear.
#[derive(Debug)]
pub struct FeedForward {
    up: nn::Linear,
    down: nn::Linear,
    dropout: f64,
}

impl FeedForward {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, hidden: i64, ffn: i64, dropout: f64) -> FeedForward {
        FeedForward {
            up: nn::linear(path / "up", hidden, ffn, Default::default()),
            down: nn::linear(path / "down", ffn, hidden, Default::default()),
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
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.dropout),
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

/// Causal attention with relative-position logits: `softmax((q·kᵀ + S)/√d + causal)
/// v`, where `S = relative_shift(rel_logits)`. `q` is `(batch, heads, queries,
/// head_dim)`, the queries being the last `queries` of the `k` and `v` positions;
/// `rel_logits` is `(batch, heads, queries, keys)` with column `m` the logit of
/// distance `keys - 1 - m`. `S/√d` and the causal mask go to libtorch's
/// scaled-dot-product attention as an additive mask (memory-efficient kernels on a
/// GPU); `dropout` applies to the attention weights.
pub fn relative_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rel_logits: &Tensor,
    dropout: f64,
) -> Tensor {
    let (queries, keys, head_dim) = (q.size()[2], k.size()[2], q.size()[3]);
    let future =
        Tensor::ones([queries, keys], (tch::Kind::Bool, q.device())).triu(keys - queries + 1);
    let bias = (relative_shift(rel_logits) / (head_dim as f64).sqrt())
        .masked_fill(&future, f64::NEG_INFINITY)
        .to_kind(q.kind());
    Tensor::scaled_dot_product_attention(q, k, v, Some(bias), dropout, false, None, false)
}

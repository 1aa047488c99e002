//! Museformer (Section 3): a pre-norm Transformer whose self-attention is the
//! paper's fine- and coarse-grained attention (FC-Attention), parameterised as the
//! release builds it (`museformer_lm_v2s1`).
//!
//! Each bar gets a summary token, whose input is `Linear(concat(√d·summary
//! embedding, bar embedding))`. In every layer:
//!
//! 1. **Summarization** (Eq. 2): the summary of bar i attends to the tokens of bar i
//!    and to itself. Its raw attention output `a` is projected twice more, into the
//!    keys and values the tokens read in step 2 (`sum_key2_proj`,
//!    `sum_value2_proj`), and once by the shared output projection into the
//!    summary's residual stream.
//! 2. **Aggregation** (Eq. 3): a token of bar i attends to the prefix (`<s>`), to
//!    the tokens of its structure-related bars R(i), to the earlier tokens of its
//!    own bar and itself, and to the step-1 keys and values of the summaries of the
//!    coarse-grained bars.
//! 3. The feed-forward block.
//!
//! Tokens and summaries share the query, key, value and output projections but add
//! their own biases; they share the layer norms and the feed-forward block unless
//! `summary_stream: separate` (the release's default arch shares them). Parameter
//! names are the release's state-dict names (`decoder.layers.0.self_attn.
//! reg_query_proj.weight`, ...; [`RELEASE_NAMES`]), so its checkpoint converts one
//! tensor to one tensor. Who attends to what comes from [`Layout`] alone.
//!
//! The two attention steps are computed by grouping the queries with their key sets
//! ([`plan`]): time and memory grow with n·(k·m + b) (Section 4.4), never with n².
//! The tests compare it against a dense reference over the `(n + b)²` mask of the
//! same layout.
//!
//! Incremental decoding ([`MuseformerDecoder`]) keeps, per layer, the keys and
//! values of every token and the step-1 keys and values of every finished summary;
//! when a token of a new bar arrives, the summaries of the bars before it are
//! computed first, so every new token attends to exactly what the full forward
//! gives it.

pub mod plan;

use super::layers::{EmbeddingNames, FeedForward, InputEmbedding};
use super::layout::{Layout, LayoutConfig};
use super::{Batch, Decoder, Init, LanguageModel, ModelSizes};
use crate::tokens::vocab::BOS_ID;
use plan::Plans;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

/// Whether the summaries have their own layer norms and feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SummaryStream {
    /// Shared with the music tokens (the release's `share_sum_reg_params`).
    #[default]
    Shared,
    /// Their own (`sum_self_attn_layer_norm`, `sum_fc1`, `sum_fc2`,
    /// `sum_final_layer_norm`).
    Separate,
}

/// Museformer's section of an experiment's `model:` (`museformer: {layout: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MuseformerConfig {
    /// Fine- and coarse-grained bars.
    pub layout: LayoutConfig,
    /// The summaries' layer norms and feed-forward block.
    pub summary_stream: SummaryStream,
}

/// The release's parameter names under `decoder.` (with shared layer norms and
/// feed-forward block, sinusoidal bar and beat embeddings, and `{l}` for the layer
/// index): the names of this model's parameters, one to one.
pub const RELEASE_NAMES: &[&str] = &[
    "decoder.embed_regular_tokens.weight",
    "decoder.embed_summary_tokens.weight",
    "decoder.reg_proj_embeddings.weight",
    "decoder.reg_proj_embeddings.bias",
    "decoder.sum_proj_embeddings.weight",
    "decoder.sum_proj_embeddings.bias",
    "decoder.layers.{l}.self_attn.sum_query_bias",
    "decoder.layers.{l}.self_attn.reg_query_bias",
    "decoder.layers.{l}.self_attn.sum_key_bias",
    "decoder.layers.{l}.self_attn.reg_key_bias",
    "decoder.layers.{l}.self_attn.sum_value_bias",
    "decoder.layers.{l}.self_attn.reg_value_bias",
    "decoder.layers.{l}.self_attn.reg_query_proj.weight",
    "decoder.layers.{l}.self_attn.reg_key_proj.weight",
    "decoder.layers.{l}.self_attn.reg_value_proj.weight",
    "decoder.layers.{l}.self_attn.reg_out_proj.weight",
    "decoder.layers.{l}.self_attn.reg_out_proj.bias",
    "decoder.layers.{l}.self_attn.sum_key2_proj.weight",
    "decoder.layers.{l}.self_attn.sum_value2_proj.weight",
    "decoder.layers.{l}.reg_self_attn_layer_norm.weight",
    "decoder.layers.{l}.reg_self_attn_layer_norm.bias",
    "decoder.layers.{l}.reg_fc1.weight",
    "decoder.layers.{l}.reg_fc1.bias",
    "decoder.layers.{l}.reg_fc2.weight",
    "decoder.layers.{l}.reg_fc2.bias",
    "decoder.layers.{l}.reg_final_layer_norm.weight",
    "decoder.layers.{l}.reg_final_layer_norm.bias",
    "decoder.layer_norm.weight",
    "decoder.layer_norm.bias",
    "decoder.output_projection.weight",
];

/// The two FC-attention steps of every layer over a batch, each over the key and
/// value tables `[tokens; summaries]` (`(rows, heads, head_dim)`): the model's
/// grouped [`Plans`], or the tests' dense reference.
trait FcAttention {
    /// Summarization: the summaries' queries.
    fn summarize(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor;
    /// Aggregation: the tokens' queries.
    fn aggregate(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor;
}

impl FcAttention for Plans {
    fn summarize(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor {
        self.summarize.attend(q, k, v, dropout)
    }
    fn aggregate(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor {
        self.aggregate.attend(q, k, v, dropout)
    }
}

/// A `(d, d)` projection without bias, initialised Xavier-uniform with `gain`.
fn projection(path: &nn::Path, d: i64, gain: f64, bias: bool) -> nn::Linear {
    let bound = gain * (6.0 / (2 * d) as f64).sqrt();
    nn::linear(
        path,
        d,
        d,
        nn::LinearConfig {
            ws_init: nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
            bs_init: Some(nn::Init::Const(0.0)),
            bias,
        },
    )
}

/// The attention parameters of one layer (`self_attn`).
#[derive(Debug)]
struct SelfAttention {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    out: nn::Linear,
    key2: nn::Linear,
    value2: nn::Linear,
    /// Query, key and value biases of the music tokens and of the summaries.
    reg_bias: [Tensor; 3],
    sum_bias: [Tensor; 3],
    heads: i64,
}

impl SelfAttention {
    fn new(path: &nn::Path, d: i64, heads: i64) -> SelfAttention {
        let g = std::f64::consts::FRAC_1_SQRT_2;
        let biases = |who: &str| {
            ["query", "key", "value"].map(|p| path.zeros(&format!("{who}_{p}_bias"), &[d]))
        };
        let sum_bias = biases("sum");
        let reg_bias = biases("reg");
        SelfAttention {
            query: projection(&(path / "reg_query_proj"), d, g, false),
            key: projection(&(path / "reg_key_proj"), d, g, false),
            value: projection(&(path / "reg_value_proj"), d, g, false),
            out: projection(&(path / "reg_out_proj"), d, 1.0, true),
            key2: projection(&(path / "sum_key2_proj"), d, g, false),
            value2: projection(&(path / "sum_value2_proj"), d, g, false),
            reg_bias,
            sum_bias,
            heads,
        }
    }

    /// `(rows, hidden)` to `(rows, heads, dh)`.
    fn split(&self, x: Tensor) -> Tensor {
        let (rows, d) = x.size2().expect("(rows, hidden)");
        x.view([rows, self.heads, d / self.heads])
    }

    /// Queries, keys and values `(rows, heads, dh)` of the normalized `x` with the
    /// biases of the music tokens or of the summaries.
    fn qkv(&self, x: &Tensor, biases: &[Tensor; 3]) -> (Tensor, Tensor, Tensor) {
        let [bq, bk, bv] = biases;
        (
            self.split(self.query.forward(x) + bq),
            self.split(self.key.forward(x) + bk),
            self.split(self.value.forward(x) + bv),
        )
    }

    /// The summaries' step-2 keys and values of their raw output `a` `(rows, hidden)`.
    fn kv2(&self, a: &Tensor) -> (Tensor, Tensor) {
        (
            self.split(self.key2.forward(a)),
            self.split(self.value2.forward(a)),
        )
    }
}

/// The parameters of one stream's layer norms and feed-forward block.
#[derive(Debug)]
struct Stream {
    ln_attn: nn::LayerNorm,
    ffn: FeedForward,
    ln_ffn: nn::LayerNorm,
}

impl Stream {
    fn new(path: &nn::Path, who: &str, sizes: &ModelSizes) -> Stream {
        let ln = |name: &str| {
            nn::layer_norm(
                path / format!("{who}_{name}"),
                vec![sizes.hidden],
                Default::default(),
            )
        };
        Stream {
            ln_attn: ln("self_attn_layer_norm"),
            ffn: FeedForward::named(
                path,
                (&format!("{who}_fc1"), &format!("{who}_fc2")),
                sizes.hidden,
                sizes.ffn,
                sizes.activation_dropout,
            ),
            ln_ffn: ln("final_layer_norm"),
        }
    }
}

/// One Museformer layer.
#[derive(Debug)]
struct Layer {
    attn: SelfAttention,
    reg: Stream,
    /// The summaries' own stream (`summary_stream: separate`).
    sum: Option<Stream>,
    dropout: f64,
}

impl Layer {
    fn new(path: &nn::Path, sizes: &ModelSizes, cfg: &MuseformerConfig) -> Layer {
        let attn = SelfAttention::new(&(path / "self_attn"), sizes.hidden, sizes.heads);
        let reg = Stream::new(path, "reg", sizes);
        let sum = (cfg.summary_stream == SummaryStream::Separate)
            .then(|| Stream::new(path, "sum", sizes));
        Layer {
            attn,
            reg,
            sum,
            dropout: sizes.dropout,
        }
    }

    fn summary_stream(&self) -> &Stream {
        self.sum.as_ref().unwrap_or(&self.reg)
    }

    /// The music tokens' queries, keys and values.
    fn token_qkv(&self, x: &Tensor) -> (Tensor, Tensor, Tensor) {
        self.attn
            .qkv(&self.reg.ln_attn.forward(x), &self.attn.reg_bias)
    }

    /// The summaries' queries, keys and values.
    fn summary_qkv(&self, s: &Tensor) -> (Tensor, Tensor, Tensor) {
        self.attn.qkv(
            &self.summary_stream().ln_attn.forward(s),
            &self.attn.sum_bias,
        )
    }

    /// `x` plus the projected attention output `y` `(rows, hidden)`.
    fn add_attention(&self, x: &Tensor, y: &Tensor, train: bool) -> Tensor {
        x + self.attn.out.forward(y).dropout(self.dropout, train)
    }

    fn add_feed_forward(stream: &Stream, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        x + stream
            .ffn
            .forward(&stream.ln_ffn.forward(x), train)
            .dropout(dropout, train)
    }

    /// One layer over flattened tokens `x` `(b·n, hidden)` and summaries `s` `(b·nb,
    /// hidden)`, `p` the dropout on attention weights. The last layer's summaries
    /// feed nothing, so they skip the feed-forward block.
    fn forward(
        &self,
        attention: &impl FcAttention,
        (x, s): (Tensor, Tensor),
        last: bool,
        p: f64,
        train: bool,
    ) -> (Tensor, Tensor) {
        let cat = |a: &Tensor, b: &Tensor| Tensor::cat(&[a, b], 0);
        let flat = |t: Tensor| t.flatten(1, 2);
        let (qx, kx, vx) = self.token_qkv(&x);
        let (qs, ks, vs) = self.summary_qkv(&s);
        let a = flat(attention.summarize(&qs, &cat(&kx, &ks), &cat(&vx, &vs), p));
        let (k2, v2) = self.attn.kv2(&a);
        let ox = flat(attention.aggregate(&qx, &cat(&kx, &k2), &cat(&vx, &v2), p));
        let x = self.add_attention(&x, &ox, train);
        let x = Self::add_feed_forward(&self.reg, &x, self.dropout, train);
        let s = if last {
            s
        } else {
            let s = self.add_attention(&s, &a, train);
            Self::add_feed_forward(self.summary_stream(), &s, self.dropout, train)
        };
        (x, s)
    }
}

/// The Museformer language model.
#[derive(Debug)]
pub struct Museformer {
    embed: InputEmbedding,
    /// `embed_summary_tokens`: row 0 is the release's padding, row 1 the summary.
    summary: Tensor,
    summary_proj: nn::Linear,
    layers: Vec<Layer>,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    layout: LayoutConfig,
    dropout: f64,
    attention_dropout: f64,
}

impl Museformer {
    /// Parameters under `path / "decoder"`.
    pub fn new(init: Init, cfg: &MuseformerConfig) -> anyhow::Result<Museformer> {
        let (root, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
        sizes.head_dim()?;
        anyhow::ensure!(
            cfg.layout.fine_grained_bars.iter().all(|&k| k > 0),
            "model.museformer.layout.fine_grained_bars must be positive bar offsets (the current bar is always attended), got {:?}",
            cfg.layout.fine_grained_bars
        );
        let path = root / "decoder";
        let names = EmbeddingNames {
            token: "embed_regular_tokens",
            bar: "embed_bar_abs_pos",
            beat: "embed_beat_abs_pos",
            proj: "reg_proj_embeddings",
        };
        let embed = InputEmbedding::named(&path, sizes, vocab_size, names);
        let summary = (&path / "embed_summary_tokens").var(
            "weight",
            &[2, sizes.token_embed],
            nn::Init::Randn {
                mean: 0.0,
                stdev: 1.0,
            },
        );
        tch::no_grad(|| {
            let _ = summary.get(0).fill_(0.0);
        });
        let summary_proj = nn::linear(
            &path / "sum_proj_embeddings",
            sizes.token_embed + sizes.bar_embed,
            sizes.hidden,
            Default::default(),
        );
        let layers = (0..sizes.layers)
            .map(|i| Layer::new(&(&path / "layers" / i), sizes, cfg))
            .collect();
        let ln_out = nn::layer_norm(&path / "layer_norm", vec![sizes.hidden], Default::default());
        let head = nn::linear(
            &path / "output_projection",
            sizes.hidden,
            vocab_size,
            nn::LinearConfig {
                ws_init: nn::Init::Randn {
                    mean: 0.0,
                    stdev: (sizes.hidden as f64).powf(-0.5),
                },
                bs_init: None,
                bias: false,
            },
        );
        Ok(Museformer {
            embed,
            summary,
            summary_proj,
            layers,
            ln_out,
            head,
            layout: cfg.layout.clone(),
            dropout: sizes.dropout,
            attention_dropout: sizes.attention_dropout,
        })
    }

    /// The summary inputs of bars `first..first + count`, `(count, hidden)`.
    fn summary_inputs(&self, first: i64, count: i64, device: Device) -> Tensor {
        let token = self
            .embed
            .scaled(&self.summary.get(1))
            .unsqueeze(0)
            .expand([count, -1], false);
        let ids = Tensor::arange_start(first + 1, first + count + 1, (Kind::Int64, device));
        let mut parts = vec![token];
        parts.extend(self.embed.bar_ids(&ids));
        self.summary_proj.forward(&Tensor::cat(&parts, -1))
    }

    /// The layouts of a batch ([`Layout::of_sequence`] of each row).
    fn layouts(batch: &Batch) -> Vec<Layout> {
        let (b, n) = (batch.size(), batch.len());
        let tokens = Vec::<i64>::try_from(batch.tokens.to_device(Device::Cpu).view([-1]))
            .expect("int64 tokens");
        let bars =
            Vec::<i64>::try_from(batch.bars.to_device(Device::Cpu).view([-1])).expect("int64 bars");
        (0..b as usize)
            .map(|s| {
                let row = s * n as usize..(s + 1) * n as usize;
                Layout::of_sequence(&tokens[row.clone()], &bars[row])
            })
            .collect()
    }

    /// The forward pass with the FC-attention `attention(layouts, n, nb, device)`
    /// builds for the batch (`n` tokens and `nb` bars per sequence, padded).
    fn forward_with<F: FcAttention>(
        &self,
        batch: &Batch,
        train: bool,
        attention: impl FnOnce(&[Layout], usize, usize, Device) -> F,
    ) -> Tensor {
        let (b, n) = (batch.size(), batch.len());
        let device = batch.tokens.device();
        let layouts = Self::layouts(batch);
        let nb = layouts
            .iter()
            .map(|l| l.bars.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        let hidden = x.size()[2];
        let x = x.reshape([b * n, hidden]);
        let s = self
            .summary_inputs(0, nb as i64, device)
            .repeat([b, 1])
            .to_kind(x.kind())
            .dropout(self.dropout, train);
        let p = if train { self.attention_dropout } else { 0.0 };
        let attention = attention(&layouts, n as usize, nb, device);
        let last = self.layers.len().saturating_sub(1);
        let mut xs = (x, s);
        for (l, layer) in self.layers.iter().enumerate() {
            xs = layer.forward(&attention, xs, l == last, p, train);
        }
        self.head
            .forward(&self.ln_out.forward(&xs.0))
            .view([b, n, -1])
    }
}

/// A growable `(rows, heads, dh)` buffer.
#[derive(Default)]
struct Rows {
    data: Option<Tensor>,
    len: i64,
}

impl Rows {
    fn push(&mut self, row: &Tensor) {
        let needed = self.len + 1;
        let grow = match &self.data {
            None => true,
            Some(d) => d.size()[0] < needed,
        };
        if grow {
            let size = row.size();
            let cap = (needed * 2).max(64);
            let fresh = Tensor::zeros([cap, size[1], size[2]], (row.kind(), row.device()));
            if let Some(d) = &self.data {
                fresh
                    .narrow(0, 0, self.len)
                    .copy_(&d.narrow(0, 0, self.len));
            }
            self.data = Some(fresh);
        }
        let data = self.data.as_ref().expect("allocated");
        data.narrow(0, self.len, 1).copy_(row);
        self.len = needed;
    }

    fn select(&self, rows: &[usize]) -> Option<Tensor> {
        if rows.is_empty() {
            return None;
        }
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let data = self.data.as_ref().expect("rows were pushed");
        Some(data.index_select(0, &Tensor::from_slice(&idx).to_device(data.device())))
    }
}

/// Per layer: keys and values of every token, and the step-2 keys and values of
/// every finished summary.
#[derive(Default)]
struct LayerCache {
    token_k: Rows,
    token_v: Rows,
    summary_k: Rows,
    summary_v: Rows,
}

/// What one sequence keeps while decoding.
struct SequenceCache {
    layout: Layout,
    /// Bars whose summaries are computed.
    summarized: usize,
    layers: Vec<LayerCache>,
}

/// The decoder of [`Museformer`]: per sequence, its layout so far and the keys and
/// values of each layer.
pub struct MuseformerDecoder<'a> {
    model: &'a Museformer,
    sequences: Vec<SequenceCache>,
    len: usize,
}

/// Attention of one query `(1, heads, dh)` over keys and values `(m, heads, dh)`.
fn attend_one(q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
    let t = |x: &Tensor| x.transpose(0, 1).unsqueeze(0);
    Tensor::scaled_dot_product_attention::<Tensor>(
        &t(q),
        &t(k),
        &t(v),
        None,
        0.0,
        false,
        None,
        false,
    )
    .squeeze_dim(0)
    .transpose(0, 1)
}

impl Museformer {
    /// Computes the summaries of every bar before `bar` not yet summarized.
    fn summarize_until(&self, seq: &mut SequenceCache, bar: usize, device: Device) {
        let last = self.layers.len().saturating_sub(1);
        while seq.summarized < bar {
            let i = seq.summarized;
            let tokens: Vec<usize> = seq
                .layout
                .bars
                .get(i)
                .map_or(0..0, |&(a, b)| a..b)
                .collect();
            let mut s = self.summary_inputs(i as i64, 1, device);
            for (l, (layer, cache)) in self.layers.iter().zip(seq.layers.iter_mut()).enumerate() {
                let (q, k, v) = layer.summary_qkv(&s);
                let keys = |own: &Tensor, rows: &Rows| match rows.select(&tokens) {
                    Some(t) => Tensor::cat(&[&t, own], 0),
                    None => own.shallow_clone(),
                };
                let a = attend_one(&q, &keys(&k, &cache.token_k), &keys(&v, &cache.token_v))
                    .flatten(1, 2);
                let (k2, v2) = layer.attn.kv2(&a);
                cache.summary_k.push(&k2);
                cache.summary_v.push(&v2);
                if l != last {
                    s = layer.add_attention(&s, &a, false);
                    s = Layer::add_feed_forward(layer.summary_stream(), &s, 0.0, false);
                }
            }
            seq.summarized += 1;
        }
    }

    /// Runs the newest token (already in the layout) through the layers.
    fn token_step(&self, seq: &mut SequenceCache, x: &Tensor) -> Tensor {
        let t = seq.layout.len() - 1;
        let attends = seq.layout.token(t, &self.layout);
        let mut x = x.shallow_clone();
        for (layer, cache) in self.layers.iter().zip(seq.layers.iter_mut()) {
            let (q, k, v) = layer.token_qkv(&x);
            cache.token_k.push(&k);
            cache.token_v.push(&v);
            let gather = |tokens: &Rows, summaries: &Rows| {
                let mut parts = vec![tokens.select(&attends.tokens).expect("the token itself")];
                parts.extend(summaries.select(&attends.summaries));
                Tensor::cat(&parts, 0)
            };
            let o = attend_one(
                &q,
                &gather(&cache.token_k, &cache.summary_k),
                &gather(&cache.token_v, &cache.summary_v),
            );
            x = layer.add_attention(&x, &o.flatten(1, 2), false);
            x = Layer::add_feed_forward(&layer.reg, &x, 0.0, false);
        }
        x
    }
}

impl Decoder for MuseformerDecoder<'_> {
    fn step(&mut self, token: &Tensor, bar: &Tensor, beat: &Tensor) -> Tensor {
        let model = self.model;
        let device = token.device();
        let bars = Vec::<i64>::try_from(bar.to_device(Device::Cpu)).expect("int64 bars");
        let ids = Vec::<i64>::try_from(token.to_device(Device::Cpu)).expect("int64 tokens");
        let x = model
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1))
            .squeeze_dim(1);
        let rows: Vec<Tensor> = self
            .sequences
            .iter_mut()
            .enumerate()
            .map(|(i, seq)| {
                if seq.layout.is_empty() && ids[i] == BOS_ID as i64 {
                    seq.layout.push_prefix();
                } else {
                    let music = &seq.layout.token_bar[seq.layout.prefix..];
                    let b = music
                        .last()
                        .copied()
                        .unwrap_or(0)
                        .max(bars[i].max(0) as usize);
                    model.summarize_until(seq, b, device);
                    seq.layout.push(b);
                }
                model.token_step(seq, &x.narrow(0, i as i64, 1))
            })
            .collect();
        self.len += 1;
        model
            .head
            .forward(&model.ln_out.forward(&Tensor::cat(&rows, 0)))
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl LanguageModel for Museformer {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        self.forward_with(batch, train, |layouts, n, nb, device| {
            Plans::new(layouts, &self.layout, n, nb, device)
        })
    }

    fn decoder(&self, batch: i64) -> Box<dyn Decoder + '_> {
        Box::new(MuseformerDecoder {
            model: self,
            sequences: (0..batch)
                .map(|_| SequenceCache {
                    layout: Layout::new(&[]),
                    summarized: 0,
                    layers: (0..self.layers.len())
                        .map(|_| LayerCache::default())
                        .collect(),
                })
                .collect(),
            len: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::Coarse;
    use crate::model::testing::{self, assert_decoding_equals_forward, init, max_diff};
    use crate::model::ModelSizes;
    use crate::model::PositionLimits;
    use crate::tokens::vocab::PAD_ID;

    /// The dense reference of FC-attention: per sequence, its queries attend over
    /// `[its tokens; its summaries]` under the rows of the layout's dense mask.
    struct Dense {
        layouts: Vec<Layout>,
        masks: Vec<Vec<bool>>,
        n: usize,
        nb: usize,
    }

    impl Dense {
        fn new(layouts: &[Layout], cfg: &LayoutConfig, n: usize, nb: usize) -> Dense {
            Dense {
                layouts: layouts.to_vec(),
                masks: layouts.iter().map(|l| l.dense_mask(cfg)).collect(),
                n,
                nb,
            }
        }

        /// The summaries' queries (`summaries_query`) or the tokens'.
        fn step(&self, summaries_query: bool, q: &Tensor, k: &Tensor, v: &Tensor) -> Tensor {
            let (n, nb) = (self.n, self.nb);
            let b = self.layouts.len();
            let (_, h, dh) = q.size3().expect("(rows, heads, head_dim)");
            let mut outs = Vec::new();
            for (s, (layout, mask)) in self.layouts.iter().zip(&self.masks).enumerate() {
                let (len, bars) = (layout.len(), layout.bars.len());
                let w = len + bars;
                let keys = |t: &Tensor| {
                    Tensor::cat(
                        &[
                            t.narrow(0, (s * n) as i64, len as i64),
                            t.narrow(0, (b * n + s * nb) as i64, bars as i64),
                        ],
                        0,
                    )
                    .transpose(0, 1)
                    .unsqueeze(0)
                };
                let (rows, first, total) = if summaries_query {
                    (bars, len, nb)
                } else {
                    (len, 0, n)
                };
                let start = if summaries_query { s * nb } else { s * n };
                if rows > 0 {
                    let m: Vec<bool> = mask[first * w..(first + rows) * w].to_vec();
                    let m = Tensor::from_slice(&m)
                        .view([1, 1, rows as i64, w as i64])
                        .to_device(q.device());
                    let qs = q
                        .narrow(0, start as i64, rows as i64)
                        .transpose(0, 1)
                        .unsqueeze(0);
                    let o = Tensor::scaled_dot_product_attention::<Tensor>(
                        &qs,
                        &keys(k),
                        &keys(v),
                        Some(m),
                        0.0,
                        false,
                        None,
                        false,
                    );
                    outs.push(o.squeeze_dim(0).transpose(0, 1));
                }
                if total > rows {
                    outs.push(Tensor::zeros(
                        [(total - rows) as i64, h, dh],
                        (q.kind(), q.device()),
                    ));
                }
            }
            Tensor::cat(&outs, 0)
        }
    }

    impl FcAttention for Dense {
        fn summarize(&self, q: &Tensor, k: &Tensor, v: &Tensor, _dropout: f64) -> Tensor {
            self.step(true, q, k, v)
        }
        fn aggregate(&self, q: &Tensor, k: &Tensor, v: &Tensor, _dropout: f64) -> Tensor {
            self.step(false, q, k, v)
        }
    }

    /// The forward pass with the dense reference attention.
    fn dense_forward(model: &Museformer, batch: &Batch) -> Tensor {
        model.forward_with(batch, false, |layouts, n, nb, _| {
            Dense::new(layouts, &model.layout, n, nb)
        })
    }

    fn sizes() -> ModelSizes {
        ModelSizes {
            dropout: 0.0,
            attention_dropout: 0.0,
            positions: PositionLimits {
                max_bars: 64,
                max_beats: 8,
                ..PositionLimits::default()
            },
            ..testing::small()
        }
    }

    fn model(vs: &nn::VarStore, sizes: &ModelSizes, layout: LayoutConfig) -> Museformer {
        Museformer::new(
            init(&vs.root(), sizes),
            &MuseformerConfig {
                layout,
                ..MuseformerConfig::default()
            },
        )
        .unwrap()
    }

    /// A batch from per-sequence bar lengths (a 0 is an empty bar), padded with
    /// `PAD_ID` to the longest; the even-numbered sequences start with `<s>` (the
    /// prefix), counted in their first bar's length.
    fn batch(songs: &[Vec<usize>], seed: i64) -> Batch {
        let b = raw_batch(songs, seed);
        for s in (0..songs.len()).step_by(2) {
            let _ = b.tokens.get(s as i64).get(0).fill_(BOS_ID as i64);
        }
        b
    }

    /// [`batch`] without prefixes.
    fn raw_batch(songs: &[Vec<usize>], seed: i64) -> Batch {
        tch::manual_seed(seed);
        let lens: Vec<usize> = songs.iter().map(|s| s.iter().sum()).collect();
        let n = *lens.iter().max().unwrap() as i64;
        let b = songs.len() as i64;
        let tokens = Tensor::randint_low(4, 50, [b, n], (Kind::Int64, Device::Cpu));
        let mut bars = vec![0i64; (b * n) as usize];
        for (s, song) in songs.iter().enumerate() {
            let mut t = 0;
            for (i, &len) in song.iter().enumerate() {
                for _ in 0..len {
                    bars[s * n as usize + t] = i as i64;
                    t += 1;
                }
            }
            let _ = tokens
                .get(s as i64)
                .narrow(0, lens[s] as i64, n - lens[s] as i64)
                .fill_(PAD_ID as i64);
        }
        let bars = Tensor::from_slice(&bars).view([b, n]);
        Batch {
            beats: bars.remainder(8),
            bars,
            tokens,
        }
    }

    /// Logits of `forward` and parameter gradients of a loss over the real
    /// positions.
    fn run(
        vs: &nn::VarStore,
        batch: &Batch,
        forward: impl Fn(&Batch) -> Tensor,
    ) -> (Tensor, Vec<Tensor>) {
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
        let logits = forward(batch);
        let real = batch
            .tokens
            .ne(PAD_ID as i64)
            .unsqueeze(-1)
            .to_kind(Kind::Float);
        // Fixed weights (tests share the global generator across threads).
        let weights = Tensor::arange(logits.numel() as i64, (Kind::Float, Device::Cpu))
            .sin()
            .view(logits.size().as_slice());
        (&logits * &real * weights).sum(Kind::Float).backward();
        let mut grads: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(name, v)| {
                let g = v.grad();
                (
                    name,
                    if g.defined() {
                        g.copy()
                    } else {
                        v.zeros_like()
                    },
                )
            })
            .collect();
        grads.sort_by(|a, b| a.0.cmp(&b.0));
        (
            (logits * real).detach(),
            grads.into_iter().map(|g| g.1).collect(),
        )
    }

    fn check_against_dense(layout: LayoutConfig, songs: &[Vec<usize>]) {
        let vs = nn::VarStore::new(Device::Cpu);
        tch::manual_seed(3);
        let model = model(&vs, &sizes(), layout);
        let b = batch(songs, 7);
        let (grouped, grouped_grads) = run(&vs, &b, |b| model.forward(b, false));
        let (dense, dense_grads) = run(&vs, &b, |b| dense_forward(&model, b));
        let d = max_diff(&grouped, &dense);
        assert!(d < 1e-5, "{songs:?}: outputs differ by {d}");
        // Gradients of a sum over all logits reach tens; 1e-5 relative to the
        // largest entry of each gradient (absolute below magnitude 1).
        for (g, r) in grouped_grads.iter().zip(&dense_grads) {
            let d = max_diff(g, r);
            let scale = r.abs().max().double_value(&[]).max(1.0);
            assert!(
                d < 1e-5 * scale,
                "{songs:?}: gradients differ by {d} (scale {scale})"
            );
        }
    }

    /// The model's parameter names, layer indices written `{l}`.
    fn names(cfg: &MuseformerConfig, sizes: &ModelSizes) -> Vec<String> {
        let vs = nn::VarStore::new(Device::Cpu);
        Museformer::new(init(&vs.root(), sizes), cfg).unwrap();
        let mut names: Vec<String> = vs
            .variables()
            .into_keys()
            .map(|n| {
                let parts: Vec<&str> = n.split('.').collect();
                parts
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        if i > 0 && parts[i - 1] == "layers" {
                            "{l}".to_string()
                        } else {
                            p.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    #[test]
    fn parameter_names_are_the_releases() {
        let sorted = |v: &[&str]| {
            let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let cfg = MuseformerConfig::default();
        assert_eq!(names(&cfg, &sizes()), sorted(RELEASE_NAMES));
        // The summaries' own stream and learned positions add the release's names
        // of those options.
        let separate = MuseformerConfig {
            summary_stream: SummaryStream::Separate,
            ..MuseformerConfig::default()
        };
        let learned = ModelSizes {
            positions: PositionLimits {
                embedding: crate::model::PositionEmbedding::Learned,
                ..sizes().positions
            },
            ..sizes()
        };
        let mut want: Vec<&str> = RELEASE_NAMES.to_vec();
        want.extend([
            "decoder.layers.{l}.sum_self_attn_layer_norm.weight",
            "decoder.layers.{l}.sum_self_attn_layer_norm.bias",
            "decoder.layers.{l}.sum_fc1.weight",
            "decoder.layers.{l}.sum_fc1.bias",
            "decoder.layers.{l}.sum_fc2.weight",
            "decoder.layers.{l}.sum_fc2.bias",
            "decoder.layers.{l}.sum_final_layer_norm.weight",
            "decoder.layers.{l}.sum_final_layer_norm.bias",
            "decoder.embed_bar_abs_pos.weight",
            "decoder.embed_beat_abs_pos.weight",
        ]);
        assert_eq!(names(&separate, &learned), sorted(&want));
    }

    #[test]
    fn grouped_attention_equals_the_dense_reference() {
        let varied = vec![
            // Varied bars, with one-token bars and an empty bar.
            vec![5, 1, 7, 0, 3, 1, 9, 4, 2, 6, 1, 8, 3],
            // One bar only (a song of one bar).
            vec![23],
            // The first bar only, one token.
            vec![1],
            // A very long bar among short ones (longer than a query chunk).
            vec![3, 150, 2, 4, 1, 5],
        ];
        check_against_dense(LayoutConfig::default(), &varied);
        let narrow = LayoutConfig {
            fine_grained_bars: vec![1, 3],
            coarse: Coarse::AllOther,
        };
        check_against_dense(narrow, &varied);
    }

    #[test]
    fn ablations_equal_the_dense_reference() {
        let songs = vec![vec![4, 2, 6, 1, 3, 5, 2, 7, 1, 4, 2, 3], vec![2, 9, 1]];
        for layout in [
            LayoutConfig {
                coarse: Coarse::None,
                ..LayoutConfig::default()
            },
            LayoutConfig {
                fine_grained_bars: (1..=8).collect(),
                ..LayoutConfig::default()
            },
            LayoutConfig {
                fine_grained_bars: vec![],
                ..LayoutConfig::default()
            },
            LayoutConfig {
                fine_grained_bars: vec![2],
                coarse: Coarse::Ranges(vec![(1, 1), (4, 6)]),
            },
        ] {
            check_against_dense(layout, &songs);
        }
    }

    #[test]
    fn the_dense_reference_follows_the_layout() {
        // A later token must not change an earlier one's logits, and a bar outside
        // a token's fine-grained bars reaches it only through its summary: with no
        // summaries, changing it changes nothing.
        let vs = nn::VarStore::new(Device::Cpu);
        let layout = LayoutConfig {
            fine_grained_bars: vec![1],
            coarse: Coarse::None,
        };
        // One layer: with more, information travels a bar per layer.
        let sizes = ModelSizes {
            layers: 1,
            ..sizes()
        };
        let model = model(&vs, &sizes, layout);
        let grouped = |b: &Batch| model.forward(b, false);
        let dense = |b: &Batch| dense_forward(&model, b);
        for forward in [&grouped as &dyn Fn(&Batch) -> Tensor, &dense] {
            let b = raw_batch(&[vec![3, 3, 3]], 5);
            let a = forward(&b);
            let changed = b.tokens.copy();
            let _ = changed.narrow(1, 0, 3).fill_(9);
            let c = forward(&Batch {
                tokens: changed,
                bars: b.bars.shallow_clone(),
                beats: b.beats.shallow_clone(),
            });
            // Bar 2 (tokens 6..9) sees bar 1 only: unchanged.
            assert!(max_diff(&a.narrow(1, 6, 3), &c.narrow(1, 6, 3)) < 1e-6);
            // Bar 1 sees bar 0: changed.
            assert!(max_diff(&a.narrow(1, 3, 3), &c.narrow(1, 3, 3)) > 1e-4);
        }
    }

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        for layout in [
            LayoutConfig::default(),
            LayoutConfig {
                fine_grained_bars: vec![2],
                coarse: Coarse::AllOther,
            },
        ] {
            let vs = nn::VarStore::new(Device::Cpu);
            tch::manual_seed(4);
            let model = model(&vs, &sizes(), layout);
            let songs = vec![vec![3, 1, 4, 0, 2, 5, 1, 3], vec![7, 2, 2, 1, 6, 2, 1]];
            let lengths: Vec<i64> = songs
                .iter()
                .map(|s| s.iter().sum::<usize>() as i64)
                .collect();
            assert_decoding_equals_forward("", &model, &batch(&songs, 9), Some(&lengths));
        }
    }
}

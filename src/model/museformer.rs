//! Museformer (Section 3): a pre-norm Transformer whose self-attention is the
//! paper's fine- and coarse-grained attention (FC-Attention).
//!
//! Each bar gets a summary token. In every layer:
//!
//! 1. **Summarization** (Eq. 2): the summary of bar i attends to the tokens of bar i
//!    and to itself, and is added to its residual stream.
//! 2. **Aggregation** (Eq. 3): a token of bar i attends to the tokens of its
//!    structure-related bars R(i), to the earlier tokens of its own bar and itself,
//!    and to the summaries of the coarse-grained bars, as updated by step 1 of the
//!    same layer.
//! 3. The feed-forward block, for tokens and summaries alike.
//!
//! Tokens and summaries share the layer's projections, layer norms and feed-forward
//! block. Who attends to what comes from [`Layout`] alone.
//!
//! The attention is computed by grouping (the default): the queries of each bar,
//! in chunks of at most [`QUERY_CHUNK`] tokens, form a group whose key set is the
//! union of what they may see; groups with similar key counts are padded together
//! and run through libtorch's scaled-dot-product attention with a small per-group
//! mask. Time and memory grow with n·(k·m + b) (Section 4.4), never with n². A dense
//! implementation over the `(n + b)²` mask of the same layout is kept as the
//! reference the tests compare against ([`AttentionImpl::Dense`]).
//!
//! Incremental decoding keeps, per layer, the keys and values of every music token
//! and of every finished summary; when a token of a new bar arrives, the summaries
//! of the bars before it are computed first, so every new token attends to exactly
//! what the full forward gives it.

use super::layers::{FeedForward, HeadProjections, InputEmbedding};
use super::layout::{Layout, LayoutConfig};
use super::{Batch, DecodeState, LanguageModel, ModelConfig};
use crate::tokens::vocab::PAD_ID;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

/// Queries of one bar are grouped in chunks of at most this many tokens, so a very
/// long bar does not pad every other group.
pub const QUERY_CHUNK: usize = 64;

/// Upper bound on `groups × queries × keys` of one padded attention call.
const BUCKET_ELEMENTS: usize = 1 << 21;

/// How FC-Attention is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionImpl {
    /// Queries grouped by bar with their gathered key sets (the efficient path).
    Grouped,
    /// One `(n + b)²` mask per sequence (the reference; small inputs only).
    Dense,
}

/// One attention group: queries that share a key set.
struct Group {
    /// Rows of the query table.
    queries: Vec<i64>,
    /// Sequence position of each query (`usize::MAX`: sees every key).
    query_pos: Vec<usize>,
    /// Rows of the key table.
    keys: Vec<i64>,
    /// Sequence position of each key (`0` for summaries: always visible).
    key_pos: Vec<usize>,
}

/// Groups of similar key counts, padded to one shape.
#[derive(Debug)]
struct Bucket {
    groups: i64,
    queries: i64,
    keys: i64,
    /// `(groups × queries)` rows of the query table (padding: the zero row).
    query_rows: Tensor,
    /// `(groups × keys)` rows of the key table (padding: the zero row).
    key_rows: Tensor,
    /// `(groups, 1, queries, keys)`: true where attention is allowed.
    mask: Tensor,
    /// Positions among `groups × queries` that hold real queries.
    valid: Tensor,
}

/// The index tensors of one grouped attention over a query and a key table.
#[derive(Debug)]
struct Plan {
    buckets: Vec<Bucket>,
    /// For every query-table row, its row in the concatenated bucket outputs (rows
    /// that are no query of any group: the zero row at the end).
    restore: Tensor,
}

impl Plan {
    /// Pads `groups` into buckets of similar key counts. Query rows index a table
    /// of `query_rows` rows, key rows one of `key_rows` rows; each table gets a zero
    /// row appended for padding.
    fn new(mut groups: Vec<Group>, query_rows: usize, key_rows: usize, device: Device) -> Plan {
        groups.sort_by_key(|g| g.keys.len());
        let mut restore = vec![-1i64; query_rows];
        let mut buckets = Vec::new();
        let mut out_rows = 0i64;
        let mut start = 0;
        while start < groups.len() {
            let first = groups[start].keys.len().max(1);
            let limit = (first + first / 4).max(first + 16);
            let mut end = start;
            let (mut mq, mut mk) = (1, 1);
            while end < groups.len() {
                let g = &groups[end];
                let (q, k) = (mq.max(g.queries.len()), mk.max(g.keys.len()));
                if end > start
                    && (g.keys.len() > limit || (end - start + 1) * q * k > BUCKET_ELEMENTS)
                {
                    break;
                }
                (mq, mk) = (q, k);
                end += 1;
            }
            let bucket = &groups[start..end];
            let n = bucket.len();
            let mut qr = vec![query_rows as i64; n * mq];
            let mut kr = vec![key_rows as i64; n * mk];
            let mut mask = vec![false; n * mq * mk];
            let mut valid = Vec::new();
            for (gi, g) in bucket.iter().enumerate() {
                for (qi, (&row, &qpos)) in g.queries.iter().zip(&g.query_pos).enumerate() {
                    let at = gi * mq + qi;
                    qr[at] = row;
                    restore[row as usize] = out_rows + valid.len() as i64;
                    valid.push(at as i64);
                    let m = &mut mask[at * mk..(at + 1) * mk];
                    for (ki, &kpos) in g.key_pos.iter().enumerate() {
                        m[ki] = kpos <= qpos;
                    }
                }
                // Padding queries see one key, so no row of the softmax is empty (its
                // output is dropped and its gradient is zero).
                for qi in g.queries.len()..mq {
                    mask[(gi * mq + qi) * mk] = true;
                }
                kr[gi * mk..gi * mk + g.keys.len()].copy_from_slice(&g.keys);
            }
            out_rows += valid.len() as i64;
            let dims = [n as i64, 1, mq as i64, mk as i64];
            buckets.push(Bucket {
                groups: n as i64,
                queries: mq as i64,
                keys: mk as i64,
                query_rows: Tensor::from_slice(&qr).to_device(device),
                key_rows: Tensor::from_slice(&kr).to_device(device),
                mask: Tensor::from_slice(&mask).view(dims).to_device(device),
                valid: Tensor::from_slice(&valid).to_device(device),
            });
            start = end;
        }
        for r in restore.iter_mut().filter(|r| **r < 0) {
            *r = out_rows;
        }
        Plan {
            buckets,
            restore: Tensor::from_slice(&restore).to_device(device),
        }
    }

    /// Attention of the query table `(Nq, heads, dh)` over the key and value tables
    /// `(Nk, heads, dh)`; rows that are no query come out zero.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, dropout: f64) -> Tensor {
        let (_, h, dh) = q.size3().expect("(rows, heads, head_dim)");
        let pad = |t: &Tensor| Tensor::cat(&[t, &t.zeros_like().narrow(0, 0, 1)], 0);
        let (q, k, v) = (pad(q), pad(k), pad(v));
        let mut outs = Vec::with_capacity(self.buckets.len() + 1);
        for b in &self.buckets {
            let gather = |table: &Tensor, rows: &Tensor, m: i64| {
                table
                    .index_select(0, rows)
                    .view([b.groups, m, h, dh])
                    .transpose(1, 2)
            };
            let o = Tensor::scaled_dot_product_attention::<Tensor>(
                &gather(&q, &b.query_rows, b.queries),
                &gather(&k, &b.key_rows, b.keys),
                &gather(&v, &b.key_rows, b.keys),
                Some(b.mask.shallow_clone()),
                dropout,
                false,
                None,
                false,
            );
            outs.push(
                o.transpose(1, 2)
                    .reshape([b.groups * b.queries, h, dh])
                    .index_select(0, &b.valid),
            );
        }
        outs.push(q.zeros_like().narrow(0, 0, 1));
        Tensor::cat(&outs, 0).index_select(0, &self.restore)
    }
}

/// Splits `(rows, hidden)` into queries, keys and values `(rows, heads, dh)`.
fn project(attn: &HeadProjections, x: &Tensor) -> (Tensor, Tensor, Tensor) {
    let (q, k, v) = attn.qkv(&x.unsqueeze(0));
    let rows = |t: Tensor| t.squeeze_dim(0).transpose(0, 1);
    (rows(q), rows(k), rows(v))
}

/// Merges `(rows, heads, dh)` and applies the output projection.
fn merge(attn: &HeadProjections, y: &Tensor) -> Tensor {
    attn.output(&y.transpose(0, 1).unsqueeze(0)).squeeze_dim(0)
}

/// One pre-norm layer applied to tokens and summaries.
#[derive(Debug)]
struct Block {
    ln_attn: nn::LayerNorm,
    attn: HeadProjections,
    ln_ffn: nn::LayerNorm,
    ffn: FeedForward,
}

impl Block {
    fn new(path: &nn::Path, cfg: &ModelConfig) -> Block {
        Block {
            ln_attn: nn::layer_norm(path / "ln_attn", vec![cfg.hidden], Default::default()),
            attn: HeadProjections::new(&(path / "attn"), cfg.hidden, cfg.heads),
            ln_ffn: nn::layer_norm(path / "ln_ffn", vec![cfg.hidden], Default::default()),
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.dropout),
        }
    }

    fn ffn(&self, x: &Tensor, dropout: f64, train: bool) -> Tensor {
        x + self
            .ffn
            .forward(&self.ln_ffn.forward(x), train)
            .dropout(dropout, train)
    }

    /// The layer over flattened tokens `x` `(b·n, hidden)` and summaries `s`
    /// `(b·nb, hidden)`. `summarize(q, k, v)` and `aggregate(q, k, v)` compute the
    /// two attention steps over key tables `[tokens; summaries]`.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        s: &Tensor,
        summarize: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        aggregate: impl Fn(&Tensor, &Tensor, &Tensor) -> Tensor,
        last: bool,
        dropout: f64,
        train: bool,
    ) -> (Tensor, Tensor) {
        let (qx, kx, vx) = project(&self.attn, &self.ln_attn.forward(x));
        let (qs, ks, vs) = project(&self.attn, &self.ln_attn.forward(s));
        let os = summarize(
            &qs,
            &Tensor::cat(&[&kx, &ks], 0),
            &Tensor::cat(&[&vx, &vs], 0),
        );
        let s = s + merge(&self.attn, &os).dropout(dropout, train);
        let (_, ks, vs) = project(&self.attn, &self.ln_attn.forward(&s));
        let ox = aggregate(
            &qx,
            &Tensor::cat(&[&kx, &ks], 0),
            &Tensor::cat(&[&vx, &vs], 0),
        );
        let x = x + merge(&self.attn, &ox).dropout(dropout, train);
        let x = self.ffn(&x, dropout, train);
        // The last layer's summaries feed nothing.
        let s = if last {
            s
        } else {
            self.ffn(&s, dropout, train)
        };
        (x, s)
    }
}

/// The Museformer language model.
#[derive(Debug)]
pub struct Museformer {
    embed: InputEmbedding,
    summary: Tensor,
    blocks: Vec<Block>,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    layout: LayoutConfig,
    dropout: f64,
    attention_dropout: f64,
    implementation: AttentionImpl,
}

impl Museformer {
    /// Parameters under `path`.
    pub fn new(path: &nn::Path, cfg: &ModelConfig, vocab_size: i64) -> anyhow::Result<Museformer> {
        anyhow::ensure!(
            cfg.hidden % cfg.heads == 0,
            "model.hidden ({}) must be a multiple of model.heads ({})",
            cfg.hidden,
            cfg.heads
        );
        anyhow::ensure!(
            cfg.layout.fine_grained_bars.iter().all(|&k| k > 0),
            "model.layout.fine_grained_bars must be positive bar offsets (the current bar is always attended), got {:?}",
            cfg.layout.fine_grained_bars
        );
        Ok(Museformer {
            embed: InputEmbedding::new(&(path / "embed"), cfg, vocab_size),
            summary: path.var(
                "summary_embedding",
                &[cfg.hidden],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            ),
            blocks: (0..cfg.layers)
                .map(|i| Block::new(&(path / "blocks" / i), cfg))
                .collect(),
            ln_out: nn::layer_norm(path / "ln_out", vec![cfg.hidden], Default::default()),
            head: nn::linear(path / "head", cfg.hidden, vocab_size, Default::default()),
            layout: cfg.layout.clone(),
            dropout: cfg.dropout,
            attention_dropout: cfg.attention_dropout,
            implementation: AttentionImpl::Grouped,
        })
    }

    /// Switches between the grouped attention and the dense reference.
    pub fn set_attention(&mut self, implementation: AttentionImpl) {
        self.implementation = implementation;
    }

    /// The layout configuration.
    pub fn layout_config(&self) -> &LayoutConfig {
        &self.layout
    }

    /// The layouts of a batch: for each sequence, the bar of each real token
    /// (padding at the end excluded; bar indices made non-decreasing).
    fn layouts(batch: &Batch) -> Vec<Layout> {
        let (b, n) = (batch.size(), batch.len());
        let tokens = Vec::<i64>::try_from(batch.tokens.to_device(Device::Cpu).view([-1]))
            .expect("int64 tokens");
        let bars =
            Vec::<i64>::try_from(batch.bars.to_device(Device::Cpu).view([-1])).expect("int64 bars");
        (0..b as usize)
            .map(|s| {
                let row = s * n as usize..(s + 1) * n as usize;
                let len = tokens[row.clone()]
                    .iter()
                    .rposition(|&t| t != PAD_ID as i64)
                    .map_or(0, |p| p + 1);
                let mut running = 0usize;
                let bars: Vec<usize> = bars[row][..len]
                    .iter()
                    .map(|&x| {
                        running = running.max(x.max(0) as usize);
                        running
                    })
                    .collect();
                Layout::new(&bars)
            })
            .collect()
    }

    /// The grouped plans of the summarization and aggregation steps. Token rows are
    /// `s·n + t`, summary rows `s·nb + i`; key tables are `[tokens; summaries]`.
    fn plans(&self, layouts: &[Layout], n: usize, nb: usize, device: Device) -> (Plan, Plan) {
        let b = layouts.len();
        let (tokens, summaries) = (b * n, b * nb);
        let mut summarize = Vec::new();
        let mut aggregate = Vec::new();
        for (s, layout) in layouts.iter().enumerate() {
            let token_row = |t: usize| (s * n + t) as i64;
            let summary_key = |i: usize| (tokens + s * nb + i) as i64;
            let keys = |a: &super::layout::Attends| {
                let rows: Vec<i64> = a
                    .tokens
                    .iter()
                    .map(|&t| token_row(t))
                    .chain(a.summaries.iter().map(|&i| summary_key(i)))
                    .collect();
                let pos: Vec<usize> = a
                    .tokens
                    .iter()
                    .copied()
                    .chain(a.summaries.iter().map(|_| 0))
                    .collect();
                (rows, pos)
            };
            for i in 0..layout.bars.len() {
                let (rows, pos) = keys(&layout.summary(i));
                summarize.push(Group {
                    queries: vec![(s * nb + i) as i64],
                    query_pos: vec![usize::MAX],
                    keys: rows,
                    key_pos: pos,
                });
            }
            for &(start, end) in &layout.bars {
                // Equal chunks of at most QUERY_CHUNK queries (70 tokens: 35 + 35).
                let chunks = (end - start).div_ceil(QUERY_CHUNK);
                let size = (end - start).div_ceil(chunks.max(1)).max(1);
                for chunk in (start..end).step_by(size) {
                    let stop = (chunk + size).min(end);
                    let (rows, pos) = keys(&layout.token(stop - 1, &self.layout));
                    aggregate.push(Group {
                        queries: (chunk..stop).map(token_row).collect(),
                        query_pos: (chunk..stop).collect(),
                        keys: rows,
                        key_pos: pos,
                    });
                }
            }
        }
        let key_rows = tokens + summaries;
        (
            Plan::new(summarize, summaries, key_rows, device),
            Plan::new(aggregate, tokens, key_rows, device),
        )
    }

    /// The dense reference of one attention step: per sequence, its queries attend
    /// over `[its tokens; its summaries]` under the rows of the dense layout mask.
    #[allow(clippy::too_many_arguments)]
    fn dense_step(
        layouts: &[Layout],
        masks: &[Vec<bool>],
        cfg_n: (usize, usize),
        summaries_query: bool,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Tensor {
        let (n, nb) = cfg_n;
        let b = layouts.len();
        let (_, h, dh) = q.size3().expect("(rows, heads, head_dim)");
        let mut outs = Vec::new();
        for (s, (layout, mask)) in layouts.iter().zip(masks).enumerate() {
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

impl LanguageModel for Museformer {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
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
        let mut x = x.reshape([b * n, hidden]);
        let mut s = self
            .summary
            .view([1, hidden])
            .expand([b * nb as i64, hidden], false)
            .to_kind(x.kind());
        let p = if train { self.attention_dropout } else { 0.0 };
        let last = self.blocks.len().saturating_sub(1);
        match self.implementation {
            AttentionImpl::Grouped => {
                let (summarize, aggregate) = self.plans(&layouts, n as usize, nb, device);
                for (l, block) in self.blocks.iter().enumerate() {
                    (x, s) = block.forward(
                        &x,
                        &s,
                        |q, k, v| summarize.attend(q, k, v, p),
                        |q, k, v| aggregate.attend(q, k, v, p),
                        l == last,
                        self.dropout,
                        train,
                    );
                }
            }
            AttentionImpl::Dense => {
                let masks: Vec<Vec<bool>> =
                    layouts.iter().map(|l| l.dense_mask(&self.layout)).collect();
                let dims = (n as usize, nb);
                for (l, block) in self.blocks.iter().enumerate() {
                    (x, s) = block.forward(
                        &x,
                        &s,
                        |q, k, v| Self::dense_step(&layouts, &masks, dims, true, q, k, v),
                        |q, k, v| Self::dense_step(&layouts, &masks, dims, false, q, k, v),
                        l == last,
                        self.dropout,
                        train,
                    );
                }
            }
        }
        self.head.forward(&self.ln_out.forward(&x)).view([b, n, -1])
    }

    fn new_state(&self, batch: i64) -> Box<dyn DecodeState> {
        Box::new(MuseformerState {
            sequences: (0..batch)
                .map(|_| SequenceState {
                    layout: Layout::new(&[]),
                    summarized: 0,
                    layers: (0..self.blocks.len())
                        .map(|_| LayerCache::default())
                        .collect(),
                })
                .collect(),
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
            .downcast_mut::<MuseformerState>()
            .expect("a Museformer decoding state");
        let bars = Vec::<i64>::try_from(bar.to_device(Device::Cpu)).expect("int64 bars");
        let mut x = self
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1))
            .squeeze_dim(1);
        let rows: Vec<Tensor> = state
            .sequences
            .iter_mut()
            .enumerate()
            .map(|(i, seq)| {
                let current = seq.layout.token_bar.last().copied().unwrap_or(0);
                let b = current.max(bars[i].max(0) as usize);
                self.summarize_until(seq, b);
                seq.layout.push(b);
                self.token_step(seq, &x.narrow(0, i as i64, 1))
            })
            .collect();
        state.len += 1;
        x = Tensor::cat(&rows, 0);
        self.head.forward(&self.ln_out.forward(&x))
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

/// Per layer: keys and values of every token, and of every finished summary (as
/// the aggregation step sees them).
#[derive(Default)]
struct LayerCache {
    token_k: Rows,
    token_v: Rows,
    summary_k: Rows,
    summary_v: Rows,
}

struct SequenceState {
    layout: Layout,
    /// Bars whose summaries are computed.
    summarized: usize,
    layers: Vec<LayerCache>,
}

/// The incremental-decoding state of [`Museformer`].
pub struct MuseformerState {
    sequences: Vec<SequenceState>,
    len: usize,
}

impl DecodeState for MuseformerState {
    fn len(&self) -> usize {
        self.len
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
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
    fn summarize_until(&self, seq: &mut SequenceState, bar: usize) {
        let hidden = self.summary.size()[0];
        let last = self.blocks.len().saturating_sub(1);
        while seq.summarized < bar {
            let i = seq.summarized;
            let tokens: Vec<usize> = seq
                .layout
                .bars
                .get(i)
                .map_or(0..0, |&(a, b)| a..b)
                .collect();
            let mut s = self.summary.view([1, hidden]);
            for (l, (block, cache)) in self.blocks.iter().zip(seq.layers.iter_mut()).enumerate() {
                let (q, k, v) = project(&block.attn, &block.ln_attn.forward(&s));
                let keys = |own: &Tensor, rows: &Rows| match rows.select(&tokens) {
                    Some(t) => Tensor::cat(&[&t, own], 0),
                    None => own.shallow_clone(),
                };
                let o = attend_one(&q, &keys(&k, &cache.token_k), &keys(&v, &cache.token_v));
                s = &s + merge(&block.attn, &o);
                let (_, k, v) = project(&block.attn, &block.ln_attn.forward(&s));
                cache.summary_k.push(&k);
                cache.summary_v.push(&v);
                if l != last {
                    s = block.ffn(&s, 0.0, false);
                }
            }
            seq.summarized += 1;
        }
    }

    /// Runs the newest token (already in the layout) through the layers.
    fn token_step(&self, seq: &mut SequenceState, x: &Tensor) -> Tensor {
        let t = seq.layout.len() - 1;
        let attends = seq.layout.token(t, &self.layout);
        let mut x = x.shallow_clone();
        for (block, cache) in self.blocks.iter().zip(seq.layers.iter_mut()) {
            let (q, k, v) = project(&block.attn, &block.ln_attn.forward(&x));
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
            x = &x + merge(&block.attn, &o);
            x = block.ffn(&x, 0.0, false);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layout::Coarse;
    use crate::model::PositionLimits;
    use tch::Kind;

    fn small(layout: LayoutConfig) -> ModelConfig {
        ModelConfig {
            kind: "museformer".into(),
            layers: 2,
            hidden: 32,
            heads: 4,
            ffn: 64,
            token_embed: 32,
            bar_embed: 8,
            beat_embed: 8,
            dropout: 0.0,
            attention_dropout: 0.0,
            positions: PositionLimits {
                max_bars: 64,
                max_beats: 8,
            },
            layout,
            ..ModelConfig::default()
        }
    }

    /// A batch from per-sequence bar lengths (a 0 is an empty bar), padded with
    /// `PAD_ID` to the longest.
    fn batch(songs: &[Vec<usize>], seed: i64) -> Batch {
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

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// Forward and parameter gradients of a loss over the real positions.
    fn run(model: &Museformer, vs: &nn::VarStore, batch: &Batch) -> (Tensor, Vec<Tensor>) {
        for mut v in vs.trainable_variables() {
            v.zero_grad();
        }
        let logits = model.forward(batch, false);
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
        let mut model = Museformer::new(&vs.root(), &small(layout), 50).unwrap();
        let b = batch(songs, 7);
        let (grouped, grouped_grads) = run(&model, &vs, &b);
        model.set_attention(AttentionImpl::Dense);
        let (dense, dense_grads) = run(&model, &vs, &b);
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
        let cfg = ModelConfig {
            layers: 1,
            ..small(layout)
        };
        let mut model = Museformer::new(&vs.root(), &cfg, 50).unwrap();
        for implementation in [AttentionImpl::Grouped, AttentionImpl::Dense] {
            model.set_attention(implementation);
            let b = batch(&[vec![3, 3, 3]], 5);
            let a = model.forward(&b, false);
            let changed = b.tokens.copy();
            let _ = changed.narrow(1, 0, 3).fill_(9);
            let c = model.forward(
                &Batch {
                    tokens: changed,
                    bars: b.bars.shallow_clone(),
                    beats: b.beats.shallow_clone(),
                },
                false,
            );
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
            let model = Museformer::new(&vs.root(), &small(layout), 50).unwrap();
            let songs = vec![vec![3, 1, 4, 0, 2, 5, 1, 3], vec![7, 2, 2, 1, 6, 2, 1]];
            let b = batch(&songs, 9);
            let full = tch::no_grad(|| model.forward(&b, false));
            let n = b.len();
            let mut state = model.new_state(2);
            for t in 0..n {
                let step = tch::no_grad(|| {
                    model.step(
                        state.as_mut(),
                        &b.tokens.select(1, t),
                        &b.bars.select(1, t),
                        &b.beats.select(1, t),
                    )
                });
                // Compare the real positions of each sequence.
                for (s, song) in songs.iter().enumerate() {
                    if t < song.iter().sum::<usize>() as i64 {
                        let d = max_diff(&step.get(s as i64), &full.get(s as i64).get(t));
                        assert!(d < 1e-4, "sequence {s}, position {t}: {d}");
                    }
                }
            }
            assert_eq!(state.len(), n as usize);
        }
    }
}

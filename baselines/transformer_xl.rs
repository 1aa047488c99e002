//! Transformer-XL (Dai et al., 2019): segment-level recurrence with a
//! stop-gradient memory and relative positional encoding.
//!
//! The forward pass walks a sequence segment by segment (`segment` tokens of the
//! `transformer_xl:` section). In each layer the segment attends to the layer's
//! memory, the detached (stop-gradient) layer inputs of the last `memory` earlier
//! positions, followed by the segment itself. So the trainer's forward
//! over a song *is* segment-wise training with memory, and the evaluator's forward
//! walks long songs segment by segment carrying the memory, as the original does.
//!
//! The attention logit of query `i` and key `j` at distance `d = i - j ≥ 0` is the
//! paper's `(q_i + u)·k_j + (q_i + v)·W_r R_d`, scaled by `1/√head_dim`, where `R_d`
//! is the sinusoidal encoding of `d` and `u`, `v` are the two global bias vectors
//! (shared by all layers, one per head). The position term is computed for the
//! distances `keys - 1, …, 0` and moved into place with the "shift" trick
//! ([`relative_shift`](crate::model::layers::relative_shift)).
//!
//! Decoding keeps, per layer, the memory of the current segment, the inputs of the
//! current segment so far and the keys and values of both; at each segment end
//! the memory moves on exactly as in the forward, so incremental logits equal the
//! segment-wise forward's.

use crate::model::layers::{relative_attention, InputEmbedding, PreNorm};
use crate::model::{Batch, Decoder, Init, LanguageModel, ModelSizes};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// Transformer-XL's section of an experiment's `model:` (`transformer_xl: {...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformerXlConfig {
    /// Segment length (tokens processed together; at least 1).
    pub segment: i64,
    /// Memory length (cached hidden states of earlier segments; 0: none).
    pub memory: i64,
}

impl Default for TransformerXlConfig {
    fn default() -> Self {
        TransformerXlConfig {
            segment: 1024,
            memory: 1024,
        }
    }
}

/// Sinusoidal encodings `(n, width)` of the distances `n - 1, …, 0` (the farthest
/// first): `[sin(d·f), cos(d·f)]` with frequencies `f_k = 10000^(-2k/width)`.
fn sinusoids(n: i64, width: i64, device: tch::Device) -> Tensor {
    let distances = Tensor::arange(n, (Kind::Float, device)).flip([0]);
    let freqs = (Tensor::arange_start_step(0, width, 2, (Kind::Float, device))
        * (-(10_000f64.ln()) / width as f64))
        .exp();
    let angles = distances.outer(&freqs);
    Tensor::cat(&[angles.sin(), angles.cos()], -1)
}

/// The global bias vectors `u` (content) and `v` (position): flat `(hidden,)`
/// parameters (one-dimensional, so they get no weight decay), read as `(heads, 1,
/// head_dim)`.
#[derive(Debug)]
struct Biases {
    u: Tensor,
    v: Tensor,
    heads: i64,
}

impl Biases {
    fn per_head(&self, bias: &Tensor) -> Tensor {
        bias.view([self.heads, 1, -1])
    }
}

/// What one layer keeps while decoding.
#[derive(Default)]
struct LayerCache {
    /// The memory the current segment attends to.
    memory: Option<Tensor>,
    /// The layer's inputs at the current segment's positions so far.
    segment: Vec<Tensor>,
    /// Keys and values of the memory and the current segment so far.
    kv: Option<(Tensor, Tensor)>,
}

/// One layer: the shared pre-norm block with relative multi-head attention over
/// memory + segment.
#[derive(Debug)]
struct Block {
    layer: PreNorm,
    /// `W_r`: projects the sinusoidal encodings to the heads' key space.
    pos: nn::Linear,
    heads: i64,
    hidden: i64,
    attention_dropout: f64,
}

impl Block {
    fn new(path: &nn::Path, cfg: &ModelSizes) -> Block {
        let no_bias = nn::LinearConfig {
            bias: false,
            ..Default::default()
        };
        let (layer, pos) = PreNorm::with(path, cfg, |path| {
            nn::linear(path / "pos", cfg.hidden, cfg.hidden, no_bias)
        });
        Block {
            layer,
            pos,
            heads: cfg.heads,
            hidden: cfg.hidden,
            attention_dropout: cfg.attention_dropout,
        }
    }

    /// `W_r R` for the distances `keys - 1, …, 0`, split into heads: `(heads,
    /// keys, head_dim)`.
    fn positions(&self, keys: i64, device: tch::Device) -> Tensor {
        self.pos
            .forward(&sinusoids(keys, self.hidden, device))
            .view([keys, self.heads, -1])
            .transpose(0, 1)
    }

    /// Relative attention of `q` (the last positions) over `k`, `v`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, b: &Biases, train: bool) -> Tensor {
        let qv = q + b.per_head(&b.v);
        let rel_logits = |first: i64, rows: i64, keys: i64| {
            qv.narrow(2, first, rows)
                .matmul(&self.positions(keys, q.device()).transpose(-1, -2))
        };
        let p = if train { self.attention_dropout } else { 0.0 };
        relative_attention(&(q + b.per_head(&b.u)), k, v, rel_logits, p)
    }

    /// A segment `h` `(batch, len, hidden)` attending to `memory ++ h`.
    fn forward(&self, h: &Tensor, memory: Option<&Tensor>, b: &Biases, train: bool) -> Tensor {
        let (m, len) = (memory.map_or(0, |t| t.size()[1]), h.size()[1]);
        let context = match memory {
            Some(mem) => Tensor::cat(&[mem, h], 1),
            None => h.shallow_clone(),
        };
        let (q, k, v) = self.layer.qkv(&context);
        let y = self.attend(&q.narrow(2, m, len), &k, &v, b, train);
        self.finish(h, &y, train)
    }

    /// One new position `x` `(batch, 1, hidden)` of the current segment.
    fn step(&self, x: &Tensor, layer: &mut LayerCache, b: &Biases) -> Tensor {
        if layer.kv.is_none() {
            if let Some(mem) = &layer.memory {
                let (_, k, v) = self.layer.qkv(mem);
                layer.kv = Some((k, v));
            }
        }
        let (q, k, v) = self.layer.qkv(x);
        let (k, v) = match layer.kv.take() {
            Some((ck, cv)) => (Tensor::cat(&[ck, k], 2), Tensor::cat(&[cv, v], 2)),
            None => (k, v),
        };
        let y = self.attend(&q, &k, &v, b, false);
        layer.kv = Some((k, v));
        layer.segment.push(x.shallow_clone());
        self.finish(x, &y, false)
    }

    /// The residual connections around the attention output `y` and the FFN.
    fn finish(&self, x: &Tensor, y: &Tensor, train: bool) -> Tensor {
        let x = self.layer.add_attention(x, y, train);
        self.layer.add_feed_forward(&x, train)
    }
}

/// The memory for the next segment: the last `length` positions of `memory ++
/// inputs`, detached (the stop-gradient of the paper); `None` when `length` is 0.
fn next_memory(memory: Option<&Tensor>, inputs: &Tensor, length: i64) -> Option<Tensor> {
    if length == 0 {
        return None;
    }
    let all = match memory {
        Some(mem) => Tensor::cat(&[mem, inputs], 1),
        None => inputs.shallow_clone(),
    };
    let n = all.size()[1];
    Some(all.narrow(1, (n - length).max(0), n.min(length)).detach())
}

/// The Transformer-XL language model (`kind: transformer_xl`).
#[derive(Debug)]
pub struct TransformerXl {
    embed: InputEmbedding,
    blocks: Vec<Block>,
    biases: Biases,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    segment: i64,
    memory: i64,
    dropout: f64,
}

impl TransformerXl {
    /// Parameters under `path`.
    pub fn new(init: Init, cfg: &TransformerXlConfig) -> anyhow::Result<TransformerXl> {
        let (path, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
        anyhow::ensure!(
            sizes.hidden % sizes.heads == 0 && sizes.hidden % 2 == 0,
            "model.hidden ({}) must be even and a multiple of model.heads ({})",
            sizes.hidden,
            sizes.heads
        );
        anyhow::ensure!(
            cfg.segment >= 1,
            "model.transformer_xl.segment is {} but Transformer-XL needs segments of at least 1 token",
            cfg.segment
        );
        anyhow::ensure!(
            cfg.memory >= 0,
            "model.transformer_xl.memory is {}; it must be 0 (no memory) or more",
            cfg.memory
        );
        Ok(TransformerXl {
            embed: InputEmbedding::new(&(path / "embed"), sizes, vocab_size),
            blocks: (0..sizes.layers)
                .map(|i| Block::new(&(path / "blocks" / i), sizes))
                .collect(),
            biases: Biases {
                u: path.zeros("bias_u", &[sizes.hidden]),
                v: path.zeros("bias_v", &[sizes.hidden]),
                heads: sizes.heads,
            },
            ln_out: nn::layer_norm(path / "ln_out", vec![sizes.hidden], Default::default()),
            head: nn::linear(path / "head", sizes.hidden, vocab_size, Default::default()),
            segment: cfg.segment,
            memory: cfg.memory,
            dropout: sizes.dropout,
        })
    }
}

/// The decoder of [`TransformerXl`]: per-layer segment memory and caches.
struct SegmentDecoder<'a> {
    model: &'a TransformerXl,
    layers: Vec<LayerCache>,
    len: usize,
}

impl Decoder for SegmentDecoder<'_> {
    fn step(&mut self, token: &Tensor, bar: &Tensor, beat: &Tensor) -> Tensor {
        let model = self.model;
        let mut x = model
            .embed
            .forward(&token.unsqueeze(1), &bar.unsqueeze(1), &beat.unsqueeze(1));
        for (block, layer) in model.blocks.iter().zip(self.layers.iter_mut()) {
            x = block.step(&x, layer, &model.biases);
        }
        self.len += 1;
        if self.len as i64 % model.segment == 0 {
            for layer in &mut self.layers {
                let inputs = Tensor::cat(&layer.segment, 1);
                layer.memory = next_memory(layer.memory.as_ref(), &inputs, model.memory);
                layer.segment.clear();
                layer.kv = None;
            }
        }
        model.head.forward(&model.ln_out.forward(&x)).squeeze_dim(1)
    }

    fn len(&self) -> usize {
        self.len
    }
}

impl LanguageModel for TransformerXl {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        let total = x.size()[1];
        let mut memories: Vec<Option<Tensor>> = self.blocks.iter().map(|_| None).collect();
        let mut outputs = Vec::new();
        let mut start = 0;
        while start < total {
            let mut h = x.narrow(1, start, self.segment.min(total - start));
            for (block, memory) in self.blocks.iter().zip(memories.iter_mut()) {
                let out = block.forward(&h, memory.as_ref(), &self.biases, train);
                *memory = next_memory(memory.as_ref(), &h, self.memory);
                h = out;
            }
            outputs.push(h);
            start += self.segment;
        }
        if outputs.is_empty() {
            outputs.push(x);
        }
        self.head
            .forward(&self.ln_out.forward(&Tensor::cat(&outputs, 1)))
    }

    fn decoder(&self, _batch: i64) -> Box<dyn Decoder + '_> {
        Box::new(SegmentDecoder {
            model: self,
            layers: self.blocks.iter().map(|_| LayerCache::default()).collect(),
            len: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{assert_decoding_equals_forward, init, max_diff, small};
    use tch::Device;

    fn model(vs: &nn::VarStore, segment: i64, memory: i64) -> anyhow::Result<TransformerXl> {
        let cfg = TransformerXlConfig { segment, memory };
        TransformerXl::new(init(&vs.root(), &small()), &cfg)
    }

    fn batch(tokens: Tensor) -> Batch {
        let (b, n) = tokens.size2().unwrap();
        let opts = (Kind::Int64, Device::Cpu);
        Batch {
            tokens,
            bars: Tensor::arange(n, opts)
                .divide_scalar_mode(5, "floor")
                .repeat([b, 1]),
            beats: Tensor::arange(n, opts).remainder(8).repeat([b, 1]),
        }
    }

    #[test]
    fn shifted_attention_equals_a_naive_quadratic_reference() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let block = Block::new(&vs.root(), &small());
        let opts = (Kind::Float, Device::Cpu);
        let biases = Biases {
            u: Tensor::randn([32], opts),
            v: Tensor::randn([32], opts),
            heads: 4,
        };
        // 5 queries, the last of 12 keys (7 of memory).
        let (queries, keys, m) = (5, 12, 7);
        let q = Tensor::randn([2, 4, queries, 8], opts);
        let k = Tensor::randn([2, 4, keys, 8], opts);
        let v = Tensor::randn([2, 4, keys, 8], opts);
        let fast = block.attend(&q, &k, &v, &biases, false);
        // W_r R_d for d = 0..keys-1, computed from each distance's own sinusoid.
        let width = 32;
        let r_of = |d: i64| {
            let freqs: Vec<f32> = (0..width / 2)
                .map(|k| 10_000f32.powf(-2.0 * k as f32 / width as f32))
                .collect();
            let mut enc: Vec<f32> = freqs.iter().map(|f| (d as f32 * f).sin()).collect();
            enc.extend(freqs.iter().map(|f| (d as f32 * f).cos()));
            block
                .pos
                .forward(&Tensor::from_slice(&enc).view([1, width]))
                .view([4, 8])
        };
        let logits = Tensor::full([2, 4, queries, keys], f64::NEG_INFINITY, opts);
        for i in 0..queries {
            for j in 0..=(m + i) {
                let qi = q.narrow(2, i, 1).squeeze_dim(2);
                let kj = k.narrow(2, j, 1).squeeze_dim(2);
                let content =
                    ((&qi + biases.u.view([4, 8])) * kj).sum_dim_intlist(-1, false, Kind::Float);
                let position = ((&qi + biases.v.view([4, 8])) * r_of(m + i - j)).sum_dim_intlist(
                    -1,
                    false,
                    Kind::Float,
                );
                logits
                    .narrow(2, i, 1)
                    .narrow(3, j, 1)
                    .copy_(&((content + position) / 8f64.sqrt()).view([2, 4, 1, 1]));
            }
        }
        let naive = logits.softmax(-1, Kind::Float).matmul(&v);
        let d = max_diff(&fast, &naive);
        assert!(d < 1e-5, "differs from the naive attention by {d}");
    }

    /// Step-by-step logits equal the segment-wise forward across several segment
    /// boundaries, with memories shorter and longer than a segment and none.
    #[test]
    fn incremental_logits_equal_the_segment_wise_forward() {
        for (segment, memory) in [(4, 3), (4, 6), (5, 0), (3, 3)] {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let model = model(&vs, segment, memory).unwrap();
            // Nonzero biases, so that u and v are exercised.
            tch::no_grad(|| {
                for bias in [&model.biases.u, &model.biases.v] {
                    bias.shallow_clone()
                        .copy_(&Tensor::randn([32], (Kind::Float, Device::Cpu)));
                }
            });
            let b = batch(Tensor::randint(50, [2, 15], (Kind::Int64, Device::Cpu)));
            let what = format!("segment {segment}, memory {memory}, ");
            assert_decoding_equals_forward(&what, &model, &b, None);
        }
    }

    /// The memory reaches back `memory` positions per layer, no farther: with
    /// memory 3 and segments of 4, position 8 (the first of the third segment) sees
    /// the layer inputs at 5..=8; those at 5 saw positions 1..=5, so two layers
    /// reach back to position 1 and not to 0 (full attention would).
    #[test]
    fn the_forward_is_causal_and_the_memory_is_bounded() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = model(&vs, 4, 3).unwrap();
        let a = batch(Tensor::randint(50, [1, 12], (Kind::Int64, Device::Cpu)));
        let changed = |pos: i64| {
            let t = a.tokens.copy();
            let _ = t
                .narrow(1, pos, 1)
                .fill_((t.int64_value(&[0, pos]) + 1) % 50);
            batch(t)
        };
        let base = tch::no_grad(|| model.forward(&a, false));
        let effect = |pos: i64, at: i64| {
            let other = tch::no_grad(|| model.forward(&changed(pos), false));
            max_diff(&base.narrow(1, at, 1), &other.narrow(1, at, 1))
        };
        // Causal: a change at 9 leaves 0..9 alone.
        let other = tch::no_grad(|| model.forward(&changed(9), false));
        assert!(max_diff(&base.narrow(1, 0, 9), &other.narrow(1, 0, 9)) < 1e-6);
        // Receptive field of position 8 (2 layers, memory 3): positions 1..=8.
        assert!(effect(0, 8) < 1e-6, "position 0 reached position 8");
        assert!(effect(1, 8) > 1e-5, "position 1 did not reach position 8");
        assert!(effect(5, 8) > 1e-5, "position 5 did not reach position 8");
    }

    /// The memory is detached: the loss on the second segment sends no gradient to
    /// the embeddings of tokens that only the first segment holds.
    #[test]
    fn no_gradient_flows_into_the_memory() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = model(&vs, 4, 4).unwrap();
        let b = batch(Tensor::from_slice(&[10i64, 11, 12, 13, 20, 21, 22, 23]).view([1, 8]));
        let logits = model.forward(&b, false);
        logits.narrow(1, 4, 4).sum(Kind::Float).backward();
        let grad = vs
            .variables()
            .get("embed.emb_token.weight")
            .expect("the token embedding")
            .grad();
        let norm = |from: i64| {
            grad.narrow(0, from, 4)
                .abs()
                .sum(Kind::Float)
                .double_value(&[])
        };
        assert_eq!(norm(10), 0.0, "gradient reached the first segment's tokens");
        assert!(norm(20) > 0.0);
    }

    #[test]
    fn bad_segment_and_memory_are_refused_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = model(&vs, 0, 4).unwrap_err();
        assert!(
            err.to_string().contains("model.transformer_xl.segment"),
            "{err}"
        );
        let err = model(&vs, 4, -1).unwrap_err();
        assert!(
            err.to_string().contains("model.transformer_xl.memory"),
            "{err}"
        );
    }
}

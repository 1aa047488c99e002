//! Music Transformer (Huang et al., 2018): the full-attention Transformer with
//! learned relative position embeddings, the relative logits computed with the
//! memory-efficient "skewing" procedure (their Section 3.4.1).
//!
//! Each layer learns, per head, one embedding `E[d]` for each distance `d = i - j`
//! from 0 to `max_relative`; farther distances share `E[max_relative]`. The logit of
//! query `i` against key `j ≤ i` is `(q_i·k_j + q_i·E[min(i - j, max_relative)]) / √d`.
//! `S_rel = skew(Q·Erᵀ)`, where `Er` holds the embeddings of distances `L-1, …, 0`:
//! no `(L, L, head_dim)` tensor of per-pair embeddings is ever built.
//!
//! The paper trains it on chunks of each song (`train.chunk`) and evaluates and
//! generates on the full length, to test how it generalizes. Decoding keeps a
//! key/value cache; the new query's relative logits against every cached key are
//! `q·Er[t..0]ᵀ`, which needs no skewing.

use crate::model::layers::{relative_attention, FeedForward, HeadProjections, InputEmbedding};
use crate::model::{Batch, DecodeState, LanguageModel, ModelConfig};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

/// One pre-norm block whose self-attention has relative position embeddings.
#[derive(Debug)]
struct Block {
    ln_attn: nn::LayerNorm,
    attn: HeadProjections,
    /// Relative embeddings `(heads, max_relative + 1, head_dim)`, row `d` for
    /// distance `d` (named `emb_*`: no weight decay, like the other embeddings).
    rel: Tensor,
    max_relative: i64,
    ln_ffn: nn::LayerNorm,
    ffn: FeedForward,
    dropout: f64,
    attention_dropout: f64,
}

impl Block {
    fn new(path: &nn::Path, cfg: &ModelConfig) -> Block {
        let head_dim = cfg.hidden / cfg.heads;
        Block {
            ln_attn: nn::layer_norm(path / "ln_attn", vec![cfg.hidden], Default::default()),
            attn: HeadProjections::new(&(path / "attn"), cfg.hidden, cfg.heads),
            // The initialization of tensor2tensor's relative embeddings: N(0, d^-1/2).
            rel: path.randn(
                "emb_rel",
                &[cfg.heads, cfg.max_relative + 1, head_dim],
                0.0,
                (head_dim as f64).powf(-0.5),
            ),
            max_relative: cfg.max_relative,
            ln_ffn: nn::layer_norm(path / "ln_ffn", vec![cfg.hidden], Default::default()),
            ffn: FeedForward::new(&(path / "ffn"), cfg.hidden, cfg.ffn, cfg.dropout),
            dropout: cfg.dropout,
            attention_dropout: cfg.attention_dropout,
        }
    }

    /// `Er`: the embeddings of distances `keys - 1, …, 0` (clipped at
    /// `max_relative`), `(heads, keys, head_dim)`.
    fn distance_embeddings(&self, keys: i64) -> Tensor {
        let distances = Tensor::arange(keys, (Kind::Int64, self.rel.device()))
            .flip([0])
            .clamp_max(self.max_relative);
        self.rel.index_select(1, &distances)
    }

    /// Relative attention of `q` (the last positions) over `k`, `v`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor {
        let er = self.distance_embeddings(k.size()[2]);
        let rel_logits = q.matmul(&er.transpose(-1, -2));
        let p = if train { self.attention_dropout } else { 0.0 };
        relative_attention(q, k, v, &rel_logits, p)
    }

    /// Causal relative self-attention over the whole sequence, then the FFN.
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let y = self.attend(&q, &k, &v, train);
        self.finish(x, &y, train)
    }

    /// One new position attending to the cached keys and values and itself.
    fn step(&self, x: &Tensor, cache: &mut Option<(Tensor, Tensor)>) -> Tensor {
        let (q, k, v) = self.attn.qkv(&self.ln_attn.forward(x));
        let (k, v) = match cache.take() {
            Some((ck, cv)) => (Tensor::cat(&[ck, k], 2), Tensor::cat(&[cv, v], 2)),
            None => (k, v),
        };
        let y = self.attend(&q, &k, &v, false);
        *cache = Some((k, v));
        self.finish(x, &y, false)
    }

    /// The residual connections around the attention output `y` and the FFN.
    fn finish(&self, x: &Tensor, y: &Tensor, train: bool) -> Tensor {
        let x = x + self.attn.output(y).dropout(self.dropout, train);
        &x + self
            .ffn
            .forward(&self.ln_ffn.forward(&x), train)
            .dropout(self.dropout, train)
    }
}

/// The Music Transformer language model (`kind: music_transformer`).
#[derive(Debug)]
pub struct MusicTransformer {
    embed: InputEmbedding,
    blocks: Vec<Block>,
    ln_out: nn::LayerNorm,
    head: nn::Linear,
    dropout: f64,
}

/// Decoding state of [`MusicTransformer`]: per layer the keys and values of every
/// consumed position.
pub struct RelativeKvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl DecodeState for RelativeKvCache {
    fn len(&self) -> usize {
        self.len
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl MusicTransformer {
    /// Parameters under `path`; reads `model.max_relative` besides the common sizes.
    pub fn new(
        path: &nn::Path,
        cfg: &ModelConfig,
        vocab_size: i64,
    ) -> anyhow::Result<MusicTransformer> {
        anyhow::ensure!(
            cfg.hidden % cfg.heads == 0,
            "model.hidden ({}) must be a multiple of model.heads ({})",
            cfg.hidden,
            cfg.heads
        );
        anyhow::ensure!(
            cfg.max_relative >= 1,
            "model.max_relative is {} but the Music Transformer needs at least 1 \
             (the largest relative distance with its own embedding)",
            cfg.max_relative
        );
        Ok(MusicTransformer {
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

impl LanguageModel for MusicTransformer {
    fn forward(&self, batch: &Batch, train: bool) -> Tensor {
        let mut x = self.embed.forward_batch(batch).dropout(self.dropout, train);
        for block in &self.blocks {
            x = block.forward(&x, train);
        }
        self.head.forward(&self.ln_out.forward(&x))
    }

    fn new_state(&self, _batch: i64) -> Box<dyn DecodeState> {
        Box::new(RelativeKvCache {
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
            .downcast_mut::<RelativeKvCache>()
            .expect("a Music Transformer decoding state");
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
    use crate::model::layers::relative_shift;
    use crate::model::PositionLimits;
    use tch::Device;

    fn small(max_relative: i64) -> ModelConfig {
        ModelConfig {
            kind: "music_transformer".into(),
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
            max_relative,
            ..ModelConfig::default()
        }
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b).abs().max().double_value(&[])
    }

    /// Per-pair embeddings `E[clip(i - j)]` of every (query, key) pair, `(heads,
    /// L, L, head_dim)`, built from an explicit distance matrix (0 above the
    /// diagonal).
    fn pair_embeddings(block: &Block, len: i64) -> Tensor {
        let i = Tensor::arange(len, (Kind::Int64, Device::Cpu)).view([-1, 1]);
        let j = Tensor::arange(len, (Kind::Int64, Device::Cpu)).view([1, -1]);
        let dist = (i - j).clamp(0, block.max_relative);
        block
            .rel
            .index_select(1, &dist.view([-1]))
            .view([block.rel.size()[0], len, len, -1])
    }

    #[test]
    fn skewing_equals_explicit_relative_logits() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        // max_relative 5 < L - 1, so clipping is exercised.
        let block = Block::new(&vs.root(), &small(5));
        let len = 11;
        let q = Tensor::randn([2, 4, len, 8], (Kind::Float, Device::Cpu));
        let skewed = relative_shift(&q.matmul(&block.distance_embeddings(len).transpose(-1, -2)));
        let pairs = pair_embeddings(&block, len);
        for i in 0..len {
            for j in 0..=i {
                let want = (q.narrow(2, i, 1).squeeze_dim(2)
                    * pairs.narrow(1, i, 1).narrow(2, j, 1).reshape([4, 8]))
                .sum_dim_intlist(-1, false, Kind::Float);
                let got = skewed.narrow(2, i, 1).narrow(3, j, 1).reshape([2, 4]);
                let d = max_diff(&got, &want);
                assert!(d < 1e-5, "query {i}, key {j}: differs by {d}");
            }
        }
    }

    #[test]
    fn relative_attention_equals_a_naive_quadratic_reference() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let block = Block::new(&vs.root(), &small(4));
        let len = 9;
        let opts = (Kind::Float, Device::Cpu);
        let (q, k, v) = (
            Tensor::randn([2, 4, len, 8], opts),
            Tensor::randn([2, 4, len, 8], opts),
            Tensor::randn([2, 4, len, 8], opts),
        );
        let fast = block.attend(&q, &k, &v, false);
        // softmax((q·kᵀ + q·E[clip(i - j)]) / √d + causal) v, pair by pair.
        let pairs = pair_embeddings(&block, len);
        let rel = Tensor::einsum("bhid,hijd->bhij", &[&q, &pairs], None::<i64>);
        let future = Tensor::ones([len, len], (Kind::Bool, Device::Cpu)).triu(1);
        let weights = ((q.matmul(&k.transpose(-1, -2)) + rel) / 8f64.sqrt())
            .masked_fill(&future, f64::NEG_INFINITY)
            .softmax(-1, Kind::Float);
        let naive = weights.matmul(&v);
        let d = max_diff(&fast, &naive);
        assert!(d < 1e-5, "differs from the naive attention by {d}");
    }

    fn batch(n: i64, seed: i64) -> Batch {
        tch::manual_seed(seed);
        let opts = (Kind::Int64, Device::Cpu);
        Batch {
            tokens: Tensor::randint(50, [2, n], opts),
            bars: Tensor::arange(n, opts)
                .divide_scalar_mode(6, "floor")
                .repeat([2, 1]),
            beats: Tensor::arange(n, opts).remainder(8).repeat([2, 1]),
        }
    }

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = MusicTransformer::new(&vs.root(), &small(6), 50).unwrap();
        let n = 20;
        let b = batch(n, 4);
        let full = tch::no_grad(|| model.forward(&b, false));
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
            let d = max_diff(&step, &full.select(1, t));
            assert!(d < 1e-4, "position {t}: max difference {d}");
        }
        assert_eq!(state.len(), n as usize);
    }

    #[test]
    fn the_forward_is_causal() {
        let vs = nn::VarStore::new(Device::Cpu);
        tch::manual_seed(1);
        let model = MusicTransformer::new(&vs.root(), &small(3), 50).unwrap();
        let a = batch(10, 5);
        let delta = a.tokens.zeros_like();
        let _ = delta.narrow(1, 9, 1).fill_(1);
        let b = Batch {
            tokens: (&a.tokens + delta).remainder(50),
            bars: a.bars.shallow_clone(),
            beats: a.beats.shallow_clone(),
        };
        let (la, lb) = tch::no_grad(|| (model.forward(&a, false), model.forward(&b, false)));
        let d = max_diff(&la.narrow(1, 0, 9), &lb.narrow(1, 0, 9));
        assert!(d < 1e-6, "a later token changed earlier logits by {d}");
        assert!(max_diff(&la.narrow(1, 9, 1), &lb.narrow(1, 9, 1)) > 1e-4);
    }

    #[test]
    fn a_zero_max_relative_is_refused_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = MusicTransformer::new(&vs.root(), &small(0), 50).unwrap_err();
        assert!(err.to_string().contains("model.max_relative"), "{err}");
    }
}

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

use crate::model::layers::relative_attention;
use crate::model::stack::{CausalAttention, DecoderStack};
use crate::model::{Init, ModelSizes};
use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

/// The Music Transformer's section of an experiment's `model:`
/// (`music_transformer: {max_relative: ...}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MusicTransformerConfig {
    /// Relative distances up to this many tokens have their own embedding; farther
    /// ones share the last (at least 1).
    pub max_relative: i64,
}

impl Default for MusicTransformerConfig {
    fn default() -> Self {
        MusicTransformerConfig { max_relative: 1024 }
    }
}

/// Self-attention with relative position embeddings, one per layer of the shared
/// [`DecoderStack`].
#[derive(Debug)]
pub struct RelativeAttention {
    /// Relative embeddings `(heads, max_relative + 1, head_dim)`, row `d` for
    /// distance `d` (named `emb_*`: no weight decay, like the other embeddings).
    rel: Tensor,
    max_relative: i64,
    dropout: f64,
}

impl RelativeAttention {
    /// The embeddings of the layer whose parameters are under `path`.
    fn new(path: &nn::Path, sizes: &ModelSizes, max_relative: i64) -> RelativeAttention {
        let head_dim = sizes.hidden / sizes.heads;
        RelativeAttention {
            // The initialization of tensor2tensor's relative embeddings: N(0, d^-1/2).
            rel: path.randn(
                "emb_rel",
                &[sizes.heads, max_relative + 1, head_dim],
                0.0,
                (head_dim as f64).powf(-0.5),
            ),
            max_relative,
            dropout: sizes.attention_dropout,
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
        let rel_logits = |first: i64, rows: i64, keys: i64| {
            q.narrow(2, first, rows)
                .matmul(&self.distance_embeddings(keys).transpose(-1, -2))
        };
        let p = if train { self.dropout } else { 0.0 };
        relative_attention(q, k, v, rel_logits, p)
    }
}

impl CausalAttention for RelativeAttention {
    /// Keys and values of every consumed position.
    type Cache = Option<(Tensor, Tensor)>;

    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor, train: bool) -> Tensor {
        self.attend(q, k, v, train)
    }

    fn step(&self, q: &Tensor, k: &Tensor, v: &Tensor, cache: &mut Self::Cache) -> Tensor {
        let (k, v) = match cache.take() {
            Some((ck, cv)) => (Tensor::cat(&[&ck, k], 2), Tensor::cat(&[&cv, v], 2)),
            None => (k.shallow_clone(), v.shallow_clone()),
        };
        let y = self.attend(q, &k, &v, false);
        *cache = Some((k, v));
        y
    }
}

/// The Music Transformer language model (`kind: music_transformer`).
pub type MusicTransformer = DecoderStack<RelativeAttention>;

/// The Music Transformer with its parameters under `path`.
pub fn new(init: Init, cfg: &MusicTransformerConfig) -> anyhow::Result<MusicTransformer> {
    let (path, sizes, vocab_size) = (init.path, init.sizes, init.vocab_size);
    sizes.head_dim()?;
    anyhow::ensure!(
        cfg.max_relative >= 1,
        "model.music_transformer.max_relative is {} but the Music Transformer needs at \
         least 1 (the largest relative distance with its own embedding)",
        cfg.max_relative
    );
    DecoderStack::new(path, sizes, vocab_size, |i| {
        RelativeAttention::new(&(path / "blocks" / i), sizes, cfg.max_relative)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::layers::relative_shift;
    use crate::model::testing::*;
    use crate::model::{Batch, LanguageModel};
    use tch::Device;

    fn attention(vs: &nn::VarStore, max_relative: i64) -> RelativeAttention {
        RelativeAttention::new(&vs.root(), &small(), max_relative)
    }

    fn model(vs: &nn::VarStore, max_relative: i64) -> anyhow::Result<MusicTransformer> {
        new(
            init(&vs.root(), &small()),
            &MusicTransformerConfig { max_relative },
        )
    }

    /// Per-pair embeddings `E[clip(i - j)]` of every (query, key) pair, `(heads,
    /// L, L, head_dim)`, built from an explicit distance matrix (0 above the
    /// diagonal).
    fn pair_embeddings(block: &RelativeAttention, len: i64) -> Tensor {
        let i = Tensor::arange(len, (Kind::Int64, Device::Cpu)).view([-1, 1]);
        let j = Tensor::arange(len, (Kind::Int64, Device::Cpu)).view([1, -1]);
        let dist = (i - j).clamp(0, block.max_relative);
        block
            .rel
            .index_select(1, &dist.view([-1]))
            .view([block.rel.size()[0], len, len, -1])
    }

    #[test]
    fn training_on_chunks_of_max_relative_plus_one_trains_every_relative_row() {
        // A chunk of L positions holds the distances 0..L-1, so with max_relative
        // L - 1 every row of every layer's table gets a gradient; with
        // max_relative L the last row, which evaluation uses for every key L or
        // more tokens back, would stay at its random initialization.
        tch::manual_seed(4);
        let len = 12;
        let rows_trained = |max_relative: i64| {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = model(&vs, max_relative).unwrap();
            let batch = Batch {
                tokens: Tensor::randint(50, [2, len], (Kind::Int64, Device::Cpu)),
                bars: Tensor::zeros([2, len], (Kind::Int64, Device::Cpu)),
                beats: Tensor::zeros([2, len], (Kind::Int64, Device::Cpu)),
            };
            m.forward(&batch, true)
                .square()
                .mean(Kind::Float)
                .backward();
            vs.variables()
                .iter()
                .filter(|(name, _)| name.ends_with("emb_rel"))
                .map(|(name, t)| {
                    let g = t
                        .grad()
                        .abs()
                        .sum_dim_intlist([0, 2].as_slice(), false, Kind::Float);
                    let rows = Vec::<f32>::try_from(g).unwrap();
                    (name.clone(), rows.iter().all(|&r| r > 0.0))
                })
                .collect::<Vec<_>>()
        };
        let trained = rows_trained(len - 1);
        assert_eq!(trained.len(), small().layers as usize);
        for (name, all) in trained {
            assert!(all, "{name}: a relative row got no gradient");
        }
        assert!(rows_trained(len).iter().all(|(_, all)| !all));
    }

    #[test]
    fn the_shipped_experiments_train_every_relative_row() {
        for file in ["music-transformer.yaml", "music-transformer-small.yaml"] {
            let path = std::path::Path::new("experiments").join(file);
            let cfg = crate::config::ExperimentConfig::load(&path, &[]).unwrap();
            let crate::registry::ModelSection::MusicTransformer(mt) = &cfg.model.section else {
                panic!("{file} is not a Music Transformer");
            };
            assert_eq!(mt.max_relative, cfg.train.chunk as i64 - 1, "{file}");
        }
    }

    #[test]
    fn skewing_equals_explicit_relative_logits() {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        // max_relative 5 < L - 1, so clipping is exercised.
        let block = attention(&vs, 5);
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
        let block = attention(&vs, 4);
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

    #[test]
    fn incremental_logits_equal_the_full_forward() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let model = model(&vs, 6).unwrap();
        tch::manual_seed(4);
        assert_incremental_equals_forward(&model, 20);
    }

    #[test]
    fn the_forward_is_causal() {
        let vs = nn::VarStore::new(Device::Cpu);
        tch::manual_seed(1);
        let model = model(&vs, 3).unwrap();
        tch::manual_seed(5);
        assert_causal(&model, 10, 9);
    }

    #[test]
    fn a_zero_max_relative_is_refused_by_name() {
        let vs = nn::VarStore::new(Device::Cpu);
        let err = model(&vs, 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("model.music_transformer.max_relative"),
            "{err}"
        );
    }
}

//! The model interface every model implements ([`LanguageModel`]), the batch it
//! reads, the sizes every model shares ([`ModelSizes`]), and the per-token bar and
//! beat indices of the paper's input embedding.
//!
//! The trainer, the evaluator and the generator use nothing but this interface: a
//! forward pass over a batch returning logits, and a [`Decoder`] that advances one
//! token at a time without recomputing the prefix. Which models exist and how an
//! experiment file names one is the registry's business (`src/registry.rs`, above
//! this module and `baselines/`); this module reads no experiment file.

pub mod layers;
pub mod layout;
pub mod museformer;
pub mod stack;
#[cfg(test)]
pub(crate) mod testing;
pub mod transformer;
pub mod uniform;

use crate::tokens::{Token, Vocab};
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

/// A batch of token sequences with their bar and beat indices, all `(batch, time)`
/// int64 tensors on the model's device. Padding positions hold `PAD_ID` and are
/// excluded through `mask` (1.0 for real tokens, 0.0 for padding).
#[derive(Debug)]
pub struct Batch {
    /// Input token ids.
    pub tokens: Tensor,
    /// Bar index of each input token.
    pub bars: Tensor,
    /// Beat index of each input token.
    pub beats: Tensor,
}

impl Batch {
    /// Builds a batch of one sequence of ids on `device`.
    pub fn single(ids: &[i64], bars: &[i64], beats: &[i64], device: Device) -> Batch {
        let t = |v: &[i64]| Tensor::from_slice(v).view([1, -1]).to_device(device);
        Batch {
            tokens: t(ids),
            bars: t(bars),
            beats: t(beats),
        }
    }

    /// Number of sequences.
    pub fn size(&self) -> i64 {
        self.tokens.size()[0]
    }

    /// Sequence length (padded).
    pub fn len(&self) -> i64 {
        self.tokens.size()[1]
    }

    /// True for a batch of zero-length sequences.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Incremental decoding: a model's caches for a batch of sequences, advancing one
/// token at a time. It borrows the model that made it, so it can only ever be fed
/// to that model.
pub trait Decoder {
    /// Feeds one token per sequence (`(batch,)` int64 tensors of token, bar and beat
    /// indices) and returns the logits `(batch, vocab)` of the next token. The
    /// logits equal those of [`LanguageModel::forward`] at the same position.
    fn step(&mut self, token: &Tensor, bar: &Tensor, beat: &Tensor) -> Tensor;

    /// Number of tokens consumed so far.
    fn len(&self) -> usize;

    /// True before the first step.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the trainer, the evaluator and the generator need of a model.
pub trait LanguageModel: Send {
    /// Logits `(batch, time, vocab)` for every input position; `train` turns
    /// dropout on.
    fn forward(&self, batch: &Batch, train: bool) -> Tensor;

    /// A fresh decoder for `batch` sequences, with empty caches.
    fn decoder(&self, batch: i64) -> Box<dyn Decoder + '_>;
}

/// How the bar and beat indices become vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositionEmbedding {
    /// Fixed sinusoids (the release's default, `TaoEmbedding` with `learned=False`):
    /// no parameters and no limit on the index.
    #[default]
    Sinusoidal,
    /// Learned tables of `max_bars + 1` and `max_beats + 1` rows.
    Learned,
}

/// The bar and beat embeddings (the release: sinusoids; 512 bars, 64 beats where
/// they are learned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionLimits {
    /// Sinusoidal or learned.
    pub embedding: PositionEmbedding,
    /// Learned only: bar ids past `max_bars` share its row where the embedding
    /// looks them up, and only there (Museformer's layout reads the true bar of
    /// every token, however long the piece).
    pub max_bars: i64,
    /// Learned only: beat ids past `max_beats` share its row (the release's 64 is
    /// its number of `o-` tokens).
    pub max_beats: i64,
}

impl Default for PositionLimits {
    fn default() -> Self {
        PositionLimits {
            embedding: PositionEmbedding::Sinusoidal,
            max_bars: 512,
            max_beats: 64,
        }
    }
}

/// Follows a token sequence and gives each token its bar index (the number of bar
/// ends before it) and beat index as the release computes it (`get_beat_ids`): the
/// onset position `o-k` gives k + 1, carried to the tokens that follow it in its
/// bar (`i`, `p`, `d`, `v`); bar ends, time signatures, tempos and special symbols
/// get 0. Neither index is clamped: a learned embedding clamps its lookup
/// ([`layers::InputEmbedding`]).
#[derive(Debug, Clone, Default)]
pub struct PositionTracker {
    bar: i64,
    beat: i64,
}

impl PositionTracker {
    /// A tracker at the start of a piece.
    pub fn new() -> PositionTracker {
        PositionTracker::default()
    }

    /// The (bar, beat) indices of the next token, which is `token` (`None` for a
    /// special symbol such as `<s>`).
    pub fn next(&mut self, token: Option<Token>) -> (i64, i64) {
        let beat = match token {
            Some(Token::Position(p)) => {
                self.beat = p as i64 + 1;
                self.beat
            }
            Some(
                Token::Instrument(_) | Token::Pitch(_) | Token::Duration(_) | Token::Velocity(_),
            ) => self.beat,
            _ => 0,
        };
        let here = (self.bar, beat);
        if token == Some(Token::Bar) {
            self.bar += 1;
            self.beat = 0;
        }
        here
    }
}

/// The bar and beat indices of a sequence of ids.
pub fn bar_beat_indices(ids: &[u16], vocab: &Vocab) -> (Vec<i64>, Vec<i64>) {
    let mut tracker = PositionTracker::new();
    ids.iter().map(|&id| tracker.next(vocab.token(id))).unzip()
}

/// What every model reads: the sizes of the paper's Section 4.1 (the top of an
/// experiment's `model:` map). Each model's own settings are its section
/// (the registry's `ModelConfig`, `src/registry.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSizes {
    /// Layers.
    pub layers: i64,
    /// Model width.
    pub hidden: i64,
    /// Attention heads.
    pub heads: i64,
    /// Feed-forward width.
    pub ffn: i64,
    /// Token-embedding width (concatenated with the bar and beat embeddings).
    pub token_embed: i64,
    /// Bar-embedding width (0: none).
    pub bar_embed: i64,
    /// Beat-embedding width (0: none).
    pub beat_embed: i64,
    /// Dropout on residual branches and embeddings.
    pub dropout: f64,
    /// Dropout on attention weights.
    pub attention_dropout: f64,
    /// Dropout after the feed-forward activation (the release has none).
    pub activation_dropout: f64,
    /// Multiply the token embedding by √`token_embed` (fairseq's default, which the
    /// release keeps).
    pub scale_embedding: bool,
    /// The bar and beat embeddings.
    pub positions: PositionLimits,
}

impl ModelSizes {
    /// The width of one attention head; an error naming both keys when `hidden` is
    /// not a positive multiple of `heads`.
    pub fn head_dim(&self) -> anyhow::Result<i64> {
        anyhow::ensure!(
            self.heads > 0 && self.hidden % self.heads == 0,
            "model.hidden ({}) must be a multiple of model.heads ({})",
            self.hidden,
            self.heads
        );
        Ok(self.hidden / self.heads)
    }
}

/// What every model is built from besides its own config section: where its
/// parameters go, the shared sizes and the vocabulary size.
#[derive(Clone, Copy)]
pub struct Init<'a> {
    /// The parameters' path in the model's `VarStore`.
    pub path: &'a tch::nn::Path<'a>,
    /// The shared sizes.
    pub sizes: &'a ModelSizes,
    /// Tokens of the vocabulary (the width of the output projection).
    pub vocab_size: i64,
}

impl Default for ModelSizes {
    /// The paper's sizes (Section 4.1): 4 layers, width 512, 8 heads, FFN 2048.
    fn default() -> Self {
        ModelSizes {
            layers: 4,
            hidden: 512,
            heads: 8,
            ffn: 2048,
            token_embed: 512,
            bar_embed: 256,
            beat_embed: 128,
            dropout: 0.1,
            attention_dropout: 0.1,
            activation_dropout: 0.0,
            scale_embedding: true,
            positions: PositionLimits::default(),
        }
    }
}

/// The number of trainable parameters of a store: the sum of the element counts
/// of its variables that require a gradient (what the optimizer updates). A model's
/// size in Table 1 (`params`) is this number for the store it was built on.
pub fn trainable_parameters(vs: &tch::nn::VarStore) -> u64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_beats_follow_the_tokens() {
        let v = Vocab::new(12);
        let text = "t-35 o-0 i-0 p-60 d-12 v-20 o-30 i-0 p-62 d-6 v-20 b-1 s-9 t-35 o-13 i-0 p-64 d-2 v-20 b-1";
        let toks = crate::tokens::parse_tokens(text, &v).unwrap();
        let mut ids = vec![crate::tokens::vocab::BOS_ID];
        ids.extend(toks.iter().map(|&t| v.id(t)));
        ids.push(crate::tokens::vocab::EOS_ID);
        let (bars, beats) = bar_beat_indices(&ids, &v);
        assert_eq!(
            bars,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2]
        );
        // The release's beat ids: o-k is k + 1, carried to i, p, d, v; 0 for <s>,
        // t, s, b and </s>.
        assert_eq!(
            beats,
            [0, 0, 1, 1, 1, 1, 1, 31, 31, 31, 31, 31, 0, 0, 0, 14, 14, 14, 14, 14, 0, 0]
        );
    }

    #[test]
    fn a_600_bar_piece_keeps_its_bars_and_the_layout_sees_them_all() {
        let v = Vocab::new(16);
        let bar = ["o-0", "i-80", "p-60", "d-4", "v-20", "b-1"];
        let text = std::iter::once("t-35")
            .chain(bar.iter().copied().cycle().take(bar.len() * 600))
            .collect::<Vec<_>>()
            .join(" ");
        let toks = crate::tokens::parse_tokens(&text, &v).unwrap();
        let mut ids = vec![crate::tokens::vocab::BOS_ID];
        ids.extend(toks.iter().map(|&t| v.id(t)));
        let (bars, _) = bar_beat_indices(&ids, &v);
        assert_eq!(bars.iter().max(), Some(&599));
        let ids: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
        let layout = layout::Layout::of_sequence(&ids, &bars);
        assert_eq!(layout.bars.len(), 600);
        assert_eq!(layout.prefix, 1);
        // A token of bar 599 sees bar 598 token by token, bar 596 and bar 500 through
        // their summaries: nothing is merged past bar 511.
        let cfg = layout::LayoutConfig::default();
        let t = layout.bars[599].0;
        let sees = layout.token(t, &cfg);
        assert!(sees.tokens.contains(&layout.bars[598].0));
        assert!(sees.summaries.contains(&500));
        assert!(!sees.tokens.contains(&layout.bars[596].0));
        assert!(sees.summaries.contains(&596));
        // A learned bar embedding looks bar 599 up as its last row (id 512 = bar
        // 511), without an error; sinusoids tell them apart.
        // One embedding per setting, its rows compared (tests share the global
        // generator across threads, so two builds need not be equal).
        let rows = |sizes: &ModelSizes, bars: &[i64]| -> Vec<Tensor> {
            let vs = tch::nn::VarStore::new(Device::Cpu);
            let embed = layers::InputEmbedding::new(&vs.root(), sizes, v.len() as i64);
            let t = |x: i64| Tensor::from_slice(&[x]).view([1, 1]);
            bars.iter()
                .map(|&bar| embed.forward(&t(4), &t(bar), &t(0)))
                .collect()
        };
        let learned = ModelSizes {
            positions: PositionLimits {
                embedding: PositionEmbedding::Learned,
                ..PositionLimits::default()
            },
            ..ModelSizes::default()
        };
        let r = rows(&learned, &[599, 511, 510]);
        assert!(r[0].allclose(&r[1], 0.0, 0.0, false));
        assert!(!r[2].allclose(&r[1], 1e-6, 1e-6, false));
        let r = rows(&ModelSizes::default(), &[599, 511]);
        assert!(!r[0].allclose(&r[1], 1e-6, 1e-6, false));
    }
}

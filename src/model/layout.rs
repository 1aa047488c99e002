//! Museformer's attention layout in one place (Section 3, Figure 2b): from the bar
//! index of every music token and the configured bar offsets, who attends to what.
//!
//! - The **summary** of bar i attends to the tokens of bar i and to itself
//!   (summarization step).
//! - A **token** of bar i attends to the tokens of its structure-related bars
//!   R(i) = {i − k : k in the fine-grained offsets}, to the earlier tokens of its own
//!   bar and itself, and to the summaries of the coarse-grained bars: by default
//!   every other previous bar (aggregation step).
//! - The **prefix** (`<s>` at the start of a piece, the release's `</s>`) belongs to
//!   no bar: every token attends to it, it attends only to itself (and earlier
//!   prefix tokens), and no summary reads it. The release lets its prefix query see
//!   the first bar as well (its prefix rows are built with the first chunk's); ours
//!   is causal (docs/museformer.md).
//!
//! The efficient attention of the model and the dense reference mask both come from
//! [`Layout`], so they cannot disagree.

use crate::tokens::vocab::BOS_ID;
use serde::{Deserialize, Serialize};

/// Which previous bars a token sees through their summaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Coarse {
    /// Every previous bar that is not fine-grained (the paper's setting).
    #[default]
    AllOther,
    /// No summaries (the "w/o coarse-grained" ablation).
    None,
    /// Previous bars at these offsets `[from, to]` (inclusive), minus the
    /// fine-grained ones.
    Ranges(Vec<(usize, usize)>),
}

/// The bar offsets of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LayoutConfig {
    /// Offsets k of the fine-grained bars i − k (the current bar is always seen).
    pub fine_grained_bars: Vec<usize>,
    /// Coarse-grained bars.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub coarse: Coarse,
}

impl Default for LayoutConfig {
    /// The release's default: bars 1, 2, 4, 8, 12, 16, 24 and 32 back, summaries of
    /// all other previous bars.
    fn default() -> Self {
        LayoutConfig {
            fine_grained_bars: vec![1, 2, 4, 8, 12, 16, 24, 32],
            coarse: Coarse::AllOther,
        }
    }
}

impl LayoutConfig {
    /// Whether bar `j` is fine-grained for bar `i` (`j < i`).
    pub fn is_fine(&self, i: usize, j: usize) -> bool {
        self.fine_grained_bars.contains(&(i - j))
    }

    /// Whether bar `j` is seen through its summary by bar `i` (`j < i`).
    pub fn is_coarse(&self, i: usize, j: usize) -> bool {
        if self.is_fine(i, j) {
            return false;
        }
        match &self.coarse {
            Coarse::AllOther => true,
            Coarse::None => false,
            Coarse::Ranges(ranges) => ranges.iter().any(|&(a, b)| (a..=b).contains(&(i - j))),
        }
    }
}

/// The layout of one sequence: a prefix, then tokens grouped in bars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Tokens `0..prefix` are the global prefix (0 or 1: `<s>`).
    pub prefix: usize,
    /// Bar of each token (non-decreasing; that of a prefix token is its bar index
    /// in the batch, unused).
    pub token_bar: Vec<usize>,
    /// Token range `[start, end)` of each bar (prefix tokens excluded).
    pub bars: Vec<(usize, usize)>,
}

/// What one query attends to: token indices and summary (bar) indices, ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attends {
    /// Music tokens.
    pub tokens: Vec<usize>,
    /// Bar summaries.
    pub summaries: Vec<usize>,
}

impl Layout {
    /// The layout of tokens with these bar indices (non-decreasing; bars without
    /// tokens are empty ranges), without a prefix.
    pub fn new(token_bar: &[usize]) -> Layout {
        Layout::with_prefix(0, token_bar)
    }

    /// The layout whose first `prefix` tokens are the global prefix.
    pub fn with_prefix(prefix: usize, token_bar: &[usize]) -> Layout {
        assert!(
            prefix <= token_bar.len(),
            "a prefix longer than the sequence"
        );
        let music = &token_bar[prefix..];
        assert!(
            music.windows(2).all(|w| w[0] <= w[1]),
            "bar indices must not decrease"
        );
        let count = music.last().map_or(0, |&b| b + 1);
        let bars = (0..count)
            .map(|b| {
                (
                    prefix + music.partition_point(|&x| x < b),
                    prefix + music.partition_point(|&x| x <= b),
                )
            })
            .collect();
        Layout {
            prefix,
            token_bar: token_bar.to_vec(),
            bars,
        }
    }

    /// The layout of one sequence as the model reads it, from its token ids and bar
    /// indices (`(time,)`, padding with `PAD_ID` at the end excluded): a leading
    /// `<s>` is the prefix (a training chunk that starts mid-piece has none), and
    /// bar indices are made non-decreasing. Museformer and `inspect layout` both
    /// build their layout here.
    pub fn of_sequence(tokens: &[i64], bars: &[i64]) -> Layout {
        let len = tokens
            .iter()
            .rposition(|&t| t != crate::tokens::vocab::PAD_ID as i64)
            .map_or(0, |p| p + 1);
        let mut running = 0usize;
        let bars: Vec<usize> = bars[..len]
            .iter()
            .map(|&x| {
                running = running.max(x.max(0) as usize);
                running
            })
            .collect();
        let prefix = usize::from(tokens.first() == Some(&(BOS_ID as i64)) && len > 0);
        Layout::with_prefix(prefix, &bars)
    }

    /// Appends a token of bar `bar` (not below the last token's bar; bars skipped
    /// over become empty), as incremental decoding sees the sequence grow.
    pub fn push(&mut self, bar: usize) {
        let t = self.token_bar.len();
        assert!(
            self.token_bar[self.prefix..]
                .last()
                .is_none_or(|&last| last <= bar),
            "bar indices must not decrease"
        );
        while self.bars.len() <= bar {
            self.bars.push((t, t));
        }
        self.bars[bar].1 = t + 1;
        self.token_bar.push(bar);
    }

    /// Appends a prefix token (only before any music token).
    pub fn push_prefix(&mut self) {
        assert!(
            self.prefix == self.token_bar.len(),
            "a prefix token after a music token"
        );
        self.prefix += 1;
        self.token_bar.push(0);
    }

    /// Number of music tokens.
    pub fn len(&self) -> usize {
        self.token_bar.len()
    }

    /// True without tokens.
    pub fn is_empty(&self) -> bool {
        self.token_bar.is_empty()
    }

    /// What token `t` attends to.
    pub fn token(&self, t: usize, cfg: &LayoutConfig) -> Attends {
        if t < self.prefix {
            return Attends {
                tokens: (0..=t).collect(),
                summaries: Vec::new(),
            };
        }
        let i = self.token_bar[t];
        let mut tokens: Vec<usize> = (0..self.prefix).collect();
        let mut summaries = Vec::new();
        for j in 0..i {
            if cfg.is_fine(i, j) {
                tokens.extend(self.bars[j].0..self.bars[j].1);
            } else if cfg.is_coarse(i, j) {
                summaries.push(j);
            }
        }
        tokens.extend(self.bars[i].0..=t);
        Attends { tokens, summaries }
    }

    /// What the summary of bar `i` attends to: its bar's tokens and itself.
    pub fn summary(&self, i: usize) -> Attends {
        Attends {
            tokens: (self.bars[i].0..self.bars[i].1).collect(),
            summaries: vec![i],
        }
    }

    /// The dense reference mask over `tokens ++ summaries` (row: query, column: key;
    /// true where attention is allowed), `(n + b)²` booleans in row-major order. For
    /// tests and small inputs only.
    pub fn dense_mask(&self, cfg: &LayoutConfig) -> Vec<bool> {
        let (n, b) = (self.len(), self.bars.len());
        let w = n + b;
        let mut mask = vec![false; w * w];
        let mut set = |row: usize, a: &Attends| {
            for &t in &a.tokens {
                mask[row * w + t] = true;
            }
            for &s in &a.summaries {
                mask[row * w + n + s] = true;
            }
        };
        for t in 0..n {
            set(t, &self.token(t, cfg));
        }
        for i in 0..b {
            set(n + i, &self.summary(i));
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six bars: 2, 1, 3, 0 (empty), 2 and 1 tokens.
    fn layout() -> Layout {
        Layout::new(&[0, 0, 1, 2, 2, 2, 4, 4, 5])
    }

    #[test]
    fn pushing_tokens_builds_the_same_layout() {
        let full = layout();
        let mut grown = Layout::new(&[]);
        for &b in &full.token_bar {
            grown.push(b);
        }
        assert_eq!(grown, full);
    }

    #[test]
    fn bars_are_token_ranges() {
        assert_eq!(
            layout().bars,
            vec![(0, 2), (2, 3), (3, 6), (6, 6), (6, 8), (8, 9)]
        );
    }

    #[test]
    fn hand_written_key_sets() {
        let l = layout();
        let cfg = LayoutConfig {
            fine_grained_bars: vec![1, 2],
            coarse: Coarse::AllOther,
        };
        // Token 7 is the second token of bar 4: bars 3 (empty) and 2 fine, bars 0 and 1 coarse.
        assert_eq!(
            l.token(7, &cfg),
            Attends {
                tokens: vec![3, 4, 5, 6, 7],
                summaries: vec![0, 1]
            }
        );
        // Token 8 (bar 5): bars 4 and 3 fine, 0..=2 coarse.
        assert_eq!(
            l.token(8, &cfg),
            Attends {
                tokens: vec![6, 7, 8],
                summaries: vec![0, 1, 2]
            }
        );
        // The first token of the piece sees only itself.
        assert_eq!(
            l.token(0, &cfg),
            Attends {
                tokens: vec![0],
                summaries: vec![]
            }
        );
        assert_eq!(
            l.token(1, &cfg),
            Attends {
                tokens: vec![0, 1],
                summaries: vec![]
            }
        );
        assert_eq!(
            l.summary(2),
            Attends {
                tokens: vec![3, 4, 5],
                summaries: vec![2]
            }
        );
        assert_eq!(
            l.summary(3),
            Attends {
                tokens: vec![],
                summaries: vec![3]
            }
        );
    }

    #[test]
    fn ablations_give_their_layouts() {
        let l = layout();
        // w/o coarse-grained: no summaries at all.
        let no_coarse = LayoutConfig {
            coarse: Coarse::None,
            ..LayoutConfig::default()
        };
        assert!((0..l.len()).all(|t| l.token(t, &no_coarse).summaries.is_empty()));
        // Bar 5 with offsets 1, 2, 4: bars 4, 3 (empty) and 1, then its own token.
        assert_eq!(l.token(8, &no_coarse).tokens, vec![2, 6, 7, 8]);
        // w/o bar selection: offsets 1..=8.
        let dense = LayoutConfig {
            fine_grained_bars: (1..=8).collect(),
            ..LayoutConfig::default()
        };
        assert_eq!(
            l.token(8, &dense),
            Attends {
                tokens: (0..=8).collect(),
                summaries: vec![]
            }
        );
        // Summary only: every previous bar through its summary.
        let summary_only = LayoutConfig {
            fine_grained_bars: vec![],
            ..LayoutConfig::default()
        };
        assert_eq!(
            l.token(8, &summary_only),
            Attends {
                tokens: vec![8],
                summaries: vec![0, 1, 2, 3, 4]
            }
        );
        // Explicit coarse ranges.
        let ranges = LayoutConfig {
            fine_grained_bars: vec![1],
            coarse: Coarse::Ranges(vec![(3, 4)]),
        };
        assert_eq!(
            l.token(8, &ranges),
            Attends {
                tokens: vec![6, 7, 8],
                summaries: vec![1, 2]
            }
        );
    }

    #[test]
    fn the_dense_mask_is_causal_per_bar_and_matches_the_key_sets() {
        let l = layout();
        let cfg = LayoutConfig::default();
        let m = l.dense_mask(&cfg);
        let w = l.len() + l.bars.len();
        for t in 0..l.len() {
            // Never a later token.
            assert!((t + 1..l.len()).all(|k| !m[t * w + k]));
            // Never the summary of its own or a later bar.
            assert!((l.token_bar[t]..l.bars.len()).all(|s| !m[t * w + l.len() + s]));
        }
        // Token 7 (bar 4): fine bars 3 (empty), 2 and 0, its own bar up to itself,
        // and the summary of bar 1 (column 9 + 1).
        let row: Vec<usize> = (0..w).filter(|&k| m[7 * w + k]).collect();
        assert_eq!(row, vec![0, 1, 3, 4, 5, 6, 7, 10]);
    }

    #[test]
    fn the_prefix_is_seen_by_every_token_and_sees_only_itself() {
        // <s>, then bars of 2, 1 and 2 tokens.
        let l = Layout::with_prefix(1, &[0, 0, 0, 1, 2, 2]);
        assert_eq!(l.bars, vec![(1, 3), (3, 4), (4, 6)]);
        let cfg = LayoutConfig {
            fine_grained_bars: vec![1],
            coarse: Coarse::AllOther,
        };
        // Causal: the prefix sees itself only, never the first bar.
        assert_eq!(
            l.token(0, &cfg),
            Attends {
                tokens: vec![0],
                summaries: vec![]
            }
        );
        // Every music token sees it, also where its bars do not reach bar 0.
        for t in 1..l.len() {
            assert_eq!(l.token(t, &cfg).tokens[0], 0, "token {t}");
        }
        assert_eq!(
            l.token(5, &cfg),
            Attends {
                tokens: vec![0, 3, 4, 5],
                summaries: vec![0]
            }
        );
        // No summary reads it.
        assert_eq!(l.summary(0).tokens, vec![1, 2]);
        // In the dense mask, no query sees a later key.
        let m = l.dense_mask(&cfg);
        let w = l.len() + l.bars.len();
        assert_eq!((0..w).filter(|&k| m[k]).collect::<Vec<_>>(), vec![0]);
        // Grown one token at a time, it is the same layout.
        let mut grown = Layout::new(&[]);
        grown.push_prefix();
        for &b in &l.token_bar[1..] {
            grown.push(b);
        }
        assert_eq!(grown, l);
    }

    #[test]
    fn a_sequence_has_a_prefix_only_when_it_starts_with_bos() {
        use crate::tokens::vocab::{BOS_ID, PAD_ID};
        let (bos, pad) = (BOS_ID as i64, PAD_ID as i64);
        let l = Layout::of_sequence(&[bos, 7, 8, 9, pad, pad], &[0, 0, 0, 1, 0, 0]);
        assert_eq!(l, Layout::with_prefix(1, &[0, 0, 0, 1]));
        // A training chunk from the middle of a piece: no prefix; bars kept.
        let l = Layout::of_sequence(&[7, 8, 9], &[4, 4, 5]);
        assert_eq!(l.prefix, 0);
        assert_eq!(l.bars.len(), 6);
    }

    #[test]
    fn layout_config_reads_from_yaml() {
        let cfg: LayoutConfig =
            serde_yaml::from_str("fine_grained_bars: [1, 2]\ncoarse: none\n").unwrap();
        assert_eq!(
            cfg,
            LayoutConfig {
                fine_grained_bars: vec![1, 2],
                coarse: Coarse::None
            }
        );
        let cfg: LayoutConfig = serde_yaml::from_str("coarse: {ranges: [[3, 8]]}\n").unwrap();
        assert_eq!(cfg.coarse, Coarse::Ranges(vec![(3, 8)]));
    }
}

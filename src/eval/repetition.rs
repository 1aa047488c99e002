//! Repetition perplexity: the perplexity of the tokens of bars that repeat an
//! earlier bar of the same song, grouped by the distance to the nearest earlier
//! copy, against that of the tokens of bars without an earlier copy. This measures
//! the paper's mechanism directly: Museformer attends in full to the bars 1, 2, 4,
//! 8, 12, 16, 24 and 32 bars back, so a bar that copies one of those should be
//! cheap to predict.
//!
//! - **Bars and note sets** are those of the structure statistics
//!   ([`SongBars::from_ids`], `docs/structure.md`): a bar is everything up to a
//!   `b-1`; its notes are a set of (onset, pitch, duration) from the notes an
//!   [`InstrumentSelection`] takes (the evaluator uses [`InstrumentSelection::All`]
//!   unless told otherwise).
//! - **A repeat** is a bar whose note set equals an earlier bar's, i.e. Eq. 4's
//!   similarity [`bar_similarity`] is 1. An empty bar has no similarity with
//!   another empty bar, so it is never a repeat ([`nearest_copies`]).
//! - **The distance** of a repeat is `t`, the number of bars back to the *nearest*
//!   earlier copy; its group is `t` when `t` is one of [`DISTANCES`], `other`
//!   otherwise; bars without an earlier copy (empty bars included) are `none`.
//! - **Which tokens belong to a bar**: each target token's bar index as the model
//!   sees it ([`bar_beat_indices`]): the `b-1` token belongs to the bar it closes.
//!   Targets are the song's tokens then `</s>`; `</s>` and tokens after the last
//!   `b-1` belong to no bar and form the group `outside`, so the groups partition
//!   the scored tokens ([`target_bars`]).

use crate::model::bar_beat_indices;
use crate::structure::{bar_similarity, InstrumentSelection, SongBars, TokenTable};
use crate::tokens::Vocab;
use serde::{Deserialize, Serialize};

/// The distances reported on their own: the paper's fine-grained bars on LMD.
pub const DISTANCES: [usize; 8] = crate::structure::PAPER_FINE_BARS;

/// Number of groups: the [`DISTANCES`], `other`, `none` and `outside`.
const GROUPS: usize = DISTANCES.len() + 3;

/// The group of a bar (or of the tokens outside every bar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepeatGroup {
    /// A repeat whose nearest earlier copy is this many bars back (one of
    /// [`DISTANCES`]).
    Distance(usize),
    /// A repeat at a distance not in [`DISTANCES`].
    Other,
    /// A bar without an earlier copy (empty bars included).
    NoCopy,
    /// Tokens of no bar: `</s>` and tokens after the last `b-1`.
    Outside,
}

impl RepeatGroup {
    /// The group of a bar whose nearest earlier copy is `nearest` bars back.
    pub fn of(nearest: Option<usize>) -> RepeatGroup {
        match nearest {
            Some(t) if DISTANCES.contains(&t) => RepeatGroup::Distance(t),
            Some(_) => RepeatGroup::Other,
            None => RepeatGroup::NoCopy,
        }
    }

    /// Every group, in report order.
    pub fn all() -> Vec<RepeatGroup> {
        DISTANCES
            .iter()
            .map(|&t| RepeatGroup::Distance(t))
            .chain([
                RepeatGroup::Other,
                RepeatGroup::NoCopy,
                RepeatGroup::Outside,
            ])
            .collect()
    }

    /// The label of the `distance` column: `1` .. `32`, `other`, `none`, `outside`.
    pub fn label(self) -> String {
        match self {
            RepeatGroup::Distance(t) => t.to_string(),
            RepeatGroup::Other => "other".into(),
            RepeatGroup::NoCopy => "none".into(),
            RepeatGroup::Outside => "outside".into(),
        }
    }

    fn index(self) -> usize {
        match self {
            RepeatGroup::Distance(t) => DISTANCES
                .iter()
                .position(|&d| d == t)
                .expect("a distance group holds one of DISTANCES"),
            RepeatGroup::Other => DISTANCES.len(),
            RepeatGroup::NoCopy => DISTANCES.len() + 1,
            RepeatGroup::Outside => DISTANCES.len() + 2,
        }
    }
}

/// For each bar of a song, the distance in bars to the nearest earlier bar with the
/// same note set (similarity 1), or `None` when there is none or the bar is empty.
pub fn nearest_copies(song: &SongBars) -> Vec<Option<usize>> {
    (0..song.len())
        .map(|i| (1..=i).find(|&t| bar_similarity(song.bar(i), song.bar(i - t)) == Some(1.0)))
        .collect()
}

/// The group of each bar of a song.
pub fn bar_groups(song: &SongBars) -> Vec<RepeatGroup> {
    nearest_copies(song)
        .into_iter()
        .map(RepeatGroup::of)
        .collect()
}

/// The bar of each target token of a song (its ids, then `</s>`): the model's bar
/// index, `None` for `</s>` and for tokens after the last `b-1`. `bars` is the
/// number of (closed) bars of the song.
pub fn target_bars(song: &[u16], vocab: &Vocab, bars: usize) -> Vec<Option<usize>> {
    let (indices, _) = bar_beat_indices(song, vocab);
    indices
        .into_iter()
        .map(|b| Some(b as usize).filter(|&b| b < bars))
        .chain([None])
        .collect()
}

/// Perplexity of one group of tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepetitionRow {
    /// The group: `1`, `2`, `4`, `8`, `12`, `16`, `24`, `32` (the nearest earlier
    /// copy is that many bars back), `other` (another distance), `none` (no earlier
    /// copy) or `outside` (`</s>` and tokens after the last bar).
    pub distance: String,
    /// `exp(nll)`; `None` without tokens.
    pub ppl: Option<f64>,
    /// Mean negative log-likelihood per token (nats); `None` without tokens.
    pub nll: Option<f64>,
    /// Bars of the group with at least one scored token (0 for `outside`).
    pub bars: u64,
    /// Scored tokens of the group.
    pub tokens: u64,
}

/// Sums of negative log-likelihood, tokens and bars per group, song by song.
#[derive(Debug, Clone)]
pub struct RepetitionCounter {
    selection: InstrumentSelection,
    table: TokenTable,
    nll: [f64; GROUPS],
    tokens: [u64; GROUPS],
    bars: [u64; GROUPS],
}

impl RepetitionCounter {
    /// An empty counter whose bar sets take the notes `selection` chooses.
    pub fn new(vocab: &Vocab, selection: InstrumentSelection) -> RepetitionCounter {
        RepetitionCounter {
            selection,
            table: TokenTable::new(vocab),
            nll: [0.0; GROUPS],
            tokens: [0; GROUPS],
            bars: [0; GROUPS],
        }
    }

    /// Adds one song: `song` its ids (without `<s>` and `</s>`), `nll` the negative
    /// log-likelihood of its first `nll.len()` targets (the song's tokens then
    /// `</s>`; a prefix when the evaluation truncates). A bar cut by the prefix
    /// keeps the group of the whole bar and counts with its scored tokens.
    ///
    /// # Panics
    /// When `nll` is longer than the song's targets.
    pub fn add_song(&mut self, song: &[u16], vocab: &Vocab, nll: &[f64]) {
        assert!(
            nll.len() <= song.len() + 1,
            "{} scores for a song of {} targets",
            nll.len(),
            song.len() + 1
        );
        let bars = SongBars::from_ids(song, &self.table, self.selection);
        let groups = bar_groups(&bars);
        let mut seen = vec![false; groups.len()];
        for (bar, &x) in target_bars(song, vocab, groups.len()).into_iter().zip(nll) {
            let g = match bar {
                Some(b) => {
                    if !std::mem::replace(&mut seen[b], true) {
                        self.bars[groups[b].index()] += 1;
                    }
                    groups[b]
                }
                None => RepeatGroup::Outside,
            }
            .index();
            self.nll[g] += x;
            self.tokens[g] += 1;
        }
    }

    /// One row per group, in [`RepeatGroup::all`] order.
    pub fn rows(&self) -> Vec<RepetitionRow> {
        RepeatGroup::all()
            .into_iter()
            .map(|g| {
                let k = g.index();
                let nll = (self.tokens[k] > 0).then(|| self.nll[k] / self.tokens[k] as f64);
                RepetitionRow {
                    distance: g.label(),
                    ppl: nll.map(f64::exp),
                    nll,
                    bars: self.bars[k],
                    tokens: self.tokens[k],
                }
            })
            .collect()
    }
}

/// The repetition rows as CSV (`repetition.csv`); a group without tokens has empty
/// `ppl` and `nll`.
pub fn repetition_csv(rows: &[RepetitionRow]) -> String {
    let mut csv = String::from("distance,ppl,nll,bars,tokens\n");
    let f = |x: Option<f64>, digits: usize| x.map_or(String::new(), |x| format!("{x:.digits$}"));
    for r in rows {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            r.distance,
            f(r.ppl, 4),
            f(r.nll, 6),
            r.bars,
            r.tokens
        ));
    }
    csv
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tokens::Token;

    /// Pitches of the hand-made song's bars: A B A C A B D D _ _ A B (A = 60, B = 62,
    /// C = 64, D = 65, _ an empty bar), each bar one note at onset 0.
    pub(crate) const PATTERN: [Option<u8>; 12] = [
        Some(60),
        Some(62),
        Some(60),
        Some(64),
        Some(60),
        Some(62),
        Some(65),
        Some(65),
        None,
        None,
        Some(60),
        Some(62),
    ];

    /// The hand-made song as ids: `o-0 i-0 p-X d-3 v-20 b-1` per bar, `b-1` alone
    /// for an empty bar.
    pub(crate) fn pattern_ids(vocab: &Vocab) -> Vec<u16> {
        let mut ids = Vec::new();
        for p in PATTERN {
            if let Some(p) = p {
                ids.extend(
                    [
                        Token::Position(0),
                        Token::Instrument(0),
                        Token::Pitch(p),
                        Token::Duration(3),
                        Token::Velocity(20),
                    ]
                    .map(|t| vocab.id(t)),
                );
            }
            ids.push(vocab.id(Token::Bar));
        }
        ids
    }

    #[test]
    fn each_bar_is_grouped_by_its_nearest_earlier_copy() {
        let vocab = Vocab::new(4);
        let song = SongBars::from_ids(
            &pattern_ids(&vocab),
            &TokenTable::new(&vocab),
            InstrumentSelection::All,
        );
        assert_eq!(song.len(), PATTERN.len());
        // Bar 2 (A) copies bar 0; bar 4 (A) copies bars 2 and 0, nearest 2 (the
        // farthest would be 4); bar 5 (B) copies bar 1 only, 4 back; bar 7 (D)
        // copies bar 6; bar 10 (A) copies 4, 2, 0, nearest 6; bar 11 (B) copies bars
        // 5 and 1, nearest 6. The empty bars 8 and 9 are not repeats of each other.
        assert_eq!(
            nearest_copies(&song),
            [
                None,
                None,
                Some(2),
                None,
                Some(2),
                Some(4),
                None,
                Some(1),
                None,
                None,
                Some(6),
                Some(6)
            ]
        );
        use RepeatGroup::*;
        assert_eq!(
            bar_groups(&song),
            [
                NoCopy,
                NoCopy,
                Distance(2),
                NoCopy,
                Distance(2),
                Distance(4),
                NoCopy,
                Distance(1),
                NoCopy,
                NoCopy,
                Other,
                Other
            ]
        );
    }

    #[test]
    fn the_bar_end_belongs_to_the_bar_it_closes_and_eos_to_none() {
        let vocab = Vocab::new(4);
        let ids: Vec<u16> = [
            Token::Position(0),
            Token::Pitch(60),
            Token::Duration(3),
            Token::Bar,
            Token::Bar,
            Token::Position(0),
        ]
        .into_iter()
        .map(|t| vocab.id(t))
        .collect();
        assert_eq!(
            target_bars(&ids, &vocab, 2),
            [Some(0), Some(0), Some(0), Some(0), Some(1), None, None]
        );
    }

    #[test]
    fn groups_have_labels_in_report_order() {
        assert_eq!(
            RepeatGroup::all()
                .into_iter()
                .map(RepeatGroup::label)
                .collect::<Vec<_>>(),
            ["1", "2", "4", "8", "12", "16", "24", "32", "other", "none", "outside"]
        );
        assert_eq!(RepeatGroup::of(Some(32)), RepeatGroup::Distance(32));
        assert_eq!(RepeatGroup::of(Some(3)), RepeatGroup::Other);
        assert_eq!(RepeatGroup::of(Some(40)), RepeatGroup::Other);
    }

    #[test]
    fn a_counter_sums_per_group_and_leaves_empty_groups_without_ppl() {
        let vocab = Vocab::new(4);
        let a = [
            Token::Position(0),
            Token::Instrument(0),
            Token::Pitch(60),
            Token::Duration(3),
        ];
        let mut ids: Vec<u16> = Vec::new();
        // Bars: A A, then an unfinished bar (one token).
        for _ in 0..2 {
            ids.extend(a.iter().map(|&t| vocab.id(t)));
            ids.push(vocab.id(Token::Bar));
        }
        ids.push(vocab.id(Token::Position(0)));
        let mut c = RepetitionCounter::new(&vocab, InstrumentSelection::All);
        // 12 targets: 5 + 5 + 1 + </s>; scores are the target positions.
        let nll: Vec<f64> = (0..12).map(f64::from).collect();
        c.add_song(&ids, &vocab, &nll);
        // Only the first 7 targets of the same song: bar 1 is cut, counted once more.
        c.add_song(&ids, &vocab, &nll[..7]);
        let rows = c.rows();
        let get = |d: &str| rows.iter().find(|r| r.distance == d).unwrap();
        assert_eq!((get("none").tokens, get("none").bars), (10, 2));
        assert_eq!(get("none").nll, Some(20.0 / 10.0));
        assert_eq!((get("1").tokens, get("1").bars), (7, 2));
        assert_eq!(get("1").nll, Some(46.0 / 7.0));
        assert_eq!((get("outside").tokens, get("outside").bars), (2, 0));
        assert_eq!(get("outside").nll, Some(10.5));
        assert_eq!(
            (get("2").tokens, get("2").ppl, get("2").nll),
            (0, None, None)
        );
        let csv = repetition_csv(&rows);
        assert!(csv.starts_with("distance,ppl,nll,bars,tokens\n1,"), "{csv}");
        assert!(csv.contains("\n2,,,0,0\n"), "{csv}");
    }
}

//! The notes of a bar as the paper's similarity statistics see them (Section 3.3):
//! a set of (onset position within the bar, pitch id, duration id) on the REMIGEN2
//! grid, taken from the instruments an [`InstrumentSelection`] chooses. Each bar's
//! set is a sorted, deduplicated run of packed `u32`, so the intersection of two
//! bars is one linear merge.

use crate::tokens::vocab::DRUM_INSTRUMENT;
use crate::tokens::{Token, Vocab};
use std::fmt;
use std::str::FromStr;

/// The instrument id of the melody in LMD6-normalized data (the square synthesizer).
pub const MELODY_INSTRUMENT: u8 = 80;

/// Which notes of a song the bar sets hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InstrumentSelection {
    /// The melody: instrument 80 when the song has it, otherwise every non-drum note.
    #[default]
    Auto,
    /// Every non-drum note.
    Pitched,
    /// Every note, drums included (drum pitch ids are 128 + pitch, so they never
    /// equal a pitched note).
    All,
    /// One instrument id (0..=128); songs without it contribute nothing.
    Instrument(u8),
}

impl InstrumentSelection {
    /// Resolves `Auto` for one song, given whether the song has instrument 80.
    fn resolve(self, has_melody: bool) -> InstrumentSelection {
        match self {
            InstrumentSelection::Auto if has_melody => {
                InstrumentSelection::Instrument(MELODY_INSTRUMENT)
            }
            InstrumentSelection::Auto => InstrumentSelection::Pitched,
            other => other,
        }
    }

    /// Whether notes of `instrument` are taken (after [`Self::resolve`]).
    fn takes(self, instrument: u8) -> bool {
        match self {
            InstrumentSelection::Auto | InstrumentSelection::Pitched => {
                instrument != DRUM_INSTRUMENT
            }
            InstrumentSelection::All => true,
            InstrumentSelection::Instrument(i) => instrument == i,
        }
    }
}

impl fmt::Display for InstrumentSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstrumentSelection::Auto => write!(f, "auto"),
            InstrumentSelection::Pitched => write!(f, "pitched"),
            InstrumentSelection::All => write!(f, "all"),
            InstrumentSelection::Instrument(i) => write!(f, "{i}"),
        }
    }
}

impl FromStr for InstrumentSelection {
    type Err = String;

    /// `auto`, `pitched`, `all`, or an instrument id 0..=128 (128 = drums).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(InstrumentSelection::Auto),
            "pitched" => Ok(InstrumentSelection::Pitched),
            "all" => Ok(InstrumentSelection::All),
            _ => match s.parse::<u8>() {
                Ok(i) if i <= DRUM_INSTRUMENT => Ok(InstrumentSelection::Instrument(i)),
                _ => Err(format!(
                    "`{s}` is not an instrument selection (expected auto, pitched, all, or an instrument id 0..=128)"
                )),
            },
        }
    }
}

/// One note of a bar: onset position within the bar, pitch id and duration id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BarNote {
    /// Onset position within the bar (the `o-` value).
    pub onset: u8,
    /// Pitch id (the `p-` value; drums are 128 + pitch).
    pub pitch: u8,
    /// Duration id (the `d-` value).
    pub duration: u8,
}

impl BarNote {
    /// The note packed into one `u32` (onset, pitch, duration from high to low
    /// byte), so packed notes sort like the tuples.
    pub fn pack(self) -> u32 {
        (self.onset as u32) << 16 | (self.pitch as u32) << 8 | self.duration as u32
    }
}

/// The note sets of one song's bars, stored flat: bar `i` is a sorted,
/// deduplicated slice of packed [`BarNote`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SongBars {
    notes: Vec<u32>,
    /// End offset in `notes` of each bar.
    ends: Vec<u32>,
}

impl SongBars {
    /// Builds the bars from note lists (order and duplicates do not matter).
    pub fn from_notes<B: AsRef<[BarNote]>>(bars: &[B]) -> SongBars {
        let mut song = SongBars::default();
        for bar in bars {
            song.notes.extend(bar.as_ref().iter().map(|n| n.pack()));
            song.close_bar();
        }
        song
    }

    /// The bars of a token sequence. A bar ends at `b-1`; tokens after the last
    /// `b-1` (a piece cut off mid-bar) are not a bar. A note is the `p-` token
    /// followed by a `d-` token, at the latest `o-` position, under the latest `i-`
    /// instrument of its bar.
    pub fn from_tokens<I>(tokens: I, selection: InstrumentSelection) -> SongBars
    where
        I: IntoIterator<Item = Token> + Clone,
    {
        let has_melody = selection == InstrumentSelection::Auto
            && tokens
                .clone()
                .into_iter()
                .any(|t| t == Token::Instrument(MELODY_INSTRUMENT));
        let selection = selection.resolve(has_melody);
        let mut song = SongBars::default();
        let (mut onset, mut pitch, mut take) = (0u8, None, false);
        for token in tokens {
            match token {
                Token::Position(p) => {
                    onset = p;
                    pitch = None;
                    take = false;
                }
                Token::Instrument(i) => {
                    take = selection.takes(i);
                    pitch = None;
                }
                Token::Pitch(p) => pitch = Some(p),
                Token::Duration(d) => {
                    if let (Some(p), true) = (pitch.take(), take) {
                        song.notes.push(
                            BarNote {
                                onset,
                                pitch: p,
                                duration: d,
                            }
                            .pack(),
                        );
                    }
                }
                Token::Bar => {
                    song.close_bar();
                    (onset, pitch, take) = (0, None, false);
                }
                Token::TimeSig(_) | Token::Tempo(_) | Token::Velocity(_) => {}
            }
        }
        let complete = song.ends.last().map_or(0, |&e| e as usize);
        song.notes.truncate(complete);
        song
    }

    /// The bars of a song in a token store (ids of `vocab`; special ids are ignored).
    pub fn from_ids(ids: &[u16], table: &TokenTable, selection: InstrumentSelection) -> SongBars {
        SongBars::from_tokens(ids.iter().filter_map(|&id| table.token(id)), selection)
    }

    /// Sorts and deduplicates the notes pushed since the last bar and closes the bar.
    fn close_bar(&mut self) {
        let start = self.ends.last().map_or(0, |&e| e as usize);
        self.notes[start..].sort_unstable();
        let mut len = start;
        for i in start..self.notes.len() {
            if len == start || self.notes[len - 1] != self.notes[i] {
                self.notes[len] = self.notes[i];
                len += 1;
            }
        }
        self.notes.truncate(len);
        self.ends.push(len as u32);
    }

    /// Number of bars.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when the song has no bar.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The sorted, deduplicated packed notes of bar `i`.
    pub fn bar(&self, i: usize) -> &[u32] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.notes[start..self.ends[i] as usize]
    }

    /// Number of notes over all bars (each bar's set counted once per note).
    pub fn note_count(&self) -> usize {
        self.notes.len()
    }
}

/// Id → token lookup for one vocabulary, built once so decoding a store is a table
/// read per id.
#[derive(Debug, Clone)]
pub struct TokenTable {
    tokens: Vec<Option<Token>>,
}

impl TokenTable {
    /// The table of a vocabulary.
    pub fn new(vocab: &Vocab) -> TokenTable {
        TokenTable {
            tokens: (0..vocab.len() as u16).map(|id| vocab.token(id)).collect(),
        }
    }

    /// The token of an id, `None` for special or unknown ids.
    pub fn token(&self, id: u16) -> Option<Token> {
        self.tokens.get(id as usize).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Token::*;

    fn n(onset: u8, pitch: u8, duration: u8) -> u32 {
        BarNote {
            onset,
            pitch,
            duration,
        }
        .pack()
    }

    #[test]
    fn notes_are_position_pitch_duration_sets_of_the_melody() {
        // Bar 1: melody (80) has two notes at o-0 (one duplicated) and one at o-8;
        // piano (0) and drums are ignored because the song has a melody.
        let tokens = vec![
            Tempo(35),
            Position(0),
            Instrument(80),
            Pitch(64),
            Duration(4),
            Velocity(20),
            Pitch(60),
            Duration(4),
            Velocity(20),
            Pitch(60),
            Duration(4),
            Velocity(31),
            Instrument(0),
            Pitch(48),
            Duration(8),
            Velocity(20),
            Position(8),
            Instrument(128),
            Pitch(164),
            Duration(1),
            Velocity(20),
            Instrument(80),
            Pitch(67),
            Duration(2),
            Velocity(20),
            Bar,
            Tempo(35),
            Bar,
            Tempo(35),
            Position(3),
            Instrument(0),
            Pitch(50),
            Duration(3),
            Velocity(9),
            Bar,
        ];
        let song = SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Auto);
        assert_eq!(song.len(), 3);
        assert_eq!(song.bar(0), &[n(0, 60, 4), n(0, 64, 4), n(8, 67, 2)]);
        assert_eq!(song.bar(1), &[] as &[u32]);
        assert_eq!(song.bar(2), &[] as &[u32]);
        assert_eq!(song.note_count(), 3);

        let pitched = SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Pitched);
        assert_eq!(
            pitched.bar(0),
            &[n(0, 48, 8), n(0, 60, 4), n(0, 64, 4), n(8, 67, 2)]
        );
        assert_eq!(pitched.bar(2), &[n(3, 50, 3)]);
        let all = SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::All);
        assert_eq!(all.bar(0).len(), 5);
        let drums =
            SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Instrument(128));
        assert_eq!(drums.bar(0), &[n(8, 164, 1)]);
        let guitar =
            SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Instrument(25));
        assert_eq!((guitar.len(), guitar.note_count()), (3, 0));
    }

    #[test]
    fn auto_without_melody_takes_every_non_drum_note() {
        let tokens = [
            Position(0),
            Instrument(0),
            Pitch(60),
            Duration(4),
            Velocity(1),
            Instrument(128),
            Pitch(170),
            Duration(1),
            Velocity(1),
            Bar,
        ];
        let song = SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Auto);
        assert_eq!(song.bar(0), &[n(0, 60, 4)]);
    }

    #[test]
    fn a_bar_cut_off_without_its_end_token_is_dropped() {
        let tokens = [
            Position(0),
            Instrument(80),
            Pitch(60),
            Duration(4),
            Bar,
            Position(0),
            Instrument(80),
            Pitch(62),
            Duration(4),
        ];
        let song = SongBars::from_tokens(tokens.iter().copied(), InstrumentSelection::Auto);
        assert_eq!(song.len(), 1);
        assert_eq!(song.note_count(), 1);
    }

    #[test]
    fn ids_decode_like_tokens_and_specials_are_ignored() {
        let vocab = Vocab::new(16);
        let table = TokenTable::new(&vocab);
        let tokens = [
            Tempo(35),
            Position(12),
            Instrument(80),
            Pitch(72),
            Duration(6),
            Velocity(25),
            Bar,
        ];
        let mut ids: Vec<u16> = tokens.iter().map(|&t| vocab.id(t)).collect();
        ids.insert(0, crate::tokens::vocab::BOS_ID);
        let song = SongBars::from_ids(&ids, &table, InstrumentSelection::Auto);
        assert_eq!(song.bar(0), &[n(12, 72, 6)]);
        assert_eq!(table.token(u16::MAX), None);
    }

    #[test]
    fn selections_parse_and_print() {
        for s in ["auto", "pitched", "all", "0", "80", "128"] {
            assert_eq!(s.parse::<InstrumentSelection>().unwrap().to_string(), s);
        }
        assert!("129"
            .parse::<InstrumentSelection>()
            .unwrap_err()
            .contains("0..=128"));
        assert!("melody".parse::<InstrumentSelection>().is_err());
    }

    #[test]
    fn from_notes_sorts_and_deduplicates() {
        let a = BarNote {
            onset: 4,
            pitch: 60,
            duration: 2,
        };
        let b = BarNote {
            onset: 0,
            pitch: 62,
            duration: 2,
        };
        let song = SongBars::from_notes(&[vec![a, b, a], vec![]]);
        assert_eq!(song.bar(0), &[b.pack(), a.pack()]);
        assert!(song.bar(1).is_empty());
    }
}

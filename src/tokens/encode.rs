//! Score → REMIGEN2 tokens. The steps follow `docs/tokens.md` (and the facts in the
//! shared reference): ticks to a 12-per-beat grid, bars walked under the time
//! signature in force at each bar's first position, and per bar the time signature,
//! tempo, then onsets grouped by position and instrument.

use super::key::normalize_key_shift;
use super::vocab::{
    reduce_time_signature, tempo_id, time_signature_id, velocity_id, Token, Vocab,
    DEFAULT_POS_PER_BEAT, DRUM_INSTRUMENT,
};
use crate::midi::{Compat, Score};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Order of the instruments sounding at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InstrumentOrder {
    /// By instrument id (program, drums 128 last).
    #[default]
    Id,
    /// The original release's LMD6 order: 80, 128, 32, 43, 25, 0, 48, then the rest by id.
    Lmd6,
}

/// The LMD6 instrument order of the original release.
pub const LMD6_ORDER: [u8; 7] = [80, 128, 32, 43, 25, 0, 48];

impl InstrumentOrder {
    fn rank(self, instrument: u8) -> (usize, u8) {
        match self {
            InstrumentOrder::Id => (0, instrument),
            InstrumentOrder::Lmd6 => (
                LMD6_ORDER
                    .iter()
                    .position(|&i| i == instrument)
                    .unwrap_or(LMD6_ORDER.len()),
                instrument,
            ),
        }
    }
}

/// Encoder options (REMIGEN2 defaults: time signatures kept, empty bars removed,
/// no key normalization, instruments by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeOptions {
    /// Leave out the `s-` time-signature tokens.
    pub ignore_ts: bool,
    /// Order of instruments at one position.
    pub inst_order: InstrumentOrder,
    /// Drop leading bars before the first onset (trailing bars after the last onset
    /// never appear: the sequence ends with the bar of the last onset).
    pub remove_empty_bars: bool,
    /// Transpose non-drum notes to C major / A minor.
    pub normalize_key: bool,
    /// Positions per quarter note of the grid: 12 as `reference.md` states, 16 as
    /// the original release's code does.
    pub pos_per_beat: u32,
    /// Refuse pieces longer than this many bars (guards against absurd tick values).
    pub max_bars: u32,
    /// Whose choices to follow: ours, or the original release's tokenizer token for
    /// token (`docs/tokens.md`); in a dataset file it also picks the MIDI reader.
    /// Left out of the serialized options when `ours`, so older settings keep
    /// their hash.
    #[serde(skip_serializing_if = "Compat::is_ours")]
    pub compat: Compat,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            ignore_ts: false,
            inst_order: InstrumentOrder::Id,
            remove_empty_bars: true,
            normalize_key: false,
            pos_per_beat: DEFAULT_POS_PER_BEAT,
            max_bars: 10_000,
            compat: Compat::Ours,
        }
    }
}

/// Why a score could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The score has no notes.
    #[error("the piece has no notes")]
    NoNotes,
    /// A time signature that has no REMIGEN2 id even after reduction.
    #[error("time signature {0}/{1} has no REMIGEN2 id")]
    UnsupportedTimeSignature(u32, u32),
    /// A time signature whose bar is shorter than one grid position.
    #[error("time signature {0}/{1} gives bars shorter than one grid position")]
    BarTooShort(u32, u32),
    /// More bars than the configured limit.
    #[error("the piece spans more than {0} bars (absurd tick values?)")]
    TooManyBars(u32),
    /// Zero ticks per beat.
    #[error("ticks per beat is 0")]
    ZeroTicksPerBeat,
    /// Release mode with the lmd6 order: an instrument the release's
    /// `6tracks_cst1` order has no place for (it fails with a KeyError).
    #[error("instrument {0} is not one of the lmd6 order's 80, 128, 32, 43, 25, 0, 48 (the release's 6tracks_cst1 order fails on it)")]
    NotInLmd6Order(u8),
    /// Release mode with key normalization: a piece with only drum notes (the
    /// release's key finding fails on it).
    #[error("key normalization of a piece with only drum notes (the release's get_pitch_shift fails on it)")]
    KeyOfDrumsOnly,
}

/// One note on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct GridNote {
    pub onset: u64,
    pub instrument: u8,
    pub pitch: u8,
    pub duration: u8,
    pub velocity: u8,
}

/// One bar of the walk over the piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GridBar {
    pub start: u64,
    pub ts: (u32, u32),
    pub tempo: u8,
}

/// A score laid on the grid: its bars (up to the bar of the last onset) and notes.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    pub bars: Vec<GridBar>,
    pub notes: Vec<GridNote>,
}

/// Lays a score on the REMIGEN2 grid (positions, bars, note ids).
pub(crate) fn to_grid(
    score: &Score,
    opts: &EncodeOptions,
    vocab: &Vocab,
) -> Result<Grid, EncodeError> {
    let tpb = score.ticks_per_beat;
    if tpb == 0 {
        return Err(EncodeError::ZeroTicksPerBeat);
    }
    let pos = |t: u64| vocab.ticks_to_positions(t, tpb);
    let shift = if opts.normalize_key {
        normalize_key_shift(score)
    } else {
        0
    };
    let mut notes = Vec::with_capacity(score.note_count());
    for track in &score.tracks {
        let instrument = if track.is_drum {
            DRUM_INSTRUMENT
        } else {
            track.program.min(127)
        };
        for n in &track.notes {
            let onset = pos(n.start);
            let pitch = if track.is_drum {
                128 + n.pitch.min(127)
            } else {
                transpose(n.pitch, shift)
            };
            notes.push(GridNote {
                onset,
                instrument,
                pitch,
                duration: vocab.duration_id(pos(n.end).saturating_sub(onset)),
                velocity: velocity_id(n.velocity),
            });
        }
    }
    let last_onset = notes
        .iter()
        .map(|n| n.onset)
        .max()
        .ok_or(EncodeError::NoNotes)?;
    let release = opts.compat == Compat::Release;
    if release && opts.normalize_key && notes.iter().all(|n| n.instrument == DRUM_INSTRUMENT) {
        return Err(EncodeError::KeyOfDrumsOnly);
    }

    // Time signatures are reduced first: the bar length follows the reduced one.
    let (ts_changes, tempo_changes) = if release {
        release_changes(score, last_onset + 1, pos)?
    } else {
        let mut ts_changes = Vec::with_capacity(score.time_signatures.len());
        for t in &score.time_signatures {
            if time_signature_id(t.numerator, t.denominator).is_none() {
                return Err(EncodeError::UnsupportedTimeSignature(
                    t.numerator,
                    t.denominator,
                ));
            }
            let (n, d) = reduce_time_signature(t.numerator, t.denominator);
            ts_changes.push((pos(t.tick), n, d));
        }
        let tempo_changes: Vec<(u64, f64)> = score
            .tempos
            .iter()
            .map(|t| (pos(t.tick), t.bpm()))
            .collect();
        (ts_changes, tempo_changes)
    };
    let in_force = |at: u64| {
        let ts = ts_changes
            .iter()
            .take_while(|c| c.0 <= at)
            .last()
            .map_or((4, 4), |c| (c.1, c.2));
        let bpm = tempo_changes
            .iter()
            .take_while(|c| c.0 <= at)
            .last()
            .map_or(120.0, |c| c.1);
        (ts, bpm)
    };

    let mut bars = Vec::new();
    let mut start = 0u64;
    while start <= last_onset {
        if bars.len() as u32 >= opts.max_bars {
            return Err(EncodeError::TooManyBars(opts.max_bars));
        }
        let (ts, bpm) = in_force(start);
        let len = vocab.bar_positions(ts.0, ts.1);
        if len == 0 {
            return Err(EncodeError::BarTooShort(ts.0, ts.1));
        }
        bars.push(GridBar {
            start,
            ts,
            tempo: tempo_id(bpm),
        });
        start += len;
    }
    Ok(Grid { bars, notes })
}

/// Time-signature changes `(position, num, den)` (reduced) and tempo changes
/// `(position, bpm)`, by position.
type Changes = (Vec<(u64, u32, u32)>, Vec<(u64, f64)>);

/// The changes as MidiProcessor's `collect_pos_info` keeps them: only those at
/// positions before `max_pos` (the last onset's plus one), one per position, the
/// last one listed winning (tempos in the score's list order, which a score read
/// in release mode keeps from miditoolkit); only the time signatures kept must
/// have an id.
fn release_changes(
    score: &Score,
    max_pos: u64,
    pos: impl Fn(u64) -> u64,
) -> Result<Changes, EncodeError> {
    let mut ts = BTreeMap::new();
    for t in &score.time_signatures {
        let p = pos(t.tick);
        if p < max_pos {
            ts.insert(p, (t.numerator, t.denominator));
        }
    }
    let mut ts_changes = Vec::with_capacity(ts.len());
    for (p, (num, den)) in ts {
        if time_signature_id(num, den).is_none() {
            return Err(EncodeError::UnsupportedTimeSignature(num, den));
        }
        let (n, d) = reduce_time_signature(num, den);
        ts_changes.push((p, n, d));
    }
    let mut tempos = BTreeMap::new();
    for t in &score.tempos {
        let p = pos(t.tick);
        if p < max_pos {
            tempos.insert(p, t.bpm());
        }
    }
    Ok((ts_changes, tempos.into_iter().collect()))
}

fn transpose(pitch: u8, shift: i32) -> u8 {
    let mut p = pitch as i32 + shift;
    while p < 0 {
        p += 12;
    }
    while p > 127 {
        p -= 12;
    }
    p as u8
}

/// Encodes a score as REMIGEN2 tokens.
pub fn encode(score: &Score, opts: &EncodeOptions) -> Result<Vec<Token>, EncodeError> {
    let mut grid = to_grid(score, opts, &Vocab::new(opts.pos_per_beat))?;
    let order = opts.inst_order;
    if opts.compat == Compat::Release && order == InstrumentOrder::Lmd6 {
        if let Some(n) = grid
            .notes
            .iter()
            .find(|n| !LMD6_ORDER.contains(&n.instrument))
        {
            return Err(EncodeError::NotInLmd6Order(n.instrument));
        }
    }
    // Onset, then instrument rank, then (pitch, duration, velocity) descending.
    grid.notes.sort_by(|a, b| {
        (a.onset, order.rank(a.instrument))
            .cmp(&(b.onset, order.rank(b.instrument)))
            .then((b.pitch, b.duration, b.velocity).cmp(&(a.pitch, a.duration, a.velocity)))
    });
    let first_bar = if opts.remove_empty_bars {
        let first_onset = grid.notes[0].onset;
        grid.bars.partition_point(|b| b.start <= first_onset) - 1
    } else {
        0
    };
    let mut tokens = Vec::with_capacity(grid.notes.len() * 4 + grid.bars.len() * 3);
    let mut notes = grid.notes.iter().peekable();
    for (i, bar) in grid.bars.iter().enumerate() {
        let end = grid.bars.get(i + 1).map_or(u64::MAX, |b| b.start);
        let emit = i >= first_bar;
        if emit {
            if !opts.ignore_ts {
                let id = time_signature_id(bar.ts.0, bar.ts.1).expect("checked in to_grid");
                tokens.push(Token::TimeSig(id));
            }
            tokens.push(Token::Tempo(bar.tempo));
        }
        let (mut last_pos, mut last_inst) = (None, None);
        while let Some(n) = notes.next_if(|n| n.onset < end) {
            if !emit {
                continue;
            }
            let p = (n.onset - bar.start) as u8;
            if last_pos != Some(p) {
                tokens.push(Token::Position(p));
                last_pos = Some(p);
                last_inst = None;
            }
            if last_inst != Some(n.instrument) {
                tokens.push(Token::Instrument(n.instrument));
                last_inst = Some(n.instrument);
            }
            tokens.extend([
                Token::Pitch(n.pitch),
                Token::Duration(n.duration),
                Token::Velocity(n.velocity),
            ]);
        }
        if emit {
            tokens.push(Token::Bar);
        }
    }
    Ok(tokens)
}

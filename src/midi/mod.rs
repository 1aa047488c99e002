//! MIDI files in and out: reading standard MIDI files (formats 0 and 1) into a
//! [`Score`], the one in-memory form of a piece in ticks, and writing a `Score`
//! back to a standard MIDI file.
//!
//! Two readers: ours ([`read_bytes`], musically motivated choices) and one that
//! reads as the original release does ([`Compat::Release`]: mido 1.2.10 and
//! miditoolkit 0.1.16, see `release.rs` and `docs/tokens.md`).

mod read;
mod release;
mod write;

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use read::{read_bytes, read_bytes_warned, read_file, MidiError};
pub use write::{to_bytes, write_file};

/// Whose choices reading and encoding follow.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compat {
    /// Our musically motivated choices (first-in-first-out note pairing, the
    /// program at the note-on, strict structure checks).
    #[default]
    Ours,
    /// The original release's tokenizer, token for token: MIDI read as mido 1.2.10
    /// and miditoolkit 0.1.16 read it, encoded as MidiProcessor's REMIGEN2 does.
    Release,
}

impl Compat {
    /// True for [`Compat::Ours`] (the default, left out when serializing so
    /// settings written before the option existed keep their hash).
    pub fn is_ours(&self) -> bool {
        *self == Compat::Ours
    }
}

/// A score with the warnings its reading produced: what the reader kept or
/// dropped that a user may want to know about (ours: an invalid key signature it
/// skipped, which changes no note; the release-mode reader: what the release's
/// reader would have done differently, `docs/tokens.md`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reading {
    /// The piece.
    pub score: Score,
    /// One line each.
    pub warnings: Vec<String>,
}

/// Parses a standard MIDI file with the reader of `compat`: [`read_bytes`] for
/// [`Compat::Ours`] (never warns), the release's reader for [`Compat::Release`].
pub fn read_bytes_as(bytes: &[u8], compat: Compat) -> Result<Reading, MidiError> {
    match compat {
        Compat::Ours => read::read_bytes_warned(bytes),
        Compat::Release => release::read_bytes(bytes),
    }
}

/// Reads a standard MIDI file from disk with the reader of `compat`.
pub fn read_file_as(path: &Path, compat: Compat) -> Result<Reading, MidiError> {
    let bytes = std::fs::read(path).map_err(|source| MidiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes_as(&bytes, compat)
}

/// A note in ticks. `end > start` always holds for notes in a [`Score`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Note {
    /// Onset in ticks.
    pub start: u64,
    /// Offset in ticks (exclusive).
    pub end: u64,
    /// MIDI pitch 0..=127.
    pub pitch: u8,
    /// MIDI velocity 1..=127.
    pub velocity: u8,
}

impl Note {
    /// A note from `start` to `end` (ticks) of `pitch` at `velocity`.
    pub const fn new(start: u64, end: u64, pitch: u8, velocity: u8) -> Note {
        Note {
            start,
            end,
            pitch,
            velocity,
        }
    }
}

/// One instrument part: the notes one program plays on one channel of one track.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Track {
    /// Track name from the file, if any.
    pub name: String,
    /// General MIDI program 0..=127 (ignored for drums; 0 for drums read by our
    /// reader, the channel's program for drums read in release mode).
    pub program: u8,
    /// True for notes on MIDI channel 10 (index 9).
    pub is_drum: bool,
    /// Notes sorted by (start, pitch, end, velocity).
    pub notes: Vec<Note>,
}

/// A tempo change: from `tick` on, a quarter note lasts `micros_per_quarter` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tempo {
    /// Tick where the tempo starts.
    pub tick: u64,
    /// Microseconds per quarter note (as in the MIDI meta event).
    pub micros_per_quarter: u32,
}

impl Tempo {
    /// Beats (quarter notes) per minute.
    pub fn bpm(&self) -> f64 {
        60_000_000.0 / self.micros_per_quarter as f64
    }
}

/// A time-signature change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSignature {
    /// Tick where the time signature starts.
    pub tick: u64,
    /// Beats per bar.
    pub numerator: u32,
    /// Beat unit (a power of two: 1, 2, 4, 8, ...).
    pub denominator: u32,
}

/// A key-signature event: `sharps` in -7..=7 (negative for flats), `minor` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySignature {
    /// Tick where the key signature starts.
    pub tick: u64,
    /// Number of sharps (negative: flats), -7..=7.
    pub sharps: i8,
    /// Minor mode when true.
    pub minor: bool,
}

/// A piece of music in ticks: the one in-memory form every stage works on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Score {
    /// Ticks per quarter note (> 0).
    pub ticks_per_beat: u32,
    /// Tempo changes sorted by tick (may be empty: 120 bpm). A score read in
    /// release mode keeps miditoolkit's list instead: each track's changes in
    /// order, tracks one after the other, so ticks may go back between tracks
    /// (the release's encoder lets the last one listed at a grid position win).
    pub tempos: Vec<Tempo>,
    /// Time-signature changes sorted by tick (may be empty: 4/4; several at one
    /// tick only in release mode, the last one listed counting).
    pub time_signatures: Vec<TimeSignature>,
    /// Key-signature changes sorted by tick.
    pub key_signatures: Vec<KeySignature>,
    /// Instrument parts.
    pub tracks: Vec<Track>,
}

impl Score {
    /// Total number of notes over all tracks.
    pub fn note_count(&self) -> usize {
        self.tracks.iter().map(|t| t.notes.len()).sum()
    }

    /// The tick of the last note offset (0 for an empty score).
    pub fn end_tick(&self) -> u64 {
        self.tracks
            .iter()
            .flat_map(|t| t.notes.iter().map(|n| n.end))
            .max()
            .unwrap_or(0)
    }

    /// Length in seconds under the tempo map (up to the last note offset; the
    /// tempo changes taken in tick order, the last one listed at a tick winning).
    pub fn seconds(&self) -> f64 {
        let end = self.end_tick();
        let tpb = self.ticks_per_beat.max(1) as f64;
        let mut secs = 0.0;
        let mut tick = 0u64;
        let mut mpq = 500_000.0f64;
        let mut tempos = self.tempos.clone();
        tempos.sort_by_key(|t| t.tick);
        for t in &tempos {
            if t.tick >= end {
                break;
            }
            if t.tick > tick {
                secs += (t.tick - tick) as f64 / tpb * mpq / 1e6;
                tick = t.tick;
            }
            mpq = t.micros_per_quarter as f64;
        }
        secs + end.saturating_sub(tick) as f64 / tpb * mpq / 1e6
    }
}

//! MIDI files in and out: reading standard MIDI files (formats 0 and 1) into a
//! [`Score`], the one in-memory form of a piece in ticks, and writing a `Score`
//! back to a standard MIDI file.

mod read;
mod write;

pub use read::{read_bytes, read_file, MidiError};
pub use write::{to_bytes, write_file};

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
    /// General MIDI program 0..=127 (ignored for drums).
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
    /// Tempo changes sorted by tick (may be empty: 120 bpm).
    pub tempos: Vec<Tempo>,
    /// Time-signature changes sorted by tick (may be empty: 4/4).
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

    /// Length in seconds under the tempo map (up to the last note offset).
    pub fn seconds(&self) -> f64 {
        let end = self.end_tick();
        let tpb = self.ticks_per_beat.max(1) as f64;
        let mut secs = 0.0;
        let mut tick = 0u64;
        let mut mpq = 500_000.0f64;
        for t in &self.tempos {
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

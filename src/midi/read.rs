//! Reading standard MIDI files (formats 0 and 1) into a [`Score`].
//!
//! The semantics follow the pretty_midi/miditoolkit family of loaders used by
//! the original Museformer pipeline, with a few deliberate, documented
//! differences (FIFO note pairing, program taken at the note-on, open notes
//! closed at the end of their track): see [`read_bytes`]. The reader that follows
//! the release exactly is `release.rs` ([`super::Compat::Release`]).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use midly::{EventBytemapIter, Format, MetaMessage, MidiMessage, Timing, TrackEventKind};

use super::{KeySignature, Note, Score, Tempo, TimeSignature, Track};

/// Files whose events reach past this many beats (quarter notes) are rejected
/// with [`MidiError::AbsurdTick`]: 100 000 beats is more than 13 hours at
/// 120 bpm, so such ticks only come from corrupt delta times.
pub const MAX_BEATS: u64 = 100_000;

/// Files with an event past this absolute tick (2^31) are rejected with
/// [`MidiError::AbsurdTick`], whatever the resolution.
pub const MAX_TICK: u64 = 1 << 31;

/// Why a MIDI file could not be read. Every message is a single line.
#[derive(Debug, thiserror::Error)]
pub enum MidiError {
    /// The file could not be read from disk.
    #[error("cannot read MIDI file {}: {source}", path.display())]
    Io {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed standard MIDI file (empty, garbage,
    /// truncated, malformed events).
    #[error("cannot parse MIDI data: {0}")]
    Parse(String),
    /// The header uses SMPTE timecode instead of ticks per quarter note.
    #[error("SMPTE timecode timing is not supported")]
    Smpte,
    /// Format 2 files hold independent sequences, not one piece.
    #[error("format 2 (sequential tracks) is not supported")]
    Format2,
    /// The header declares 0 ticks per quarter note.
    #[error("the header declares 0 ticks per quarter note")]
    ZeroTicksPerBeat,
    /// A key-signature meta event outside -7..=7 sharps or with a mode byte
    /// other than 0 (major) or 1 (minor).
    #[error("invalid key signature: {sharps} sharps, mode {mode} (expected -7..=7 sharps and mode 0 or 1)")]
    InvalidKeySignature {
        /// Number of sharps as stored (negative: flats).
        sharps: i8,
        /// The raw mode byte.
        mode: u8,
    },
    /// A time-signature meta event with numerator 0 or a denominator power
    /// of two too large to represent (exponent > 31).
    #[error("invalid time signature at tick {tick}: numerator {numerator}, denominator 2^{denominator_power}")]
    InvalidTimeSignature {
        /// Tick of the event.
        tick: u64,
        /// The numerator as stored.
        numerator: u8,
        /// The denominator exponent as stored (denominator = 2^power).
        denominator_power: u8,
    },
    /// A tempo meta event of 0 µs per quarter note (infinite tempo).
    #[error("tempo of 0 microseconds per quarter note at tick {tick}")]
    ZeroTempo {
        /// Tick of the event.
        tick: u64,
    },
    /// The original release's reader (mido 1.2.10, miditoolkit 0.1.16 and
    /// MidiProcessor's checks) fails on the file: release-mode reading only.
    #[error("the original release's reader fails on this file: {0}")]
    Release(String),
    /// An event lies past `MAX_TICK` (2^31) ticks or past `MAX_BEATS`
    /// (100 000) beats.
    #[error("event at tick {tick} lies beyond the supported length ({MAX_BEATS} beats at {ticks_per_beat} ticks per beat, or 2^31 ticks)")]
    AbsurdTick {
        /// Absolute tick of the offending event.
        tick: u64,
        /// Resolution of the file.
        ticks_per_beat: u32,
    },
}

/// Reads a standard MIDI file from disk; see [`read_bytes`] for the semantics.
pub fn read_file(path: &Path) -> Result<Score, MidiError> {
    let bytes = std::fs::read(path).map_err(|source| MidiError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes(&bytes)
}

/// Parses a standard MIDI file (format 0 or 1, metrical timing) into a [`Score`].
///
/// Semantics:
/// - Structure is checked strictly (unlike midly's lenient default): a track
///   chunk running past the end of the data or holding a malformed event is a
///   [`MidiError::Parse`] error, so truncated files are rejected. Unknown
///   chunks are skipped; fewer than 8 trailing bytes are ignored unless they
///   start like a track chunk (`MTrk`); the track count in the header is not
///   checked, so a file cut exactly between two chunks reads as the tracks
///   before the cut.
/// - Tempos, time signatures and key signatures are collected from all tracks
///   and sorted by tick; when several events of one kind share a tick, the
///   last one (in track order, then event order) is kept.
/// - Program changes are tracked per channel within each MIDI track (program 0
///   at the start of every track); a note takes the program in force on its
///   channel at its note-on.
/// - Channel 10 (index 9) is drums; a drum track's program is always 0.
/// - One [`Track`] per (MIDI track, channel, program, or drums), in order of
///   the first note-on of each group, named after the first track-name meta
///   event of its MIDI track (UTF-8, or Latin-1 when not valid UTF-8).
/// - A note-on with velocity 0 is a note-off. Same-pitch notes on one channel
///   are paired first in, first out: a note-off closes the oldest open
///   note-on. Note-offs with no open note are ignored. Notes still open at
///   the end of their track end at the track's last event tick.
/// - Zero-length notes are dropped; notes are sorted by (start, pitch, end,
///   velocity); tracks without notes are dropped. A score without notes is
///   valid.
pub fn read_bytes(bytes: &[u8]) -> Result<Score, MidiError> {
    Ok(read_bytes_warned(bytes)?.score)
}

/// [`read_bytes`] with the reader's warnings: what it skipped without changing any
/// note (an invalid key-signature event: sharps outside -7..=7 or a mode byte other
/// than 0 and 1).
pub fn read_bytes_warned(bytes: &[u8]) -> Result<super::Reading, MidiError> {
    let (header, track_iter) = midly::parse(bytes).map_err(parse_error)?;
    if header.format == Format::Sequential {
        return Err(MidiError::Format2);
    }
    let ticks_per_beat = match header.timing {
        Timing::Metrical(t) => u32::from(t.as_int()),
        Timing::Timecode(..) => return Err(MidiError::Smpte),
    };
    if ticks_per_beat == 0 {
        return Err(MidiError::ZeroTicksPerBeat);
    }
    let chunks = track_chunks(track_iter.unread())?;

    let mut reader = Reader::new(ticks_per_beat);
    let mut tracks = Vec::new();
    for (index, chunk) in chunks.into_iter().enumerate() {
        tracks.extend(reader.read_track(index, chunk)?);
    }
    Ok(super::Reading {
        score: Score {
            ticks_per_beat,
            tempos: keep_last_per_tick(reader.tempos, |t| t.tick),
            time_signatures: keep_last_per_tick(reader.time_signatures, |t| t.tick),
            key_signatures: keep_last_per_tick(reader.key_signatures, |k| k.tick),
            tracks,
        },
        warnings: reader.warnings,
    })
}

fn parse_error(err: midly::Error) -> MidiError {
    MidiError::Parse(err.kind().message().to_string())
}

/// Splits the bytes after the header chunk into the data of its `MTrk`
/// chunks, rejecting track chunks that run past the end of the data.
fn track_chunks(mut raw: &[u8]) -> Result<Vec<&[u8]>, MidiError> {
    let mut chunks = Vec::new();
    while raw.len() >= 8 {
        let id = &raw[..4];
        let len = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
        let rest = &raw[8..];
        if len > rest.len() {
            if id == b"MTrk" {
                return Err(MidiError::Parse(format!(
                    "truncated data: track {} declares {len} bytes but only {} remain",
                    chunks.len(),
                    rest.len()
                )));
            }
            // An unknown chunk running to the end of the data: skip it.
            break;
        }
        if id == b"MTrk" {
            chunks.push(&rest[..len]);
        }
        raw = &rest[len..];
    }
    if !raw.is_empty() && raw.len() < 8 && b"MTrk".starts_with(&raw[..raw.len().min(4)]) {
        return Err(MidiError::Parse(format!(
            "truncated data: track {} header is cut short",
            chunks.len()
        )));
    }
    Ok(chunks)
}

/// Sorts by tick (stably) and keeps only the last item at each tick.
fn keep_last_per_tick<T>(mut items: Vec<T>, tick: impl Fn(&T) -> u64) -> Vec<T> {
    items.sort_by_key(|t| tick(t));
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for item in items {
        match out.last_mut() {
            Some(last) if tick(last) == tick(&item) => *last = item,
            _ => out.push(item),
        }
    }
    out
}

/// Decodes a meta text: UTF-8 when valid, Latin-1 otherwise (as mido does).
fn decode_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// The data bytes of a raw meta event `FF type varlen-length data`.
fn meta_data(raw: &[u8]) -> &[u8] {
    let mut i = 2;
    while i < raw.len() && raw[i] & 0x80 != 0 {
        i += 1;
    }
    raw.get(i + 1..).unwrap_or(&[])
}

/// Grouping key of a track part: MIDI channel and program (128 for drums).
type GroupKey = (u8, u8);

const DRUM_CHANNEL: u8 = 9;
const DRUM_GROUP: u8 = 128;

/// A note waiting for its note-off: onset, velocity, part index.
#[derive(Clone, Copy)]
struct OpenNote {
    start: u64,
    velocity: u8,
    group: usize,
}

/// State shared over the tracks of one file.
struct Reader {
    ticks_per_beat: u32,
    max_tick: u64,
    tempos: Vec<Tempo>,
    time_signatures: Vec<TimeSignature>,
    key_signatures: Vec<KeySignature>,
    /// Open notes per `channel * 128 + pitch`, reused from track to track.
    open: Vec<VecDeque<OpenNote>>,
    /// What was skipped without changing the notes (an invalid key signature).
    warnings: Vec<String>,
}

impl Reader {
    fn new(ticks_per_beat: u32) -> Self {
        Reader {
            ticks_per_beat,
            max_tick: MAX_TICK.min(MAX_BEATS * u64::from(ticks_per_beat)),
            tempos: Vec::new(),
            time_signatures: Vec::new(),
            key_signatures: Vec::new(),
            open: vec![VecDeque::new(); 16 * 128],
            warnings: Vec::new(),
        }
    }

    /// Reads one track chunk: collects its meta events into `self` and
    /// returns its non-empty parts.
    fn read_track(&mut self, index: usize, data: &[u8]) -> Result<Vec<Track>, MidiError> {
        let mut events = EventBytemapIter::new(data);
        let mut tick = 0u64;
        let mut programs = [0u8; 16];
        let mut name: Option<String> = None;
        let mut keys: HashMap<GroupKey, usize> = HashMap::new();
        let mut parts: Vec<Track> = Vec::new();

        while !events.unread().is_empty() {
            let offset = data.len() - events.unread().len();
            let (raw, event) = match events.next() {
                Some(Ok(ev)) => ev,
                Some(Err(err)) => return Err(parse_error(err)),
                None => {
                    return Err(MidiError::Parse(format!(
                        "malformed or truncated event in track {index} at byte {offset}"
                    )))
                }
            };
            tick += u64::from(event.delta.as_int());
            if tick > self.max_tick {
                return Err(MidiError::AbsurdTick {
                    tick,
                    ticks_per_beat: self.ticks_per_beat,
                });
            }
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    match message {
                        MidiMessage::ProgramChange { program } => {
                            programs[usize::from(ch)] = program.as_int();
                        }
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            let group_key = if ch == DRUM_CHANNEL {
                                (ch, DRUM_GROUP)
                            } else {
                                (ch, programs[usize::from(ch)])
                            };
                            let group = *keys.entry(group_key).or_insert_with(|| {
                                parts.push(Track {
                                    name: String::new(),
                                    program: if ch == DRUM_CHANNEL { 0 } else { group_key.1 },
                                    is_drum: ch == DRUM_CHANNEL,
                                    notes: Vec::new(),
                                });
                                parts.len() - 1
                            });
                            self.open[usize::from(ch) * 128 + usize::from(key.as_int())].push_back(
                                OpenNote {
                                    start: tick,
                                    velocity: vel.as_int(),
                                    group,
                                },
                            );
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            let pitch = key.as_int();
                            let queue = &mut self.open[usize::from(ch) * 128 + usize::from(pitch)];
                            if let Some(open) = queue.pop_front() {
                                push_note(&mut parts, open, tick, pitch);
                            }
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(meta) => match meta {
                    MetaMessage::TrackName(bytes) if name.is_none() => {
                        name = Some(decode_text(bytes));
                    }
                    MetaMessage::Tempo(t) => {
                        let micros_per_quarter = t.as_int();
                        if micros_per_quarter == 0 {
                            return Err(MidiError::ZeroTempo { tick });
                        }
                        self.tempos.push(Tempo {
                            tick,
                            micros_per_quarter,
                        });
                    }
                    MetaMessage::TimeSignature(numerator, power, _, _) => {
                        if numerator == 0 || power > 31 {
                            return Err(MidiError::InvalidTimeSignature {
                                tick,
                                numerator,
                                denominator_power: power,
                            });
                        }
                        self.time_signatures.push(TimeSignature {
                            tick,
                            numerator: u32::from(numerator),
                            denominator: 1 << power,
                        });
                    }
                    MetaMessage::KeySignature(sharps, _) => {
                        let mode = meta_data(raw).get(1).copied().unwrap_or(0);
                        if !(-7..=7).contains(&sharps) || mode > 1 {
                            // A key signature changes no note (nor any token): skip it.
                            self.warnings.push(format!(
                                "skipped an invalid key signature at tick {tick} ({})",
                                MidiError::InvalidKeySignature { sharps, mode }
                                    .to_string()
                                    .trim_start_matches("invalid key signature: ")
                            ));
                            continue;
                        }
                        self.key_signatures.push(KeySignature {
                            tick,
                            sharps,
                            minor: mode == 1,
                        });
                    }
                    _ => {}
                },
                TrackEventKind::SysEx(_) | TrackEventKind::Escape(_) => {}
            }
        }

        // Close the notes still open at the track's last event tick.
        for (slot, queue) in self.open.iter_mut().enumerate() {
            let pitch = (slot % 128) as u8;
            for open in queue.drain(..) {
                push_note(&mut parts, open, tick, pitch);
            }
        }

        let name = name.unwrap_or_default();
        parts.retain(|p| !p.notes.is_empty());
        for part in &mut parts {
            part.name.clone_from(&name);
            part.notes
                .sort_unstable_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
        }
        Ok(parts)
    }
}

/// Adds the note `open`..`end` to its part unless it has zero length.
fn push_note(parts: &mut [Track], open: OpenNote, end: u64, pitch: u8) {
    if end > open.start {
        parts[open.group].notes.push(Note {
            start: open.start,
            end,
            pitch,
            velocity: open.velocity,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use midly::num::{u15, u24, u28, u4, u7};
    use midly::{Header, TrackEvent};

    /// An event at an absolute tick.
    type Ev = (u64, TrackEventKind<'static>);

    /// Builds a MIDI file from tracks of events at absolute ticks (stably
    /// sorted by tick).
    fn build(format: Format, tpb: u16, tracks: Vec<Vec<Ev>>) -> Vec<u8> {
        let mut smf = midly::Smf::new(Header::new(format, Timing::Metrical(u15::new(tpb))));
        for mut track in tracks {
            track.sort_by_key(|e| e.0);
            let mut last = 0;
            let mut events: Vec<TrackEvent<'static>> = track
                .into_iter()
                .map(|(tick, kind)| {
                    let delta = u28::new((tick - last) as u32);
                    last = tick;
                    TrackEvent { delta, kind }
                })
                .collect();
            events.push(TrackEvent {
                delta: u28::new(0),
                kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
            });
            smf.tracks.push(events);
        }
        let mut out = Vec::new();
        smf.write_std(&mut out).unwrap();
        out
    }

    fn midi(tick: u64, ch: u8, message: MidiMessage) -> Ev {
        (
            tick,
            TrackEventKind::Midi {
                channel: u4::new(ch),
                message,
            },
        )
    }

    fn on(tick: u64, ch: u8, pitch: u8, vel: u8) -> Ev {
        midi(
            tick,
            ch,
            MidiMessage::NoteOn {
                key: u7::new(pitch),
                vel: u7::new(vel),
            },
        )
    }

    fn off(tick: u64, ch: u8, pitch: u8) -> Ev {
        midi(
            tick,
            ch,
            MidiMessage::NoteOff {
                key: u7::new(pitch),
                vel: u7::new(64),
            },
        )
    }

    fn program(tick: u64, ch: u8, program: u8) -> Ev {
        midi(
            tick,
            ch,
            MidiMessage::ProgramChange {
                program: u7::new(program),
            },
        )
    }

    fn meta(tick: u64, m: MetaMessage<'static>) -> Ev {
        (tick, TrackEventKind::Meta(m))
    }

    fn note(start: u64, end: u64, pitch: u8, velocity: u8) -> Note {
        Note::new(start, end, pitch, velocity)
    }

    fn read1(tracks: Vec<Vec<Ev>>) -> Score {
        read_bytes(&build(Format::Parallel, 480, tracks)).unwrap()
    }

    #[test]
    fn velocity_zero_note_on_is_note_off() {
        let s = read1(vec![vec![on(0, 0, 60, 100), on(480, 0, 60, 0)]]);
        assert_eq!(s.ticks_per_beat, 480);
        assert_eq!(s.tracks.len(), 1);
        assert_eq!(s.tracks[0].notes, vec![note(0, 480, 60, 100)]);
    }

    #[test]
    fn overlapping_same_pitch_notes_pair_fifo() {
        let s = read1(vec![vec![
            on(0, 0, 60, 10),
            on(100, 0, 60, 20),
            off(200, 0, 60),
            off(300, 0, 60),
        ]]);
        assert_eq!(
            s.tracks[0].notes,
            vec![note(0, 200, 60, 10), note(100, 300, 60, 20)]
        );
    }

    #[test]
    fn note_off_with_no_open_note_is_ignored() {
        let s = read1(vec![vec![off(0, 0, 60), on(10, 0, 60, 5), off(20, 0, 60)]]);
        assert_eq!(s.tracks[0].notes, vec![note(10, 20, 60, 5)]);
    }

    #[test]
    fn open_notes_close_at_track_end() {
        let s = read1(vec![vec![
            on(0, 0, 60, 90),
            on(10, 0, 64, 80),
            off(20, 0, 64),
            meta(1000, MetaMessage::Text(b"x")),
        ]]);
        assert_eq!(
            s.tracks[0].notes,
            vec![note(0, 1000, 60, 90), note(10, 20, 64, 80)]
        );
    }

    #[test]
    fn open_note_at_last_tick_is_dropped() {
        let s = read1(vec![vec![
            on(0, 0, 60, 90),
            off(10, 0, 60),
            on(10, 0, 62, 9),
        ]]);
        assert_eq!(s.tracks[0].notes, vec![note(0, 10, 60, 90)]);
    }

    #[test]
    fn zero_length_notes_dropped() {
        let s = read1(vec![vec![
            on(0, 0, 60, 90),
            off(0, 0, 60),
            on(5, 0, 61, 90),
            off(9, 0, 61),
        ]]);
        assert_eq!(s.tracks[0].notes, vec![note(5, 9, 61, 90)]);
        // A track whose only note is zero-length disappears.
        let s = read1(vec![vec![on(0, 0, 60, 90), off(0, 0, 60), off(5, 0, 60)]]);
        assert!(s.tracks.is_empty());
        assert_eq!(s.note_count(), 0);
    }

    #[test]
    fn note_off_before_note_on_at_same_tick() {
        let s = read1(vec![vec![
            on(0, 0, 60, 1),
            off(10, 0, 60),
            on(10, 0, 60, 2),
            off(20, 0, 60),
        ]]);
        assert_eq!(
            s.tracks[0].notes,
            vec![note(0, 10, 60, 1), note(10, 20, 60, 2)]
        );
    }

    #[test]
    fn program_changes_split_tracks_per_channel() {
        let s = read1(vec![vec![
            meta(0, MetaMessage::TrackName(b"Keys")),
            program(0, 0, 5),
            program(0, 1, 40),
            on(0, 0, 60, 100),
            on(0, 1, 70, 100),
            off(10, 0, 60),
            // The program change applies to later note-ons only.
            program(10, 0, 7),
            on(10, 0, 62, 100),
            off(20, 1, 70),
            off(20, 0, 62),
            program(30, 0, 5),
            on(30, 0, 64, 100),
            off(40, 0, 64),
        ]]);
        let summary: Vec<_> = s
            .tracks
            .iter()
            .map(|t| (t.name.as_str(), t.program, t.is_drum, t.notes.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Keys",
                    5,
                    false,
                    vec![note(0, 10, 60, 100), note(30, 40, 64, 100)]
                ),
                ("Keys", 40, false, vec![note(0, 20, 70, 100)]),
                ("Keys", 7, false, vec![note(10, 20, 62, 100)]),
            ]
        );
    }

    #[test]
    fn programs_reset_per_track() {
        let s = read1(vec![
            vec![program(0, 0, 33), on(0, 0, 40, 1), off(5, 0, 40)],
            vec![on(0, 0, 40, 1), off(5, 0, 40)],
        ]);
        assert_eq!(s.tracks.len(), 2);
        assert_eq!(s.tracks[0].program, 33);
        assert_eq!(s.tracks[1].program, 0);
    }

    #[test]
    fn channel_ten_is_drums() {
        let s = read1(vec![vec![
            program(0, 9, 25),
            on(0, 9, 36, 100),
            on(0, 0, 36, 100),
            off(10, 9, 36),
            program(10, 9, 3),
            on(20, 9, 38, 100),
            off(30, 9, 38),
            off(30, 0, 36),
        ]]);
        assert_eq!(s.tracks.len(), 2);
        let drums = &s.tracks[0];
        assert!(drums.is_drum);
        assert_eq!(drums.program, 0);
        assert_eq!(
            drums.notes,
            vec![note(0, 10, 36, 100), note(20, 30, 38, 100)]
        );
        assert!(!s.tracks[1].is_drum);
        assert_eq!(s.tracks[1].notes, vec![note(0, 30, 36, 100)]);
    }

    #[test]
    fn format_zero_with_several_channels() {
        let bytes = build(
            Format::SingleTrack,
            96,
            vec![vec![
                meta(0, MetaMessage::TrackName(b"All")),
                meta(0, MetaMessage::Tempo(u24::new(400_000))),
                program(0, 2, 19),
                on(0, 2, 50, 70),
                on(0, 9, 42, 60),
                on(0, 0, 72, 80),
                off(48, 9, 42),
                off(96, 0, 72),
                off(96, 2, 50),
            ]],
        );
        let s = read_bytes(&bytes).unwrap();
        assert_eq!(s.ticks_per_beat, 96);
        assert_eq!(
            s.tempos,
            vec![Tempo {
                tick: 0,
                micros_per_quarter: 400_000
            }]
        );
        let summary: Vec<_> = s
            .tracks
            .iter()
            .map(|t| (t.name.as_str(), t.program, t.is_drum, t.notes.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("All", 19, false, vec![note(0, 96, 50, 70)]),
                ("All", 0, true, vec![note(0, 48, 42, 60)]),
                ("All", 0, false, vec![note(0, 96, 72, 80)]),
            ]
        );
    }

    #[test]
    fn meta_events_collected_from_all_tracks() {
        let tempo = |tick, mpq| meta(tick, MetaMessage::Tempo(u24::new(mpq)));
        let ts = |tick, n, d| meta(tick, MetaMessage::TimeSignature(n, d, 24, 8));
        let ks = |tick, sf, minor| meta(tick, MetaMessage::KeySignature(sf, minor));
        let s = read1(vec![
            vec![
                tempo(0, 500_000),
                ts(0, 4, 2),
                ks(0, 0, false),
                tempo(960, 600_000),
            ],
            vec![
                tempo(480, 550_000),
                ts(1920, 3, 2),
                ks(1920, -3, true),
                on(0, 0, 60, 1),
                off(10, 0, 60),
            ],
            // Same tick as earlier events: the last one read wins.
            vec![tempo(960, 700_000), ts(0, 6, 3)],
        ]);
        let t = |tick, micros_per_quarter| Tempo {
            tick,
            micros_per_quarter,
        };
        assert_eq!(
            s.tempos,
            vec![t(0, 500_000), t(480, 550_000), t(960, 700_000)]
        );
        let ts = |tick, numerator, denominator| TimeSignature {
            tick,
            numerator,
            denominator,
        };
        assert_eq!(s.time_signatures, vec![ts(0, 6, 8), ts(1920, 3, 4)]);
        assert_eq!(
            s.key_signatures,
            vec![
                KeySignature {
                    tick: 0,
                    sharps: 0,
                    minor: false
                },
                KeySignature {
                    tick: 1920,
                    sharps: -3,
                    minor: true
                }
            ]
        );
        assert_eq!(s.tracks.len(), 1);
    }

    #[test]
    fn empty_score_is_valid() {
        let s = read1(vec![vec![meta(0, MetaMessage::TrackName(b"nothing"))]]);
        assert!(s.tracks.is_empty());
        let s = read1(vec![]);
        assert_eq!(s.ticks_per_beat, 480);
        assert!(s.tracks.is_empty() && s.tempos.is_empty());
    }

    #[test]
    fn notes_sorted_by_start_pitch_end_velocity() {
        let s = read1(vec![vec![
            on(0, 0, 64, 1),
            on(0, 0, 60, 2),
            on(0, 0, 62, 3),
            off(5, 0, 60),
            off(7, 0, 62),
            off(9, 0, 64),
        ]]);
        let pitches: Vec<u8> = s.tracks[0].notes.iter().map(|n| n.pitch).collect();
        assert_eq!(pitches, vec![60, 62, 64]);
    }

    #[test]
    fn latin1_track_name() {
        let s = read1(vec![vec![
            meta(0, MetaMessage::TrackName(b"Pi\xe9no")),
            on(0, 0, 60, 1),
            off(1, 0, 60),
        ]]);
        assert_eq!(s.tracks[0].name, "Piéno");
    }

    #[test]
    fn truncated_track_is_an_error() {
        let bytes = build(
            Format::Parallel,
            480,
            vec![vec![on(0, 0, 60, 1), off(10, 0, 60), on(20, 0, 61, 1)]],
        );
        for cut in (0..bytes.len()).filter(|&c| c != 14) {
            let err = read_bytes(&bytes[..cut]).unwrap_err();
            assert!(matches!(err, MidiError::Parse(_)), "cut {cut}: {err}");
        }
    }

    #[test]
    fn key_signature_mode_byte_checked() {
        let mut bytes = build(
            Format::Parallel,
            480,
            vec![vec![meta(0, MetaMessage::KeySignature(2, true))]],
        );
        let pos = bytes
            .windows(3)
            .position(|w| w == [0xFF, 0x59, 0x02])
            .unwrap();
        bytes[pos + 4] = 3;
        let reading = read_bytes_warned(&bytes).unwrap();
        assert!(reading.score.key_signatures.is_empty());
        assert_eq!(
            reading.warnings,
            ["skipped an invalid key signature at tick 0 (2 sharps, mode 3 (expected -7..=7 sharps and mode 0 or 1))"]
        );
    }

    #[test]
    fn keep_last_per_tick_is_stable() {
        let v = vec![(5, 'a'), (1, 'b'), (5, 'c'), (1, 'd'), (3, 'e')];
        assert_eq!(
            keep_last_per_tick(v, |x| x.0),
            vec![(1, 'd'), (3, 'e'), (5, 'c')]
        );
    }
}

//! Reading MIDI files as the original release does ([`Compat::Release`]): the
//! release's tokenizer, MidiProcessor, loads files with miditoolkit 0.1.16, which
//! parses them with mido 1.2.10 (the versions of 2022, when the release's data
//! were made). This module follows their source, step by step:
//!
//! - **Parsing (mido 1.2.10, `clip=False`, Latin-1 text).** The header's track
//!   count says how many chunks are read; whatever follows them is ignored (a
//!   warning says so). Each of those chunks must be an `MTrk` chunk; its events
//!   are read one after the other until exactly its declared length is used up,
//!   so an event that runs past the end of its chunk reads on into the next bytes,
//!   and the end of the data inside a track fails the file (mido's `EOFError`).
//!   Meta events are decoded and checked as mido does (short tempo, time- or
//!   key-signature payloads, a denominator whose `math.log(d, 2)` is not a whole
//!   number, an unknown key, SMPTE offsets out of range fail); data bytes above
//!   127 fail; sysex and system messages set the running status, as in mido.
//!   The format number is not checked (format 2 reads like format 1).
//! - **Loading (miditoolkit 0.1.16).** Ticks accumulate per track. Tempo changes:
//!   the list starts as 120 bpm at tick 0; tracks are walked in order, a change at
//!   tick 0 replaces the whole list, any other change is appended unless its tempo
//!   equals the last one listed (so the list is not sorted across tracks).
//!   Time and key signatures: all of them, sorted by tick (stable). Every track
//!   must hold at least one event (miditoolkit takes the maximum tick of each).
//! - **Notes and programs.** Per track, each channel's program starts at 0 and
//!   follows its program changes. A note-on (velocity > 0) opens a note of its
//!   (channel, pitch); a note-off or a note-on of velocity 0 closes *every* open
//!   note of that (channel, pitch) that began before its tick, each going to the
//!   instrument of the program in force on the channel *at the note-off*; notes
//!   begun at the note-off's tick stay open when something was closed, and are
//!   discarded when nothing was. Notes still open at the end of a track are
//!   dropped. Instruments are keyed by (program, channel, track), in the order of
//!   their first closed note, named after the last track name read before that;
//!   channel 10 (index 9) is drums, which keep their program.
//! - **MidiProcessor's checks.** Ticks per beat in 1..2^31, note times below 2^31,
//!   time signatures with a numerator above 0 and a denominator below 2^31, and at
//!   least one note.

use super::{KeySignature, MidiError, Note, Reading, Score, Tempo, TimeSignature, Track};
use std::collections::HashMap;

/// mido refuses meta and sysex payloads longer than this (`MAX_MESSAGE_LENGTH`).
const MAX_MESSAGE_LENGTH: u64 = 1_000_000;

/// MidiProcessor's `default_check_midi` bound on note times, time-signature
/// values and ticks per beat.
const MAX_TIME: u64 = 1 << 31;

const DRUM_CHANNEL: u8 = 9;

/// The events of a track that miditoolkit uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    TrackName(String),
    Program {
        channel: u8,
        program: u8,
    },
    NoteOn {
        channel: u8,
        pitch: u8,
        velocity: u8,
    },
    NoteOff {
        channel: u8,
        pitch: u8,
    },
    Tempo(u32),
    TimeSignature {
        numerator: u8,
        power: u8,
    },
    KeySignature {
        sharps: i8,
        minor: bool,
    },
}

/// One parsed track: the events miditoolkit uses at their absolute ticks, and
/// how many events it had in all.
struct ParsedTrack {
    events: Vec<(u64, Event)>,
    count: usize,
}

/// The bytes of a file read front to back, as mido reads its file object.
struct Stream<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Stream<'a> {
    /// Up to `n` bytes (fewer at the end of the data), like `file.read(n)`.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let out = &self.data[self.pos..end];
        self.pos = end;
        out
    }

    fn byte(&mut self) -> Result<u8, String> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(format!(
                "unexpected end of data at byte {} (mido: EOFError)",
                self.pos
            )),
        }
    }

    /// A variable-length quantity of any length (saturating: such ticks are far
    /// past anything MidiProcessor accepts for notes).
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        loop {
            let b = self.byte()?;
            value = value
                .checked_mul(128)
                .map_or(u64::MAX, |v| v | u64::from(b & 0x7F));
            if b < 0x80 {
                return Ok(value);
            }
        }
    }

    /// A payload of `len` bytes, as mido's `read_bytes`.
    fn payload(&mut self, len: u64) -> Result<&'a [u8], String> {
        if len > MAX_MESSAGE_LENGTH {
            return Err(format!(
                "message length {len} exceeds maximum length {MAX_MESSAGE_LENGTH} (mido)"
            ));
        }
        let out = self.take(len as usize);
        if out.len() < len as usize {
            return Err(format!(
                "unexpected end of data at byte {} (mido: EOFError)",
                self.pos
            ));
        }
        Ok(out)
    }
}

/// Length in bytes (status included) of a message that is not meta or sysex, as
/// mido's `SPEC_BY_STATUS` has it; `None` for undefined status bytes.
fn message_length(status: u8) -> Option<usize> {
    match status {
        0x80..=0xBF | 0xE0..=0xEF | 0xF2 => Some(3),
        0xC0..=0xDF | 0xF1 | 0xF3 => Some(2),
        0xF6 | 0xF8 | 0xFA | 0xFB | 0xFC | 0xFE => Some(1),
        _ => None,
    }
}

/// Whether mido 1.2.10 accepts the time-signature denominator `2 ** power`: its
/// check computes `math.log(d, 2)` (that is `log(d) / log(2)` in doubles) and
/// refuses a result that is not a whole number (2^29 is refused).
fn mido_accepts_denominator(power: u8) -> bool {
    let encoded = 2f64.powi(i32::from(power)).ln() / 2f64.ln();
    encoded == encoded.trunc()
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// Decodes a meta event as mido's `build_meta_message` does: `Ok(None)` for the
/// types miditoolkit does not use, an error where mido raises one.
fn meta(kind: u8, data: &[u8]) -> Result<Option<Event>, String> {
    let short = |need: usize, name: &str| {
        if data.len() < need {
            Err(format!(
                "{name} meta event with {} data bytes, {need} needed (mido: IndexError)",
                data.len()
            ))
        } else {
            Ok(())
        }
    };
    Ok(match kind {
        0x00 if data.len() == 1 => {
            return Err("sequence number meta event with 1 data byte (mido: IndexError)".into())
        }
        0x03 => Some(Event::TrackName(latin1(data))),
        0x20 => {
            short(1, "channel prefix")?;
            None
        }
        0x51 => {
            short(3, "tempo")?;
            Some(Event::Tempo(
                u32::from(data[0]) << 16 | u32::from(data[1]) << 8 | u32::from(data[2]),
            ))
        }
        0x54 => {
            short(2, "SMPTE offset")?;
            if data[1] > 59 {
                return Err(format!(
                    "SMPTE offset minutes {} (mido: must be in range 0..59)",
                    data[1]
                ));
            }
            short(3, "SMPTE offset")?;
            if data[2] > 59 {
                return Err(format!(
                    "SMPTE offset seconds {} (mido: must be in range 0..59)",
                    data[2]
                ));
            }
            short(5, "SMPTE offset")?;
            if data[4] > 99 {
                return Err(format!(
                    "SMPTE offset sub-frames {} (mido: must be in range 0..99)",
                    data[4]
                ));
            }
            None
        }
        0x58 => {
            short(2, "time signature")?;
            if !mido_accepts_denominator(data[1]) {
                return Err(format!(
                    "time signature denominator 2^{} (mido: denominator must be a power of 2)",
                    data[1]
                ));
            }
            short(4, "time signature")?;
            Some(Event::TimeSignature {
                numerator: data[0],
                power: data[1],
            })
        }
        0x59 => {
            short(2, "key signature")?;
            let (sharps, mode) = (data[0] as i8, data[1]);
            if !(-7..=7).contains(&sharps) || mode > 1 {
                return Err(format!(
                    "key signature with {sharps} sharps and mode {mode} (mido: KeySignatureError)"
                ));
            }
            Some(Event::KeySignature {
                sharps,
                minor: mode == 1,
            })
        }
        _ => None,
    })
}

/// Reads one track chunk as mido's `read_track` does.
fn read_track(s: &mut Stream, index: usize) -> Result<ParsedTrack, String> {
    let fail = |e: String| format!("track {index}: {e}");
    let at = s.pos;
    let header = s.take(8);
    if header.len() < 8 {
        return Err(fail(format!(
            "unexpected end of data in the chunk header at byte {at} (mido: EOFError)"
        )));
    }
    if &header[..4] != b"MTrk" {
        return Err(fail(format!(
            "the chunk at byte {at} is {:?}, not MTrk (mido: no MTrk header at start of track)",
            latin1(&header[..4])
        )));
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let start = s.pos;
    let mut last_status: Option<u8> = None;
    let mut tick = 0u64;
    let mut track = ParsedTrack {
        events: Vec::new(),
        count: 0,
    };
    // mido stops exactly at the declared length; an event that runs past it
    // makes it read on until the data ends.
    while s.pos - start != size {
        let delta = s.varint().map_err(fail)?;
        tick = tick.saturating_add(delta);
        let mut status = s.byte().map_err(fail)?;
        let mut peek = None;
        if status < 0x80 {
            let Some(last) = last_status else {
                return Err(fail(format!(
                    "running status without a previous status byte at byte {} (mido)",
                    s.pos - 1
                )));
            };
            peek = Some(status);
            status = last;
        } else if status != 0xFF {
            last_status = Some(status);
        }
        track.count += 1;
        match status {
            0xFF => {
                let kind = s.byte().map_err(fail)?;
                let len = s.varint().map_err(fail)?;
                let data = s.payload(len).map_err(fail)?;
                if let Some(ev) =
                    meta(kind, data).map_err(|e| fail(format!("{e} at tick {tick}")))?
                {
                    track.events.push((tick, ev));
                }
            }
            0xF0 | 0xF7 => {
                let len = s.varint().map_err(fail)?;
                let mut data = s.payload(len).map_err(fail)?;
                if data.first() == Some(&0xF0) {
                    data = &data[1..];
                }
                if data.last() == Some(&0xF7) {
                    data = &data[..data.len() - 1];
                }
                if let Some(b) = data.iter().find(|&&b| b > 127) {
                    return Err(fail(format!(
                        "sysex data byte {b} above 127 at tick {tick} (mido: data byte must be in range 0..127)"
                    )));
                }
            }
            _ => {
                let Some(len) = message_length(status) else {
                    return Err(fail(format!(
                        "undefined status byte 0x{status:02x} at byte {} (mido)",
                        s.pos - 1
                    )));
                };
                let mut data: Vec<u8> = peek.into_iter().collect();
                let need = (len - 1).saturating_sub(data.len());
                for _ in 0..need {
                    data.push(s.byte().map_err(fail)?);
                }
                if let Some(b) = data.iter().find(|&&b| b > 127) {
                    return Err(fail(format!(
                        "data byte {b} above 127 at byte {} (mido: data byte must be in range 0..127)",
                        s.pos - 1
                    )));
                }
                if data.len() != len - 1 {
                    return Err(fail(format!(
                        "status 0x{status:02x} given {} data bytes by running status at byte {} (mido: wrong number of bytes)",
                        data.len(),
                        s.pos - 1
                    )));
                }
                let channel = status & 0x0F;
                let ev = match status & 0xF0 {
                    0x80 => Some(Event::NoteOff {
                        channel,
                        pitch: data[0],
                    }),
                    0x90 => Some(Event::NoteOn {
                        channel,
                        pitch: data[0],
                        velocity: data[1],
                    }),
                    0xC0 => Some(Event::Program {
                        channel,
                        program: data[0],
                    }),
                    _ => None,
                };
                if let Some(ev) = ev {
                    track.events.push((tick, ev));
                }
            }
        }
    }
    Ok(track)
}

/// What miditoolkit builds from the parsed tracks, before MidiProcessor's checks.
struct Loaded {
    tempos: Vec<Tempo>,
    time_signatures: Vec<TimeSignature>,
    key_signatures: Vec<KeySignature>,
    tracks: Vec<Track>,
}

/// miditoolkit 0.1.16's `_load_tempo_changes`.
fn load_tempos(tracks: &[ParsedTrack], warnings: &mut Vec<String>) -> Result<Vec<Tempo>, String> {
    // (tick, micros per quarter, bpm); the first entry is miditoolkit's default
    // (120 bpm at tick 0) until a change at tick 0 replaces it.
    let mut list: Vec<(u64, u32, f64)> = vec![(0, 500_000, 120.0)];
    let mut default = true;
    for (index, track) in tracks.iter().enumerate() {
        for &(tick, ref ev) in &track.events {
            let Event::Tempo(mpq) = *ev else { continue };
            if mpq == 0 {
                return Err(format!(
                    "tempo of 0 microseconds per quarter note at tick {tick} in track {index} (miditoolkit: ZeroDivisionError)"
                ));
            }
            let bpm = 60_000_000.0 / f64::from(mpq);
            if tick == 0 {
                let lost = list.iter().filter(|t| t.0 > 0).count();
                if lost > 0 {
                    warnings.push(format!(
                        "a tempo change at tick 0 in track {index} discarded {lost} earlier tempo change(s) (miditoolkit keeps only the last tempo at tick 0)"
                    ));
                }
                list = vec![(0, mpq, bpm)];
                default = false;
            } else if bpm != list[list.len() - 1].2 {
                list.push((tick, mpq, bpm));
            }
        }
    }
    let skip = usize::from(default);
    Ok(list[skip..]
        .iter()
        .map(|&(tick, micros_per_quarter, _)| Tempo {
            tick,
            micros_per_quarter,
        })
        .collect())
}

/// miditoolkit 0.1.16's `MidiFile` loading: tempos, signatures, instruments.
fn load(tracks: &[ParsedTrack], warnings: &mut Vec<String>) -> Result<Loaded, String> {
    let tempos = load_tempos(tracks, warnings)?;
    let mut time_signatures = Vec::new();
    let mut key_signatures = Vec::new();
    for track in tracks {
        for &(tick, ref ev) in &track.events {
            match *ev {
                Event::TimeSignature { numerator, power } => {
                    // Denominators of 2^31 and more fail MidiProcessor's check below.
                    time_signatures.push((tick, numerator, power));
                }
                Event::KeySignature { sharps, minor } => key_signatures.push(KeySignature {
                    tick,
                    sharps,
                    minor,
                }),
                _ => {}
            }
        }
    }
    time_signatures.sort_by_key(|t| t.0);
    key_signatures.sort_by_key(|k| k.tick);
    if tracks.is_empty() {
        return Err("the file has no tracks (miditoolkit: max() of an empty sequence)".into());
    }
    if let Some(i) = tracks.iter().position(|t| t.count == 0) {
        return Err(format!(
            "track {i} has no events (miditoolkit: max() of an empty sequence)"
        ));
    }

    // Instruments keyed by (program, channel, track), in order of creation.
    let mut keys: HashMap<(u8, u8, usize), usize> = HashMap::new();
    let mut instruments: Vec<Track> = Vec::new();
    let (mut together, mut unclosed) = (0usize, 0usize);
    for (index, track) in tracks.iter().enumerate() {
        let mut name = String::new();
        let mut programs = [0u8; 16];
        // Open notes per (channel, pitch): (start tick, velocity) in note-on order.
        let mut open: HashMap<(u8, u8), Vec<(u64, u8)>> = HashMap::new();
        for &(tick, ref ev) in &track.events {
            match *ev {
                Event::TrackName(ref n) => name.clone_from(n),
                Event::Program { channel, program } => programs[channel as usize] = program,
                Event::NoteOn {
                    channel,
                    pitch,
                    velocity,
                } if velocity > 0 => open
                    .entry((channel, pitch))
                    .or_default()
                    .push((tick, velocity)),
                Event::NoteOn { channel, pitch, .. } | Event::NoteOff { channel, pitch } => {
                    let Some(notes) = open.remove(&(channel, pitch)) else {
                        continue;
                    };
                    let (close, keep): (Vec<_>, Vec<_>) =
                        notes.into_iter().partition(|&(start, _)| start != tick);
                    if close.len() > 1 {
                        together += close.len();
                    }
                    let program = programs[channel as usize];
                    for &(start, velocity) in &close {
                        let slot = *keys.entry((program, channel, index)).or_insert_with(|| {
                            instruments.push(Track {
                                name: name.clone(),
                                program,
                                is_drum: channel == DRUM_CHANNEL,
                                notes: Vec::new(),
                            });
                            instruments.len() - 1
                        });
                        instruments[slot].notes.push(Note {
                            start,
                            end: tick,
                            pitch,
                            velocity,
                        });
                    }
                    if !close.is_empty() && !keep.is_empty() {
                        open.insert((channel, pitch), keep);
                    }
                }
                _ => {}
            }
        }
        unclosed += open.values().map(Vec::len).sum::<usize>();
    }
    if together > 0 {
        warnings.push(format!(
            "{together} overlapping notes of one channel and pitch were closed together by one note-off (miditoolkit 0.1.16 pairing)"
        ));
    }
    if unclosed > 0 {
        warnings.push(format!(
            "{unclosed} note(s) with no note-off before the end of their track were dropped"
        ));
    }
    for t in &mut instruments {
        t.notes
            .sort_unstable_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
    }

    let mut checked = Vec::with_capacity(time_signatures.len());
    for (tick, numerator, power) in time_signatures {
        if numerator == 0 || power >= 31 {
            return Err(format!(
                "time signature {numerator}/2^{power} at tick {tick} (MidiProcessor: Bad time signature value)"
            ));
        }
        checked.push(TimeSignature {
            tick,
            numerator: u32::from(numerator),
            denominator: 1 << power,
        });
    }
    Ok(Loaded {
        tempos,
        time_signatures: checked,
        key_signatures,
        tracks: instruments,
    })
}

/// Reads a file as the release does; see the module documentation.
pub(super) fn read_bytes(bytes: &[u8]) -> Result<Reading, MidiError> {
    read(bytes).map_err(MidiError::Release)
}

fn read(bytes: &[u8]) -> Result<Reading, String> {
    let mut s = Stream {
        data: bytes,
        pos: 0,
    };
    let header = s.take(8);
    if header.len() < 8 {
        return Err("unexpected end of data in the header (mido: EOFError)".into());
    }
    if &header[..4] != b"MThd" {
        return Err("MThd not found, probably not a MIDI file (mido)".into());
    }
    let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    let head = s.take(size);
    if head.len() < 6 {
        return Err("the header chunk is shorter than 6 bytes (mido: EOFError)".into());
    }
    let declared = i16::from_be_bytes([head[2], head[3]]);
    let ticks_per_beat = i16::from_be_bytes([head[4], head[5]]);
    let mut tracks = Vec::new();
    for index in 0..declared.max(0) as usize {
        tracks.push(read_track(&mut s, index)?);
    }
    let mut warnings = Vec::new();
    let rest = bytes.len() - s.pos;
    if rest > 0 {
        warnings.push(format!(
            "{rest} byte(s) after the {} track(s) the header declares were ignored",
            tracks.len()
        ));
    }
    let loaded = load(&tracks, &mut warnings)?;

    // MidiProcessor's default_check_midi.
    for t in &loaded.tracks {
        if let Some(n) = t
            .notes
            .iter()
            .find(|n| n.start >= MAX_TIME || n.end >= MAX_TIME)
        {
            return Err(format!(
                "a note from tick {} to {} (MidiProcessor: Bad note time, 2^31 or more)",
                n.start, n.end
            ));
        }
    }
    if ticks_per_beat <= 0 {
        return Err(format!(
            "{ticks_per_beat} ticks per beat (MidiProcessor: Bad ticks per beat; SMPTE timing reads as negative)"
        ));
    }
    if loaded.tracks.is_empty() {
        return Err("the file has no notes (MidiProcessor: Blank note.)".into());
    }
    Ok(Reading {
        score: Score {
            ticks_per_beat: ticks_per_beat as u32,
            tempos: loaded.tempos,
            time_signatures: loaded.time_signatures,
            key_signatures: loaded.key_signatures,
            tracks: loaded.tracks,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file from raw track bodies (no end-of-track added), header count `n`.
    fn smf(format: u16, n: u16, tpb: u16, tracks: &[&[u8]]) -> Vec<u8> {
        let mut out = b"MThd".to_vec();
        out.extend(6u32.to_be_bytes());
        out.extend(format.to_be_bytes());
        out.extend(n.to_be_bytes());
        out.extend(tpb.to_be_bytes());
        for t in tracks {
            out.extend(b"MTrk");
            out.extend((t.len() as u32).to_be_bytes());
            out.extend(*t);
        }
        out
    }

    const EOT: [u8; 4] = [0x00, 0xFF, 0x2F, 0x00];

    fn read1(body: &[u8]) -> Result<Reading, String> {
        let mut t = body.to_vec();
        t.extend(EOT);
        read(&smf(1, 1, 480, &[&t]))
    }

    /// Each instrument as (program, drums, notes as (start, end, pitch, velocity)).
    type Summary = Vec<(u8, bool, Vec<(u64, u64, u8, u8)>)>;

    fn notes(r: &Reading) -> Summary {
        r.score
            .tracks
            .iter()
            .map(|t| {
                (
                    t.program,
                    t.is_drum,
                    t.notes
                        .iter()
                        .map(|n| (n.start, n.end, n.pitch, n.velocity))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn the_program_at_the_note_off_counts() {
        // on 60 at 0, program 5 at 10, off 60 at 20: the note plays program 5.
        let r = read1(&[
            0x00, 0x90, 60, 100, 0x0A, 0xC0, 5, 0x0A, 0x80, 60, 0, 0x00, 0x90, 62, 90, 0x0A, 0x80,
            62, 0,
        ])
        .unwrap();
        assert_eq!(
            notes(&r),
            vec![(5, false, vec![(0, 20, 60, 100), (20, 30, 62, 90)])]
        );
    }

    #[test]
    fn one_note_off_closes_every_earlier_open_note() {
        // on 60 at 0 and 10, on 60 at 20, off at 20, off at 30.
        let r = read1(&[
            0x00, 0x90, 60, 10, 0x0A, 0x90, 60, 20, 0x0A, 0x90, 60, 30, 0x00, 0x80, 60, 0, 0x0A,
            0x80, 60, 0,
        ])
        .unwrap();
        // The off at 20 closes the notes of 0 and 10; the one begun at 20 stays
        // open and the off at 30 closes it.
        assert_eq!(
            notes(&r),
            vec![(
                0,
                false,
                vec![(0, 20, 60, 10), (10, 20, 60, 20), (20, 30, 60, 30)]
            )]
        );
        assert!(
            r.warnings.iter().any(|w| w.starts_with("2 overlapping")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn a_note_off_at_the_note_on_tick_discards_it() {
        // on 60 at 0, velocity-0 on at 0, off at 10: no note at all.
        let r = read1(&[
            0x00, 0x90, 60, 10, 0x00, 0x90, 60, 0, 0x0A, 0x80, 60, 0, 0x00, 0x90, 61, 1, 0x01,
            0x90, 61, 0,
        ])
        .unwrap();
        assert_eq!(notes(&r), vec![(0, false, vec![(10, 11, 61, 1)])]);
    }

    #[test]
    fn open_notes_at_the_end_of_a_track_are_dropped() {
        let r = read1(&[
            0x00, 0x90, 60, 10, 0x00, 0x90, 61, 10, 0x0A, 0x80, 61, 0, 0x60, 0xFF, 0x01, 0x00,
        ])
        .unwrap();
        assert_eq!(notes(&r), vec![(0, false, vec![(0, 10, 61, 10)])]);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.starts_with("1 note(s) with no note-off")));
    }

    #[test]
    fn drums_keep_their_program_and_split_by_it() {
        let r = read1(&[
            0x00, 0xC9, 3, 0x00, 0x99, 36, 100, 0x0A, 0x89, 36, 0, 0x00, 0xC9, 4, 0x00, 0x99, 38,
            100, 0x0A, 0x89, 38, 0,
        ])
        .unwrap();
        assert_eq!(
            notes(&r),
            vec![
                (3, true, vec![(0, 10, 36, 100)]),
                (4, true, vec![(10, 20, 38, 100)])
            ]
        );
    }

    #[test]
    fn tempo_list_follows_miditoolkit() {
        let tempo = |d: u8, mpq: u32| {
            let b = mpq.to_be_bytes();
            vec![d, 0xFF, 0x51, 0x03, b[1], b[2], b[3]]
        };
        let note = [0x00, 0x90, 60, 1, 0x01, 0x80, 60, 0];
        let with_eot = |mut v: Vec<u8>| {
            v.extend(EOT);
            v
        };
        // Track 0: 100 bpm at 0, 90 bpm at 96, 90 again at 1056 (dropped: equal to
        // the last one listed). Track 1: 120 bpm at 480, kept (the last one listed
        // is 90 bpm), after the later tick 96 of track 0.
        let t0 = with_eot(
            [
                tempo(0, 600_000),
                tempo(0x60, 666_667),
                [0x87, 0x40]
                    .iter()
                    .chain(&tempo(0, 666_667)[1..])
                    .copied()
                    .collect(),
                note.to_vec(),
            ]
            .concat(),
        );
        let t1 = with_eot([vec![0x83, 0x60], tempo(0, 500_000)[1..].to_vec()].concat());
        let r = read(&smf(1, 2, 480, &[&t0, &t1])).unwrap();
        let got: Vec<(u64, u32)> = r
            .score
            .tempos
            .iter()
            .map(|t| (t.tick, t.micros_per_quarter))
            .collect();
        assert_eq!(got, vec![(0, 600_000), (96, 666_667), (480, 500_000)]);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // A third track with a tempo at tick 0 replaces the whole list.
        let t2 = with_eot(tempo(0, 400_000));
        let r = read(&smf(1, 3, 480, &[&t0, &t1, &t2])).unwrap();
        let got: Vec<(u64, u32)> = r
            .score
            .tempos
            .iter()
            .map(|t| (t.tick, t.micros_per_quarter))
            .collect();
        assert_eq!(got, vec![(0, 400_000)]);
        assert!(
            r.warnings[0].contains("discarded 2 earlier"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn what_mido_reads_and_what_it_refuses() {
        let mut t = vec![0x00, 0x90, 60, 100, 0x0A, 0x80, 60, 0];
        t.extend(EOT);
        let good = smf(1, 1, 480, &[&t]);
        assert!(read(&good).unwrap().warnings.is_empty());
        // Truncated anywhere inside the declared track: mido raises EOFError.
        for cut in 14..good.len() {
            let err = read(&good[..cut]).unwrap_err();
            assert!(err.contains("EOFError"), "cut {cut}: {err}");
        }
        // Chunks and bytes after the declared tracks are ignored, with a warning.
        let mut extra = good.clone();
        extra.extend(b"MTrk\x00\x00\x00\x40\x00\x90");
        let r = read(&extra).unwrap();
        assert_eq!(r.score.note_count(), 1);
        assert!(
            r.warnings[0].contains("10 byte(s) after the 1 track(s)"),
            "{:?}",
            r.warnings
        );
        // A header declaring more tracks than there are.
        assert!(read(&smf(1, 2, 480, &[&t]))
            .unwrap_err()
            .contains("track 1: unexpected end"));
        // Format 2 reads like format 1.
        assert_eq!(read(&smf(2, 1, 480, &[&t])).unwrap().score.note_count(), 1);
        // An empty track fails miditoolkit; so does a file without notes.
        assert!(read(&smf(1, 2, 480, &[&t, &[]]))
            .unwrap_err()
            .contains("track 1 has no events"));
        assert!(read(&smf(1, 1, 480, &[&EOT]))
            .unwrap_err()
            .contains("Blank note"));
        // SMPTE timing reads as negative ticks per beat.
        assert!(read(&smf(1, 1, 0xE728, &[&t]))
            .unwrap_err()
            .contains("ticks per beat"));
        // A track whose declared length ends inside an event reads on to the end.
        let mut short = smf(1, 1, 480, &[&t]);
        short[21] -= 2;
        assert!(read(&short).unwrap_err().contains("EOFError"));
    }

    #[test]
    fn meta_events_are_checked_as_mido_checks_them() {
        let ts = |power: u8| {
            read1(&[
                0x00, 0xFF, 0x58, 0x04, 3, power, 24, 8, 0x00, 0x90, 60, 1, 0x01, 0x80, 60, 0,
            ])
        };
        assert_eq!(
            ts(30).unwrap().score.time_signatures[0].denominator,
            1 << 30
        );
        assert!(ts(29).unwrap_err().contains("power of 2"));
        assert!(ts(31).unwrap_err().contains("power of 2"));
        assert!(ts(32).unwrap_err().contains("Bad time signature"));
        assert!(mido_accepts_denominator(2) && !mido_accepts_denominator(29));
        let bad_key = read1(&[0x00, 0xFF, 0x59, 0x02, 8, 0]).unwrap_err();
        assert!(bad_key.contains("KeySignatureError"), "{bad_key}");
        let short_tempo = read1(&[0x00, 0xFF, 0x51, 0x02, 7, 0]).unwrap_err();
        assert!(short_tempo.contains("IndexError"), "{short_tempo}");
        let zero = read1(&[0x00, 0xFF, 0x51, 0x03, 0, 0, 0]).unwrap_err();
        assert!(zero.contains("ZeroDivisionError"), "{zero}");
        // Data bytes above 127 and undefined status bytes fail.
        assert!(read1(&[0x00, 0x90, 60, 200])
            .unwrap_err()
            .contains("above 127"));
        assert!(read1(&[0x00, 0xF4])
            .unwrap_err()
            .contains("undefined status"));
        // Latin-1 names, the last one before the instrument is made.
        let r = read1(&[
            0x00, 0xFF, 0x03, 0x02, b'A', 0xE9, 0x00, 0x90, 60, 1, 0x00, 0xFF, 0x03, 0x01, b'B',
            0x01, 0x80, 60, 0,
        ])
        .unwrap();
        assert_eq!(r.score.tracks[0].name, "B");
        let r = read1(&[
            0x00, 0xFF, 0x03, 0x02, 0xC3, 0xA9, 0x00, 0x90, 60, 1, 0x01, 0x80, 60, 0,
        ])
        .unwrap();
        assert_eq!(r.score.tracks[0].name, "Ã©");
    }

    #[test]
    fn running_status_follows_mido() {
        // Running status after a note-on; after a sysex the data byte is lost and
        // the next bytes read as a sysex length.
        let r = read1(&[0x00, 0x90, 60, 1, 0x01, 60, 0]).unwrap();
        assert_eq!(notes(&r), vec![(0, false, vec![(0, 1, 60, 1)])]);
        let r = read1(&[
            0x00, 0xF0, 0x01, 0xF7, 0x00, 0x05, 0x00, 0x00, 0x90, 60, 1, 0x01, 0x80, 60, 0,
        ])
        .unwrap();
        assert_eq!(r.score.note_count(), 1);
        // A meta event leaves the running status alone.
        let r = read1(&[0x00, 0x90, 60, 1, 0x00, 0xFF, 0x01, 0x00, 0x01, 60, 0]).unwrap();
        assert_eq!(r.score.note_count(), 1);
        // Notes at or past 2^31 fail MidiProcessor's check.
        let far =
            read1(&[0x88, 0x80, 0x80, 0x80, 0x00, 0x90, 60, 1, 0x01, 0x80, 60, 0]).unwrap_err();
        assert!(far.contains("Bad note time"), "{far}");
    }
}

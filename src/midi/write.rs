//! Writing a [`Score`] as a format 1 standard MIDI file.
//!
//! Layout: a conductor track (tempo, time-signature and key-signature meta
//! events), then one MIDI track per [`Track`] holding its name, its program
//! change (none for drums) and its notes as note-on/note-off pairs. Reading
//! the bytes back with [`super::read_bytes`] gives back the same score for
//! scores that satisfy the invariants listed on [`to_bytes`].

use std::path::Path;

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Timing, TrackEvent, TrackEventKind};

use super::{Note, Score, Track};

/// Channels for non-drum tracks, assigned round-robin (channel 10 is skipped).
const MELODIC_CHANNELS: [u8; 15] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15];

/// MIDI channel 10 (index 9), reserved for drums.
const DRUM_CHANNEL: u8 = 9;

/// Largest delta time a MIDI event can carry.
const MAX_DELTA: u64 = 0x0FFF_FFFF;

/// Encodes a score as a format 1 standard MIDI file.
///
/// `read_bytes(&to_bytes(&s)) == s` holds when:
/// - every track has at least one note (tracks without notes are written but
///   dropped again by the reader), notes have `end > start`, pitches and
///   velocities and programs are in MIDI range (velocity 1..=127), and notes
///   are sorted by (start, pitch, end, velocity);
/// - drum tracks have program 0 (no program change is written for drums);
/// - tempos, time signatures and key signatures are sorted, with at most one
///   event of each kind per tick, tempos within 1..=2^24-1 µs, time-signature
///   numerators within 1..=255 and denominators powers of two;
/// - ticks stay within the reader's limits: at most 2^31 and at most
///   100 000 beats (see [`super::MidiError::AbsurdTick`]);
/// - within a track, no note of a pitch lies strictly inside another note of
///   the same pitch (`a.start < b.start && b.end < a.end`). The reader pairs
///   same-pitch note-ons and note-offs first in, first out, so the writer puts
///   such nested notes into extra MIDI tracks (same name, program and channel):
///   every note comes back, but in more than one [`Track`]. Partial overlaps and
///   shared starts or ends stay in one track.
///
/// Out-of-range values are clamped rather than rejected (velocity to 1..=127,
/// pitch and program to 0..=127, tempo to 1..=2^24-1, numerator to 1..=255,
/// sharps to -7..=7); a denominator that is not a power of two is rounded down
/// to one.
///
/// # Panics
///
/// If `score.ticks_per_beat` is 0 or above 32767, which a standard MIDI file
/// cannot express; [`write_file`] reports this as an I/O error instead.
pub fn to_bytes(score: &Score) -> Vec<u8> {
    match encode(score) {
        Ok(bytes) => bytes,
        Err(msg) => panic!("{msg}"),
    }
}

/// Writes a score as a format 1 standard MIDI file (see [`to_bytes`]), atomically
/// ([`crate::io::write_atomic`]: readers never see a partial file). A score whose
/// `ticks_per_beat` is 0 or above 32767 gives an
/// [`std::io::ErrorKind::InvalidInput`] error.
pub fn write_file(score: &Score, path: &Path) -> std::io::Result<()> {
    let bytes =
        encode(score).map_err(|msg| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg))?;
    crate::io::write_atomic(path, &bytes).map_err(|e| std::io::Error::other(format!("{e:#}")))
}

/// An event at an absolute tick with a sort rank for events at equal ticks.
struct Timed<'a> {
    tick: u64,
    rank: u8,
    seq: usize,
    kind: TrackEventKind<'a>,
}

fn encode(score: &Score) -> Result<Vec<u8>, String> {
    let tpb = u16::try_from(score.ticks_per_beat)
        .ok()
        .and_then(u15::try_from)
        .filter(|t| t.as_int() > 0)
        .ok_or_else(|| {
            format!(
                "cannot write MIDI: ticks_per_beat {} is outside 1..=32767",
                score.ticks_per_beat
            )
        })?;
    let mut tracks = Vec::with_capacity(score.tracks.len() + 1);
    tracks.push(conductor(score));
    let mut melodic = 0usize;
    for track in &score.tracks {
        let channel = if track.is_drum {
            DRUM_CHANNEL
        } else {
            melodic += 1;
            MELODIC_CHANNELS[(melodic - 1) % MELODIC_CHANNELS.len()]
        };
        for notes in nesting_free_layers(&track.notes) {
            tracks.push(part(track, &notes, channel));
        }
    }
    let mut smf = midly::Smf::new(Header::new(Format::Parallel, Timing::Metrical(tpb)));
    smf.tracks = tracks;
    let mut out = Vec::new();
    smf.write_std(&mut out)
        .map_err(|e| format!("cannot write MIDI: {e}"))?;
    Ok(out)
}

/// The conductor track: tempo, time-signature and key-signature events.
fn conductor(score: &Score) -> Vec<TrackEvent<'static>> {
    let mut events = Vec::new();
    for (seq, t) in score.tempos.iter().enumerate() {
        let mpq = t.micros_per_quarter.clamp(1, u24::max_value().as_int());
        events.push(Timed {
            tick: t.tick,
            rank: 0,
            seq,
            kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(mpq))),
        });
    }
    for (seq, ts) in score.time_signatures.iter().enumerate() {
        let numerator = ts.numerator.clamp(1, 255) as u8;
        let power = ts.denominator.max(1).ilog2() as u8;
        events.push(Timed {
            tick: ts.tick,
            rank: 1,
            seq,
            kind: TrackEventKind::Meta(MetaMessage::TimeSignature(numerator, power, 24, 8)),
        });
    }
    for (seq, ks) in score.key_signatures.iter().enumerate() {
        events.push(Timed {
            tick: ks.tick,
            rank: 2,
            seq,
            kind: TrackEventKind::Meta(MetaMessage::KeySignature(ks.sharps.clamp(-7, 7), ks.minor)),
        });
    }
    sequence(events)
}

/// Splits a track's notes (in canonical order) into layers in which no note of a
/// pitch lies strictly inside another note of the same pitch; each layer becomes
/// its own MIDI track, so first-in-first-out pairing on reading gives every note
/// back. Almost every track is one layer.
fn nesting_free_layers(notes: &[Note]) -> Vec<Vec<Note>> {
    /// Per pitch: the start of the latest group of equal starts, the largest end of
    /// the notes that started before that group, and the largest end in the group.
    type PitchState = Option<(u64, u64, u64)>;
    let mut sorted = notes.to_vec();
    sorted.sort_unstable_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
    let mut layers: Vec<(Vec<Note>, Vec<PitchState>)> = Vec::new();
    for n in sorted {
        let p = n.pitch.min(127) as usize;
        let fits = |state: &PitchState| match *state {
            None => true,
            Some((group, before, in_group)) => {
                let earlier_max = if group < n.start {
                    before.max(in_group)
                } else {
                    before
                };
                earlier_max <= n.end
            }
        };
        let i = match layers.iter().position(|(_, st)| fits(&st[p])) {
            Some(i) => i,
            None => {
                layers.push((Vec::new(), vec![None; 128]));
                layers.len() - 1
            }
        };
        let (layer, states) = &mut layers[i];
        states[p] = Some(match states[p] {
            Some((group, before, in_group)) if group == n.start => {
                (group, before, in_group.max(n.end))
            }
            Some((_, before, in_group)) => (n.start, before.max(in_group), n.end),
            None => (n.start, 0, n.end),
        });
        layer.push(n);
    }
    layers.into_iter().map(|(layer, _)| layer).collect()
}

/// One instrument track on `channel`: name, program change, notes.
fn part<'a>(track: &'a Track, notes: &[Note], channel: u8) -> Vec<TrackEvent<'a>> {
    let channel = u4::new(channel);
    let mut events = Vec::with_capacity(2 * track.notes.len() + 2);
    if !track.name.is_empty() {
        events.push(Timed {
            tick: 0,
            rank: 0,
            seq: 0,
            kind: TrackEventKind::Meta(MetaMessage::TrackName(track.name.as_bytes())),
        });
    }
    if !track.is_drum {
        events.push(Timed {
            tick: 0,
            rank: 0,
            seq: 1,
            kind: TrackEventKind::Midi {
                channel,
                message: MidiMessage::ProgramChange {
                    program: u7::new(track.program.min(127)),
                },
            },
        });
    }
    // Note-ons go out in canonical note order (the layers keep it) so that
    // first-in-first-out pairing on reading gives back the same notes.
    for (seq, n) in notes.iter().enumerate() {
        let key = u7::new(n.pitch.min(127));
        events.push(Timed {
            tick: n.end,
            rank: 1,
            seq,
            kind: TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOff {
                    key,
                    vel: u7::new(0),
                },
            },
        });
        events.push(Timed {
            tick: n.start,
            rank: 2,
            seq,
            kind: TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn {
                    key,
                    vel: u7::new(n.velocity.clamp(1, 127)),
                },
            },
        });
    }
    sequence(events)
}

/// Orders events by (tick, rank, seq), turns ticks into delta times (with
/// empty text events as fillers for gaps too long for one delta) and ends
/// the track.
fn sequence(mut events: Vec<Timed<'_>>) -> Vec<TrackEvent<'_>> {
    events.sort_by_key(|e| (e.tick, e.rank, e.seq));
    let mut out = Vec::with_capacity(events.len() + 1);
    let mut last = 0u64;
    for e in events {
        let mut delta = e.tick - last;
        while delta > MAX_DELTA {
            out.push(TrackEvent {
                delta: u28::new(MAX_DELTA as u32),
                kind: TrackEventKind::Meta(MetaMessage::Text(b"")),
            });
            delta -= MAX_DELTA;
        }
        out.push(TrackEvent {
            delta: u28::new(delta as u32),
            kind: e.kind,
        });
        last = e.tick;
    }
    out.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{read_bytes, KeySignature, Note, Tempo, TimeSignature};
    use proptest::prelude::*;

    fn note(start: u64, end: u64, pitch: u8, velocity: u8) -> Note {
        Note::new(start, end, pitch, velocity)
    }

    fn sample() -> Score {
        Score {
            ticks_per_beat: 480,
            tempos: vec![
                Tempo {
                    tick: 0,
                    micros_per_quarter: 500_000,
                },
                Tempo {
                    tick: 1920,
                    micros_per_quarter: 400_000,
                },
            ],
            time_signatures: vec![TimeSignature {
                tick: 0,
                numerator: 3,
                denominator: 4,
            }],
            key_signatures: vec![KeySignature {
                tick: 0,
                sharps: -2,
                minor: true,
            }],
            tracks: vec![
                Track {
                    name: "Piano".into(),
                    program: 0,
                    is_drum: false,
                    notes: vec![
                        note(0, 480, 60, 100),
                        note(0, 480, 64, 90),
                        note(480, 960, 60, 80),
                    ],
                },
                Track {
                    name: "Drums".into(),
                    program: 0,
                    is_drum: true,
                    notes: vec![note(0, 10, 36, 127), note(5, 20, 36, 1)],
                },
                Track {
                    name: String::new(),
                    program: 33,
                    is_drum: false,
                    notes: vec![note(100, 300, 40, 64), note(200, 400, 40, 65)],
                },
            ],
        }
    }

    #[test]
    fn round_trip_sample() {
        let s = sample();
        assert_eq!(read_bytes(&to_bytes(&s)).unwrap(), s);
    }

    #[test]
    fn empty_score_round_trips() {
        let s = Score {
            ticks_per_beat: 96,
            ..Score::default()
        };
        assert_eq!(read_bytes(&to_bytes(&s)).unwrap(), s);
    }

    #[test]
    fn nested_same_pitch_notes_go_to_a_second_track_and_keep_their_ends() {
        let mut s = sample();
        s.tracks.truncate(1);
        s.tracks[0].notes = vec![
            note(0, 100, 60, 1),
            note(10, 50, 60, 2),
            note(20, 30, 60, 3),
            note(40, 120, 60, 4),
            note(40, 60, 62, 5),
        ];
        let back = read_bytes(&to_bytes(&s)).unwrap();
        let layers: Vec<Vec<Note>> = back.tracks.iter().map(|t| t.notes.clone()).collect();
        assert_eq!(
            layers,
            vec![
                vec![
                    note(0, 100, 60, 1),
                    note(40, 120, 60, 4),
                    note(40, 60, 62, 5)
                ],
                vec![note(10, 50, 60, 2)],
                vec![note(20, 30, 60, 3)],
            ]
        );
        assert!(back
            .tracks
            .iter()
            .all(|t| t.program == s.tracks[0].program && t.name == s.tracks[0].name));
    }

    #[test]
    fn many_tracks_reuse_channels() {
        let mut s = sample();
        s.tracks = (0..40u8)
            .map(|i| Track {
                name: format!("t{i}"),
                program: i,
                is_drum: i % 7 == 3,
                notes: vec![note(u64::from(i), u64::from(i) + 5, 60 + i, 10)],
            })
            .map(|mut t| {
                if t.is_drum {
                    t.program = 0;
                }
                t
            })
            .collect();
        assert_eq!(read_bytes(&to_bytes(&s)).unwrap(), s);
    }

    #[test]
    fn long_gaps_use_filler_events() {
        let s = Score {
            ticks_per_beat: 32767,
            tracks: vec![Track {
                name: "x".into(),
                program: 1,
                is_drum: false,
                notes: vec![note(0, 1, 60, 1), note(600_000_000, 600_000_001, 61, 2)],
            }],
            ..Score::default()
        };
        assert_eq!(read_bytes(&to_bytes(&s)).unwrap(), s);
    }

    #[test]
    #[should_panic(expected = "ticks_per_beat")]
    fn zero_ticks_per_beat_panics() {
        to_bytes(&Score::default());
    }

    #[test]
    fn write_file_is_atomic_and_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.mid");
        write_file(&sample(), &path).unwrap();
        assert_eq!(crate::midi::read_file(&path).unwrap(), sample());
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.mid")]);
        let err = write_file(&Score::default(), &path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(crate::midi::read_file(&path).unwrap(), sample());
    }

    /// A track of 1..=50 notes where same-pitch notes never overlap.
    fn track_strategy() -> impl Strategy<Value = Track> {
        (
            "[a-zA-Z0-9 é]{0,12}",
            0u8..128,
            any::<bool>(),
            prop::collection::vec((0u64..5000, 1u64..1000, 0u8..128, 1u8..128), 1..=50),
        )
            .prop_map(|(name, program, is_drum, raw)| {
                let mut notes: Vec<Note> = raw
                    .into_iter()
                    .map(|(start, len, pitch, velocity)| note(start, start + len, pitch, velocity))
                    .collect();
                notes.sort_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
                let mut busy_until = [0u64; 128];
                let mut kept = Vec::new();
                for n in notes {
                    let free = &mut busy_until[usize::from(n.pitch)];
                    if kept.is_empty() || n.start >= *free {
                        *free = n.end;
                        kept.push(n);
                    }
                }
                kept.sort_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
                Track {
                    name,
                    program: if is_drum { 0 } else { program },
                    is_drum,
                    notes: kept,
                }
            })
    }

    fn score_strategy() -> impl Strategy<Value = Score> {
        (
            1u32..=32767,
            prop::collection::btree_map(0u64..10_000, 1u32..=0xFF_FFFF, 0..5),
            prop::collection::btree_map(0u64..10_000, (1u32..=255, 0u32..7), 0..5),
            prop::collection::btree_map(0u64..10_000, (-7i8..=7, any::<bool>()), 0..5),
            prop::collection::vec(track_strategy(), 1..=4),
        )
            .prop_map(|(tpb, tempos, sigs, keys, tracks)| Score {
                ticks_per_beat: tpb,
                tempos: tempos
                    .into_iter()
                    .map(|(tick, micros_per_quarter)| Tempo {
                        tick,
                        micros_per_quarter,
                    })
                    .collect(),
                time_signatures: sigs
                    .into_iter()
                    .map(|(tick, (numerator, power))| TimeSignature {
                        tick,
                        numerator,
                        denominator: 1 << power,
                    })
                    .collect(),
                key_signatures: keys
                    .into_iter()
                    .map(|(tick, (sharps, minor))| KeySignature {
                        tick,
                        sharps,
                        minor,
                    })
                    .collect(),
                tracks,
            })
    }

    /// Notes of one pitch that may overlap but never nest: sorted by start,
    /// their ends never decrease.
    fn overlapping_notes() -> impl Strategy<Value = Vec<Note>> {
        prop::collection::vec((0u64..500, 1u64..200, 60u8..63, 1u8..128), 1..=50).prop_map(|raw| {
            let mut notes: Vec<Note> = raw
                .into_iter()
                .map(|(start, len, pitch, velocity)| note(start, start + len, pitch, velocity))
                .collect();
            notes.sort_by_key(|n| (n.start, n.pitch, n.end, n.velocity));
            let mut last_end = [0u64; 128];
            notes.retain(|n| {
                let last = &mut last_end[usize::from(n.pitch)];
                let keep = n.end >= *last;
                if keep {
                    *last = n.end;
                }
                keep
            });
            notes
        })
    }

    proptest! {
        #[test]
        fn round_trip(score in score_strategy()) {
            let back = read_bytes(&to_bytes(&score)).unwrap();
            prop_assert_eq!(back, score);
        }

        #[test]
        fn round_trip_with_overlapping_same_pitch_notes(notes in overlapping_notes()) {
            let score = Score {
                ticks_per_beat: 24,
                tracks: vec![Track {
                    name: "overlaps".into(),
                    program: 1,
                    is_drum: false,
                    notes,
                }],
                ..Score::default()
            };
            let back = read_bytes(&to_bytes(&score)).unwrap();
            prop_assert_eq!(back, score);
        }
    }
}

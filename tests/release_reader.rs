//! Release-mode reading (`Compat::Release`) against the original release's own
//! reader: miditoolkit 0.1.16 on mido 1.2.10 (PyPI, pinned in requirements.txt),
//! run from `.venv` by `tests/reference/miditoolkit_read.py`. The MIDI files are
//! generated here: hand-made cases (program changes mid-track and mid-note, several
//! tracks on one channel, several channels in one track, overlapping notes of one
//! pitch, velocity-0 note-ons, note-offs at the note-on's tick, tempo maps in
//! several tracks), seeded random event streams full of such collisions, and
//! malformed files. Every note (instrument, program, drum flag, track name, pitch,
//! start, end, velocity), the tempo list, the time and key signatures, and whether
//! the file is read at all must agree.

mod common;

use museformer::midi::{self, Compat, Reading, Score};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An event's bytes (status included) at an absolute tick.
type Ev = (u64, Vec<u8>);

fn on(t: u64, ch: u8, pitch: u8, vel: u8) -> Ev {
    (t, vec![0x90 | ch, pitch, vel])
}
fn off(t: u64, ch: u8, pitch: u8) -> Ev {
    (t, vec![0x80 | ch, pitch, 0x40])
}
fn program(t: u64, ch: u8, p: u8) -> Ev {
    (t, vec![0xC0 | ch, p])
}
fn meta(t: u64, kind: u8, data: &[u8]) -> Ev {
    let mut v = vec![0xFF, kind, data.len() as u8];
    v.extend(data);
    (t, v)
}
fn tempo(t: u64, mpq: u32) -> Ev {
    meta(t, 0x51, &mpq.to_be_bytes()[1..])
}
fn name(t: u64, n: &[u8]) -> Ev {
    meta(t, 0x03, n)
}

fn varlen(mut v: u64, out: &mut Vec<u8>) {
    let mut bytes = vec![(v & 0x7F) as u8];
    v >>= 7;
    while v > 0 {
        bytes.push((v & 0x7F) as u8 | 0x80);
        v >>= 7;
    }
    out.extend(bytes.iter().rev());
}

/// A track body: events sorted stably by tick, delta times, end of track.
fn body(mut events: Vec<Ev>) -> Vec<u8> {
    events.sort_by_key(|e| e.0);
    let (mut out, mut last) = (Vec::new(), 0);
    for (t, bytes) in events {
        varlen(t - last, &mut out);
        out.extend(bytes);
        last = t;
    }
    out.extend([0x00, 0xFF, 0x2F, 0x00]);
    out
}

/// A file from track bodies, the header declaring `count` tracks.
fn raw(format: u16, count: u16, tpb: u16, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"MThd".to_vec();
    out.extend(6u32.to_be_bytes());
    out.extend(format.to_be_bytes());
    out.extend(count.to_be_bytes());
    out.extend(tpb.to_be_bytes());
    for b in bodies {
        out.extend(b"MTrk");
        out.extend((b.len() as u32).to_be_bytes());
        out.extend(b);
    }
    out
}

fn smf(tracks: Vec<Vec<Ev>>) -> Vec<u8> {
    let bodies: Vec<Vec<u8>> = tracks.into_iter().map(body).collect();
    raw(1, bodies.len() as u16, 480, &bodies)
}

/// The hand-made cases.
fn cases() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            // The program changes while a note sounds: miditoolkit gives the note
            // the program in force at its note-off.
            "program_change_mid_note",
            smf(vec![vec![
                name(0, b"Keys"),
                program(0, 0, 5),
                on(0, 0, 60, 100),
                on(0, 0, 64, 90),
                program(240, 0, 40),
                off(480, 0, 60),
                on(480, 0, 67, 80),
                program(600, 0, 5),
                off(960, 0, 64),
                off(960, 0, 67),
            ]]),
        ),
        (
            // Two tracks on one channel with their own program state, and one
            // track playing two channels.
            "tracks_share_a_channel",
            smf(vec![
                vec![
                    tempo(0, 500_000),
                    program(0, 1, 33),
                    on(0, 1, 40, 70),
                    off(480, 1, 40),
                ],
                vec![
                    on(0, 1, 40, 71),
                    program(100, 1, 48),
                    off(480, 1, 40),
                    program(0, 2, 25),
                    on(10, 2, 52, 60),
                    off(20, 2, 52),
                    on(20, 9, 36, 100),
                    program(25, 9, 7),
                    off(30, 9, 36),
                ],
            ]),
        ),
        (
            // Overlapping notes of one pitch, a velocity-0 note-on, a note-off at a
            // note-on's tick, a note left open at the end of the track.
            "overlapping_same_pitch",
            smf(vec![vec![
                on(0, 0, 60, 10),
                on(100, 0, 60, 20),
                on(200, 0, 60, 30),
                on(300, 0, 60, 0),
                on(300, 0, 60, 40),
                off(400, 0, 60),
                on(500, 0, 62, 50),
                off(500, 0, 62),
                off(600, 0, 62),
                on(700, 0, 64, 60),
                on(700, 0, 65, 60),
                off(800, 0, 65),
                name(900, b"end"),
            ]]),
        ),
        (
            // Tempo maps in several tracks: a change equal to the last listed is
            // dropped, one at tick 0 in a later track replaces the list.
            "tempo_maps",
            smf(vec![
                vec![
                    tempo(0, 600_000),
                    tempo(960, 400_000),
                    tempo(1920, 400_000),
                    meta(0, 0x58, &[3, 2, 24, 8]),
                    meta(960, 0x58, &[6, 3, 24, 8]),
                    meta(0, 0x59, &[0xFD, 1]),
                ],
                vec![
                    tempo(480, 450_000),
                    meta(0, 0x58, &[4, 2, 24, 8]),
                    on(0, 0, 60, 1),
                    off(2000, 0, 60),
                ],
                vec![tempo(0, 300_000), tempo(5, 310_000)],
            ]),
        ),
        (
            "latin1_names",
            smf(vec![vec![
                name(0, b"Pi\xe9no"),
                on(0, 0, 60, 1),
                name(0, b"\xc3\xa9"),
                off(10, 0, 60),
            ]]),
        ),
    ]
}

/// Files mido or miditoolkit or MidiProcessor's checks may refuse.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let note = body(vec![on(0, 0, 60, 100), off(96, 0, 60)]);
    let one = std::slice::from_ref(&note);
    let good = raw(1, 1, 480, one);
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("cut_in_last_event", good[..good.len() - 1].to_vec()),
        ("cut_in_a_note", good[..good.len() - 6].to_vec()),
        ("cut_in_track_header", good[..18].to_vec()),
        ("more_tracks_declared", raw(1, 2, 480, one)),
        (
            "fewer_tracks_declared",
            raw(1, 1, 480, &[note.clone(), note.clone()]),
        ),
        ("format_2", raw(2, 1, 480, one)),
        ("smpte", raw(1, 1, 0xE728, one)),
        ("zero_tpb", raw(1, 1, 0, one)),
        ("no_tracks", raw(1, 0, 480, &[])),
        ("empty_track", raw(1, 2, 480, &[note.clone(), Vec::new()])),
        ("no_notes", raw(1, 1, 480, &[body(vec![name(0, b"x")])])),
        (
            "data_byte_above_127",
            raw(1, 1, 480, &[body(vec![(0, vec![0x90, 60, 200])])]),
        ),
        (
            "undefined_status",
            raw(1, 1, 480, &[body(vec![(0, vec![0xF4])])]),
        ),
        (
            "sysex_above_127",
            raw(
                1,
                1,
                480,
                &[[body(vec![(0, vec![0xF0, 2, 0x90, 0xF7])]), note.clone()].concat()],
            ),
        ),
        (
            "running_status_after_sysex",
            raw(
                1,
                1,
                480,
                &[[vec![0x00, 0xF0, 0x01, 0xF7, 0x00, 0x05, 0x00], note.clone()].concat()],
            ),
        ),
        (
            "tempo_zero",
            smf(vec![vec![tempo(0, 0), on(0, 0, 60, 1), off(5, 0, 60)]]),
        ),
        (
            "short_tempo",
            smf(vec![vec![
                meta(0, 0x51, &[7, 0]),
                on(0, 0, 60, 1),
                off(5, 0, 60),
            ]]),
        ),
        (
            "bad_key",
            smf(vec![vec![
                meta(0, 0x59, &[8, 0]),
                on(0, 0, 60, 1),
                off(5, 0, 60),
            ]]),
        ),
        (
            "smpte_offset_minutes",
            smf(vec![vec![
                meta(0, 0x54, &[0, 60, 0, 0, 0]),
                on(0, 0, 60, 1),
                off(5, 0, 60),
            ]]),
        ),
        (
            "note_at_2_31",
            smf(vec![vec![on(1 << 31, 0, 60, 1), off((1 << 31) + 5, 0, 60)]]),
        ),
        (
            "note_far_below_2_31",
            smf(vec![vec![
                on((1 << 31) - 10, 0, 60, 1),
                off((1 << 31) - 5, 0, 60),
            ]]),
        ),
    ];
    for power in [0u8, 6, 28, 29, 30, 31, 32] {
        let name: &'static str = Box::leak(format!("time_signature_2^{power}").into_boxed_str());
        out.push((
            name,
            smf(vec![vec![
                meta(0, 0x58, &[3, power, 24, 8]),
                on(0, 0, 60, 1),
                off(5, 0, 60),
            ]]),
        ));
    }
    out.push((
        "time_signature_numerator_0",
        smf(vec![vec![
            meta(0, 0x58, &[0, 2, 24, 8]),
            on(0, 0, 60, 1),
            off(5, 0, 60),
        ]]),
    ));
    let mut trailing = good.clone();
    trailing.extend(b"MTrk\x00\x00\x00\x40\x00\x90");
    out.push(("truncated_chunk_after_the_declared_ones", trailing));
    let mut short = good.clone();
    short[21] -= 2;
    out.push(("declared_length_ends_inside_an_event", short));
    out
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Random files dense in collisions: few channels (drums among them), few
/// pitches, programs changing at any time, many events on one tick, tempo and
/// time-signature changes in any track.
fn random_files(count: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|i| {
            let tracks = 1 + rng.below(4) as usize;
            let tracks = (0..tracks)
                .map(|_| {
                    let mut t = 0u64;
                    let mut events = Vec::new();
                    for _ in 0..(4 + rng.below(40)) {
                        t += rng.pick(&[0, 0, 0, 1, 5, 120, 480]);
                        let ch = rng.pick(&[0, 0, 1, 9]);
                        let pitch = rng.pick(&[60, 60, 61, 62]);
                        let ev = match rng.below(20) {
                            0..=6 => on(t, ch, pitch, rng.pick(&[0, 1, 64, 127])),
                            7..=12 => off(t, ch, pitch),
                            13..=15 => program(t, ch, rng.pick(&[0, 5, 33, 80])),
                            16 => tempo(t, rng.pick(&[500_000, 400_000, 600_000])),
                            17 => meta(t, 0x58, &[rng.pick(&[3, 4, 6]), 2, 24, 8]),
                            18 => name(t, if rng.below(2) == 0 { b"a" } else { b"b" }),
                            _ => (t, vec![0xB0 | ch, 7, 100]),
                        };
                        events.push(ev);
                    }
                    events
                })
                .collect();
            (format!("random_{i:03}"), smf(tracks))
        })
        .collect()
}

/// Runs the reference on the files; one JSON value per file.
fn reference(files: &[PathBuf]) -> Vec<Value> {
    let root = common::root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `just setup` (it installs requirements.txt, with miditoolkit and mido)",
        python.display()
    );
    let out = Command::new(&python)
        .arg(root.join("tests/reference/miditoolkit_read.py"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "the miditoolkit reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values.len(), files.len());
    values
}

/// A note as (start, end, pitch, velocity).
type NoteRow = (u64, u64, u8, u8);

type Instrument = (u8, bool, String, Vec<NoteRow>);

fn instruments(score: &Score) -> Vec<Instrument> {
    score
        .tracks
        .iter()
        .map(|t| {
            let mut notes: Vec<_> = t
                .notes
                .iter()
                .map(|n| (n.start, n.end, n.pitch, n.velocity))
                .collect();
            notes.sort();
            (t.program, t.is_drum, t.name.clone(), notes)
        })
        .collect()
}

fn their_instruments(v: &Value) -> Vec<Instrument> {
    v["instruments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let mut notes: Vec<(u64, u64, u8, u8)> = i["notes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    let n = |k: usize| n[k].as_u64().unwrap();
                    (n(0), n(1), n(2) as u8, n(3) as u8)
                })
                .collect();
            notes.sort();
            (
                i["program"].as_u64().unwrap() as u8,
                i["is_drum"].as_bool().unwrap(),
                i["name"].as_str().unwrap().to_string(),
                notes,
            )
        })
        .collect()
}

/// Differences between our release-mode reading and the reference's.
fn compare(ours: &Reading, theirs: &Value) -> Vec<String> {
    let s = &ours.score;
    let mut bad = Vec::new();
    if theirs["ticks_per_beat"].as_u64() != Some(u64::from(s.ticks_per_beat)) {
        bad.push(format!(
            "ticks per beat {} vs {}",
            s.ticks_per_beat, theirs["ticks_per_beat"]
        ));
    }
    let (a, b) = (instruments(s), their_instruments(theirs));
    if a != b {
        bad.push(format!("instruments\n  ours:   {a:?}\n  theirs: {b:?}"));
    }
    // miditoolkit's list starts with its default 120 bpm at tick 0, which our
    // score leaves out unless a change at tick 0 replaced it.
    let mut tempos: Vec<(u64, f64)> = s.tempos.iter().map(|t| (t.tick, t.bpm())).collect();
    if tempos.first().is_none_or(|t| t.0 != 0) {
        tempos.insert(0, (0, 120.0));
    }
    let their_tempos: Vec<(u64, f64)> = theirs["tempos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            // A string, parsed exactly (serde_json's float parsing may be off by
            // one unit in the last place).
            let bpm = t[1].as_str().unwrap().parse::<f64>().unwrap();
            (t[0].as_u64().unwrap(), bpm)
        })
        .collect();
    if tempos != their_tempos {
        bad.push(format!("tempos {tempos:?} vs {their_tempos:?}"));
    }
    let ts: Vec<(u64, u64, u64)> = s
        .time_signatures
        .iter()
        .map(|t| (t.tick, u64::from(t.numerator), u64::from(t.denominator)))
        .collect();
    let their_ts: Vec<(u64, u64, u64)> = theirs["time_signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t[0].as_u64().unwrap(),
                t[1].as_u64().unwrap(),
                t[2].as_u64().unwrap(),
            )
        })
        .collect();
    if ts != their_ts {
        bad.push(format!("time signatures {ts:?} vs {their_ts:?}"));
    }
    // miditoolkit's key number: the tonic's pitch class, plus 12 for minor.
    let keys: Vec<(u64, i64)> = s
        .key_signatures
        .iter()
        .map(|k| {
            let tonic = (7 * i64::from(k.sharps) + if k.minor { 9 } else { 0 }).rem_euclid(12);
            (k.tick, tonic + if k.minor { 12 } else { 0 })
        })
        .collect();
    let their_keys: Vec<(u64, i64)> = theirs["key_signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k[0].as_u64().unwrap(), k[1].as_i64().unwrap()))
        .collect();
    if keys != their_keys {
        bad.push(format!("key signatures {keys:?} vs {their_keys:?}"));
    }
    bad
}

fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> Vec<PathBuf> {
    files
        .iter()
        .map(|(name, bytes)| common::write(dir, &format!("{name}.mid"), bytes))
        .collect()
}

#[test]
fn release_mode_reads_as_miditoolkit_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, Vec<u8>)> = cases()
        .into_iter()
        .chain(malformed())
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    files.extend(random_files(300));
    let paths = write_all(tmp.path(), &files);
    let theirs = reference(&paths);

    let mut failures = Vec::new();
    let (mut read, mut refused, mut ours_differs) = (0, 0, 0);
    for ((name, bytes), theirs) in files.iter().zip(&theirs) {
        let ours = midi::read_bytes_as(bytes, Compat::Release);
        match (&ours, theirs["ok"].as_bool().unwrap()) {
            (Ok(ours), true) => {
                read += 1;
                for d in compare(ours, theirs) {
                    failures.push(format!("{name}: {d}"));
                }
                // Our own reader on the same file, to show the files tell the two
                // apart (programs at the note-on, first-in-first-out pairing).
                let default = midi::read_bytes(bytes)
                    .map(|s| instruments(&s))
                    .unwrap_or_default();
                let strip = |v: Vec<Instrument>| -> Vec<_> {
                    v.into_iter()
                        .map(|(p, d, _, n)| (if d { 0 } else { p }, d, n))
                        .collect()
                };
                if strip(default) != strip(their_instruments(theirs)) {
                    ours_differs += 1;
                }
            }
            (Err(_), false) => refused += 1,
            (Ok(_), false) => failures.push(format!(
                "{name}: we read it, miditoolkit fails: {}",
                theirs["error"]
            )),
            (Err(e), true) => failures.push(format!("{name}: miditoolkit reads it, we fail: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The set exercises both outcomes and the behaviours where our own reader
    // differs from the release's.
    assert!(read > 250 && refused > 20, "read {read}, refused {refused}");
    assert!(
        ours_differs > 50,
        "only {ours_differs} files tell the readers apart"
    );
}

#[test]
fn the_hand_made_cases_tell_the_readers_apart() {
    // On these files our default reader (program at the note-on, FIFO pairing)
    // gives other notes than miditoolkit: release mode must not fall back on it.
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = cases()
        .into_iter()
        .filter(|(n, _)| {
            [
                "program_change_mid_note",
                "tracks_share_a_channel",
                "overlapping_same_pitch",
            ]
            .contains(n)
        })
        .map(|(n, b)| (n.to_string(), b))
        .collect();
    let theirs = reference(&write_all(tmp.path(), &files));
    for ((name, bytes), theirs) in files.iter().zip(&theirs) {
        let expected = their_instruments(theirs);
        let release = midi::read_bytes_as(bytes, Compat::Release).unwrap();
        assert_eq!(instruments(&release.score), expected, "{name}");
        let programs = |v: &[Instrument]| -> Vec<(u8, Vec<NoteRow>)> {
            v.iter().map(|i| (i.0, i.3.clone())).collect()
        };
        let default = midi::read_bytes(bytes).unwrap();
        assert_ne!(
            programs(&instruments(&default)),
            programs(&expected),
            "{name}: our default reader agrees with miditoolkit, the case tests nothing"
        );
    }
    // The first case: the notes take program 40 and 5, in force at their note-offs.
    let first = &their_instruments(&theirs[0]);
    assert_eq!(
        first.iter().map(|i| (i.0, i.3.len())).collect::<Vec<_>>(),
        vec![(40, 1), (5, 2)]
    );
}

#[test]
fn release_mode_reads_the_default_corpus_as_miditoolkit_does() {
    // Real files (`just corpus` writes them): every one read alike.
    let root = common::root();
    let corpus = root.join("corpora");
    assert!(
        corpus.is_dir(),
        "{} is missing: run `just corpus` first",
        corpus.display()
    );
    let paths = museformer::data::prepare::list_midi_files(&corpus).unwrap();
    assert!(
        paths.len() >= 300,
        "the default corpus has only {} files",
        paths.len()
    );
    let theirs = reference(&paths);
    let mut failures = Vec::new();
    for (path, theirs) in paths.iter().zip(&theirs) {
        match (
            midi::read_file_as(path, Compat::Release),
            theirs["ok"].as_bool().unwrap(),
        ) {
            (Ok(ours), true) => failures.extend(
                compare(&ours, theirs)
                    .into_iter()
                    .map(|d| format!("{}: {d}", path.display())),
            ),
            (Err(_), false) => {}
            (ours, _) => failures.push(format!(
                "{}: ours {:?}, miditoolkit {}",
                path.display(),
                ours.map(|r| r.score.note_count()),
                theirs
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! Bad MIDI input gives a clean, one-line error of the right kind, never a
//! panic: truncated and garbage data, unsupported headers, absurd ticks and
//! invalid meta events.

use museformer::midi::{read_bytes, read_file, to_bytes, MidiError, Note, Score, Track};

/// A header chunk: format, track count, division word.
fn header(format: u16, tracks: u16, division: u16) -> Vec<u8> {
    let mut out = b"MThd\0\0\0\x06".to_vec();
    out.extend_from_slice(&format.to_be_bytes());
    out.extend_from_slice(&tracks.to_be_bytes());
    out.extend_from_slice(&division.to_be_bytes());
    out
}

/// A track chunk around raw event bytes (end of track appended).
fn track(events: &[u8]) -> Vec<u8> {
    let mut body = events.to_vec();
    body.extend_from_slice(&[0x00, 0xFF, 0x2F, 0x00]);
    let mut out = b"MTrk".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A small valid file: one note at 96 ticks per beat.
fn valid() -> Vec<u8> {
    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0]));
    bytes
}

/// Deterministic pseudo-random bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Reads bytes that must fail, checking the message is one non-empty line.
fn fail(bytes: &[u8]) -> MidiError {
    let err = read_bytes(bytes).expect_err("bad input was accepted");
    assert_one_line(&err);
    err
}

fn assert_one_line(err: &MidiError) {
    let msg = err.to_string();
    assert!(!msg.is_empty(), "empty message for {err:?}");
    assert!(!msg.contains('\n'), "multi-line message: {msg:?}");
}

#[test]
fn the_valid_base_file_reads() {
    let score = read_bytes(&valid()).unwrap();
    assert_eq!(score.note_count(), 1);
    assert_eq!(score.ticks_per_beat, 96);
}

#[test]
fn truncated_file_is_a_parse_error() {
    let bytes = valid();
    assert!(matches!(
        fail(&bytes[..bytes.len() / 2]),
        MidiError::Parse(_)
    ));

    // A bigger file written by the library, cut in half and at other points.
    let score = Score {
        ticks_per_beat: 480,
        tracks: vec![Track {
            name: "piano".into(),
            program: 0,
            is_drum: false,
            notes: (0..64)
                .map(|i| Note {
                    start: i * 120,
                    end: i * 120 + 100,
                    pitch: 40 + (i % 40) as u8,
                    velocity: 80,
                })
                .collect(),
        }],
        ..Score::default()
    };
    let bytes = to_bytes(&score);
    assert_eq!(read_bytes(&bytes).unwrap(), score);
    for cut in [bytes.len() / 2, bytes.len() / 3, bytes.len() - 1, 20, 9] {
        let err = fail(&bytes[..cut]);
        assert!(matches!(err, MidiError::Parse(_)), "cut {cut}: {err}");
    }
}

#[test]
fn random_bytes_are_a_parse_error() {
    for seed in 0..20 {
        let err = fail(&noise(seed, 1000));
        assert!(matches!(err, MidiError::Parse(_)), "{err}");
    }
}

#[test]
fn empty_file_is_a_parse_error() {
    assert!(matches!(fail(&[]), MidiError::Parse(_)));
    // A header chunk with no room for its fields.
    assert!(matches!(fail(b"MThd\0\0\0\x06\0"), MidiError::Parse(_)));
}

#[test]
fn smpte_timing_is_rejected() {
    // -25 frames per second, 40 ticks per frame.
    let mut bytes = header(1, 1, 0xE728);
    bytes.extend(track(&[0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0]));
    let err = fail(&bytes);
    assert!(matches!(err, MidiError::Smpte), "{err}");
    assert_eq!(err.to_string(), "SMPTE timecode timing is not supported");
}

#[test]
fn format_2_is_rejected() {
    let mut bytes = header(2, 2, 96);
    bytes.extend(track(&[0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0]));
    bytes.extend(track(&[0x00, 0x90, 62, 100, 0x60, 0x80, 62, 0]));
    let err = fail(&bytes);
    assert!(matches!(err, MidiError::Format2), "{err}");
    assert_eq!(
        err.to_string(),
        "format 2 (sequential tracks) is not supported"
    );
}

#[test]
fn zero_ticks_per_beat_is_rejected() {
    let mut bytes = header(0, 1, 0);
    bytes.extend(track(&[0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0]));
    assert!(matches!(fail(&bytes), MidiError::ZeroTicksPerBeat));
}

#[test]
fn absurd_ticks_are_rejected() {
    // Largest delta time (2^28 - 1 ticks) at 96 ticks per beat: past MAX_BEATS.
    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0xFF, 0xFF, 0xFF, 0x7F, 0x90, 60, 100]));
    match fail(&bytes) {
        MidiError::AbsurdTick {
            tick,
            ticks_per_beat,
        } => {
            assert_eq!(tick, (1 << 28) - 1);
            assert_eq!(ticks_per_beat, 96);
        }
        other => panic!("{other:?}"),
    }

    // At 32767 ticks per beat MAX_BEATS is past 2^31 ticks: nine maximal
    // deltas pass 2^31.
    let mut events = Vec::new();
    for _ in 0..9 {
        events.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x01, 0x00]);
    }
    let mut bytes = header(1, 1, 0x7FFF);
    bytes.extend(track(&events));
    match fail(&bytes) {
        MidiError::AbsurdTick { tick, .. } => assert!(tick > 1 << 31),
        other => panic!("{other:?}"),
    }

    // Far but legal: 2^28 - 1 ticks at 32767 ticks per beat (~8192 beats).
    let mut bytes = header(1, 1, 0x7FFF);
    bytes.extend(track(&[
        0x00, 0x90, 60, 100, 0xFF, 0xFF, 0xFF, 0x7F, 0x80, 60, 0,
    ]));
    assert_eq!(read_bytes(&bytes).unwrap().end_tick(), (1 << 28) - 1);
}

/// An invalid key signature changes no note: it is skipped with a warning naming
/// it, and the song is read (a mode byte of 255 rejected whole songs before).
#[test]
fn invalid_key_signatures_are_skipped_with_a_warning() {
    for (sharps, mode) in [(8u8, 0u8), (0xF8, 1), (0x7F, 0), (2, 2), (0, 0xFF)] {
        let mut bytes = header(1, 1, 96);
        bytes.extend(track(&[
            0x00, 0xFF, 0x59, 0x02, sharps, mode, 0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0,
        ]));
        let reading = museformer::midi::read_bytes_warned(&bytes).unwrap();
        assert!(reading.score.key_signatures.is_empty());
        assert_eq!(reading.score.tracks[0].notes.len(), 1);
        assert_eq!(reading.warnings.len(), 1, "{:?}", reading.warnings);
        let w = &reading.warnings[0];
        assert!(
            w.contains("skipped an invalid key signature at tick 0")
                && w.contains(&format!("{} sharps, mode {mode}", sharps as i8)),
            "{w}"
        );
    }
    // The extremes are fine.
    for (sharps, mode) in [(7u8, 0u8), (0xF9, 1)] {
        let mut bytes = header(1, 1, 96);
        bytes.extend(track(&[0x00, 0xFF, 0x59, 0x02, sharps, mode]));
        let score = read_bytes(&bytes).unwrap();
        assert_eq!(score.key_signatures[0].sharps, sharps as i8);
        assert_eq!(score.key_signatures[0].minor, mode == 1);
    }
}

#[test]
fn invalid_tempo_and_time_signature_are_rejected() {
    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0x10, 0xFF, 0x51, 0x03, 0, 0, 0]));
    assert!(matches!(fail(&bytes), MidiError::ZeroTempo { tick: 16 }));

    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0x00, 0xFF, 0x58, 0x04, 0, 2, 24, 8]));
    assert!(matches!(
        fail(&bytes),
        MidiError::InvalidTimeSignature { numerator: 0, .. }
    ));

    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0x00, 0xFF, 0x58, 0x04, 4, 40, 24, 8]));
    assert!(matches!(
        fail(&bytes),
        MidiError::InvalidTimeSignature {
            denominator_power: 40,
            ..
        }
    ));
}

#[test]
fn malformed_event_is_a_parse_error() {
    // Running status with no status byte before it.
    let mut bytes = header(1, 1, 96);
    bytes.extend(track(&[0x00, 60, 100]));
    assert!(matches!(fail(&bytes), MidiError::Parse(_)));
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.mid");
    let err = read_file(&path).expect_err("missing file was read");
    assert_one_line(&err);
    assert!(matches!(err, MidiError::Io { .. }));
    assert!(err.to_string().contains("missing.mid"));
}

#[test]
fn corrupted_files_never_panic() {
    let base = valid();
    for seed in 0..2000u64 {
        let mut bytes = base.clone();
        let flips = noise(seed, 6);
        for pair in flips.chunks(2) {
            let at = 8 + usize::from(pair[0]) % (bytes.len() - 8);
            bytes[at] = pair[1];
        }
        if let Err(err) = read_bytes(&bytes) {
            assert_one_line(&err);
        }
    }
}

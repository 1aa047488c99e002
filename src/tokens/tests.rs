//! Unit tests pinning the REMIGEN2 facts (grid rounding, tables, ids, orders) and
//! the encoder and decoder on hand-made pieces.

use super::vocab::*;
use super::*;
use crate::midi::{Note, Score, Tempo, TimeSignature, Track};

fn note(start: u64, end: u64, pitch: u8, velocity: u8) -> Note {
    Note::new(start, end, pitch, velocity)
}

fn track(program: u8, is_drum: bool, notes: Vec<Note>) -> Track {
    Track {
        name: String::new(),
        program,
        is_drum,
        notes,
    }
}

fn text(score: &Score, opts: &EncodeOptions) -> String {
    to_text(&encode(score, opts).unwrap())
}

#[test]
fn grid_rounds_half_to_even() {
    let v = Vocab::new(12);
    // 480 ticks per beat: 40 ticks per position.
    assert_eq!(v.ticks_to_positions(20, 480), 0); // 0.5 -> 0
    assert_eq!(v.ticks_to_positions(60, 480), 2); // 1.5 -> 2
    assert_eq!(v.ticks_to_positions(100, 480), 2); // 2.5 -> 2
    assert_eq!(v.ticks_to_positions(101, 480), 3);
    assert_eq!(v.ticks_to_positions(479, 480), 12);
    let v16 = Vocab::new(16);
    assert_eq!(v16.ticks_to_positions(15, 480), 0);
    assert_eq!(v16.ticks_to_positions(45, 480), 2);
}

#[test]
fn duration_tables_follow_the_construction() {
    let v = Vocab::new(12);
    assert_eq!(v.duration_positions(0), 0);
    assert_eq!(v.duration_positions(11), 11);
    assert_eq!(v.duration_positions(12), 12);
    assert_eq!(v.duration_positions(13), 14);
    assert_eq!(v.duration_positions(24), 36);
    assert_eq!(v.duration_positions(95), 12 * 127 + 11 * 128);
    assert_eq!(v.duration_id(13), 12); // floor bucket
    assert_eq!(v.duration_id(14), 13);
    assert_eq!(v.duration_id(3059), 95);
    assert_eq!(v.duration_id(1_000_000), 95); // past the end: the last id
    let v16 = Vocab::new(16);
    assert_eq!(v16.duration_positions(17), 18);
    assert_eq!(v16.duration_positions(127), 3952);
    assert_eq!(v16.duration_id(47), 31);
    assert_eq!(v16.duration_id(51), 32);
    assert_eq!(v16.duration_id(4080), 127);
}

#[test]
fn tempo_ids() {
    assert_eq!(tempo_id(120.0), 35);
    assert_eq!(tempo_id(16.0), 0);
    assert_eq!(tempo_id(5.0), 0);
    assert_eq!(tempo_id(256.0), 48);
    assert_eq!(tempo_id(900.0), 48);
    assert_eq!(tempo_id(f64::NAN), 35);
    for id in 0..NUM_TEMPOS {
        let micros = (60_000_000.0 / tempo_bpm(id)).round();
        assert_eq!(
            tempo_id(60_000_000.0 / micros),
            id,
            "tempo id {id} survives a MIDI round trip"
        );
    }
}

#[test]
fn time_signature_table_and_reduction() {
    let table = time_signatures();
    assert_eq!(table.len(), 254);
    assert_eq!(table[0], (1, 1));
    assert_eq!(time_signature_id(4, 4), Some(9));
    assert_eq!(time_signature_id(3, 4), Some(8));
    assert_eq!(time_signature_id(6, 8), Some(19));
    assert_eq!(reduce_time_signature(9, 4), (3, 4));
    assert_eq!(reduce_time_signature(5, 2), (1, 2));
    assert_eq!(reduce_time_signature(6, 128), (3, 64));
    assert_eq!(time_signature_id(1, 128), None);
    assert_eq!(time_signature_id(3, 5), None);
}

#[test]
fn velocity_and_pitch_ids() {
    assert_eq!(velocity_id(127), 31);
    assert_eq!(velocity_id(3), 0);
    assert_eq!(velocity_id(64), 16);
    assert_eq!(velocity_id(velocity_value(0)), 0);
    let s = Score {
        ticks_per_beat: 4,
        tracks: vec![
            track(0, true, vec![note(0, 1, 36, 100)]),
            track(5, false, vec![note(0, 1, 60, 100)]),
        ],
        ..Score::default()
    };
    assert_eq!(
        text(&s, &EncodeOptions::default()),
        "s-9 t-35 o-0 i-5 p-60 d-3 v-25 i-128 p-164 d-3 v-25 b-1"
    );
}

#[test]
fn vocabulary_round_trips_and_has_fairseq_form() {
    for r in [12, 16] {
        let v = Vocab::new(r);
        let tokens = v.tokens();
        assert_eq!(tokens.len() + 4, v.len());
        for (i, t) in tokens.iter().enumerate() {
            let id = v.id(*t);
            assert_eq!(id as usize, i + 4);
            assert_eq!(v.token(id), Some(*t));
            assert_eq!(v.parse(&t.to_string()), Ok(*t));
        }
        assert_eq!(v.token(0), None);
        assert_eq!(v.symbol(2), "</s>");
        let dict = v.to_fairseq();
        assert!(dict.starts_with("b-1 1\ns-0 1\n"));
        assert_eq!(dict.lines().count(), tokens.len());
        assert!(v.parse(&format!("o-{}", 8 * r)).is_err());
        assert!(v.parse(&format!("o-{}", 8 * r - 1)).is_ok());
    }
    let v = Vocab::new(12);
    assert_eq!(v.len(), 4 + 1 + 254 + 49 + 96 + 129 + 256 + 96 + 32);
    assert!(v.parse("b-0").is_err());
    assert!(v.parse("x-1").is_err());
    assert!(v.parse("p-").is_err());
    assert!(v.parse("p-256").is_err());
}

/// Two bars of 4/4 at 100 bpm, 480 ticks per beat (40 ticks per position).
fn two_bar_piece() -> Score {
    Score {
        ticks_per_beat: 480,
        tempos: vec![Tempo {
            tick: 0,
            micros_per_quarter: 600_000,
        }],
        tracks: vec![
            track(
                0,
                false,
                vec![
                    note(0, 480, 60, 80),
                    note(0, 960, 64, 80),
                    note(1920, 2400, 67, 90),
                ],
            ),
            track(
                80,
                false,
                vec![note(0, 240, 72, 100), note(240, 480, 74, 100)],
            ),
        ],
        ..Score::default()
    }
}

#[test]
fn encodes_a_hand_made_piece() {
    let s = two_bar_piece();
    // 100 bpm: round(log2(100/16) * 12) = round(31.73) = 32.
    let plain = "s-9 t-32 o-0 i-0 p-64 d-18 v-20 p-60 d-12 v-20 i-80 p-72 d-6 v-25 o-6 i-80 p-74 d-6 v-25 b-1 \
                 s-9 t-32 o-0 i-0 p-67 d-12 v-22 b-1";
    assert_eq!(text(&s, &EncodeOptions::default()), plain);
    let lmd6 = EncodeOptions {
        ignore_ts: true,
        inst_order: InstrumentOrder::Lmd6,
        ..EncodeOptions::default()
    };
    assert_eq!(
        text(&s, &lmd6),
        "t-32 o-0 i-80 p-72 d-6 v-25 i-0 p-64 d-18 v-20 p-60 d-12 v-20 o-6 i-80 p-74 d-6 v-25 b-1 \
         t-32 o-0 i-0 p-67 d-12 v-22 b-1"
    );
}

#[test]
fn notes_sort_by_ids_descending_and_duplicates_stay() {
    let s = Score {
        ticks_per_beat: 12,
        tracks: vec![track(
            0,
            false,
            vec![
                note(0, 1, 60, 10),
                note(0, 2, 60, 10),
                note(0, 1, 60, 90),
                note(0, 1, 60, 90),
            ],
        )],
        ..Score::default()
    };
    assert_eq!(
        text(&s, &EncodeOptions::default()),
        "s-9 t-35 o-0 i-0 p-60 d-2 v-2 p-60 d-1 v-22 p-60 d-1 v-22 p-60 d-1 v-2 b-1"
    );
}

#[test]
fn empty_bars_are_removed_at_the_start_and_kept_in_the_middle() {
    // Notes in bars 2 and 4 (0-based) of 4/4 at 12 ticks per beat (48 ticks a bar).
    let s = Score {
        ticks_per_beat: 12,
        tempos: vec![
            Tempo {
                tick: 0,
                micros_per_quarter: 500_000,
            },
            Tempo {
                tick: 60,
                micros_per_quarter: 1_000_000,
            },
        ],
        tracks: vec![track(
            0,
            false,
            vec![note(96, 100, 60, 64), note(192, 200, 62, 64)],
        )],
        ..Score::default()
    };
    let opts = EncodeOptions {
        ignore_ts: true,
        ..EncodeOptions::default()
    };
    // The first kept bar carries the tempo in force there (60 bpm from tick 60).
    assert_eq!(
        text(&s, &opts),
        "t-23 o-0 i-0 p-60 d-4 v-16 b-1 t-23 b-1 t-23 o-0 i-0 p-62 d-8 v-16 b-1"
    );
    let keep = EncodeOptions {
        remove_empty_bars: false,
        ..opts
    };
    assert_eq!(
        text(&s, &keep),
        "t-35 b-1 t-35 b-1 t-23 o-0 i-0 p-60 d-4 v-16 b-1 t-23 b-1 t-23 o-0 i-0 p-62 d-8 v-16 b-1"
    );
}

#[test]
fn time_signature_changes_take_effect_at_the_next_bar() {
    // 3/4 from tick 0, a change to 4/4 in the middle of the second bar.
    let s = Score {
        ticks_per_beat: 12,
        time_signatures: vec![
            TimeSignature {
                tick: 0,
                numerator: 3,
                denominator: 4,
            },
            TimeSignature {
                tick: 48,
                numerator: 4,
                denominator: 4,
            },
        ],
        tracks: vec![track(
            0,
            false,
            vec![
                note(0, 1, 60, 64),
                note(36, 37, 60, 64),
                note(72, 73, 60, 64),
                note(120, 121, 60, 64),
            ],
        )],
        ..Score::default()
    };
    // Bars start at 0 (3/4, 36 positions), 36 (3/4: the change at 48 is inside it),
    // 72 (4/4, 48 positions) and 120.
    assert_eq!(
        text(&s, &EncodeOptions::default()),
        "s-8 t-35 o-0 i-0 p-60 d-1 v-16 b-1 s-8 t-35 o-0 i-0 p-60 d-1 v-16 b-1 \
         s-9 t-35 o-0 i-0 p-60 d-1 v-16 b-1 s-9 t-35 o-0 i-0 p-60 d-1 v-16 b-1"
    );
}

#[test]
fn reduced_time_signatures_set_the_bar_length() {
    // 9/4 reduces to 3/4: bars of 36 positions, so a note at beat 4 is in bar 2.
    let s = Score {
        ticks_per_beat: 12,
        time_signatures: vec![TimeSignature {
            tick: 0,
            numerator: 9,
            denominator: 4,
        }],
        tracks: vec![track(
            0,
            false,
            vec![note(0, 1, 60, 64), note(48, 49, 60, 64)],
        )],
        ..Score::default()
    };
    assert_eq!(
        text(&s, &EncodeOptions::default()),
        "s-8 t-35 o-0 i-0 p-60 d-1 v-16 b-1 s-8 t-35 o-12 i-0 p-60 d-1 v-16 b-1"
    );
}

#[test]
fn encoder_errors() {
    let empty = Score {
        ticks_per_beat: 480,
        ..Score::default()
    };
    assert_eq!(
        encode(&empty, &EncodeOptions::default()),
        Err(EncodeError::NoNotes)
    );
    let mut s = two_bar_piece();
    s.time_signatures.push(TimeSignature {
        tick: 0,
        numerator: 1,
        denominator: 128,
    });
    assert_eq!(
        encode(&s, &EncodeOptions::default()),
        Err(EncodeError::UnsupportedTimeSignature(1, 128))
    );
    let mut far = two_bar_piece();
    far.tracks[0]
        .notes
        .push(note(480 * 4 * 20_000, 480 * 4 * 20_000 + 1, 60, 60));
    assert_eq!(
        encode(&far, &EncodeOptions::default()),
        Err(EncodeError::TooManyBars(10_000))
    );
    let mut short = two_bar_piece();
    short.time_signatures.push(TimeSignature {
        tick: 0,
        numerator: 1,
        denominator: 64,
    });
    assert_eq!(
        encode(&short, &EncodeOptions::default()),
        Err(EncodeError::BarTooShort(1, 64))
    );
}

#[test]
fn decode_inverts_encode() {
    let v = Vocab::new(12);
    let opts = EncodeOptions::default();
    let toks = encode(&two_bar_piece(), &opts).unwrap();
    let decoded = decode(&toks, &v).unwrap();
    assert_eq!(decoded.ticks_per_beat, 480);
    assert_eq!(encode(&decoded, &opts).unwrap(), toks);
    let bytes = crate::midi::to_bytes(&decoded);
    let reread = crate::midi::read_bytes(&bytes).unwrap();
    assert_eq!(encode(&reread, &opts).unwrap(), toks);
}

#[test]
fn decode_names_the_first_bad_token() {
    let v = Vocab::new(12);
    let err = parse_tokens("s-9 t-35 o-0 i-0 p-60 q-1 b-1", &v).unwrap_err();
    assert_eq!((err.position, err.token.as_str()), (6, "q-1"));
    let cases = [
        (
            "s-9 t-35 o-0 p-60 d-1 v-1 b-1",
            4,
            "expected i- after a position",
        ),
        (
            "t-35 o-4 i-0 p-60 d-1 v-1 o-2 i-0 p-60 d-1 v-1 b-1",
            7,
            "positions must increase within a bar",
        ),
        (
            "t-35 o-50 i-0 p-60 d-1 v-1 b-1",
            2,
            "position lies beyond the end of the bar",
        ),
        (
            "t-35 o-0 i-0 p-60 d-1 b-1",
            6,
            "expected v- after a duration",
        ),
        (
            "t-35 o-0 i-0 p-60 d-1 v-1",
            6,
            "the sequence ends inside a bar (no closing b-1)",
        ),
    ];
    for (text, position, reason) in cases {
        let toks = parse_tokens(text, &v).unwrap();
        let err = check_grammar(&toks, &v).unwrap_err();
        assert_eq!(
            (err.position, err.reason.as_str()),
            (position, reason),
            "{text}"
        );
    }
}

fn release(opts: EncodeOptions) -> EncodeOptions {
    EncodeOptions {
        compat: crate::midi::Compat::Release,
        ..opts
    }
}

#[test]
fn release_mode_lets_the_last_listed_tempo_at_a_position_win() {
    let tempo = |tick, micros_per_quarter| Tempo {
        tick,
        micros_per_quarter,
    };
    // Ticks 1900 and 1910 of 480 per beat both fall on position 48 (of 12 per
    // beat), the first of bar 2. miditoolkit lists the changes of two tracks one
    // track after the other, so the later tick can come first; a change past the
    // last onset comes in between.
    let mut s = two_bar_piece();
    s.tempos = vec![
        tempo(0, 600_000),
        tempo(1910, 500_000),
        tempo(9600, 300_000),
        tempo(1900, 400_000),
    ];
    // The release: 150 bpm (t-39), listed last at position 48.
    let theirs = text(&s, &release(EncodeOptions::default()));
    assert!(theirs.contains("b-1 s-9 t-39 o-0"), "{theirs}");
    // Sorted by tick, as our reader keeps them: 120 bpm (t-35) in both modes.
    s.tempos.sort_by_key(|t| t.tick);
    let ours = text(&s, &EncodeOptions::default());
    assert!(ours.contains("b-1 s-9 t-35 o-0"), "{ours}");
    assert_eq!(text(&s, &release(EncodeOptions::default())), ours);
    assert_eq!(ours.replace("t-35", "t-39"), theirs);
}

#[test]
fn release_mode_checks_only_the_time_signatures_it_keeps() {
    // An unsupported signature after the last onset, and one replaced on its own
    // position: the release never looks them up.
    let mut s = two_bar_piece();
    s.tracks.truncate(1);
    s.time_signatures = vec![
        TimeSignature {
            tick: 0,
            numerator: 1,
            denominator: 128,
        },
        TimeSignature {
            tick: 10,
            numerator: 4,
            denominator: 4,
        },
        TimeSignature {
            tick: 1920 * 4,
            numerator: 1,
            denominator: 128,
        },
    ];
    assert_eq!(
        encode(&s, &EncodeOptions::default()),
        Err(EncodeError::UnsupportedTimeSignature(1, 128))
    );
    let plain = two_bar_piece();
    let mut one = plain.clone();
    one.tracks.truncate(1);
    assert_eq!(
        text(&s, &release(EncodeOptions::default())),
        text(&one, &EncodeOptions::default())
    );
    s.time_signatures[1].tick = 1920;
    assert_eq!(
        encode(&s, &release(EncodeOptions::default())),
        Err(EncodeError::UnsupportedTimeSignature(1, 128))
    );
}

#[test]
fn release_mode_fails_where_the_release_fails() {
    let lmd6 = EncodeOptions {
        inst_order: InstrumentOrder::Lmd6,
        ..EncodeOptions::default()
    };
    let mut s = two_bar_piece();
    s.tracks[0].program = 33;
    assert!(encode(&s, &lmd6).is_ok());
    assert_eq!(
        encode(&s, &release(lmd6)),
        Err(EncodeError::NotInLmd6Order(33))
    );
    let drums = Score {
        ticks_per_beat: 480,
        tracks: vec![track(0, true, vec![note(0, 100, 36, 90)])],
        ..Score::default()
    };
    let key = EncodeOptions {
        normalize_key: true,
        ..EncodeOptions::default()
    };
    assert_eq!(text(&drums, &key), "s-9 t-35 o-0 i-128 p-164 d-2 v-22 b-1");
    assert_eq!(
        encode(&drums, &release(key)),
        Err(EncodeError::KeyOfDrumsOnly)
    );
    // Otherwise both modes write the same tokens.
    let p = two_bar_piece();
    for opts in [lmd6, key, EncodeOptions::default()] {
        assert_eq!(text(&p, &opts), text(&p, &release(opts)));
    }
}

#[test]
fn compat_is_left_out_of_the_serialized_options_when_ours() {
    let ours = serde_json::to_string(&EncodeOptions::default()).unwrap();
    assert!(!ours.contains("compat"), "{ours}");
    let theirs = serde_json::to_string(&release(EncodeOptions::default())).unwrap();
    assert!(theirs.contains(r#""compat":"release""#), "{theirs}");
    let back: EncodeOptions = serde_yaml::from_str("compat: release").unwrap();
    assert_eq!(back, release(EncodeOptions::default()));
}

//! Structure statistics on small hand-made inputs: exact values through the whole
//! pipeline (MIDI → normalization → tokens → bar sets → L_t → CSV), and bad input:
//! missing, empty and mixed folders, songs without the chosen instrument or shorter
//! than an interval, inputs on different grids. Every case ends in a clear message
//! or a counted skip, and no output holds NaN.

mod common;

use common::assert_contains;
use museformer::cli::stats::{run, StatsCommand};
use museformer::data::{DatasetConfig, Split};
use museformer::midi::{to_bytes, Note, Score, Track};
use museformer::structure::commands::ReadArgs;
use museformer::structure::input::{self, InputKind, LoadOptions};
use museformer::structure::InstrumentSelection;
use std::path::Path;

const TPB: u64 = 480;

/// A quarter note at `beat` (0-based, counted over the whole piece).
fn quarter(beat: u64, pitch: u8) -> Note {
    Note {
        start: beat * TPB,
        end: (beat + 1) * TPB,
        pitch,
        velocity: 80,
    }
}

/// A 4/4 piece whose melody plays the given bars (each a list of (beat in bar,
/// pitch) quarter notes), with a piano part that changes every bar.
fn piece(bars: &[&[(u64, u8)]]) -> Vec<u8> {
    let mut melody = Track {
        name: "melody".into(),
        program: 0,
        ..Track::default()
    };
    let mut piano = Track {
        name: "piano".into(),
        program: 0,
        ..Track::default()
    };
    for (b, notes) in bars.iter().enumerate() {
        let b = b as u64;
        melody.notes.extend(
            notes
                .iter()
                .map(|&(beat, pitch)| quarter(4 * b + beat, pitch)),
        );
        piano.notes.push(quarter(4 * b + 3, 36 + b as u8));
    }
    melody.notes.sort();
    let score = Score {
        ticks_per_beat: TPB as u32,
        tracks: vec![melody, piano],
        ..Score::default()
    };
    to_bytes(&score)
}

/// Bars A = {C at beat 0, E at beat 1} and B = {C at beat 0, G at beat 1}:
/// l(A, B) = 1/3.
const A: &[(u64, u8)] = &[(0, 60), (1, 64)];
const B: &[(u64, u8)] = &[(0, 60), (1, 67)];

fn options(max_interval: usize) -> LoadOptions {
    LoadOptions {
        max_interval,
        selection: InstrumentSelection::Auto,
        split: None,
        data: input::data_config(None).expect("the built-in default dataset file parses"),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn err_text(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

#[test]
fn a_hand_made_midi_folder_gives_exact_interval_means() {
    let dir = tempfile::tempdir().unwrap();
    // ABAB: t=1: three pairs of 1/3; t=2: two identical pairs; t=3: one pair of 1/3.
    write(dir.path(), "abab.mid", &piece(&[A, B, A, B]));
    // AA: t=1: one identical pair. A duplicate file is counted once.
    write(dir.path(), "aa.mid", &piece(&[A, A]));
    write(dir.path(), "aa_copy.mid", &piece(&[A, A]));
    // One bar: skipped (fewer than 2 bars).
    write(dir.path(), "one.mid", &piece(&[A]));
    // Not MIDI: skipped with its reason.
    write(dir.path(), "broken.mid", b"not a midi file");
    let c = input::load(dir.path(), &options(5)).unwrap();
    assert_eq!(c.kind, InputKind::Midi);
    let d = &c.distribution;
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    // t=1: (1/3 + 1/3 + 1/3 + 1) / 4 = 1/2.
    assert!(close(d.mean(1).unwrap(), 0.5), "{:?}", d.mean(1));
    assert_eq!(d.interval(1).unwrap().pairs, 4);
    assert_eq!(d.mean(2), Some(1.0));
    assert!(close(d.mean(3).unwrap(), 1.0 / 3.0));
    assert_eq!((d.mean(4), d.interval(4).unwrap().pairs), (None, 0));
    assert_eq!(
        (
            d.counts.songs,
            d.counts.songs_used,
            d.counts.skipped_one_bar
        ),
        (3, 2, 1)
    );
    let mut reasons: Vec<String> = c
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.file, s.reason))
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], "aa_copy.mid: duplicate of aa.mid");
    assert!(reasons[1].starts_with("broken.mid: "), "{reasons:?}");

    // Piano only: no song has instrument 25 (guitar); every song is a counted skip.
    let guitar = LoadOptions {
        selection: InstrumentSelection::Instrument(25),
        ..options(5)
    };
    let g = input::load(dir.path(), &guitar).unwrap();
    assert_eq!(
        (
            g.distribution.counts.skipped_no_notes,
            g.distribution.total_pairs()
        ),
        (3, 0)
    );
    // Everything non-drum: the piano changes every bar, so bars differ more.
    let pitched = LoadOptions {
        selection: InstrumentSelection::Pitched,
        ..options(5)
    };
    let p = input::load(dir.path(), &pitched).unwrap();
    // ABAB with piano: bars A+p0, B+p1, A+p2, B+p3: t=2 now shares 2 of 4 notes.
    assert!(close(p.distribution.mean(2).unwrap(), 0.5));
}

#[test]
fn the_cli_writes_tables_without_nan_and_a_figure() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("abab");
    write(&corpus, "abab.mid", &piece(&[A, B, A, B]));
    // A token folder whose only piece has one bar: no pairs at all.
    let tokens = dir.path().join("tokens");
    write(&tokens, "one.txt", b"t-35 o-0 i-80 p-60 d-12 v-20 b-1");
    let out = dir.path().join("out");
    run(StatsCommand::Similarity {
        inputs: vec![corpus, tokens],
        out: out.clone(),
        max_interval: 4,
        k: 2,
        min_songs: 1,
        read: ReadArgs {
            instrument: InstrumentSelection::Auto,
            split: None,
            data_config: None,
        },
    })
    .unwrap();
    let csv = std::fs::read_to_string(out.join("similarity.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "dataset,interval,mean_similarity,pairs,std_similarity,songs,identical_pairs"
    );
    assert_eq!(lines[2], "abab,2,1.0,2,0.0,1,2");
    assert_eq!(lines[4], "abab,4,,0,,0,0");
    assert_eq!(lines[5], "tokens,1,,0,,0,0");
    for name in [
        "similarity.csv",
        "corpora.csv",
        "distances.csv",
        "skipped.csv",
        "similarity.svg",
        "provenance.json",
    ] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(
            !text.to_lowercase().contains("nan,") && !text.contains("NaN"),
            "{name}: {text}"
        );
    }
    let corpora = std::fs::read_to_string(out.join("corpora.csv")).unwrap();
    assert!(
        corpora.lines().nth(2).unwrap().starts_with("tokens,"),
        "{corpora}"
    );
    assert!(std::fs::metadata(out.join("similarity.png")).unwrap().len() > 10_000);
    let distances = std::fs::read_to_string(out.join("distances.csv")).unwrap();
    assert_eq!(distances.lines().nth(1), Some("abab,tokens,,,,,0"));

    // The self-similarity matrix of one piece.
    let png = dir.path().join("song.png");
    run(StatsCommand::Song {
        file: dir.path().join("abab").join("abab.mid"),
        out: png.clone(),
        instrument: InstrumentSelection::Auto,
        data_config: None,
    })
    .unwrap();
    assert!(std::fs::metadata(&png).unwrap().len() > 5_000);
}

#[test]
fn bad_inputs_give_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(4);
    let missing = dir.path().join("missing");
    assert!(err_text(input::load(&missing, &opts)).contains("does not exist"));
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(err_text(input::load(&empty, &opts)).contains("nothing to analyse"));
    let file = dir.path().join("abab.mid");
    std::fs::write(&file, piece(&[A, B])).unwrap();
    assert!(err_text(input::load(&file, &opts)).contains("is a file"));
    let mixed = dir.path().join("mixed");
    write(&mixed, "manifest.json", b"{}");
    write(&mixed, "a.mid", &piece(&[A, B]));
    assert!(err_text(input::load(&mixed, &opts)).contains("not a mix"));
    let both = dir.path().join("both");
    write(&both, "a.txt", b"b-1");
    write(&both, "a.mid", &piece(&[A, B]));
    assert!(err_text(input::load(&both, &opts)).contains("separate folders"));
    let broken = dir.path().join("broken");
    write(&broken, "x.mid", b"garbage");
    let text = err_text(input::load(&broken, &opts));
    assert_contains(&text, &["no file of", "x.mid"]);
    let good = dir.path().join("good");
    write(&good, "a.mid", &piece(&[A, B]));
    assert!(err_text(input::load(&good, &options(0))).contains("at least 1"));

    // A prepared dataset on the 16-per-beat grid against a MIDI folder read on 12.
    let data = dir.path().join("data");
    let mut cfg = DatasetConfig::for_folder(good.clone(), data.clone());
    cfg.encoding.pos_per_beat = 16;
    museformer::data::prepare(&cfg, false).unwrap();
    let mut on_12 = options(4);
    on_12.data.encoding.pos_per_beat = 12;
    let text = err_text(input::load_all(&[data.clone(), good.clone()], &on_12));
    assert!(text.contains("not comparable"), "{text}");
    // An empty split is refused by name; a split asked of a folder reads the folder whole.
    let valid = LoadOptions {
        split: Some(Split::Valid),
        ..options(4)
    };
    let split_text = err_text(input::load(&data, &valid));
    assert_contains(&split_text, &["no songs in the valid split"]);
    let folder = input::load(&good, &valid).unwrap();
    assert_eq!((folder.split, folder.distribution.counts.songs), (None, 1));

    // select-bars on a corpus with too few intervals, and SE without common pairs.
    let read = ReadArgs {
        instrument: InstrumentSelection::Auto,
        split: None,
        data_config: None,
    };
    let text = err_text(run(StatsCommand::SelectBars {
        input: good.clone(),
        k: 8,
        max_interval: 4,
        min_songs: 1,
        include: vec![],
        out: None,
        read: read.clone(),
    }));
    assert!(text.contains("fewer than k = 8"), "{text}");
    let one_bar = dir.path().join("one_bar");
    write(&one_bar, "a.txt", b"t-35 o-0 i-80 p-60 d-12 v-20 b-1");
    let text = err_text(run(StatsCommand::Error {
        reference: good,
        generated: one_bar,
        max_interval: 4,
        read,
    }));
    assert_contains(&text, &["no interval in 1..=4 has bar pairs in both"]);
}

#[test]
fn token_folders_and_data_config_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("generated");
    // Bars {p60@0, p64@12} and {p60@0, p67@12}, alternating: as ABAB above.
    let a = "t-35 o-0 i-80 p-60 d-12 v-20 o-12 i-80 p-64 d-12 v-20 b-1";
    let b = "t-35 o-0 i-80 p-60 d-12 v-20 o-12 i-80 p-67 d-12 v-20 b-1";
    write(&tokens, "piece.txt", format!("{a} {b} {a} {b}").as_bytes());
    write(&tokens, "bad.txt", b"x-1");
    let c = input::load(&tokens, &options(3)).unwrap();
    assert_eq!(c.kind, InputKind::Tokens);
    assert!((c.distribution.mean(1).unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(c.distribution.mean(2), Some(1.0));
    assert_eq!(c.skipped.len(), 1);
    assert!(c.skipped[0].reason.contains("x-1"), "{:?}", c.skipped);
    let yaml = dir.path().join("bad.yaml");
    std::fs::write(&yaml, "name: x\nmidi_dir: a\nout: b\nnormalise: {}\n").unwrap();
    let text = err_text(input::data_config(Some(&yaml)));
    assert!(text.contains("bad.yaml"), "{text}");
}

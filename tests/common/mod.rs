//! Helpers shared by the integration tests: small MIDI files made in memory, good
//! and bad, so tests need no data files.

#![allow(dead_code)]

use museformer::midi::{self, Note, Score, Tempo, TimeSignature, Track};
use std::path::{Path, PathBuf};

/// A standard MIDI file from raw parts: the header fields and each track's event
/// bytes (an end-of-track event is appended to each).
pub fn smf(format: u16, division: u16, tracks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"MThd".to_vec();
    out.extend(6u32.to_be_bytes());
    out.extend(format.to_be_bytes());
    out.extend((tracks.len() as u16).to_be_bytes());
    out.extend(division.to_be_bytes());
    for t in tracks {
        let mut body = t.clone();
        body.extend([0x00, 0xFF, 0x2F, 0x00]);
        out.extend(b"MTrk");
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
    }
    out
}

/// Events of one note: on at delta 0, off after `len` ticks (single-byte deltas).
pub fn note_events(pitch: u8, len: u8) -> Vec<u8> {
    vec![0x00, 0x90, pitch, 0x64, len, 0x80, pitch, 0x00]
}

/// A piece of `bars` bars of 4/4 at 480 ticks per beat: a melody that repeats every
/// two bars and a bass, distinct per `seed`.
pub fn song(seed: u8, bars: u64) -> Score {
    let tpb = 480;
    let mut melody = Vec::new();
    let mut bass = Vec::new();
    for bar in 0..bars {
        let t0 = bar * 4 * tpb;
        for beat in 0..4u64 {
            let pitch = 60 + ((seed as u64 + beat * 2 + (bar % 2) * 5) % 12) as u8;
            melody.push(Note {
                start: t0 + beat * tpb,
                end: t0 + beat * tpb + tpb / 2,
                pitch,
                velocity: 20 + seed % 100,
            });
        }
        bass.push(Note {
            start: t0,
            end: t0 + 2 * tpb,
            pitch: 36 + seed % 12,
            velocity: 70,
        });
    }
    Score {
        ticks_per_beat: tpb as u32,
        tempos: vec![Tempo {
            tick: 0,
            micros_per_quarter: 500_000,
        }],
        time_signatures: vec![TimeSignature {
            tick: 0,
            numerator: 4,
            denominator: 4,
        }],
        key_signatures: vec![],
        tracks: vec![
            Track {
                name: "melody".into(),
                program: 0,
                is_drum: false,
                notes: melody,
            },
            Track {
                name: "bass".into(),
                program: 33,
                is_drum: false,
                notes: bass,
            },
        ],
    }
}

/// The same piece in 3/4.
pub fn waltz(seed: u8) -> Score {
    let mut s = song(seed, 4);
    s.time_signatures[0].numerator = 3;
    s
}

/// The bad files every batch command must survive, with a word each reason must contain.
pub fn bad_files() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let good = midi::to_bytes(&song(1, 2));
    let truncated = good[..good.len() / 2].to_vec();
    let random: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let smpte = smf(1, 0xE728, &[note_events(60, 10)]);
    let format2 = smf(2, 96, &[note_events(60, 10)]);
    let zero_tpb = smf(1, 0, &[note_events(60, 10)]);
    // A note-on after a delta of 0x0FFFFFFF ticks, 16 times: far beyond any sane length.
    let mut far = Vec::new();
    for _ in 0..16 {
        far.extend([0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x01, 0x00]);
    }
    far.extend(note_events(60, 10));
    let absurd = smf(1, 96, &[far]);
    vec![
        ("truncated.mid", truncated, "cannot"),
        ("random.mid", random, "cannot"),
        ("empty.mid", Vec::new(), "cannot"),
        ("smpte.mid", smpte, "SMPTE"),
        ("format2.mid", format2, "format 2"),
        ("zero_tpb.mid", zero_tpb, "0 ticks per quarter"),
        ("absurd.mid", absurd, "tick"),
    ]
}

/// A readable song whose key signature is invalid (12 sharps): read with a
/// warning, its notes kept.
pub fn bad_key_song() -> Vec<u8> {
    smf(
        1,
        96,
        &[[
            vec![0x00, 0xFF, 0x59, 0x02, 0x0C, 0x00],
            note_events(60, 10),
        ]
        .concat()],
    )
}

/// Writes a file, creating its folder.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The built `museformer` binary.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_museformer"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `museformer ARGS`, asserts it succeeded (showing its stderr) and returns its
/// standard output.
pub fn run(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "museformer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A prepared dataset `tiny` of `songs` generated songs of `min_bars` to
/// `min_bars + 3` bars in `dir` (MIDI in `midi/`, the store in `data/`); returns its
/// dataset file.
pub fn tiny_dataset(dir: &Path, songs: u8, min_bars: u64) -> PathBuf {
    let file = |i: u8| (format!("s{i:02}.mid"), min_bars + u64::from(i % 4));
    write_songs(&dir.join("midi"), 0..songs, file);
    let yaml = format!(
        "name: tiny\nmidi_dir: {0}/midi\nout: {0}/data\nencoding: {{ignore_ts: true, inst_order: lmd6, pos_per_beat: 16}}\nsplit:\n  hash: {{seed: 0, ratios: [2, 1, 1]}}\n",
        dir.display()
    );
    let data = write(dir, "data.yaml", yaml.as_bytes());
    run(&["data", "prepare", data.to_str().unwrap()]);
    data
}

/// The run folder `museformer train` printed.
pub fn run_dir(stdout: &str) -> PathBuf {
    PathBuf::from(
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("run folder: "))
            .expect("the run folder is printed"),
    )
}

/// Runs `museformer ARGS`: whether it succeeded, its standard output and its
/// standard error.
pub fn output(args: &[&str]) -> (bool, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `museformer ARGS`, asserts it failed and returns its standard error.
pub fn fails(args: &[&str]) -> String {
    let (ok, stdout, stderr) = output(args);
    assert!(!ok, "museformer {args:?} succeeded: {stdout}");
    stderr
}

/// The training losses of a run folder (`train.csv`), one per step.
pub fn losses(run_dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(run_dir.join("train.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

/// Asserts that a run trained `steps` steps and that its loss fell: the mean of the
/// last five steps is well below the first step's.
pub fn assert_loss_fell(run_dir: &Path, steps: usize, what: &str) {
    let losses = losses(run_dir);
    assert_eq!(losses.len(), steps, "{what}");
    let tail = losses[steps - 5..].iter().sum::<f64>() / 5.0;
    assert!(
        tail < losses[0] * 0.7,
        "{what}: loss did not fall: {losses:?}"
    );
}

/// `museformer generate RUN --num NUM --max-len MAX_LEN --seed 3 --out OUT`.
pub fn generate(run_dir: &Path, out: &Path, num: usize, max_len: usize) -> String {
    run(&[
        "generate",
        run_dir.to_str().unwrap(),
        "--num",
        &num.to_string(),
        "--max-len",
        &max_len.to_string(),
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ])
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Asserts that `text` contains each of `parts`, showing the text where one is missing.
#[track_caller]
pub fn assert_contains(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "`{part}` is missing from:\n{text}");
    }
}

/// For each `i` of `seeds`, writes the MIDI file of [`song`]`(i, bars)` as `dir/name`,
/// where `(name, bars)` is `file(i)`.
pub fn write_songs(
    dir: &Path,
    seeds: impl IntoIterator<Item = u8>,
    file: impl Fn(u8) -> (String, u64),
) {
    for i in seeds {
        let (name, bars) = file(i);
        write(dir, &name, &midi::to_bytes(&song(i, bars)));
    }
}

/// A tiny experiment file `dir/NAME.yaml` on the dataset file `data`: 32 wide with 2
/// heads, trained on the CPU on 200-token samples, evaluated on the first 16, 64 and
/// 128 tokens. `model` and `train` are further keys of those sections (the model's
/// `layers` and the training's `steps` and `warmup` among them), as YAML flow-map
/// entries.
pub fn tiny_experiment(dir: &Path, name: &str, data: &Path, model: &str, train: &str) -> PathBuf {
    let yaml = format!(
        "name: {name}\ndataset: {}\n\
         model: {{hidden: 32, heads: 2, ffn: 64, token_embed: 32, bar_embed: 8, beat_embed: 8, dropout: 0.1, attention_dropout: 0.0, {model}}}\n\
         train: {{device: cpu, lr: 3.0e-3, batch_tokens: 400, valid_every: 0, checkpoint_every: 0, max_tokens: 200, valid_max_tokens: 200, {train}}}\n\
         eval: {{lengths: [16, 64, 128]}}\n",
        data.display()
    );
    write(dir, &format!("{name}.yaml"), yaml.as_bytes())
}

/// The arguments of `museformer train EXP --runs RUNS EXTRA…`.
pub fn train_args<'a>(exp: &'a Path, runs: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    [&["train", arg(exp), "--runs", arg(runs)][..], extra].concat()
}

/// Runs `museformer train EXP --runs RUNS EXTRA…` and returns the run folder.
pub fn train(exp: &Path, runs: &Path, extra: &[&str]) -> PathBuf {
    run_dir(&run(&train_args(exp, runs, extra)))
}

/// Trains `exp` into `runs` (with `extra` arguments to `train`), evaluates the run and
/// generates `num` pieces of at most `max_len` tokens into `gen`; asserts that the
/// evaluation printed the perplexities of the first 16 and 128 tokens and that each
/// piece's MIDI file was written. Returns the run folder.
pub fn train_eval_generate(
    exp: &Path,
    runs: &Path,
    extra: &[&str],
    gen: &Path,
    num: usize,
    max_len: usize,
) -> PathBuf {
    let run_dir = train(exp, runs, extra);
    let eval = run(&["eval", arg(&run_dir)]);
    assert_contains(
        &eval,
        &["first     16 tokens: PPL", "first    128 tokens: PPL"],
    );
    generate(&run_dir, gen, num, max_len);
    for i in 0..num {
        let piece = gen.join(format!("piece-{i:03}.mid"));
        assert!(piece.exists(), "{} was not written", piece.display());
    }
    run_dir
}

/// The project's Python (`.venv/bin/python`), refusing with what to run when it is
/// missing.
pub fn python() -> PathBuf {
    let py = root().join(".venv/bin/python");
    assert!(
        py.is_file(),
        "{} is missing: run `just setup` (the packages are in requirements.txt)",
        py.display()
    );
    py
}

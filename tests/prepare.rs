//! `museformer data prepare` end to end: good and bad files, duplicates, the 4/4
//! filter, splits, re-runs and the token store's content.

mod common;

use common::*;
use museformer::data::{Manifest, Split, TokenStore};
use museformer::midi;
use museformer::tokens::{self, EncodeOptions, Vocab};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn prepare(args: &[&str]) -> (bool, String, String) {
    output(&[&["data", "prepare"], args].concat())
}

/// `museformer data prepare --midi-dir MIDI_DIR --out OUT`.
fn prepare_dirs(midi_dir: &Path, out: &Path) -> (bool, String, String) {
    prepare(&["--midi-dir", arg(midi_dir), "--out", arg(out)])
}

/// A scratch folder whose `midi` folder holds, for each `i` of `seeds`, the song
/// `song(i, bars)` as `name`, where `(name, bars)` is `file(i)`; returns it with its
/// `midi` folder and `ds`, the folder to prepare into.
fn midi_folder(
    seeds: std::ops::Range<u8>,
    file: impl Fn(u8) -> (String, u64),
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let midi_dir = tmp.path().join("midi");
    write_songs(&midi_dir, seeds, file);
    let out = tmp.path().join("ds");
    (tmp, midi_dir, out)
}

fn rejects(dir: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(dir.join("rejects.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let (f, r) = l.split_once(',').unwrap();
            (f.to_string(), r.trim_matches('"').to_string())
        })
        .collect()
}

#[test]
fn bad_files_are_rejected_with_reasons_and_the_batch_goes_on() {
    let file = |i: u8| (format!("good/song{i}.mid"), 3 + u64::from(i));
    let (_tmp, midi_dir, out) = midi_folder(0..6, file);
    write(
        &midi_dir,
        "more/song0-again.MID",
        &midi::to_bytes(&song(0, 3)),
    );
    write(
        &midi_dir,
        "notes.txt",
        b"not a MIDI file, not even looked at",
    );
    let bad = bad_files();
    for (name, bytes, _) in &bad {
        write(&midi_dir, &format!("bad/{name}"), bytes);
    }
    let (ok, stdout, stderr) = prepare_dirs(&midi_dir, &out);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("6 encoded, {} rejected", bad.len() + 1)),
        "{stdout}"
    );

    let rej = rejects(&out);
    assert_eq!(rej.len(), bad.len() + 1);
    assert_eq!(rej["more/song0-again.MID"], "duplicate of good/song0.mid");
    for (name, _, word) in &bad {
        let reason = &rej[&format!("bad/{name}")];
        assert!(
            reason.contains(word),
            "{name}: `{reason}` should mention `{word}`"
        );
        assert!(!reason.contains('\n'));
    }

    // The store holds exactly the encodings of the good files.
    let m = Manifest::load(&out).unwrap();
    assert_eq!(
        (m.files, m.songs, m.rejected, m.duplicates),
        (6 + 1 + bad.len(), 6, bad.len() + 1, 1)
    );
    // The summary breaks the rejects down by kind of reason, and so does `data
    // summary`.
    assert_eq!(m.rejects_by_reason.values().sum::<usize>(), bad.len() + 1);
    assert_eq!(m.rejects_by_reason["duplicate"], 1);
    assert!(stdout.contains("rejected: "), "{stdout}");
    assert!(stdout.contains("1 duplicate"), "{stdout}");
    let (ok, summary, _) = output(&["data", "summary", arg(&out)]);
    assert!(ok && summary.contains("1 duplicate"), "{summary}");
    let store = TokenStore::open(&out).unwrap();
    let vocab = Vocab::new(m.config.encoding.pos_per_beat);
    let meta = std::fs::read_to_string(out.join("metadata.csv")).unwrap();
    let files: Vec<&str> = meta
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        files,
        (0..6)
            .map(|i| format!("good/song{i}.mid"))
            .collect::<Vec<_>>()
    );
    for i in 0..6 {
        let expected =
            tokens::encode(&song(i as u8, 3 + i as u64), &EncodeOptions::default()).unwrap();
        let stored: Vec<_> = store
            .song(i)
            .iter()
            .map(|&id| vocab.token(id).unwrap())
            .collect();
        assert_eq!(stored, expected);
        assert_eq!(store.bar_starts(i).len() as u64, 3 + i as u64);
        assert_eq!(
            stored[store.bar_starts(i)[1] as usize - 1],
            tokens::Token::Bar
        );
    }
    assert!(out.join("metadata.parquet").exists() && out.join("rejects.parquet").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("vocab.txt")).unwrap(),
        vocab.to_fairseq()
    );

    // A second run on the same input does nothing and says so.
    let (ok, stdout, _) = prepare_dirs(&midi_dir, &out);
    assert!(ok && stdout.contains("up to date"), "{stdout}");
}

#[test]
fn splits_are_stable_when_files_are_added() {
    let file = |i: u8| (format!("s{i:02}.mid"), 2 + u64::from(i % 5));
    let (_tmp, midi_dir, out) = midi_folder(0..40, file);
    assert!(prepare_dirs(&midi_dir, &out).0);
    let split_of = |dir: &Path| -> HashMap<String, String> {
        let meta = std::fs::read_to_string(dir.join("metadata.csv")).unwrap();
        meta.lines()
            .skip(1)
            .map(|l| {
                let cols: Vec<&str> = l.split(',').collect();
                (cols[1].to_string(), cols[cols.len() - 1].to_string())
            })
            .collect()
    };
    let before = split_of(&out);
    let counts = |m: &HashMap<String, String>, s: &str| m.values().filter(|v| *v == s).count();
    assert_eq!(before.len(), 40);
    assert!(
        counts(&before, "train") >= 24 && counts(&before, "valid") + counts(&before, "test") >= 2,
        "{before:?}"
    );
    write_songs(&midi_dir, 40..60, |i| (format!("s{i:02}.mid"), 3));
    let (ok, stdout, _) = prepare_dirs(&midi_dir, &out);
    assert!(ok && !stdout.contains("up to date"), "{stdout}");
    let after = split_of(&out);
    assert_eq!(after.len(), 60);
    for (hash, split) in &before {
        assert_eq!(&after[hash], split);
    }
    let store = TokenStore::open(&out).unwrap();
    assert_eq!(
        store.split_indices(Split::Train).len(),
        counts(&after, "train")
    );
}

#[test]
fn dataset_files_apply_the_4_4_filter_lmd6_merge_and_split_lists() {
    let (tmp, midi_dir, out) = midi_folder(0..4, |i| (format!("a{i}.mid"), 2));
    write(&midi_dir, "waltz.mid", &midi::to_bytes(&waltz(9)));
    let lists = tmp.path().join("lists");
    write(&lists, "train.txt", b"a0\n# comment\na1.mid\n");
    write(&lists, "valid.txt", b"some/folder/a2.mid\n");
    write(&lists, "test.txt", b"waltz\n");
    let yaml = format!(
        "name: t\nmidi_dir: {}\nout: {}\nnormalize: {{only_4_4: true, lmd6: true}}\n\
         encoding: {{ignore_ts: true, inst_order: lmd6, pos_per_beat: 16}}\n\
         split:\n  lists: {{train: {l}/train.txt, valid: {l}/valid.txt, test: {l}/test.txt}}\n",
        midi_dir.display(),
        out.display(),
        l = lists.display()
    );
    let cfg = write(tmp.path(), "t.yaml", yaml.as_bytes());
    let (ok, stdout, stderr) = prepare(&[cfg.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 encoded, 2 rejected"), "{stdout}");
    let rej = rejects(&out);
    assert_eq!(rej["waltz.mid"], "not in 4/4 (3/4 at tick 0)");
    assert_eq!(rej["a3.mid"], "not listed in any split file");
    let store = TokenStore::open(&out).unwrap();
    assert_eq!(store.split_indices(Split::Train), vec![0, 1]);
    assert_eq!(store.split_indices(Split::Valid), vec![2]);
    // The melody (highest track) is program 80 and comes first; the bass becomes 43.
    let vocab = Vocab::new(16);
    let text: Vec<String> = store.song(0).iter().map(|&id| vocab.symbol(id)).collect();
    assert_eq!(&text[..3], ["t-35", "o-0", "i-80"]);
    assert!(text.contains(&"i-43".to_string()) && !text.iter().any(|t| t.starts_with("s-")));
}

#[test]
fn release_compat_reads_as_the_release_and_records_its_warnings() {
    let (tmp, midi_dir, out) = midi_folder(0..2, |i| (format!("a{i}.mid"), 2));
    // A note the release drops (no note-off before the end of its track; ours ends
    // it with the track), and a file whose first tempo map the release discards (a
    // tempo at tick 0 in a later track), its note in bar 2, where track 0's changes.
    let open = smf(
        1,
        96,
        &[vec![
            0x00, 0x90, 60, 100, 0x60, 0x80, 60, 0, 0x00, 0x90, 62, 90, 0x60, 0xFF, 0x01, 0x00,
        ]],
    );
    write(&midi_dir, "open.mid", &open);
    let tempo = |mpq: u32| {
        [
            vec![0x00, 0xFF, 0x51, 0x03],
            mpq.to_be_bytes()[1..].to_vec(),
        ]
        .concat()
    };
    let maps = smf(
        1,
        96,
        &[
            [
                tempo(500_000),
                vec![0x83, 0x00],
                tempo(400_000)[1..].to_vec(),
                note_events(60, 96),
            ]
            .concat(),
            tempo(600_000),
        ],
    );
    write(&midi_dir, "maps.mid", &maps);
    let yaml = |compat: &str, out: &Path| {
        format!(
            "name: t\nmidi_dir: {}\nout: {}\nencoding: {{compat: {compat}}}\n",
            midi_dir.display(),
            out.display()
        )
    };
    let cfg = write(tmp.path(), "release.yaml", yaml("release", &out).as_bytes());
    let (ok, stdout, stderr) = prepare(&[arg(&cfg)]);
    assert!(ok, "{stderr}");
    assert_contains(&stdout, &["4 encoded", "2 reader warnings", "warnings.csv"]);
    let warnings = std::fs::read_to_string(out.join("warnings.csv")).unwrap();
    assert_contains(
        &warnings,
        &[
            "file,warning",
            "open.mid,1 note(s) with no note-off",
            "maps.mid,a tempo change at tick 0 in track 1 discarded 1",
        ],
    );
    let m = Manifest::load(&out).unwrap();
    assert_eq!(m.warnings, 2);
    assert_eq!(m.config.encoding.compat, midi::Compat::Release);

    // Our reader on the same files: no warnings, other tokens.
    let ours_out = tmp.path().join("ours");
    let cfg = write(tmp.path(), "ours.yaml", yaml("ours", &ours_out).as_bytes());
    let (ok, stdout, stderr) = prepare(&[arg(&cfg)]);
    assert!(ok && !stdout.contains("warnings"), "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(ours_out.join("warnings.csv"))
            .unwrap()
            .trim(),
        "file,warning"
    );
    assert_ne!(
        m.fingerprint,
        Manifest::load(&ours_out).unwrap().fingerprint
    );
    let (a, b) = (
        TokenStore::open(&out).unwrap(),
        TokenStore::open(&ours_out).unwrap(),
    );
    let files = |dir: &Path| -> Vec<String> {
        let meta = std::fs::read_to_string(dir.join("metadata.csv")).unwrap();
        meta.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(files(&out), files(&ours_out));
    for (i, f) in files(&out).iter().enumerate() {
        let same = a.song(i) == b.song(i);
        assert_eq!(same, f.starts_with('a'), "{f}");
    }
}

#[test]
fn config_errors_name_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, yaml, expected) in [
        (
            "bad.yaml",
            "name: x\nmidi_dir: m\nout: o\nnormalise: {}\n",
            &["bad.yaml", "normalise", "line 4"][..],
        ),
        (
            "missing.yaml",
            "name: x\nmidi_dir: nowhere\nout: o\nmissing_help: fetch it first\n",
            &["nowhere", "fetch it first"],
        ),
    ] {
        let cfg = write(tmp.path(), name, yaml.as_bytes());
        let (ok, _, stderr) = prepare(&[arg(&cfg)]);
        assert!(!ok, "{name} was accepted");
        assert_contains(&stderr, expected);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// `data prepare` replaces only a dataset it wrote: an output folder that is the
/// MIDI folder, holds it, is an unrelated non-empty folder or is a file is refused
/// with one sentence, and everything in place stays as it was.
#[test]
fn output_folders_that_are_not_datasets_are_refused_and_kept() {
    let file = |i: u8| (format!("song{i}.mid"), 3 + u64::from(i));
    let (tmp, midi_dir, out) = midi_folder(0..3, file);
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let songs = listing(&midi_dir);
    // The MIDI folder itself, and a folder holding it.
    for target in [midi_dir.clone(), tmp.path().to_path_buf()] {
        let (ok, _, err) = prepare_dirs(&midi_dir, &target);
        assert!(!ok, "{} accepted", target.display());
        assert_contains(&err, &["the MIDI folder", "nothing was changed"]);
        assert_eq!(listing(&midi_dir), songs);
    }
    // An unrelated folder with files in it.
    let other = tmp.path().join("notes");
    write(&other, "keep.txt", b"mine");
    let (ok, _, err) = prepare_dirs(&midi_dir, &other);
    assert!(!ok);
    assert_contains(
        &err,
        &["notes", "not a prepared dataset", "no manifest.json"],
    );
    assert_eq!(
        std::fs::read_to_string(other.join("keep.txt")).unwrap(),
        "mine"
    );
    // A file.
    let file_out = write(tmp.path(), "plain.txt", b"a file");
    let (ok, _, err) = prepare_dirs(&midi_dir, &file_out);
    assert!(!ok);
    assert_contains(&err, &["plain.txt", "is a file"]);
    assert_eq!(std::fs::read(&file_out).unwrap(), b"a file");
    assert!(!tmp.path().join("plain.old").exists());
    // An empty folder and a dataset of its own are fine, and a rebuild replaces it.
    std::fs::create_dir_all(&out).unwrap();
    let (ok, _, err) = prepare_dirs(&midi_dir, &out);
    assert!(ok, "{err}");
    let (ok, _, err) = prepare(&["--midi-dir", arg(&midi_dir), "--out", arg(&out), "--force"]);
    assert!(ok, "{err}");
    assert!(out.join("manifest.json").is_file());
    assert_eq!(listing(&midi_dir), songs);
}

/// A dataset folder being prepared is locked: a second `data prepare` is refused
/// with the holder's pid and nothing changed; once the holder is gone (its lock
/// released, as when it exits or dies) the next one proceeds.
#[test]
fn a_dataset_being_prepared_is_locked() {
    let file = |i: u8| (format!("song{i}.mid"), 3 + u64::from(i));
    let (_tmp, midi_dir, out) = midi_folder(0..3, file);
    let held = museformer::io::FolderLock::acquire(&out, "the dataset folder").unwrap();
    let (ok, _, err) = prepare_dirs(&midi_dir, &out);
    assert!(!ok, "prepared beside a lock holder");
    assert_contains(
        &err,
        &[
            "in use by another process",
            &format!("pid {}", std::process::id()),
        ],
    );
    assert!(!out.exists());
    drop(held);
    let (ok, _, err) = prepare_dirs(&midi_dir, &out);
    assert!(ok, "{err}");
}

/// A song whose only fault is an invalid key signature (which changes no token) is
/// encoded, not rejected, and the skipped event is a warning in `warnings.csv`
/// (counted in the summary).
#[test]
fn an_invalid_key_signature_is_a_warning_not_a_reject() {
    let file = |i: u8| (format!("song{i}.mid"), 3 + u64::from(i));
    let (_tmp, midi_dir, out) = midi_folder(0..2, file);
    write(&midi_dir, "odd-key.mid", &bad_key_song());
    let (ok, stdout, stderr) = prepare_dirs(&midi_dir, &out);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 encoded, 0 rejected"), "{stdout}");
    assert!(stdout.contains("1 reader warnings"), "{stdout}");
    let warnings = std::fs::read_to_string(out.join("warnings.csv")).unwrap();
    assert!(
        warnings.contains("odd-key.mid") && warnings.contains("skipped an invalid key signature"),
        "{warnings}"
    );
    assert_eq!(Manifest::load(&out).unwrap().warnings, 1);
}

//! `museformer data prepare` end to end: good and bad files, duplicates, the 4/4
//! filter, splits, re-runs and the token store's content.

mod common;

use common::*;
use museformer::data::{Manifest, Split, TokenStore};
use museformer::midi;
use museformer::tokens::{self, EncodeOptions, Vocab};
use std::collections::HashMap;
use std::path::Path;

fn prepare(args: &[&str]) -> (bool, String, String) {
    output(&[&["data", "prepare"], args].concat())
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
    let tmp = tempfile::tempdir().unwrap();
    let midi_dir = tmp.path().join("midi");
    for i in 0..6u8 {
        write(
            &midi_dir,
            &format!("good/song{i}.mid"),
            &midi::to_bytes(&song(i, 3 + i as u64)),
        );
    }
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
    let out = tmp.path().join("ds");
    let (ok, stdout, stderr) = prepare(&[
        "--midi-dir",
        midi_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
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
    let (ok, stdout, _) = prepare(&[
        "--midi-dir",
        midi_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok && stdout.contains("up to date"), "{stdout}");
}

#[test]
fn splits_are_stable_when_files_are_added() {
    let tmp = tempfile::tempdir().unwrap();
    let midi_dir = tmp.path().join("midi");
    for i in 0..40u8 {
        write(
            &midi_dir,
            &format!("s{i:02}.mid"),
            &midi::to_bytes(&song(i, 2 + (i % 5) as u64)),
        );
    }
    let out = tmp.path().join("ds");
    let args = [
        "--midi-dir",
        midi_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    assert!(prepare(&args).0);
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
    for i in 40..60u8 {
        write(
            &midi_dir,
            &format!("s{i:02}.mid"),
            &midi::to_bytes(&song(i, 3)),
        );
    }
    let (ok, stdout, _) = prepare(&args);
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
    let tmp = tempfile::tempdir().unwrap();
    let midi_dir = tmp.path().join("midi");
    for i in 0..4u8 {
        write(
            &midi_dir,
            &format!("a{i}.mid"),
            &midi::to_bytes(&song(i, 2)),
        );
    }
    write(&midi_dir, "waltz.mid", &midi::to_bytes(&waltz(9)));
    let lists = tmp.path().join("lists");
    write(&lists, "train.txt", b"a0\n# comment\na1.mid\n");
    write(&lists, "valid.txt", b"some/folder/a2.mid\n");
    write(&lists, "test.txt", b"waltz\n");
    let out = tmp.path().join("ds");
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
fn config_errors_name_the_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write(
        tmp.path(),
        "bad.yaml",
        b"name: x\nmidi_dir: m\nout: o\nnormalise: {}\n",
    );
    let (ok, _, stderr) = prepare(&[cfg.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("bad.yaml") && stderr.contains("normalise") && stderr.contains("line 4"),
        "{stderr}"
    );
    let missing = write(
        tmp.path(),
        "missing.yaml",
        b"name: x\nmidi_dir: nowhere\nout: o\nmissing_help: fetch it first\n",
    );
    let (ok, _, stderr) = prepare(&[missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("nowhere") && stderr.contains("fetch it first"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

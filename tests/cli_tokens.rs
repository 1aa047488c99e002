//! `museformer encode`, `decode` and `vocab` end to end, good and bad input.

mod common;

use common::output as run;
use common::*;
use museformer::midi;
use museformer::tokens::{self, EncodeOptions, InstrumentOrder, Vocab};

/// `museformer encode --ignore-ts --inst-order lmd6 EXTRA…`.
fn encode_lmd6(extra: &[&str]) -> (bool, String, String) {
    run(&[
        &["encode", "--ignore-ts", "--inst-order", "lmd6"][..],
        extra,
    ]
    .concat())
}

#[test]
fn encode_decode_encode_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "in.mid", &midi::to_bytes(&song(3, 4)));
    let (ok, line, err) = encode_lmd6(&["--normalize-key", arg(&file)]);
    assert!(ok, "{err}");
    let opts = EncodeOptions {
        ignore_ts: true,
        inst_order: InstrumentOrder::Lmd6,
        normalize_key: true,
        ..EncodeOptions::default()
    };
    assert_eq!(
        line.trim(),
        tokens::to_text(&tokens::encode(&song(3, 4), &opts).unwrap())
    );
    assert_eq!(line.lines().count(), 1);

    let toks = write(tmp.path(), "tokens.txt", line.as_bytes());
    let out = tmp.path().join("out.mid");
    let (ok, _, err) = run(&["decode", arg(&toks), "-o", arg(&out)]);
    assert!(ok, "{err}");
    let (ok, again, err) = encode_lmd6(&[arg(&out)]);
    assert!(ok, "{err}");
    assert_eq!(again, line);
}

#[test]
fn bad_files_exit_non_zero_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes, word) in bad_files() {
        let file = write(tmp.path(), name, &bytes);
        let (ok, stdout, stderr) = run(&["encode", arg(&file)]);
        assert!(!ok && stdout.is_empty(), "{name}");
        assert_contains(&stderr, &[name, word]);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    let (ok, _, stderr) = run(&["encode", tmp.path().join("absent.mid").to_str().unwrap()]);
    assert!(!ok && stderr.contains("absent.mid"));
}

#[test]
fn corrupt_token_files_name_the_first_bad_token() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.mid");
    let cases = [
        (
            "s-9 t-35 o-0 i-0 p-60 d-4 v-20 b-1 t-35 o-0 i-0 p-61 dd-4 v-20 b-1",
            "token 13 (`dd-4`)",
        ),
        ("t-35 o-0 i-0 p-60 v-20 b-1", "token 5 (`v-20`)"),
        ("t-35 o-0 i-0 p-999 d-1 v-1 b-1", "token 4 (`p-999`)"),
    ];
    for (text, expected) in cases {
        let toks = write(tmp.path(), "bad.txt", text.as_bytes());
        let (ok, _, stderr) = run(&["decode", arg(&toks), "-o", arg(&out)]);
        assert!(!ok, "{text}");
        assert_contains(&stderr, &["bad.txt", expected]);
        assert!(!out.exists());
    }
    // An empty file (or one of blanks only) is an error, not an empty MIDI file.
    for text in ["", "  \n\n"] {
        let toks = write(tmp.path(), "empty.txt", text.as_bytes());
        let (ok, _, stderr) = run(&["decode", arg(&toks), "-o", arg(&out)]);
        assert!(!ok, "{text:?}");
        assert_contains(&stderr, &["empty.txt", "no tokens"]);
        assert!(!out.exists());
    }
}

#[test]
fn vocab_lists_every_id_and_the_fairseq_dictionary() {
    let (ok, list, _) = run(&["vocab"]);
    assert!(ok);
    let v = Vocab::new(12);
    assert_eq!(list.lines().count(), v.len());
    assert_eq!(list.lines().next(), Some("0 <s>"));
    assert_eq!(list.lines().nth(4), Some("4 b-1"));
    let (ok, dict, _) = run(&["vocab", "--fairseq", "--pos-per-beat", "16"]);
    assert!(ok);
    assert_eq!(dict, Vocab::new(16).to_fairseq());
    assert!(dict.lines().all(|l| l.ends_with(" 1")));
    assert!(dict.contains("o-127 1\n") && !dict.contains("o-128 1\n"));
    // The release's dict.txt, in its order, on its grid only.
    let (ok, release, err) = run(&["vocab", "--release"]);
    assert!(ok, "{err}");
    assert_eq!(release, museformer::tokens::release::DICT);
    assert_eq!(release.lines().nth(2), Some("o-0 1"));
    let (ok, _, err) = run(&["vocab", "--release", "--pos-per-beat", "12"]);
    assert!(!ok && err.contains("16 positions"), "{err}");
}

#[test]
fn encode_compat_release_reads_as_the_release() {
    let tmp = tempfile::tempdir().unwrap();
    // Program 5, a note-on, program 40 while it sounds, its note-off; then a
    // note that never ends.
    let events = vec![
        0x00, 0xC0, 5, 0x00, 0x90, 60, 100, 0x60, 0xC0, 40, 0x60, 0x80, 60, 0, 0x00, 0x90, 62, 100,
        0x60, 0xFF, 0x01, 0x00,
    ];
    let file = write(tmp.path(), "mid_note.mid", &smf(1, 96, &[events]));
    let (ok, ours, err) = run(&["encode", arg(&file)]);
    assert!(ok && err.is_empty(), "{err}");
    // Ours: the program at the note-on; the open note ends with its track.
    assert_eq!(
        ours.trim(),
        "s-9 t-35 o-0 i-5 p-60 d-18 v-25 o-24 i-40 p-62 d-12 v-25 b-1"
    );
    let (ok, theirs, err) = run(&["encode", "--compat", "release", arg(&file)]);
    assert!(ok, "{err}");
    // The release: the program at the note-off; the open note is dropped, and a
    // warning naming the file says so.
    assert_eq!(theirs.trim(), "s-9 t-35 o-0 i-40 p-60 d-18 v-25 b-1");
    assert_contains(
        &err,
        &["warning", "mid_note.mid", "1 note(s) with no note-off"],
    );
    // A file the release's reader fails on, with the reason.
    let cut = write(tmp.path(), "cut.mid", &midi::to_bytes(&song(1, 2))[..60]);
    let (ok, _, err) = run(&["encode", "--compat", "release", arg(&cut)]);
    assert!(!ok);
    assert_contains(&err, &["cut.mid", "release's reader", "EOFError"]);
}

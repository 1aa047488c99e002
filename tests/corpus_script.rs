//! The corpus script's long collection (`scripts/fetch_corpus.py --only ryans`):
//! deterministic, and each tune played three times through on whole 4/4 bars with
//! its pickup completed.

mod common;

use common::{python, root};
use std::path::{Path, PathBuf};
use std::process::Output;

fn py(args: &[&str]) -> Output {
    let out = std::process::Command::new(python())
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir` (relative name, bytes), sorted.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = walk(dir)
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(dir).unwrap().display().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_long_collection_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let script = root().join("scripts/fetch_corpus.py");
    let mut runs = Vec::new();
    for name in ["a", "b"] {
        let long = tmp.path().join(name);
        py(&[
            script.to_str().unwrap(),
            "--only",
            "ryans",
            "--limit",
            "6",
            "--jobs",
            "2",
            "--out",
            tmp.path().join("short").to_str().unwrap(),
            "--long-out",
            long.to_str().unwrap(),
        ]);
        runs.push(files(&long.join("ryans")));
    }
    let midi: Vec<&String> = runs[0]
        .iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".mid"))
        .collect();
    assert_eq!(midi.len(), 6, "{midi:?}");
    assert!(
        midi.iter().all(|n| n.starts_with("RyansMammoth_")),
        "{midi:?}"
    );
    assert_eq!(
        runs[0].iter().map(|f| &f.0).collect::<Vec<_>>(),
        runs[1].iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (a, b) in runs[0].iter().zip(&runs[1]) {
        assert!(a.1 == b.1, "{} differs between two runs", a.0);
    }
    assert!(tmp.path().join("a/SOURCES.md").is_file());
}

/// A hand-made tune with a one-quarter pickup and a repeat: abc2midi (or music21)
/// plays it once with the repeat, the script three times, the pickup completed to
/// a bar by a rest, each round's pickup in the last beat of the round before
/// (whose note there is shortened), in 4/4.
#[test]
fn a_tune_is_played_three_times_on_whole_bars() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tune.mid");
    // Pickup A (a quarter), then 2 bars, repeated: 4 bars once through.
    let abc = "X:1\nT:t\nM:C|\nL:1/8\nK:D\nA2|:d2d2 f2f2|a2a2 f4:|\n";
    let code = format!(
        r#"
import importlib.util, sys, mido
spec = importlib.util.spec_from_file_location("fc", "scripts/fetch_corpus.py")
fc = importlib.util.module_from_spec(spec); spec.loader.exec_module(fc)
fc.ryans_rounds({abc:?}, {out:?})
m = mido.MidiFile({out:?})
print("tpb", m.ticks_per_beat)
for tr in m.tracks:
    t = 0
    for msg in tr:
        t += msg.time
        if msg.type == "time_signature":
            print("ts", msg.numerator, msg.denominator)
        if msg.type == "note_on" and msg.velocity > 0:
            print("on", t, msg.note)
        elif msg.type in ("note_on", "note_off"):
            print("off", t, msg.note)
"#,
        out = out.display().to_string()
    );
    let text = String::from_utf8(py(&["-c", &code]).stdout).unwrap();
    let tpb: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tpb "))
        .unwrap()
        .parse()
        .unwrap();
    let bar = 4 * tpb;
    assert!(text.lines().any(|l| l == "ts 4 4"), "{text}");
    assert!(!text.lines().any(|l| l == "ts 2 2"), "{text}");
    let events = |kind: &str| -> Vec<(i64, u8)> {
        text.lines()
            .filter_map(|l| l.strip_prefix(kind))
            .map(|l| {
                let mut it = l.split_whitespace();
                let t = it.next().unwrap().parse().unwrap();
                (t, it.next().unwrap().parse().unwrap())
            })
            .collect()
    };
    let ons = events("on ");
    let offs = events("off ");
    // abc2midi starts its notes one tick late; music21 does not.
    let origin = ons[0].0 - (bar - tpb);
    assert!(
        (0..=1).contains(&origin),
        "the pickup starts {origin} ticks late: {text}"
    );
    // Once through: A | d d f f | a a f | d d f f | a a f = 1 + 2 × 7 notes.
    assert_eq!(ons.len(), 3 * 15, "{text}");
    let a = 69;
    // The pickup of every round sits in the last beat before the round's bar 1;
    // a round is 4 bars, so round k's bar 1 is at bar 1 + 4k.
    for k in 0..3 {
        let pickup = ons[15 * k];
        assert_eq!(
            pickup,
            (origin + (1 + 4 * k as i64) * bar - tpb, a),
            "{text}"
        );
        assert_eq!(
            ons[15 * k + 1].0,
            origin + (1 + 4 * k as i64) * bar,
            "{text}"
        );
    }
    // The last note of rounds 1 and 2 (f, a half note) is cut where the next
    // pickup starts, a quarter later; the last round's keeps its length.
    let last_off = |k: usize| {
        let (start, pitch) = ons[15 * k + 14];
        offs.iter()
            .find(|(t, p)| *p == pitch && *t > start)
            .map(|(t, _)| *t - start)
            .unwrap()
    };
    assert!(last_off(0) <= tpb + 1, "{text}");
    assert!(last_off(1) <= tpb + 1, "{text}");
    assert!(last_off(2) > tpb + tpb / 2, "{text}");
}

//! `museformer reproduce` and `report` end to end on a tiny suite (a generated
//! dataset, two rows of a tiny Transformer): every stage runs once, a second run
//! reuses every stage, `--force` redoes only what it names, a changed setting
//! reruns only the stages it reaches, and bad suites are refused with the file at
//! fault named.

mod common;

use common::*;
use museformer::midi;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

fn museformer(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn ok(args: &[&str]) -> String {
    run(args)
}

/// The stages a run's output says ran and were reused.
fn stages(stdout: &str, verb: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(verb))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

const ALL: [&str; 11] = [
    "prepare",
    "similarity",
    "train:tiny-a",
    "eval:tiny-a",
    "generate:tiny-a",
    "se:tiny-a",
    "train:tiny-b",
    "eval:tiny-b",
    "generate:tiny-b",
    "se:tiny-b",
    "report",
];

/// 30 generated songs, a dataset file, a tiny experiment and a two-row suite.
fn setup(dir: &Path, steps: usize) -> PathBuf {
    for i in 0..30u8 {
        write(
            &dir.join("midi"),
            &format!("s{i:02}.mid"),
            &midi::to_bytes(&song(i, 6 + (i % 4) as u64)),
        );
    }
    let d = dir.display();
    write(
        dir,
        "data.yaml",
        format!(
            "name: tiny\nmidi_dir: {d}/midi\nout: {d}/data\nmissing_help: put the tiny songs in {d}/midi\n\
             encoding: {{ignore_ts: true, inst_order: lmd6, pos_per_beat: 16}}\nsplit:\n  hash: {{seed: 0, ratios: [2, 1, 1]}}\n"
        )
        .as_bytes(),
    );
    write(
        dir,
        "tiny.yaml",
        b"name: tiny\nmodel: {layers: 1, hidden: 32, heads: 2, ffn: 64, token_embed: 32, bar_embed: 8, beat_embed: 8}\n\
          train: {device: cpu, steps: 30, lr: 3.0e-3, warmup: 5, batch_tokens: 400, valid_every: 0, checkpoint_every: 0, max_tokens: 200, valid_max_tokens: 200}\n",
    );
    suite(dir, &format!("train.steps={steps}"))
}

/// Writes the suite file with one `set:` entry.
fn suite(dir: &Path, set: &str) -> PathBuf {
    let d = dir.display();
    write(
        dir,
        "suite.yaml",
        format!(
            "name: tiny\ndataset: {d}/data.yaml\nreference: Tiny A\nset: [{set}]\n\
             eval: {{lengths: [16, 64, 128], max_interval: 8}}\ngenerate: {{num: 2, max_len: 150, top_k: 8, seed: 1}}\n\
             rows:\n  - {{label: Tiny A, experiment: {d}/tiny.yaml, paper: {{ppl: [1.64, 1.41, 1.35], se: 0.95}}}}\n\
             \x20 - {{label: Tiny B, experiment: {d}/tiny.yaml, set: [train.seed=2]}}\n"
        )
        .as_bytes(),
    )
}

#[test]
fn a_suite_runs_once_then_reuses_its_stages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let suite_file = setup(dir, 20);
    let work = dir.join("work");
    let results = dir.join("results");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "reproduce",
            suite_file.to_str().unwrap(),
            "--work",
            work.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(&args)
    };

    let first = run(&[]);
    assert_eq!(stages(&first, "run     "), ALL, "{first}");
    assert!(stages(&first, "cached  ").is_empty(), "{first}");
    let out = results.join("tiny");
    for f in [
        "table1.md",
        "table1.csv",
        "table1.tex",
        "figure3.png",
        "figure3.svg",
        "appendix-c.png",
        "appendix-c.svg",
        "provenance.json",
        "README.md",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(
        table.contains("| model | PPL@16 | paper PPL@1024 |"),
        "{table}"
    );
    let row_a = table
        .lines()
        .find(|l| l.starts_with("| Tiny A |"))
        .unwrap_or_else(|| panic!("no row A: {table}"));
    let cells: Vec<&str> = row_a.split('|').map(str::trim).collect();
    let ppl: f64 = cells[2].parse().unwrap();
    assert!(ppl > 1.0 && ppl < 2000.0, "{row_a}");
    assert_eq!(cells[3], "1.64", "{row_a}");
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(prov["stages"].as_array().unwrap().len(), ALL.len() - 1);
    assert!(prov["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(prov["experiments"][0]["config_hash"].is_string(), "{prov}");

    // Again: every stage is reused, in seconds.
    let start = Instant::now();
    let second = run(&[]);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(stages(&second, "cached  "), ALL, "{second}");
    assert!(stages(&second, "run     ").is_empty(), "{second}");
    assert!(secs < 20.0, "the cached run took {secs:.1} s");

    // --force redoes the named stage; the same outputs keep what follows.
    let forced = run(&["--force", "similarity"]);
    assert_eq!(stages(&forced, "run     "), ["similarity"], "{forced}");
    assert_eq!(stages(&forced, "cached  ").len(), ALL.len() - 1, "{forced}");
    // A kind names every stage of that kind.
    let forced = run(&["--force", "generate"]);
    let ran = stages(&forced, "run     ");
    assert!(
        ran.starts_with(&["generate:tiny-a".to_string()])
            && ran.contains(&"generate:tiny-b".into()),
        "{forced}"
    );
    assert!(!ran.contains(&"train:tiny-a".into()) && !ran.contains(&"prepare".into()));

    // A deleted output reruns its stage.
    std::fs::remove_dir_all(work.join("tiny/generated/tiny-b")).unwrap();
    let again = run(&[]);
    assert!(
        stages(&again, "run     ").starts_with(&["generate:tiny-b".to_string()]),
        "{again}"
    );

    // An interrupted training (a run folder, no record) resumes from its checkpoint;
    // the same weights keep what follows.
    let stages_dir = work.join("tiny/stages");
    std::fs::remove_file(stages_dir.join("train.tiny-a.json")).unwrap();
    let resumed = run(&[]);
    assert!(resumed.contains("resuming train:tiny-a"), "{resumed}");
    assert_eq!(stages(&resumed, "run     "), ["train:tiny-a"], "{resumed}");
    // A run folder started under another key is not resumed but redone.
    std::fs::write(stages_dir.join("train.tiny-a.started"), "another key").unwrap();
    std::fs::remove_file(stages_dir.join("train.tiny-a.json")).unwrap();
    let redone = run(&[]);
    assert!(!redone.contains("resuming"), "{redone}");
    assert!(
        stages(&redone, "run     ").starts_with(&["train:tiny-a".to_string()]),
        "{redone}"
    );

    // A changed setting reruns what it reaches: training and what follows, not the data.
    suite(dir, "train.steps=21");
    let changed = run(&[]);
    let ran = stages(&changed, "run     ");
    assert!(
        ran.contains(&"train:tiny-a".into()) && ran.contains(&"train:tiny-b".into()),
        "{changed}"
    );
    assert_eq!(
        stages(&changed, "cached  ")[..2],
        ["prepare".to_string(), "similarity".to_string()],
        "{changed}"
    );

    // The report alone rewrites the results from the finished stages.
    std::fs::remove_dir_all(&out).unwrap();
    ok(&[
        "report",
        suite_file.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    assert!(out.join("table1.tex").is_file());
    // With a listening test's ratings the report adds Tables 2 and 3.
    let ratings = write(
        dir,
        "ratings.csv",
        b"rater,group,model,musicality,short_term,long_term,overall
          r1,1,Tiny A,7,7,6,8
r1,1,Tiny B,5,4,5,5
r2,1,Tiny A,8,6,7,9
r2,1,Tiny B,4,5,4,3
          r3,1,Tiny A,6,6,6,7
r3,1,Tiny B,6,5,5,4
",
    );
    ok(&[
        "report",
        suite_file.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
        "--ratings",
        ratings.to_str().unwrap(),
    ]);
    let table3 = std::fs::read_to_string(out.join("table3.md")).unwrap();
    assert!(table3.contains("Tiny B"), "{table3}");
    assert!(out.join("table2.tex").is_file());
    assert!(std::fs::read_to_string(out.join("README.md"))
        .unwrap()
        .contains("table3.md"));

    // A record whose output does not match its stage's type is an error naming
    // the record file, not an empty cell in Table 1.
    let record = stages_dir.join("eval.tiny-a.json");
    let good = std::fs::read_to_string(&record).unwrap();
    assert!(good.contains("\"perplexity\""), "{good}");
    std::fs::write(&record, good.replace("\"perplexity\"", "\"perplexities\"")).unwrap();
    let bad = museformer(&[
        "report",
        suite_file.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
        "--results",
        results.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("eval.tiny-a.json") && err.contains("perplexit"),
        "{err}"
    );
    std::fs::write(&record, good).unwrap();

    // A bad --force value lists the stages.
    let bad = museformer(&[
        "reproduce",
        suite_file.to_str().unwrap(),
        "--work",
        work.to_str().unwrap(),
        "--force",
        "trian",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("trian") && err.contains("train:tiny-a"),
        "{err}"
    );
}

#[test]
fn bad_suites_name_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.display();
    write(dir, "data.yaml", format!("name: d\nmidi_dir: {d}/nowhere\nout: {d}/o\nmissing_help: download lmd_full.tar.gz and extract it\n").as_bytes());
    write(dir, "e.yaml", b"name: e\n");
    let missing_exp = write(
        dir,
        "s1.yaml",
        format!("name: s\ndataset: {d}/data.yaml\nreference: A\nrows:\n  - {{label: A, experiment: {d}/museformer-small.yaml}}\n").as_bytes(),
    );
    let out = museformer(&["reproduce", missing_exp.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("s1.yaml")
            && err.contains("museformer-small.yaml")
            && err.contains("does not exist"),
        "{err}"
    );
    let missing_data = write(
        dir,
        "s2.yaml",
        format!("name: s\ndataset: {d}/data.yaml\nreference: A\nrows:\n  - {{label: A, experiment: {d}/e.yaml}}\n").as_bytes(),
    );
    let out = museformer(&[
        "reproduce",
        missing_data.to_str().unwrap(),
        "--work",
        dir.join("w").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains("nowhere")
            && err.contains("download lmd_full.tar.gz"),
        "{err}"
    );
    // The report of a suite that never ran says what to run.
    let out = museformer(&[
        "report",
        missing_data.to_str().unwrap(),
        "--work",
        dir.join("w").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("museformer reproduce"),
        "{err}"
    );
    // The repository's suites name the paper's rows; the paper suite explains LMD.
    let paper = std::fs::read_to_string(root().join("experiments/suites/paper.yaml")).unwrap();
    assert!(paper.contains("lmd_full.tar.gz") && paper.contains("colinraffel.com"));
}

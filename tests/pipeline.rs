//! `museformer reproduce` and `report` end to end on a tiny suite (a generated
//! dataset, two rows of a tiny Transformer): every stage runs once, a second run
//! reuses every stage, `--force` redoes only what it names, a changed setting
//! reruns only the stages it reaches, and bad suites are refused with the file at
//! fault named.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    let file = |i: u8| (format!("s{i:02}.mid"), 6 + u64::from(i % 4));
    write_songs(&dir.join("midi"), 0..30, file);
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

/// A suite file with the folders it runs in.
struct Suite {
    file: PathBuf,
    work: PathBuf,
    results: PathBuf,
}

impl Suite {
    /// The arguments of `museformer VERB SUITE --work WORK --results RESULTS EXTRA…`.
    fn args<'a>(&'a self, verb: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let (file, work, results) = (arg(&self.file), arg(&self.work), arg(&self.results));
        [
            &[verb, file, "--work", work, "--results", results][..],
            extra,
        ]
        .concat()
    }
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
    let tiny = Suite {
        file: setup(dir, 20),
        work: dir.join("work"),
        results: dir.join("results"),
    };
    let (work, out) = (&tiny.work, tiny.results.join("tiny"));
    let reproduce = |extra: &[&str]| run(&tiny.args("reproduce", extra));
    // Table 1 in three formats, each figure as PNG and SVG, the provenance and a README.
    let mut files: Vec<String> = ["md", "csv", "tex"].map(|e| format!("table1.{e}")).into();
    for figure in ["figure3", "appendix-c"] {
        files.extend(["png", "svg"].map(|e| format!("{figure}.{e}")));
    }
    files.extend(["provenance.json".to_string(), "README.md".to_string()]);
    let assert_results = || {
        for f in &files {
            assert!(out.join(f).is_file(), "{f} missing");
        }
    };

    let first = reproduce(&[]);
    assert_eq!(stages(&first, "run     "), ALL, "{first}");
    assert!(stages(&first, "cached  ").is_empty(), "{first}");
    assert_results();
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(
        table.contains("| model | params | PPL@16 | paper PPL@1024 |"),
        "{table}"
    );
    let row_a = table
        .lines()
        .find(|l| l.starts_with("| Tiny A |"))
        .unwrap_or_else(|| panic!("no row A: {table}"));
    let cells: Vec<&str> = row_a.split('|').map(str::trim).collect();
    let ppl: f64 = cells[3].parse().unwrap();
    assert!(ppl > 1.0 && ppl < 2000.0, "{row_a}");
    assert_eq!(cells[4], "1.64", "{row_a}");
    // The trainable parameters of tiny.yaml, by hand: a token table, the
    // projection of 32 + 8 + 8 (sinusoidal bars and beats) to 32, one layer (two
    // norms, qkv, out, FFN 64), the final norm and the head.
    let v = museformer::tokens::Vocab::new(16).len() as u64;
    let linear = |i: u64, o: u64| i * o + o;
    let layer = 4 * 32 + linear(32, 96) + linear(32, 32) + linear(32, 64) + linear(64, 32);
    let params = v * 32 + linear(48, 32) + layer + 2 * 32 + linear(32, v);
    assert_eq!(cells[2], params.to_string(), "{row_a}");
    // Tiny B has no paper numbers: dashes in the paper columns, its count too.
    let row_b = table
        .lines()
        .find(|l| l.starts_with("| Tiny B |"))
        .unwrap_or_else(|| panic!("no row B: {table}"));
    let cells_b: Vec<&str> = row_b.split('|').map(str::trim).collect();
    assert_eq!(cells_b[2], params.to_string(), "{row_b}");
    assert_eq!(
        [cells_b[4], cells_b[6], cells_b[8], cells_b[10]],
        ["–"; 4],
        "{row_b}"
    );
    assert!(
        table.contains("The paper has no numbers for Tiny B"),
        "{table}"
    );
    let record = std::fs::read_to_string(work.join("tiny/stages/train.tiny-a.json")).unwrap();
    assert!(
        record.contains(&format!("\"params\": {params}")),
        "{record}"
    );
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(prov["stages"].as_array().unwrap().len(), ALL.len() - 1);
    assert!(prov["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert!(prov["experiments"][0]["config_hash"].is_string(), "{prov}");
    assert_eq!(
        prov["experiments"][1]["params"].as_u64(),
        Some(params),
        "{prov}"
    );

    // Again: every stage is reused, in seconds.
    let start = Instant::now();
    let second = reproduce(&[]);
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(stages(&second, "cached  "), ALL, "{second}");
    assert!(stages(&second, "run     ").is_empty(), "{second}");
    assert!(secs < 20.0, "the cached run took {secs:.1} s");

    // --force redoes the named stage; the same outputs keep what follows.
    let forced = reproduce(&["--force", "similarity"]);
    assert_eq!(stages(&forced, "run     "), ["similarity"], "{forced}");
    assert_eq!(stages(&forced, "cached  ").len(), ALL.len() - 1, "{forced}");
    // A kind names every stage of that kind.
    let forced = reproduce(&["--force", "generate"]);
    let ran = stages(&forced, "run     ");
    assert!(
        ran.starts_with(&["generate:tiny-a".to_string()])
            && ran.contains(&"generate:tiny-b".into()),
        "{forced}"
    );
    assert!(!ran.contains(&"train:tiny-a".into()) && !ran.contains(&"prepare".into()));

    // A deleted output reruns its stage.
    std::fs::remove_dir_all(work.join("tiny/generated/tiny-b")).unwrap();
    let again = reproduce(&[]);
    assert!(
        stages(&again, "run     ").starts_with(&["generate:tiny-b".to_string()]),
        "{again}"
    );

    // An interrupted training (a run folder, no record) resumes from its checkpoint;
    // the same weights keep what follows.
    let stages_dir = work.join("tiny/stages");
    std::fs::remove_file(stages_dir.join("train.tiny-a.json")).unwrap();
    let resumed = reproduce(&[]);
    assert!(resumed.contains("resuming train:tiny-a"), "{resumed}");
    assert_eq!(stages(&resumed, "run     "), ["train:tiny-a"], "{resumed}");
    // A run folder started under another key is not resumed but redone.
    std::fs::write(stages_dir.join("train.tiny-a.started"), "another key").unwrap();
    std::fs::remove_file(stages_dir.join("train.tiny-a.json")).unwrap();
    let redone = reproduce(&[]);
    assert!(!redone.contains("resuming"), "{redone}");
    assert!(
        stages(&redone, "run     ").starts_with(&["train:tiny-a".to_string()]),
        "{redone}"
    );

    // A changed setting reruns what it reaches: training and what follows, not the data.
    suite(dir, "train.steps=21");
    let changed = reproduce(&[]);
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
    run(&tiny.args("report", &[]));
    assert_results();
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
    run(&tiny.args("report", &["--ratings", arg(&ratings)]));
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
    let err = fails(&tiny.args("report", &[]));
    assert_contains(&err, &["eval.tiny-a.json", "perplexit"]);
    std::fs::write(&record, good).unwrap();

    // A bad --force value lists the stages.
    let err = fails(&tiny.args("reproduce", &["--force", "trian"]));
    assert_contains(&err, &["trian", "train:tiny-a"]);
}

/// `seeds: 2`: each row trains, evaluates and samples twice, as distinct cached
/// stages with distinct run folders and pieces; Table 1 shows mean ± std, the
/// provenance lists both runs, and a second run reuses all of them.
#[test]
fn seeds_give_distinct_cached_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir, 20);
    let d = dir.display();
    let file = write(
        dir,
        "seeds.yaml",
        format!(
            "name: seeds\ndataset: {d}/data.yaml\nreference: Tiny A\nseeds: 2\nset: [train.steps=15]\n\
             eval: {{lengths: [16, 64, 128], max_interval: 8}}\ngenerate: {{num: 2, max_len: 150, top_k: 8, seed: 1}}\n\
             rows:\n  - {{label: Tiny A, experiment: {d}/tiny.yaml}}\n"
        )
        .as_bytes(),
    );
    let s = Suite {
        file,
        work: dir.join("work"),
        results: dir.join("results"),
    };
    let first = run(&s.args("reproduce", &[]));
    let ran = stages(&first, "run     ");
    for stage in ["train", "eval", "generate", "se"] {
        for name in [format!("{stage}:tiny-a"), format!("{stage}:tiny-a-seed1")] {
            assert!(ran.contains(&name), "{name} did not run: {first}");
        }
    }
    let record = |name: &str| -> serde_json::Value {
        let path = s.work.join(format!("seeds/stages/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (a, b) = (record("train.tiny-a"), record("train.tiny-a-seed1"));
    assert_ne!(a["output"]["run_dir"], b["output"]["run_dir"]);
    assert_ne!(a["output"]["last_loss"], b["output"]["last_loss"]);
    let pieces = |slug: &str| {
        std::fs::read_to_string(
            s.work
                .join(format!("seeds/generated/{slug}/piece-000.sampled.txt")),
        )
        .unwrap_or_else(|e| panic!("{slug}: {e}"))
    };
    assert_ne!(pieces("tiny-a"), pieces("tiny-a-seed1"));
    let out = s.results.join("seeds");
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    let row = table.lines().find(|l| l.starts_with("| Tiny A |")).unwrap();
    assert!(row.contains(" ± "), "{table}");
    assert!(table.contains("2 seeds"), "{table}");
    let csv = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    assert!(csv.contains(",seeds,"), "{csv}");
    let se = std::fs::read_to_string(out.join("se.csv")).unwrap();
    assert_eq!(se.lines().count(), 3, "{se}");
    let prov: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("provenance.json")).unwrap())
            .unwrap();
    let seeds: Vec<u64> = prov["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, [0, 1], "{prov}");
    let again = run(&s.args("reproduce", &[]));
    assert!(stages(&again, "run     ").is_empty(), "{again}");
    assert!(
        stages(&again, "cached  ").contains(&"train:tiny-a-seed1".to_string()),
        "{again}"
    );
}

#[test]
fn bad_suites_name_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = dir.display();
    write(dir, "data.yaml", format!("name: d\nmidi_dir: {d}/nowhere\nout: {d}/o\nmissing_help: download lmd_full.tar.gz and extract it\n").as_bytes());
    write(dir, "e.yaml", b"name: e\n");
    // A one-row suite on `data.yaml` whose row runs `dir/EXPERIMENT`.
    let suite = |name: &str, experiment: &str| {
        let yaml = format!("name: s\ndataset: {d}/data.yaml\nreference: A\nrows:\n  - {{label: A, experiment: {d}/{experiment}}}\n");
        write(dir, name, yaml.as_bytes())
    };
    let missing_exp = suite("s1.yaml", "museformer-small.yaml");
    let missing_data = suite("s2.yaml", "e.yaml");
    let w = dir.join("w");
    for (args, expected) in [
        (
            vec!["reproduce", arg(&missing_exp)],
            vec!["s1.yaml", "museformer-small.yaml", "does not exist"],
        ),
        (
            vec!["reproduce", arg(&missing_data), "--work", arg(&w)],
            vec!["nowhere", "download lmd_full.tar.gz"],
        ),
        // The report of a suite that never ran says what to run.
        (
            vec!["report", arg(&missing_data), "--work", arg(&w)],
            vec!["museformer reproduce"],
        ),
    ] {
        assert_contains(&fails(&args), &expected);
    }
    // The repository's suites name the paper's rows; the paper suite explains LMD.
    let paper = std::fs::read_to_string(root().join("experiments/suites/paper.yaml")).unwrap();
    assert!(paper.contains("lmd_full.tar.gz") && paper.contains("colinraffel.com"));
}

//! Museformer and its ablations through the shared trainer, evaluator and
//! generator; the ablation experiment files give their intended layouts; `inspect
//! layout` writes the key sets the model uses.

mod common;

use common::*;
use museformer::config::ExperimentConfig;
use museformer::model::layout::{Attends, Coarse, Layout, LayoutConfig};
use museformer::registry::{ModelKind, ModelSection};
use std::path::{Path, PathBuf};

/// A prepared dataset of 16 generated songs and a tiny Museformer experiment.
fn setup(dir: &Path) -> PathBuf {
    let data = tiny_dataset(dir, 16, 6);
    let model = "kind: museformer, layers: 1, museformer: {layout: {fine_grained_bars: [1, 2, 4]}}";
    tiny_experiment(dir, "tiny-museformer", &data, model, "steps: 8, warmup: 2")
}

#[test]
fn museformer_and_its_ablations_train_evaluate_and_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = setup(tmp.path());
    let runs = tmp.path().join("runs");
    for (i, sets) in [
        vec![],
        vec!["model.museformer.layout.coarse=none"],
        vec!["model.museformer.layout.fine_grained_bars=[1,2,3,4,5,6,7,8]"],
        vec!["model.museformer.layout.fine_grained_bars=[]"],
    ]
    .iter()
    .enumerate()
    {
        let extra: Vec<&str> = sets.iter().flat_map(|s| ["--set", s]).collect();
        let gen = tmp.path().join(format!("gen-{i}"));
        train_eval_generate(&exp, &runs, &extra, &gen, 1, 120);
    }
}

#[test]
fn ablation_files_give_their_layouts() {
    let model = |name: &str| {
        ExperimentConfig::load(&root().join("experiments").join(name), &[])
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
            .model
    };
    let layout = |name: &str| match model(name).section {
        ModelSection::Museformer(m) => m.layout,
        other => panic!("{name} is a {}, not a Museformer", other.kind()),
    };
    for (full, small) in [
        ("museformer.yaml", "museformer-small.yaml"),
        (
            "museformer-no-coarse.yaml",
            "museformer-small-no-coarse.yaml",
        ),
        (
            "museformer-no-selection.yaml",
            "museformer-small-no-selection.yaml",
        ),
        (
            "museformer-summary-only.yaml",
            "museformer-small-summary-only.yaml",
        ),
    ] {
        let (f, s) = (model(full), model(small));
        assert_eq!(f.kind(), ModelKind::Museformer, "{full}");
        assert_eq!(s.kind(), ModelKind::Museformer, "{small}");
        assert_eq!(
            layout(full),
            layout(small),
            "{full} and {small} differ in layout"
        );
        assert_eq!(f.sizes.hidden, 512, "{full} has the paper's width");
    }
    // Bar 40 of a song with one token per bar: which bars each file lets it see.
    let l = Layout::new(&(0..=40).collect::<Vec<_>>());
    let sees = |name: &str| -> Attends { l.token(40, &layout(name)) };
    let selected: Vec<usize> = [32, 24, 16, 12, 8, 4, 2, 1, 0]
        .iter()
        .map(|k| 40 - k)
        .collect();
    let others: Vec<usize> = (0..40).filter(|b| !selected.contains(b)).collect();
    assert_eq!(
        sees("museformer-small.yaml"),
        Attends {
            tokens: selected.clone(),
            summaries: others.clone()
        }
    );
    assert_eq!(
        sees("museformer-small-no-coarse.yaml"),
        Attends {
            tokens: selected,
            summaries: vec![]
        }
    );
    assert_eq!(
        sees("museformer-small-no-selection.yaml"),
        Attends {
            tokens: (32..=40).collect(),
            summaries: (0..32).collect()
        }
    );
    assert_eq!(
        sees("museformer-small-summary-only.yaml"),
        Attends {
            tokens: vec![40],
            summaries: (0..40).collect()
        }
    );
    assert_eq!(layout("museformer.yaml"), LayoutConfig::default());
    assert_eq!(layout("museformer-no-coarse.yaml").coarse, Coarse::None);
}

/// Three bars of 2, 1 and 2 tokens (the first token `<s>` belongs to bar 0).
const THREE_BARS: &[u8] = b"s-9 o-0 t-35 i-0 p-60 d-4 v-20 b-1 o-0 b-1 o-0 i-0 p-60 d-4 v-20 b-1\n";

#[test]
fn inspect_layout_writes_the_key_sets_and_a_figure() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tokens = write(dir, "piece.txt", THREE_BARS);
    let small = root().join("experiments/museformer-small.yaml");
    let exp = format!(
        "extends: {}\nmodel: {{museformer: {{layout: {{fine_grained_bars: [2], coarse: all_other}}}}}}\n",
        small.display()
    );
    let exp = write(dir, "exp.yaml", exp.as_bytes());
    let (png, json) = (dir.join("layout.png"), dir.join("layout.json"));
    let files = [
        "--tokens",
        arg(&tokens),
        "--out",
        arg(&png),
        "--json",
        arg(&json),
    ];
    run(&[&["inspect", "layout", arg(&exp)][..], &files].concat());
    assert!(std::fs::metadata(&png).unwrap().len() > 100);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let tokens = v["tokens"].as_array().unwrap();
    // `<s>` + 16 tokens: bar 0 is tokens 0..=8, bar 1 tokens 9 and 10, bar 2
    // tokens 11..=16.
    assert_eq!(tokens.len(), 17);
    assert_eq!(v["summaries"].as_array().unwrap().len(), 3);
    // The last token (bar 2) sees bar 0's tokens (offset 2), its own bar up to
    // itself, and bar 1 through its summary.
    let last = &tokens[16];
    let expect_tokens: Vec<u64> = (0..9).chain(11..17).collect();
    assert_eq!(
        last["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect::<Vec<_>>(),
        expect_tokens
    );
    assert_eq!(last["summaries"], serde_json::json!([1]));
    // `<s>` is the prefix: in no bar, it sees only itself.
    assert_eq!(v["prefix"], 1);
    assert_eq!(tokens[0]["tokens"], serde_json::json!([0]));
    assert_eq!(
        v["summaries"][0]["tokens"],
        serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8])
    );
    assert_eq!(v["summaries"][1]["tokens"], serde_json::json!([9, 10]));
    assert_eq!(v["summaries"][1]["summaries"], serde_json::json!([1]));
}

/// A token file of 600 one-note bars in `dir`: its text and path.
fn six_hundred_bars(dir: &Path) -> (String, PathBuf) {
    let text = format!("t-35 {}", "o-0 i-0 p-60 d-4 v-20 b-1 ".repeat(600));
    let path = write(dir, "long.txt", text.as_bytes());
    (text, path)
}

#[test]
fn inspect_layout_of_a_600_bar_piece_is_the_models_layout() {
    // Past bar 511 nothing is merged: `inspect layout` gives every token the key
    // set of the layout the model builds from the same ids (Layout::of_sequence).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (text, tokens) = six_hundred_bars(dir);
    let exp = root().join("experiments/museformer-small.yaml");
    let json = dir.join("layout.json");
    run(&[
        "inspect",
        "layout",
        arg(&exp),
        "--tokens",
        arg(&tokens),
        "--json",
        arg(&json),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["summaries"].as_array().unwrap().len(), 600);
    let cfg = ExperimentConfig::load(&exp, &[]).unwrap();
    let vocab = museformer::tokens::Vocab::new(16);
    let toks = museformer::tokens::parse_tokens(&text, &vocab).unwrap();
    let mut ids = vec![museformer::tokens::vocab::BOS_ID];
    ids.extend(toks.iter().map(|&t| vocab.id(t)));
    let (bars, _) = museformer::model::bar_beat_indices(&ids, &vocab);
    let ids: Vec<i64> = ids.iter().map(|&x| x as i64).collect();
    let layout = Layout::of_sequence(&ids, &bars);
    let lc = match cfg.model.section {
        ModelSection::Museformer(m) => m.layout,
        other => panic!("{other:?}"),
    };
    let list = |x: &serde_json::Value| -> Vec<usize> {
        x.as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_u64().unwrap() as usize)
            .collect()
    };
    let reported = v["tokens"].as_array().unwrap();
    assert_eq!(reported.len(), layout.len());
    for (t, q) in reported.iter().enumerate() {
        let want = layout.token(t, &lc);
        assert_eq!(list(&q["tokens"]), want.tokens, "token {t}");
        assert_eq!(list(&q["summaries"]), want.summaries, "token {t}");
    }
    // The last bar's tokens see bar 598 and the summary of bar 550, not bar 0's.
    let last = reported.last().unwrap();
    assert!(list(&last["summaries"]).contains(&550));
    assert_eq!(last["bar"], 599);
}

#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    // The JSON of a 600-bar layout is far more than a pipe holds, so the command
    // is still writing when the reader goes away (`museformer ... | head`).
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let (_, tokens) = six_hundred_bars(tmp.path());
    let exp = root().join("experiments/museformer-small.yaml");
    let mut child = bin()
        .args([
            "inspect",
            "layout",
            arg(&exp),
            "--tokens",
            arg(&tokens),
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
}

#[test]
fn bench_attention_and_decode_measure_and_write_their_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exp = setup(dir);
    let full = format!(
        "extends: {}\nname: tiny-full\nmodel: {{kind: transformer}}\n",
        exp.display()
    );
    let full = write(dir, "full.yaml", full.as_bytes());
    // `bench attention` at 64 and 128 tokens into `out`: its rows.
    let attention = |experiments: &str, extra: &[&str], out: &Path| {
        let args = [
            "bench",
            "attention",
            "--experiments",
            experiments,
            "--lengths",
            "64,128",
        ];
        run(&[&args[..], extra, &["--out", arg(out)]].concat());
        museformer::bench::read_csv(&out.join("attention.csv")).unwrap()
    };
    let out = dir.join("bench");
    let experiments = format!("{},{}", exp.display(), full.display());
    let rows = attention(&experiments, &["--repeats", "1"], &out);
    assert_eq!(rows.len(), 4);
    for m in &rows {
        assert_eq!(m.status, "ok", "{m:?}");
        assert!(m.seconds_per_step.unwrap() > 0.0, "{m:?}");
        assert!(m.peak_mb.is_some(), "{m:?}");
    }
    assert_eq!(rows[0].experiment, "tiny-museformer");
    assert_eq!(rows[3].experiment, "tiny-full");
    assert_eq!(rows[1].length, 128);
    for f in ["attention.json", "attention.png", "attention.svg"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // A length the process cannot reach within the memory limit is recorded as out
    // of memory, and the longer lengths are skipped.
    let rows = attention(
        arg(&exp),
        &["--memory-limit-gb", "0.01"],
        &dir.join("bench2"),
    );
    assert!(rows[0].status.starts_with("out of memory"), "{rows:?}");
    assert_eq!(rows[1].status, "skipped");

    let decode = [
        "--experiment",
        arg(&exp),
        "--length",
        "100",
        "--samples",
        "3",
    ];
    let text = run(&[&["bench", "decode"][..], &decode].concat());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["length"], 100);
    assert_eq!(v["prefix_forward_seconds"].as_array().unwrap().len(), 3);
    assert!(v["speedup"].as_f64().unwrap() > 0.0);
}

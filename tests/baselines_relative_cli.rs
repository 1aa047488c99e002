//! The Music Transformer and Transformer-XL baselines through the binary: each
//! trains a few steps on a small generated dataset (the Music Transformer on
//! chunks shorter than the evaluated lengths, Transformer-XL over several
//! segments), then evaluates and generates.

mod common;

use common::*;
use museformer::midi;
use std::path::{Path, PathBuf};

fn run(args: &[&str]) -> String {
    let out = bin().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "museformer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A prepared dataset of 30 generated songs (about 100 to 200 tokens each).
fn dataset(dir: &Path) -> PathBuf {
    for i in 0..30u8 {
        write(
            &dir.join("midi"),
            &format!("s{i:02}.mid"),
            &midi::to_bytes(&song(i, 4 + (i % 4) as u64)),
        );
    }
    let yaml = format!(
        "name: tiny\nmidi_dir: {0}/midi\nout: {0}/data\nencoding: {{ignore_ts: true, inst_order: lmd6, pos_per_beat: 16}}\nsplit:\n  hash: {{seed: 0, ratios: [2, 1, 1]}}\n",
        dir.display()
    );
    let data = write(dir, "data.yaml", yaml.as_bytes());
    run(&["data", "prepare", data.to_str().unwrap()]);
    data
}

/// Trains `model` (a YAML flow map of model keys besides the sizes) with extra
/// `train` keys, checks that the loss falls, evaluates and generates.
fn train_eval_generate(dir: &Path, data: &Path, name: &str, model: &str, train: &str) {
    let exp = format!(
        "name: {name}\ndataset: {}\nmodel: {{layers: 2, hidden: 32, heads: 2, ffn: 64, token_embed: 32, bar_embed: 8, beat_embed: 8, dropout: 0.1, attention_dropout: 0.0, {model}}}\n\
         train: {{device: cpu, steps: 30, lr: 3.0e-3, warmup: 5, batch_tokens: 400, valid_every: 0, checkpoint_every: 0, max_tokens: 200, valid_max_tokens: 200, {train}}}\n\
         eval: {{lengths: [16, 64, 128]}}\n",
        data.display()
    );
    let exp = write(dir, &format!("{name}.yaml"), exp.as_bytes());
    let runs = dir.join("runs");
    let out = run(&[
        "train",
        exp.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
    ]);
    let run_dir = PathBuf::from(
        out.lines()
            .find_map(|l| l.strip_prefix("run folder: "))
            .expect("the run folder is printed"),
    );
    let csv = std::fs::read_to_string(run_dir.join("train.csv")).unwrap();
    let losses: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(losses.len(), 30);
    let tail = losses[25..].iter().sum::<f64>() / 5.0;
    assert!(
        tail < losses[0] * 0.7,
        "{name}: loss did not fall: {losses:?}"
    );

    let eval = run(&["eval", run_dir.to_str().unwrap()]);
    assert!(
        eval.contains("first     16 tokens: PPL") && eval.contains("first    128 tokens: PPL"),
        "{name}: {eval}"
    );
    let gen = dir.join(format!("gen-{name}"));
    run(&[
        "generate",
        run_dir.to_str().unwrap(),
        "--num",
        "2",
        "--max-len",
        "150",
        "--out",
        gen.to_str().unwrap(),
    ]);
    for i in 0..2 {
        let sampled = std::fs::read_to_string(gen.join(format!("piece-{i:03}.sampled.txt")))
            .unwrap_or_else(|e| panic!("{name}: piece {i} was not written: {e}"));
        assert!(!sampled.trim().is_empty(), "{name}: piece {i} is empty");
        assert!(gen.join(format!("piece-{i:03}.mid")).exists());
    }
}

#[test]
fn music_transformer_trains_on_chunks_evaluates_and_generates() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    // Chunks of 48 tokens; evaluation and generation reach 128 and 150.
    train_eval_generate(
        tmp.path(),
        &data,
        "mt",
        "kind: music_transformer, max_relative: 32",
        "chunk: 48",
    );
}

#[test]
fn transformer_xl_trains_evaluates_and_generates_over_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    // Segments of 32 with a memory of 48: songs span several segments.
    train_eval_generate(
        tmp.path(),
        &data,
        "xl",
        "kind: transformer_xl, segment: 32, memory: 48",
        "chunk: 0",
    );
}

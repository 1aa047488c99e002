//! The Music Transformer and Transformer-XL baselines through the binary: each
//! trains a few steps on a small generated dataset (the Music Transformer on
//! chunks shorter than the evaluated lengths, Transformer-XL over several
//! segments), then evaluates and generates.

mod common;

use common::*;
use std::path::Path;

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
    let run_dir = run_dir(&out);
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
    let data = tiny_dataset(tmp.path(), 30, 4);
    // Chunks of 48 tokens; evaluation and generation reach 128 and 150.
    train_eval_generate(
        tmp.path(),
        &data,
        "mt",
        "kind: music_transformer, music_transformer: {max_relative: 32}",
        "chunk: 48",
    );
}

#[test]
fn transformer_xl_trains_evaluates_and_generates_over_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path(), 30, 4);
    // Segments of 32 with a memory of 48: songs span several segments.
    train_eval_generate(
        tmp.path(),
        &data,
        "xl",
        "kind: transformer_xl, transformer_xl: {segment: 32, memory: 48}",
        "chunk: 0",
    );
}

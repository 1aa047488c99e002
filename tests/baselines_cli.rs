//! The Longformer and Linear Transformer baselines through the binary: each trains a
//! few steps on a small generated dataset (the loss falls), evaluates and generates
//! MIDI; their experiment files resolve to the intended models.

mod common;

use common::*;
use museformer::config::ExperimentConfig;
use museformer::registry::{ModelConfig, ModelKind, ModelSection};
use std::path::Path;

/// Trains a tiny model of `kind` (with the settings of its section) for 30 steps,
/// then evaluates it and generates two pieces.
fn train_eval_generate(dir: &Path, data: &Path, kind: &str, section: &str) {
    let exp = format!(
        "name: {kind}\ndataset: {}\nmodel: {{kind: {kind}, {kind}: {{{section}}}, layers: 2, hidden: 32, heads: 2, ffn: 64, token_embed: 32, bar_embed: 8, beat_embed: 8, dropout: 0.1, attention_dropout: 0.0}}\n\
         train: {{device: cpu, steps: 30, lr: 3.0e-3, warmup: 5, batch_tokens: 400, valid_every: 0, checkpoint_every: 0, max_tokens: 200, valid_max_tokens: 200}}\n\
         eval: {{lengths: [16, 64, 128]}}\n",
        data.display()
    );
    let exp = write(dir, &format!("{kind}.yaml"), exp.as_bytes());
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
    assert_eq!(losses.len(), 30, "{kind}");
    let tail = losses[25..].iter().sum::<f64>() / 5.0;
    assert!(
        tail < losses[0] * 0.7,
        "{kind}: loss did not fall: {losses:?}"
    );

    let eval = run(&["eval", run_dir.to_str().unwrap()]);
    assert!(eval.contains("first    128 tokens: PPL"), "{kind}: {eval}");

    let gen = dir.join(format!("gen-{kind}"));
    run(&[
        "generate",
        run_dir.to_str().unwrap(),
        "--num",
        "2",
        "--max-len",
        "300",
        "--seed",
        "3",
        "--out",
        gen.to_str().unwrap(),
    ]);
    for i in 0..2 {
        assert!(
            gen.join(format!("piece-{i:03}.mid")).exists(),
            "{kind}: piece {i} missing"
        );
    }
}

#[test]
fn longformer_and_linear_transformer_train_evaluate_and_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tiny_dataset(tmp.path(), 20, 4);
    // Windows and chunks well below the 200-token training length, so both paths
    // (chunks, carried state, rolling cache) are exercised.
    train_eval_generate(tmp.path(), &data, "longformer", "window: 16");
    train_eval_generate(tmp.path(), &data, "linear_transformer", "chunk: 16");
}

#[test]
fn the_experiment_files_name_the_baselines() {
    let load = |name: &str| {
        ExperimentConfig::load(&root().join("experiments").join(name), &[])
            .unwrap_or_else(|e| panic!("{name}: {e:#}"))
    };
    // The Longformer's window (`None` for another kind).
    let window = |m: &ModelConfig| match &m.section {
        ModelSection::Longformer(l) => Some(l.window),
        _ => None,
    };
    let long = load("longformer.yaml");
    assert_eq!(
        (long.model.kind(), window(&long.model)),
        (ModelKind::Longformer, Some(1024))
    );
    assert_eq!((long.model.sizes.layers, long.model.sizes.hidden), (4, 512));
    let long_small = load("longformer-small.yaml");
    assert_eq!(
        (long_small.model.kind(), window(&long_small.model)),
        (ModelKind::Longformer, Some(256))
    );
    assert!((window(&long_small.model).unwrap() as usize) < long_small.train.max_tokens);
    let linear = load("linear-transformer.yaml");
    assert_eq!(linear.model.kind(), ModelKind::LinearTransformer);
    assert_eq!(
        (linear.model.sizes.layers, linear.model.sizes.hidden),
        (4, 512)
    );
    let linear_small = load("linear-transformer-small.yaml");
    assert_eq!(linear_small.model.kind(), ModelKind::LinearTransformer);
    assert_eq!(linear_small.model.sizes.hidden, 64);
    // Each builds through the registry.
    for cfg in [long, long_small, linear, linear_small] {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        museformer::registry::build(&vs.root(), &cfg.model, 100)
            .unwrap_or_else(|e| panic!("{}: {e:#}", cfg.name));
    }
}

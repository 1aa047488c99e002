//! The Longformer and Linear Transformer baselines through the binary: each trains a
//! few steps on a small generated dataset (the loss falls), evaluates and generates
//! MIDI; their experiment files resolve to the intended models.

mod common;

use common::*;
use museformer::config::ExperimentConfig;
use museformer::registry::{ModelConfig, ModelKind, ModelSection};

#[test]
fn longformer_and_linear_transformer_train_evaluate_and_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = tiny_dataset(dir, 20, 4);
    // Windows and chunks well below the 200-token training length, so both paths
    // (chunks, carried state, rolling cache) are exercised.
    for (kind, section) in [
        ("longformer", "window: 16"),
        ("linear_transformer", "chunk: 16"),
    ] {
        let model = format!("kind: {kind}, {kind}: {{{section}}}, layers: 2");
        let exp = tiny_experiment(dir, kind, &data, &model, "steps: 30, warmup: 5");
        let gen = dir.join(format!("gen-{kind}"));
        let run_dir = train_eval_generate(&exp, &dir.join("runs"), &[], &gen, 2, 300);
        assert_loss_fell(&run_dir, 30, kind);
    }
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

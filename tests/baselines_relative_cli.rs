//! The Music Transformer and Transformer-XL baselines through the binary: each
//! trains a few steps on a small generated dataset (the Music Transformer on
//! chunks shorter than the evaluated lengths, Transformer-XL over several
//! segments), then evaluates and generates.

mod common;

use common::*;

/// Trains the baseline `model` (YAML flow-map keys besides the sizes) with extra
/// `train` keys on 30 generated songs: the loss falls, and the run evaluates and
/// generates pieces whose sampled tokens are written.
fn baseline(name: &str, model: &str, train: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = tiny_dataset(dir, 30, 4);
    let model = format!("layers: 2, {model}");
    let exp = tiny_experiment(
        dir,
        name,
        &data,
        &model,
        &format!("steps: 30, warmup: 5, {train}"),
    );
    let gen = dir.join(format!("gen-{name}"));
    let run_dir = train_eval_generate(&exp, &dir.join("runs"), &[], &gen, 2, 150);
    assert_loss_fell(&run_dir, 30, name);
    for i in 0..2 {
        let sampled = std::fs::read_to_string(gen.join(format!("piece-{i:03}.sampled.txt")))
            .unwrap_or_else(|e| panic!("{name}: piece {i} was not written: {e}"));
        assert!(!sampled.trim().is_empty(), "{name}: piece {i} is empty");
    }
}

#[test]
fn music_transformer_trains_on_chunks_evaluates_and_generates() {
    // Chunks of 48 tokens; evaluation and generation reach 128 and 150.
    let model = "kind: music_transformer, music_transformer: {max_relative: 32}";
    baseline("mt", model, "chunk: 48");
}

#[test]
fn transformer_xl_trains_evaluates_and_generates_over_segments() {
    // Segments of 32 with a memory of 48: songs span several segments.
    let model = "kind: transformer_xl, transformer_xl: {segment: 32, memory: 48}";
    baseline("xl", model, "chunk: 0");
}

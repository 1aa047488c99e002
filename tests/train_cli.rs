//! `museformer train`, `eval` and `generate` end to end on a small generated
//! dataset: the loss falls, resuming equals training straight through (numbered
//! snapshots kept across it), perplexity is printed, and generated MIDI files
//! encode to the generated tokens.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A prepared dataset of 30 generated songs and an experiment file for a tiny model.
fn setup(dir: &Path) -> PathBuf {
    let data = tiny_dataset(dir, 30, 4);
    tiny_experiment(dir, "tiny", &data, "layers: 1", "steps: 30, warmup: 5")
}

fn weights(run: &Path) -> HashMap<String, Tensor> {
    checkpoint_weights(&run.join("checkpoints/last"))
}

fn checkpoint_weights(checkpoint: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(checkpoint.join("model.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_difference(a: &HashMap<String, Tensor>, b: &HashMap<String, Tensor>) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .map(|(name, t)| (t - &b[name]).abs().max().double_value(&[]))
        .fold(0.0, f64::max)
}

#[test]
fn train_eval_generate_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exp = setup(dir);
    // Evaluation prints a perplexity per length and writes eval.csv; generation
    // writes the pieces.
    let runs_a = dir.join("runs-a");
    let gen = dir.join("gen");
    let run_a = train_eval_generate(&exp, &runs_a, &[], &gen, 2, 300);
    let eval_csv = std::fs::read_to_string(run_a.join("eval.csv")).unwrap();
    assert_eq!(eval_csv.lines().count(), 4, "{eval_csv}");

    // The loss falls: the mean of the last five steps is well below the first step's.
    assert_loss_fell(&run_a, 30, "tiny");

    // Generated MIDI files encode back to the generated tokens.
    for i in 0..2 {
        let tokens = std::fs::read_to_string(gen.join(format!("piece-{i:03}.txt"))).unwrap();
        let midi_file = gen.join(format!("piece-{i:03}.mid"));
        if tokens.trim().is_empty() {
            continue;
        }
        let encode = ["encode", "--ignore-ts", "--inst-order", "lmd6"];
        let again = run(&[&encode[..], &["--pos-per-beat", "16", arg(&midi_file)]].concat());
        assert_eq!(again, tokens);
    }
    assert!(gen.join("generation.json").exists());

    // A prompt is continued; a bad prompt file is named with its first bad token.
    let prompt_text = "t-35 o-0 i-80 p-60 d-8 v-20 b-1";
    let prompt = write(dir, "prompt.txt", format!("{prompt_text}\n").as_bytes());
    let gen2 = dir.join("gen2");
    let prompted = ["generate", arg(&run_a), "--out", arg(&gen2)];
    let continued = [
        "--max-len",
        "50",
        "--min-len",
        "40",
        "--prompt",
        arg(&prompt),
    ];
    run(&[&prompted[..], &continued].concat());
    let sampled = std::fs::read_to_string(gen2.join("piece-000.sampled.txt")).unwrap();
    assert!(sampled.starts_with(prompt_text), "{sampled}");
    // No </s> before 40 tokens (the prompt's 7 included).
    let count = sampled.split_whitespace().count();
    assert!((40..=50).contains(&count), "{count} tokens: {sampled}");
    let settings = std::fs::read_to_string(gen2.join("generation.json")).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(
        (&settings["min_len"], &settings["max_len"]),
        (&40.into(), &50.into())
    );
    let err = fails(&[&prompted[..], &["--max-len", "50", "--min-len", "60"]].concat());
    assert_contains(&err, &["minimum length (60)", "maximum length (50)"]);
    let bad = write(dir, "bad-prompt.txt", b"t-35 o-0 x-1\n");
    let err = fails(&[&prompted[..], &["--prompt", arg(&bad)]].concat());
    assert_contains(&err, &["bad-prompt.txt", "token 3 (`x-1`)"]);

    // 15 steps, then --resume to 30, equals 30 steps straight through; the
    // numbered snapshots of every 10 steps are kept across the resume.
    let runs_b = dir.join("runs-b");
    let snapshots = ["--set", "train.keep_snapshots=10"];
    let first = [&snapshots[..], &["--set", "train.steps=15"]].concat();
    let run_b = train(&exp, &runs_b, &first);
    let resume = [&snapshots[..], &["--resume"]].concat();
    assert_eq!(train(&exp, &runs_b, &resume), run_b);
    let (a, b) = (weights(&run_a), weights(&run_b));
    let diff = max_difference(&a, &b);
    assert!(diff < 1e-6, "the weights differ by {diff} after resuming");
    let mut kept: Vec<String> = std::fs::read_dir(run_b.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-0000010", "step-0000020", "step-0000030"]);
    let snapshot = |step: usize| run_b.join(format!("checkpoints/step-{step:07}"));
    for step in [10, 20, 30] {
        let state = std::fs::read_to_string(snapshot(step).join("state.json")).unwrap();
        let state: serde_json::Value = serde_json::from_str(&state).unwrap();
        assert_eq!(state["step"], step, "{state}");
        assert!(snapshot(step).join("optimizer.safetensors").is_file());
    }
    assert!(max_difference(&checkpoint_weights(&snapshot(30)), &b) < 1e-12);
    assert!(max_difference(&checkpoint_weights(&snapshot(10)), &b) > 1e-6);
    // A corrupt checkpoint is refused with its file named.
    for which in ["best", "last"] {
        let checkpoint = run_b.join(format!("checkpoints/{which}/model.safetensors"));
        std::fs::write(checkpoint, b"not a checkpoint").unwrap();
    }
    let err = fails(&["eval", arg(&run_b)]);
    assert_contains(&err, &["model.safetensors", "corrupt"]);
    // Without --resume an existing run is refused, naming the folder.
    let refused = fails(&train_args(&exp, &runs_b, &snapshots));
    assert_contains(&refused, &["--resume"]);
}

#[test]
fn missing_datasets_and_cuda_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A dataset file whose MIDI folder and prepared store are both missing.
    let missing = b"name: d\nmidi_dir: nowhere\nout: nowhere-prepared\n";
    let data = write(dir, "d.yaml", missing);
    let exp = tiny_experiment(dir, "e", &data, "layers: 1", "steps: 30, warmup: 5");
    let err = fails(&train_args(&exp, &dir.join("r"), &[]));
    assert_contains(&err, &["museformer data prepare", "d.yaml"]);
    if !tch::Cuda::is_available() {
        let exp = setup(dir);
        let cuda = ["--set", "train.device=cuda"];
        let err = fails(&train_args(&exp, &dir.join("r2"), &cuda));
        assert_contains(&err, &["no CUDA device"]);
    }
}

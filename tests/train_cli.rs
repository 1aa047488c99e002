//! `museformer train`, `eval` and `generate` end to end on a small generated
//! dataset: the loss falls, resuming equals training straight through, perplexity
//! is printed, and generated MIDI files encode to the generated tokens.

mod common;

use common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// A prepared dataset of 30 generated songs and an experiment file for a tiny model.
fn setup(dir: &Path) -> PathBuf {
    let data = tiny_dataset(dir, 30, 4);
    let exp = format!(
        "name: tiny\ndataset: {}\nmodel: {{layers: 1, hidden: 32, heads: 2, ffn: 64, token_embed: 32, bar_embed: 8, beat_embed: 8, dropout: 0.1, attention_dropout: 0.0}}\n\
         train: {{device: cpu, steps: 30, lr: 3.0e-3, warmup: 5, batch_tokens: 400, valid_every: 0, checkpoint_every: 0, max_tokens: 200, valid_max_tokens: 200}}\n\
         eval: {{lengths: [16, 64, 128]}}\n",
        data.display()
    );
    write(dir, "tiny.yaml", exp.as_bytes())
}

fn weights(run: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(run.join("checkpoints/last/model.safetensors"))
        .unwrap()
        .into_iter()
        .collect()
}

#[test]
fn train_eval_generate_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = setup(tmp.path());
    let exp = exp.to_str().unwrap();
    let runs_a = tmp.path().join("runs-a");
    let out = run(&["train", exp, "--runs", runs_a.to_str().unwrap()]);
    let run_a = run_dir(&out);

    // The loss falls: the mean of the last five steps is well below the first step's.
    assert_loss_fell(&run_a, 30, "tiny");

    // Evaluation prints a perplexity per length and writes eval.csv.
    let eval = run(&["eval", run_a.to_str().unwrap()]);
    assert!(
        eval.contains("first     16 tokens: PPL") && eval.contains("first    128 tokens: PPL"),
        "{eval}"
    );
    assert_eq!(
        std::fs::read_to_string(run_a.join("eval.csv"))
            .unwrap()
            .lines()
            .count(),
        4
    );

    // Generated MIDI files encode back to the generated tokens.
    let gen = tmp.path().join("gen");
    generate(&run_a, &gen, 2, 300);
    for i in 0..2 {
        let tokens = std::fs::read_to_string(gen.join(format!("piece-{i:03}.txt"))).unwrap();
        let midi_file = gen.join(format!("piece-{i:03}.mid"));
        if tokens.trim().is_empty() {
            continue;
        }
        let again = run(&[
            "encode",
            "--ignore-ts",
            "--inst-order",
            "lmd6",
            "--pos-per-beat",
            "16",
            midi_file.to_str().unwrap(),
        ]);
        assert_eq!(again, tokens);
    }
    assert!(gen.join("generation.json").exists());

    // A prompt is continued; a bad prompt file is named with its first bad token.
    let prompt = write(
        tmp.path(),
        "prompt.txt",
        b"t-35 o-0 i-80 p-60 d-8 v-20 b-1\n",
    );
    let gen2 = tmp.path().join("gen2");
    let args = [
        "generate",
        run_a.to_str().unwrap(),
        "--max-len",
        "50",
        "--prompt",
        prompt.to_str().unwrap(),
    ];
    run(&[&args[..], &["--out", gen2.to_str().unwrap()]].concat());
    let sampled = std::fs::read_to_string(gen2.join("piece-000.sampled.txt")).unwrap();
    assert!(
        sampled.starts_with("t-35 o-0 i-80 p-60 d-8 v-20 b-1"),
        "{sampled}"
    );
    let bad = write(tmp.path(), "bad-prompt.txt", b"t-35 o-0 x-1\n");
    let err = fails(&[
        "generate",
        run_a.to_str().unwrap(),
        "--prompt",
        bad.to_str().unwrap(),
        "--out",
        gen2.to_str().unwrap(),
    ]);
    assert!(
        err.contains("bad-prompt.txt") && err.contains("token 3 (`x-1`)"),
        "{err}"
    );

    // 15 steps, then --resume to 30, equals 30 steps straight through.
    let runs_b = tmp.path().join("runs-b");
    let first = run(&[
        "train",
        exp,
        "--runs",
        runs_b.to_str().unwrap(),
        "--set",
        "train.steps=15",
    ]);
    let run_b = run_dir(&first);
    let again = run(&["train", exp, "--runs", runs_b.to_str().unwrap(), "--resume"]);
    assert_eq!(run_dir(&again), run_b);
    let (a, b) = (weights(&run_a), weights(&run_b));
    assert_eq!(a.len(), b.len());
    for (name, t) in &a {
        let diff = (t - &b[name]).abs().max().double_value(&[]);
        assert!(diff < 1e-6, "{name} differs by {diff} after resuming");
    }
    // A corrupt checkpoint is refused with its file named.
    std::fs::write(
        run_b.join("checkpoints/best/model.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    std::fs::write(
        run_b.join("checkpoints/last/model.safetensors"),
        b"not a checkpoint",
    )
    .unwrap();
    let err = fails(&["eval", run_b.to_str().unwrap()]);
    assert!(
        err.contains("model.safetensors") && err.contains("corrupt"),
        "{err}"
    );
    // Without --resume an existing run is refused, naming the folder.
    let refused = fails(&["train", exp, "--runs", runs_b.to_str().unwrap()]);
    assert!(refused.contains("--resume"));
}

#[test]
fn missing_datasets_and_cuda_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write(
        tmp.path(),
        "d.yaml",
        b"name: d\nmidi_dir: nowhere\nout: nowhere-prepared\n",
    );
    let exp = write(
        tmp.path(),
        "e.yaml",
        format!("dataset: {}\n", data.display()).as_bytes(),
    );
    let err = fails(&[
        "train",
        exp.to_str().unwrap(),
        "--runs",
        tmp.path().join("r").to_str().unwrap(),
    ]);
    assert!(
        err.contains("museformer data prepare") && err.contains("d.yaml"),
        "{err}"
    );
    if !tch::Cuda::is_available() {
        let exp = setup(tmp.path());
        let err = fails(&[
            "train",
            exp.to_str().unwrap(),
            "--runs",
            tmp.path().join("r2").to_str().unwrap(),
            "--set",
            "train.device=cuda",
        ]);
        assert!(err.contains("no CUDA device"), "{err}");
    }
}

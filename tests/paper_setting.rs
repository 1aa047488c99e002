//! The paper-size experiment files and the paper suite resolve to the release's
//! setting: its training script (muzic `museformer/ttrain/mf-lmd6remi-1.sh`,
//! fairseq 0.10.2) and its generation script (`tgen/generation__mf-lmd6remi-x.sh`),
//! flag by flag; the CPU files keep the short-run setting. An edit that breaks
//! either fails here.

use museformer::config::{DecayRule, ExperimentConfig, TrainConfig};
use museformer::pipeline::suite::Suite;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `experiments/*.yaml`, split into the paper-size files and the `-small` ones.
fn experiment_files() -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("experiments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .partition(|p| !p.file_stem().unwrap().to_string_lossy().contains("-small"))
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// What the release's training script sets, as this trainer's keys.
fn assert_release_training(what: &str, t: &TrainConfig) {
    let release = [
        // --truncate-train 15360, --truncate-valid 10240
        ("max_tokens", t.max_tokens == 15_360),
        ("valid_max_tokens", t.valid_max_tokens == 10_240),
        // 4 GPUs x --batch-size 1, --update-freq 1
        ("accumulate", t.accumulate == 4),
        // --optimizer adam --adam-betas '(0.9, 0.98)' --adam-eps 1e-9
        ("betas", t.betas == (0.9, 0.98)),
        ("eps", t.eps == 1e-9),
        // --weight-decay 0.01, fairseq's Adam on every parameter
        ("weight_decay", t.weight_decay == 0.01),
        ("decay", t.decay == DecayRule::All),
        // --lr 5e-4 --lr-scheduler inverse_sqrt --warmup-updates 16000
        ("lr", t.lr == 5e-4),
        ("warmup", t.warmup == 16_000),
        // no --clip-norm: fairseq's default 0, none
        ("clip", t.clip == 0.0),
        // --save-interval-updates 5000 (validation at each save), all kept
        ("checkpoint_every", t.checkpoint_every == 5000),
        ("valid_every", t.valid_every == 5000),
        ("keep_snapshots", t.keep_snapshots == 5000),
        // --fp16 (bf16 here)
        ("bf16", t.bf16),
    ];
    for (key, holds) in release {
        assert!(holds, "{what}: train.{key} is not the release's: {t:#?}");
    }
}

#[test]
fn the_paper_size_files_train_as_the_release_does() {
    let (paper, _) = experiment_files();
    let names: Vec<String> = paper.iter().map(|p| name(p)).collect();
    for expected in [
        "transformer.yaml",
        "museformer.yaml",
        "music-transformer.yaml",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    for file in &paper {
        let cfg = ExperimentConfig::load(file, &[]).unwrap();
        let t = &cfg.train;
        let what = name(file);
        assert_release_training(&what, t);
        assert_eq!(
            cfg.dataset,
            Path::new("experiments/data/lmd6.yaml"),
            "{what}"
        );
        if cfg.train.chunk == 0 {
            // One song per batch: an update is exactly 4 songs.
            assert_eq!(t.batch_size, 1, "{what}: train.batch_size");
            assert!(t.batch_tokens >= t.max_tokens, "{what}: a song must fit");
        } else {
            // Chunked (the Music Transformer): the chunks of one song's budget per
            // batch, so an update holds at most the tokens of 4 songs.
            assert_eq!((t.chunk, t.batch_size), (2048, 0), "{what}");
            assert_eq!(t.batch_tokens, t.max_tokens, "{what}");
        }
    }
}

#[test]
fn the_paper_suite_trains_its_rows_and_generates_as_the_release_does() {
    // Suite paths are relative to the repository root, where cargo runs tests.
    let suite = Suite::load(Path::new("experiments/suites/paper.yaml")).unwrap();
    // The paper's seven rows and the full-attention control.
    assert_eq!(suite.rows.len(), 8);
    for row in &suite.rows {
        let cfg = suite.experiment(row).unwrap();
        assert_release_training(&row.label, &cfg.train);
    }
    // --sampling --sampling-topk 8 --beam 1 --min-len 1024 --max-len-b 20480
    let g = &suite.generate;
    assert_eq!(
        (g.top_k, g.min_len, g.max_len, g.temperature),
        (8, 1024, 20_480, 1.0)
    );
    assert_eq!(suite.eval.lengths, [1024, 5120, 10_240]);
}

#[test]
fn the_cpu_files_keep_the_short_run_setting() {
    let (_, small) = experiment_files();
    assert!(!small.is_empty());
    for file in &small {
        let t = ExperimentConfig::load(file, &[]).unwrap().train;
        let what = name(file);
        assert_eq!(
            (
                t.accumulate,
                t.batch_size,
                t.decay,
                t.clip,
                t.keep_snapshots
            ),
            (1, 0, DecayRule::Matrices, 1.0, 0),
            "{what}"
        );
    }
}

//! The stage bodies and their typed outputs: what each stage does, what its key
//! covers, and what its record keeps for the next stages and the report.

use super::assemble::{self, Records};
use super::runner::{stage_name, Done, Runner};
use super::stage::{hash_outputs, stage_key, StageOutput, StageRecord};
use super::suite::Row;
use crate::data::{self, DatasetConfig, Split};
use crate::eval::repetition::RepetitionRow;
use crate::eval::PplRow;
use crate::run::RunPaths;
use crate::structure::input::{self, LoadOptions};
use crate::structure::{
    similarity_distribution, similarity_error, similarity_error_bootstrap, BootstrapInterval,
    Distribution, InstrumentSelection,
};
use crate::tokens::{self, Vocab};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The record of `prepare`: the dataset's size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareOutput {
    /// Songs kept.
    pub songs: usize,
    /// Songs per split.
    pub splits: BTreeMap<String, usize>,
    /// Tokens in all songs.
    pub tokens: u64,
}

impl StageOutput for PrepareOutput {
    const KIND: &'static str = "prepare";
}

/// The record of `similarity`: what the training data's distribution was made of
/// (the distribution itself is in [`TrainingDistribution`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimilarityOutput {
    /// Name of the training data.
    pub name: String,
    /// Songs that gave at least one bar pair.
    pub songs_used: u64,
    /// Bar pairs over all intervals.
    pub pairs: u64,
}

impl StageOutput for SimilarityOutput {
    const KIND: &'static str = "similarity";
}

/// `similarity/distribution.json`: the training split's similarity distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingDistribution {
    /// Name of the training data.
    pub name: String,
    /// Its distribution.
    pub distribution: Distribution,
}

/// The record of `train:<row>`: the run folder and how the training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOutput {
    /// The run folder.
    pub run_dir: PathBuf,
    /// The experiment file.
    pub experiment: PathBuf,
    /// Hash of the resolved experiment (the run folder's name).
    pub config_hash: String,
    /// Steps done.
    pub steps: usize,
    /// Tokens trained on.
    pub tokens: u64,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// Best validation loss, when validated.
    pub best_valid_loss: Option<f64>,
    /// Loss of the last step.
    pub last_loss: Option<f64>,
    /// Trainable parameters of the model (Table 1's `params`); `None` in a record
    /// written before the count was kept (its cell in Table 1 is then a dash).
    #[serde(default)]
    pub params: Option<u64>,
}

impl StageOutput for TrainOutput {
    const KIND: &'static str = "train";
}

/// The record of `eval:<row>`: perplexity at the suite's lengths and the
/// repetition perplexity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalOutput {
    /// One row per length, in the suite's order.
    pub perplexity: Vec<PplRow>,
    /// Perplexity of the tokens of repeated bars by distance to the nearest earlier
    /// copy, and of the other bars (over the first `max(lengths)` tokens, bar sets
    /// of every note; [`crate::eval::repetition`]). Empty in a record written before
    /// it was kept.
    #[serde(default)]
    pub repetition: Vec<RepetitionRow>,
}

impl StageOutput for EvalOutput {
    const KIND: &'static str = "eval";
}

/// The record of `generate:<row>`: the pieces and how generation went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateOutput {
    /// The folder of the pieces.
    pub folder: PathBuf,
    /// The token file of every piece.
    pub pieces: Vec<PathBuf>,
    /// Pieces that ended with `</s>`.
    pub ended: usize,
    /// Mean tokens kept per piece after the grammar repair.
    pub mean_kept_tokens: f64,
    /// Mean sampling speed, tokens per second.
    pub tokens_per_sec: f64,
}

impl StageOutput for GenerateOutput {
    const KIND: &'static str = "generate";
}

/// The record of `se:<row>` (the whole result is `se/<row>.json`, [`SeResult`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeOutput {
    /// SE in percent, or `None` when no interval has pairs on both sides.
    pub se_percent: Option<f64>,
    /// Intervals left out.
    pub missing: Vec<usize>,
    /// Why there is no SE.
    pub error: Option<String>,
    /// The bootstrap confidence interval over the pieces (`None` with fewer than 2
    /// pieces, or in a record written before it was kept).
    #[serde(default)]
    pub interval: Option<BootstrapInterval>,
}

impl StageOutput for SeOutput {
    const KIND: &'static str = "se";
}

/// The record of `report` (its files are its outputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportOutput {}

impl StageOutput for ReportOutput {
    const KIND: &'static str = "report";
}

/// What the similarity-error stage writes for one row (`se/<row>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeResult {
    /// SE in percent, or `None` when no interval has pairs on both sides.
    pub se_percent: Option<f64>,
    /// Intervals averaged over.
    pub intervals: Vec<usize>,
    /// Intervals left out (no pairs on one side).
    pub missing: Vec<usize>,
    /// Why there is no SE.
    pub error: Option<String>,
    /// The bootstrap confidence interval over the pieces ([`SE_RESAMPLES`]
    /// resamples, level [`SE_LEVEL`]).
    #[serde(default)]
    pub interval: Option<BootstrapInterval>,
    /// Pieces read.
    pub pieces: usize,
    /// Bars per piece: the fewest and the mean.
    #[serde(default)]
    pub bars: Option<(u64, f64)>,
    /// The generated pieces' similarity distribution.
    pub distribution: Distribution,
}

/// Resamples of the similarity error's bootstrap interval over pieces.
pub const SE_RESAMPLES: usize = 1000;
/// Its confidence level.
pub const SE_LEVEL: f64 = 0.95;

/// BLAKE3 (hex, 32 characters) of bytes, as the output hash of a one-file stage.
fn text_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

pub(super) fn prepare(
    r: &mut Runner,
    data_cfg: &DatasetConfig,
) -> Result<StageRecord<PrepareOutput>> {
    let name = stage_name::<PrepareOutput>(None);
    let fingerprint = data::prepare::input_fingerprint(data_cfg)?;
    let key = stage_key(&name, data_cfg, &[&fingerprint], &r.code)?;
    r.stage(&name, key, |r| {
        let force = r.forced(&name);
        let manifest = match data::prepare(data_cfg, force)? {
            data::PrepareOutcome::Built(m) | data::PrepareOutcome::UpToDate(m) => m,
        };
        r.say(&manifest.summary());
        Ok(Done {
            outputs: vec![data_cfg.out.join("manifest.json")],
            output_hash: manifest.fingerprint.clone(),
            output: PrepareOutput {
                songs: manifest.songs,
                splits: manifest.splits.into_iter().collect(),
                tokens: manifest.tokens,
            },
        })
    })
}

pub(super) fn similarity(
    r: &mut Runner,
    data_cfg: &DatasetConfig,
    prepared: &StageRecord<PrepareOutput>,
) -> Result<StageRecord<SimilarityOutput>> {
    let name = stage_name::<SimilarityOutput>(None);
    let t = r.suite.eval.max_interval;
    let settings = json!({"max_interval": t, "split": "train", "instrument": "auto"});
    let key = stage_key(&name, &settings, &[&prepared.output_hash], &r.code)?;
    r.stage(&name, key, |r| {
        let corpus = input::load(
            &data_cfg.out,
            &LoadOptions {
                max_interval: t,
                selection: InstrumentSelection::Auto,
                split: Some(Split::Train),
                data: data_cfg.clone(),
            },
        )?;
        let file = r.work.distribution();
        let saved = TrainingDistribution {
            name: corpus.name.clone(),
            distribution: corpus.distribution,
        };
        crate::io::write_atomic(&file, serde_json::to_string(&saved)?.as_bytes())?;
        crate::structure::tables::write_similarity_csv(
            &r.work.similarity().join("similarity.csv"),
            &[(saved.name.as_str(), &saved.distribution)],
        )?;
        Ok(Done {
            output_hash: hash_outputs(r.work.root(), std::slice::from_ref(&file))?,
            outputs: vec![file],
            output: SimilarityOutput {
                songs_used: saved.distribution.counts.songs_used,
                pairs: saved.distribution.total_pairs(),
                name: saved.name,
            },
        })
    })
}

/// The training data's name and distribution, from the similarity stage's file.
pub(super) fn training_distribution(work: &super::WorkFolder) -> Result<TrainingDistribution> {
    crate::io::read_json(&work.distribution())
}

pub(super) fn train(
    r: &mut Runner,
    row: &Row,
    prepared: &StageRecord<PrepareOutput>,
) -> Result<StageRecord<TrainOutput>> {
    let name = stage_name::<TrainOutput>(Some(row));
    let cfg = r.suite.experiment(row)?;
    let key = stage_key(&name, &cfg, &[&prepared.output_hash], &r.code)?;
    let root = r.work.train(row);
    let run_dir = cfg.run_dir(&root);
    let paths = RunPaths::new(&run_dir);
    // Marks which key the run folder's checkpoints belong to, so only an
    // interrupted run of the same stage is resumed.
    let started = r.work.started(&name);
    let stage_key_now = key.clone();
    r.stage(&name, key, |r| {
        let same_start = std::fs::read_to_string(&started).is_ok_and(|k| k == stage_key_now);
        if run_dir.exists() && (r.forced(&name) || !same_start) {
            std::fs::remove_dir_all(&run_dir)
                .with_context(|| format!("cannot remove {}", run_dir.display()))?;
        } else if paths.last().exists() {
            r.say(&format!("resuming {name} from {}", paths.last().display()));
        }
        crate::io::write_atomic(&started, stage_key_now.as_bytes())?;
        let summary = crate::train::train(&cfg, &root, true)?;
        if summary.interrupted {
            bail!(
                "interrupted at step {} of {}; run the same command again to resume from the checkpoint in {}",
                summary.state.step,
                cfg.train.steps,
                run_dir.display()
            );
        }
        let s = &summary.state;
        Ok(Done {
            output_hash: hash_outputs(&run_dir, &paths.weight_files())?,
            outputs: vec![run_dir.clone()],
            output: TrainOutput {
                run_dir: run_dir.clone(),
                experiment: row.experiment.clone(),
                config_hash: cfg.hash(),
                steps: s.step,
                tokens: s.tokens,
                train_seconds: s.seconds,
                best_valid_loss: s.best_valid,
                last_loss: summary.last_loss,
                params: Some(summary.params),
            },
        })
    })
}

pub(super) fn eval(
    r: &mut Runner,
    row: &Row,
    train: &StageRecord<TrainOutput>,
) -> Result<StageRecord<EvalOutput>> {
    let name = stage_name::<EvalOutput>(Some(row));
    let lengths = r.suite.eval.lengths.clone();
    let settings = json!({"lengths": lengths, "repetition_instrument": "all"});
    let key = stage_key(&name, &settings, &[&train.output_hash], &r.code)?;
    let run_dir = &train.output.run_dir;
    r.stage(&name, key, |r| {
        let e = crate::eval::evaluate_with(run_dir, Some(lengths), InstrumentSelection::All)?;
        let output = EvalOutput {
            perplexity: e.perplexity,
            repetition: e.repetition,
        };
        let out = r.work.eval(row);
        let text = serde_json::to_string_pretty(&output)?;
        crate::io::write_atomic(&out, text.as_bytes())?;
        Ok(Done {
            output_hash: text_hash(&text),
            outputs: vec![out],
            output,
        })
    })
}

pub(super) fn generate(
    r: &mut Runner,
    row: &Row,
    train: &StageRecord<TrainOutput>,
) -> Result<StageRecord<GenerateOutput>> {
    let name = stage_name::<GenerateOutput>(Some(row));
    let opts = r.suite.generate_options(row);
    let key = stage_key(&name, &opts, &[&train.output_hash], &r.code)?;
    let run_dir = &train.output.run_dir;
    r.stage(&name, key, |r| {
        let out = r.work.generated(row);
        if out.exists() {
            std::fs::remove_dir_all(&out)
                .with_context(|| format!("cannot remove {}", out.display()))?;
        }
        let reports = crate::eval::generate::generate(run_dir, &opts, &out)?;
        let pieces: Vec<PathBuf> = reports.iter().map(|p| p.tokens_file.clone()).collect();
        let n = reports.len().max(1) as f64;
        Ok(Done {
            output_hash: hash_outputs(&out, &pieces)?,
            outputs: vec![out.clone()],
            output: GenerateOutput {
                folder: out,
                pieces,
                ended: reports.iter().filter(|p| p.ended).count(),
                mean_kept_tokens: reports.iter().map(|p| p.kept as f64).sum::<f64>() / n,
                tokens_per_sec: reports.iter().map(|p| p.tokens_per_sec).sum::<f64>() / n,
            },
        })
    })
}

pub(super) fn se(
    r: &mut Runner,
    row: &Row,
    data_cfg: &DatasetConfig,
    generate: &StageRecord<GenerateOutput>,
    similarity: &StageRecord<SimilarityOutput>,
) -> Result<StageRecord<SeOutput>> {
    let name = stage_name::<SeOutput>(Some(row));
    let t = r.suite.eval.max_interval;
    let key = stage_key(
        &name,
        &json!({"max_interval": t, "instrument": "auto"}),
        &[&generate.output_hash, &similarity.output_hash],
        &r.code,
    )?;
    let pieces = &generate.output.pieces;
    r.stage(&name, key, |r| {
        let training = training_distribution(&r.work)?.distribution;
        let vocab = Vocab::new(data_cfg.encoding.pos_per_beat);
        let songs = pieces
            .iter()
            .map(|p| {
                let text = crate::io::read_to_string(p)?;
                tokens::parse_tokens(&text, &vocab).with_context(|| format!("{}", p.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        let per_piece = songs
            .iter()
            .map(|s| similarity_distribution(std::slice::from_ref(s), t, InstrumentSelection::Auto))
            .collect::<Result<Vec<_>, _>>()?;
        let mut generated = Distribution::new(t)?;
        per_piece.iter().for_each(|d| generated.merge(d));
        let bars: Vec<u64> = songs
            .iter()
            .map(|s| s.iter().filter(|t| matches!(t, tokens::Token::Bar)).count() as u64)
            .collect();
        let bars = (!bars.is_empty()).then(|| {
            let fewest = bars.iter().copied().min().unwrap_or(0);
            (fewest, bars.iter().sum::<u64>() as f64 / bars.len() as f64)
        });
        // The bootstrap's seed: fixed, so the interval is part of the stage's key.
        let interval =
            similarity_error_bootstrap(&per_piece, &training, t, SE_RESAMPLES, SE_LEVEL, 0);
        let result = match similarity_error(&generated, &training, t) {
            Ok(se) => SeResult {
                se_percent: Some(se.percent()),
                intervals: se.intervals,
                missing: se.missing,
                error: None,
                interval,
                pieces: songs.len(),
                bars,
                distribution: generated,
            },
            Err(e) => SeResult {
                se_percent: None,
                intervals: Vec::new(),
                missing: (1..=t).collect(),
                error: Some(e.to_string()),
                interval: None,
                pieces: songs.len(),
                bars,
                distribution: generated,
            },
        };
        let out = r.work.se(row);
        let text = serde_json::to_string(&result)?;
        crate::io::write_atomic(&out, text.as_bytes())?;
        Ok(Done {
            output_hash: text_hash(&text),
            outputs: vec![out],
            output: SeOutput {
                se_percent: result.se_percent,
                missing: result.missing,
                error: result.error,
                interval: result.interval,
            },
        })
    })
}

/// The report stage: its key covers the suite, the report folder, the output
/// hashes of what Table 1 and the figures read, and the attention CSV's content.
pub(super) fn report(r: &mut Runner, records: &Records) -> Result<StageRecord<ReportOutput>> {
    let name = stage_name::<ReportOutput>(None);
    let mut inputs: Vec<&str> = std::iter::once(records.similarity.output_hash.as_str())
        .chain(records.rows.iter().flatten().flat_map(|r| {
            [
                r.train.output_hash.as_str(),
                r.eval.output_hash.as_str(),
                r.se.output_hash.as_str(),
            ]
        }))
        .collect();
    let attention_hash = match &r.suite.attention {
        Some(path) => crate::provenance::file_hash(path).with_context(|| {
            format!(
                "the suite's `attention:` file {} cannot be read; run `just bench-attention` \
                 (or `museformer bench attention --out DIR`) first, or remove the key",
                path.display()
            )
        })?,
        None => String::new(),
    };
    inputs.push(attention_hash.as_str());
    let key = stage_key(
        &name,
        &(r.suite, r.results.display().to_string()),
        &inputs,
        &r.code,
    )?;
    r.stage(&name, key, |r| {
        let files = assemble::write_report(r.suite, r.suite_path, records, &r.work, &r.results)?;
        Ok(Done {
            output_hash: hash_outputs(&r.results, &files)?,
            outputs: files,
            output: ReportOutput {},
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A train record written before the parameter count was kept still loads
    /// (`museformer report` on old stages): its count is unknown, not zero.
    #[test]
    fn a_train_record_without_a_parameter_count_loads() {
        let old = r#"{"run_dir": "r", "experiment": "e.yaml", "config_hash": "h", "steps": 5,
            "tokens": 100, "train_seconds": 1.0, "best_valid_loss": null, "last_loss": 2.0}"#;
        let out: TrainOutput = serde_json::from_str(old).unwrap();
        assert_eq!(out.params, None);
        let new = TrainOutput {
            params: Some(123),
            ..out
        };
        let text = serde_json::to_string(&new).unwrap();
        assert!(text.contains("\"params\":123"), "{text}");
        assert_eq!(serde_json::from_str::<TrainOutput>(&text).unwrap(), new);
    }
}

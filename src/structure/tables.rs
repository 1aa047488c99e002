//! The files `museformer stats similarity` writes: `similarity.csv` (one row per
//! corpus and interval), `corpora.csv` (what was read and skipped), `distances.csv`
//! (pairwise distances), `skipped.csv` (files not used, with reasons) and
//! `provenance.json` (command, commit, machine, date, wall time). Intervals without
//! pairs have an empty `mean_similarity`, never NaN.

use super::input::Corpus;
use super::similarity::{Distribution, DistributionDistance};
use crate::format::write_csv;
use crate::provenance::Provenance;
use anyhow::Result;
use polars::prelude::*;
use serde::Serialize;
use std::path::Path;

/// Writes `similarity.csv`: `dataset, interval, mean_similarity, pairs,
/// std_similarity, songs, identical_pairs` for t = 1..=T of every corpus.
pub fn write_similarity_csv(path: &Path, corpora: &[(&str, &Distribution)]) -> Result<()> {
    let rows: Vec<(&str, usize, &super::similarity::IntervalStats)> = corpora
        .iter()
        .flat_map(|(name, d)| d.iter().map(move |(t, s)| (*name, t, s)))
        .collect();
    let mut df = df!(
        "dataset" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "interval" => rows.iter().map(|r| r.1 as u32).collect::<Vec<_>>(),
        "mean_similarity" => rows.iter().map(|r| r.2.mean()).collect::<Vec<_>>(),
        "pairs" => rows.iter().map(|r| r.2.pairs).collect::<Vec<_>>(),
        "std_similarity" => rows.iter().map(|r| r.2.std()).collect::<Vec<_>>(),
        "songs" => rows.iter().map(|r| r.2.songs).collect::<Vec<_>>(),
        "identical_pairs" => rows.iter().map(|r| r.2.identical).collect::<Vec<_>>(),
    )?;
    write_csv(path, &mut df)
}

/// Writes `corpora.csv`: per corpus its input, kind, grid, the songs read, used and
/// skipped (by reason), files skipped, bars, pairs and empty pairs skipped.
pub fn write_corpora_csv(path: &Path, corpora: &[Corpus]) -> Result<()> {
    let c = |f: fn(&Corpus) -> u64| corpora.iter().map(f).collect::<Vec<u64>>();
    let mut df = df!(
        "dataset" => corpora.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        "input" => corpora.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>(),
        "kind" => corpora.iter().map(|c| c.kind.to_string()).collect::<Vec<_>>(),
        "split" => corpora.iter().map(|c| c.split.map_or("all", |s| s.name())).collect::<Vec<_>>(),
        "pos_per_beat" => corpora.iter().map(|c| c.pos_per_beat).collect::<Vec<_>>(),
        "files_skipped" => c(|c| c.skipped.len() as u64),
        "songs" => c(|c| c.distribution.counts.songs),
        "songs_used" => c(|c| c.distribution.counts.songs_used),
        "songs_without_notes" => c(|c| c.distribution.counts.skipped_no_notes),
        "songs_with_one_bar" => c(|c| c.distribution.counts.skipped_one_bar),
        "songs_shorter_than_max_interval" => c(|c| c.distribution.counts.shorter_than_max_interval),
        "bars" => c(|c| c.distribution.counts.bars),
        "pairs" => c(|c| c.distribution.total_pairs()),
        "empty_pairs_skipped" => c(|c| c.distribution.counts.empty_pairs),
    )?;
    write_csv(path, &mut df)
}

/// Writes `distances.csv`: `dataset_a, dataset_b, mean_abs_diff_percent,
/// max_abs_diff_percent, max_at_interval, pearson, intervals` (empty cells where the
/// two have no interval in common).
pub fn write_distances_csv(
    path: &Path,
    rows: &[(&str, &str, Option<&DistributionDistance>)],
) -> Result<()> {
    let mut df = df!(
        "dataset_a" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "dataset_b" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "mean_abs_diff_percent" => rows.iter().map(|r| r.2.map(|d| d.mean_abs_diff * 100.0)).collect::<Vec<_>>(),
        "max_abs_diff_percent" => rows.iter().map(|r| r.2.map(|d| d.max_abs_diff * 100.0)).collect::<Vec<_>>(),
        "max_at_interval" => rows.iter().map(|r| r.2.map(|d| d.max_at as u32)).collect::<Vec<_>>(),
        "pearson" => rows.iter().map(|r| r.2.and_then(|d| d.pearson)).collect::<Vec<_>>(),
        "intervals" => rows.iter().map(|r| r.2.map_or(0, |d| d.intervals as u32)).collect::<Vec<_>>(),
    )?;
    write_csv(path, &mut df)
}

/// Writes `skipped.csv`: `dataset, file, reason` for every file not used.
pub fn write_skipped_csv(path: &Path, corpora: &[Corpus]) -> Result<()> {
    let rows: Vec<(&str, &str, &str)> = corpora
        .iter()
        .flat_map(|c| {
            c.skipped
                .iter()
                .map(move |s| (c.name.as_str(), s.file.as_str(), s.reason.as_str()))
        })
        .collect();
    let mut df = df!(
        "dataset" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        "file" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        "reason" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    )?;
    write_csv(path, &mut df)
}

/// One input in the provenance.
#[derive(Debug, Clone, Serialize)]
pub struct InputProvenance {
    /// Name in the tables.
    pub dataset: String,
    /// The input folder as given.
    pub path: String,
    /// `midi`, `dataset` or `tokens`.
    pub kind: String,
    /// The input's fingerprint (see [`Corpus::fingerprint`]).
    pub fingerprint: String,
}

/// What `stats similarity` adds to its `provenance.json`.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarityProvenance {
    /// BLAKE3 of the normalization and encoding settings MIDI and token files were
    /// read with (hex).
    pub read_settings_hash: String,
    /// The inputs.
    pub inputs: Vec<InputProvenance>,
}

/// The provenance of the running `stats similarity` over `corpora`.
pub fn provenance(
    corpora: &[Corpus],
    read_settings: &impl Serialize,
    wall_seconds: f64,
) -> Result<Provenance<SimilarityProvenance>> {
    let inputs = corpora
        .iter()
        .map(|c| InputProvenance {
            dataset: c.name.clone(),
            path: c.path.display().to_string(),
            kind: c.kind.to_string(),
            fingerprint: c.fingerprint.clone(),
        })
        .collect();
    Ok(Provenance::new(
        Some(wall_seconds),
        SimilarityProvenance {
            read_settings_hash: blake3::hash(serde_json::to_string(read_settings)?.as_bytes())
                .to_hex()
                .to_string(),
            inputs,
        },
    ))
}

//! `museformer data prepare`: walks a folder of MIDI files, reads, normalizes and
//! encodes them in parallel, and writes a prepared dataset: the token store, a
//! metadata table and a rejects table (Parquet and CSV), the vocabulary and a
//! manifest. The work is written to a temporary folder that replaces the old
//! dataset only when complete, so an interruption never leaves a half dataset, and
//! a re-run on unchanged input and settings does nothing.

use super::config::{DatasetConfig, SplitRule};
use super::normalize::normalize;
use super::store::{Split, StoreWriter};
use crate::midi::{self, Score};
use crate::tokens::{self, Token, Vocab};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Instant, UNIX_EPOCH};

/// Version of the dataset format and of everything that decides its content
/// (reader, normalization, encoder); part of the fingerprint.
pub const DATASET_FORMAT: u32 = 1;

/// Files handled per parallel batch (bounds memory whatever the corpus size).
const BATCH: usize = 256;

/// One encoded song's row in the metadata table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SongRow {
    /// Path relative to the MIDI folder.
    pub file: String,
    /// BLAKE3 hash of the file's bytes (hex).
    pub hash: String,
    /// Number of bars.
    pub bars: u32,
    /// Number of tokens.
    pub tokens: u32,
    /// Instrument ids, comma separated.
    pub instruments: String,
    /// Length in seconds.
    pub seconds: f64,
    /// Split name.
    pub split: String,
}

/// A warning the reader gave about an encoded song (release-mode reading only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarningRow {
    /// Path relative to the MIDI folder.
    pub file: String,
    /// One line.
    pub warning: String,
}

/// A file that was not encoded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectRow {
    /// Path relative to the MIDI folder.
    pub file: String,
    /// One-line reason.
    pub reason: String,
}

/// What `data prepare` writes into `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Dataset format version.
    pub format: u32,
    /// Dataset name.
    pub name: String,
    /// Hash of the input file list and the settings; equal means nothing to do.
    pub fingerprint: String,
    /// When the dataset was written (RFC 3339).
    pub created: String,
    /// Version of museformer that wrote it.
    pub museformer_version: String,
    /// The resolved dataset configuration.
    pub config: DatasetConfig,
    /// Number of MIDI files found.
    pub files: usize,
    /// Songs encoded.
    pub songs: usize,
    /// Files rejected (duplicates included).
    pub rejected: usize,
    /// Of the rejected files, how many were duplicates of an encoded file.
    pub duplicates: usize,
    /// The rejected files by kind of reason ([`reason_kind`]: `not in 4/4`,
    /// `duplicate`, ...); empty in a manifest written before it was kept.
    #[serde(default)]
    pub rejects_by_reason: BTreeMap<String, usize>,
    /// Reader warnings about encoded songs (`warnings.csv`): skipped invalid key
    /// signatures, and the release-mode reader's notes.
    #[serde(default)]
    pub warnings: usize,
    /// Songs per split.
    pub splits: HashMap<String, usize>,
    /// Total tokens.
    pub tokens: u64,
    /// Total bars.
    pub bars: u64,
    /// Total length in hours.
    pub hours: f64,
    /// Vocabulary size (specials included).
    pub vocab_size: usize,
    /// Wall time of the preparation in seconds.
    pub wall_seconds: f64,
}

impl Manifest {
    /// Reads `manifest.json` of a prepared dataset.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("{} is not a prepared dataset (no manifest.json); run `museformer data prepare` first", dir.display())
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))
    }

    /// The rejects by kind of reason, most frequent first (`1133 not in 4/4, 2
    /// duplicate`), or `None` when there are none or the manifest predates them.
    pub fn rejects_line(&self) -> Option<String> {
        if self.rejects_by_reason.is_empty() {
            return None;
        }
        let mut kinds: Vec<(&String, &usize)> = self.rejects_by_reason.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        Some(
            kinds
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// A few lines for people: counts, splits, sizes.
    pub fn summary(&self) -> String {
        let per_song = |x: f64| {
            if self.songs == 0 {
                0.0
            } else {
                x / self.songs as f64
            }
        };
        format!(
            "dataset `{}`: {} songs ({} train, {} valid, {} test), {} rejected ({} duplicates) of {} files\n\
             {} tokens, {} bars, {:.1} hours; per song {:.0} tokens and {:.1} bars, {:.1} tokens per bar",
            self.name,
            self.songs,
            self.splits.get("train").unwrap_or(&0),
            self.splits.get("valid").unwrap_or(&0),
            self.splits.get("test").unwrap_or(&0),
            self.rejected,
            self.duplicates,
            self.files,
            self.tokens,
            self.bars,
            self.hours,
            per_song(self.tokens as f64),
            per_song(self.bars as f64),
            if self.bars == 0 { 0.0 } else { self.tokens as f64 / self.bars as f64 },
        ) + &self
            .rejects_line()
            .map_or(String::new(), |l| format!("\nrejected: {l}"))
    }
}

/// Refuses an output folder that `prepare` would wrongly replace: one that is a
/// file, one that exists without a dataset's `manifest.json` (an unrelated folder
/// loses nothing), and one that is the MIDI folder or holds it (the input would be
/// deleted with the old dataset).
pub fn check_out_dir(cfg: &DatasetConfig) -> Result<()> {
    let out = &cfg.out;
    if out.exists() && !out.is_dir() {
        bail!(
            "the dataset folder {} is a file, not a folder; choose another `out` (nothing was changed)",
            out.display()
        );
    }
    let absolute = |p: &Path| -> Result<PathBuf> {
        // `out` may not exist yet: resolve its nearest existing ancestor.
        let mut existing = p.to_path_buf();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_owned());
                    existing = if parent.as_os_str().is_empty() {
                        PathBuf::from(".")
                    } else {
                        parent.to_path_buf()
                    };
                }
                _ => break,
            }
        }
        let mut full = std::fs::canonicalize(&existing)
            .with_context(|| format!("cannot resolve {}", existing.display()))?;
        full.extend(rest.iter().rev());
        Ok(full)
    };
    let (out_abs, midi_abs) = (absolute(out)?, absolute(&cfg.midi_dir)?);
    if midi_abs.starts_with(&out_abs) {
        bail!(
            "the dataset folder {} {} the MIDI folder {}: preparing would replace the input; choose another `out` (nothing was changed)",
            out.display(),
            if midi_abs == out_abs { "is" } else { "holds" },
            cfg.midi_dir.display()
        );
    }
    if out.is_dir() && !out.join("manifest.json").is_file() {
        let empty = std::fs::read_dir(out)
            .with_context(|| format!("cannot read {}", out.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} exists and is not a prepared dataset (no manifest.json); `data prepare` replaces only \
                 datasets it wrote: choose another `out`, or remove the folder yourself (nothing was changed)",
                out.display()
            );
        }
    }
    Ok(())
}

/// The kind of a reject reason, its specifics left out: the text before ` (` or
/// `: ` (`not in 4/4 (6/8 at tick 0)` → `not in 4/4`), and `duplicate` for
/// `duplicate of FILE`.
pub fn reason_kind(reason: &str) -> String {
    if reason.starts_with("duplicate of ") {
        return "duplicate".to_string();
    }
    let cut = [" (", ": "]
        .iter()
        .filter_map(|sep| reason.find(sep))
        .min()
        .unwrap_or(reason.len());
    reason[..cut].trim().to_string()
}

/// What happened in a `prepare` call.
#[derive(Debug, Clone, PartialEq)]
pub enum PrepareOutcome {
    /// The dataset was (re)built.
    Built(Manifest),
    /// The dataset was already up to date.
    UpToDate(Manifest),
}

/// Lists the files under `dir` whose extension (any case) is one of `exts`, sorted
/// by path.
pub fn list_files(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.with_context(|| format!("cannot walk {}", dir.display()))?;
        let wanted = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)));
        if entry.file_type().is_file() && wanted {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

/// Lists the MIDI files (`.mid`, `.midi`, any case) under a folder, sorted by path.
pub fn list_midi_files(dir: &Path) -> Result<Vec<PathBuf>> {
    list_files(dir, &["mid", "midi"])
}

fn fingerprint(cfg: &DatasetConfig, root: &Path, files: &[PathBuf]) -> Result<String> {
    let mut h = blake3::Hasher::new();
    h.update(
        format!(
            "format {DATASET_FORMAT} museformer {}\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    h.update(serde_json::to_string(&(&cfg.encoding, &cfg.normalize, &cfg.split))?.as_bytes());
    for rule in cfg.split.list_files() {
        h.update(
            &std::fs::read(rule)
                .with_context(|| format!("cannot read split list {}", rule.display()))?,
        );
    }
    for f in files {
        let meta = std::fs::metadata(f).with_context(|| format!("cannot read {}", f.display()))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        h.update(format!("{}\t{}\t{}\n", relative(root, f), meta.len(), mtime).as_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

fn relative(root: &Path, f: &Path) -> String {
    f.strip_prefix(root)
        .unwrap_or(f)
        .to_string_lossy()
        .into_owned()
}

/// The split of a song under the configured rule, from its content hash or its name.
fn assign_split(
    rule: &SplitRule,
    lists: &HashMap<String, Split>,
    hash: &blake3::Hash,
    file: &str,
) -> Option<Split> {
    match rule {
        SplitRule::Hash { seed, ratios } => {
            let mut h = blake3::Hasher::new();
            h.update(&seed.to_le_bytes());
            h.update(hash.as_bytes());
            let x = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().unwrap());
            let total: u64 = ratios.iter().map(|&r| r as u64).sum();
            let mut r = x % total.max(1);
            for (split, &w) in Split::ALL.iter().zip(ratios) {
                if r < w as u64 {
                    return Some(*split);
                }
                r -= w as u64;
            }
            Some(Split::Train)
        }
        SplitRule::Lists { .. } => lists.get(&list_key(file)).copied(),
    }
}

/// Split lists name files by their stem (the name without folders and extension),
/// so lists written for another copy of a corpus still match.
fn list_key(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    base.split('.').next().unwrap_or(base).to_string()
}

fn load_split_lists(rule: &SplitRule) -> Result<HashMap<String, Split>> {
    let mut map = HashMap::new();
    if let SplitRule::Lists { train, valid, test } = rule {
        for (split, path) in [
            (Split::Train, train),
            (Split::Valid, valid),
            (Split::Test, test),
        ] {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read split list {}", path.display()))?;
            for line in text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
            {
                if let Some(prev) = map.insert(list_key(line), split) {
                    if prev != split {
                        bail!(
                            "{}: `{line}` is listed in both the {} and the {} split",
                            path.display(),
                            prev.name(),
                            split.name()
                        );
                    }
                }
            }
        }
    }
    Ok(map)
}

/// An encoded song before it is written.
struct Encoded {
    tokens: Vec<Token>,
    instruments: Vec<u8>,
    seconds: f64,
    warnings: Vec<String>,
}

/// A file's relative name with its content hash and encoding, or why it could not
/// be read.
type FileOutcome = (String, Result<(blake3::Hash, Result<Encoded>)>);

/// Reads, normalizes and encodes one file.
pub fn encode_file(bytes: &[u8], cfg: &DatasetConfig) -> Result<(Vec<Token>, Score)> {
    let (tokens, score, _) = encode_file_warned(bytes, cfg)?;
    Ok((tokens, score))
}

/// Reads (with the reader `encoding.compat` picks), normalizes and encodes one
/// file; also returns the reader's warnings.
pub fn encode_file_warned(
    bytes: &[u8],
    cfg: &DatasetConfig,
) -> Result<(Vec<Token>, Score, Vec<String>)> {
    let reading = midi::read_bytes_as(bytes, cfg.encoding.compat)?;
    let score = normalize(&reading.score, &cfg.normalize)?;
    let tokens = tokens::encode(&score, &cfg.encoding)?;
    Ok((tokens, score, reading.warnings))
}

fn encode_one(bytes: &[u8], cfg: &DatasetConfig) -> Result<Encoded> {
    let (tokens, score, warnings) = encode_file_warned(bytes, cfg)?;
    let mut instruments: Vec<u8> = score
        .tracks
        .iter()
        .filter(|t| !t.notes.is_empty())
        .map(|t| if t.is_drum { 128 } else { t.program })
        .collect();
    instruments.sort();
    instruments.dedup();
    Ok(Encoded {
        tokens,
        instruments,
        seconds: score.seconds(),
        warnings,
    })
}

/// Token index of the first token of each bar.
pub fn bar_starts(tokens: &[Token]) -> Vec<u32> {
    let mut starts = Vec::new();
    let mut at_start = true;
    for (i, t) in tokens.iter().enumerate() {
        if at_start {
            starts.push(i as u32);
            at_start = false;
        }
        if *t == Token::Bar {
            at_start = true;
        }
    }
    starts
}

fn progress(len: usize) -> ProgressBar {
    crate::progress::bar(
        len as u64,
        "encoding",
        crate::progress::Counter::Units("files"),
    )
}

/// Refuses a dataset whose MIDI folder is missing, saying what to do (the dataset
/// file's `missing_help`, e.g. where to download LMD).
pub fn check_midi_dir(cfg: &DatasetConfig) -> Result<()> {
    if !cfg.midi_dir.is_dir() {
        let help = cfg
            .missing_help
            .as_deref()
            .unwrap_or("check `midi_dir` in the dataset file");
        bail!(
            "the MIDI folder {} of dataset `{}` does not exist: {help}",
            cfg.midi_dir.display(),
            cfg.name
        );
    }
    Ok(())
}

/// The fingerprint [`prepare`] compares with the manifest's to decide whether a
/// dataset is up to date: the dataset format, the settings, the split lists and
/// every input file's path, size and modification time (not the contents, so it
/// stays cheap on large corpora). An error when the MIDI folder is missing.
pub fn input_fingerprint(cfg: &DatasetConfig) -> Result<String> {
    check_midi_dir(cfg)?;
    let files = list_midi_files(&cfg.midi_dir)?;
    fingerprint(cfg, &cfg.midi_dir, &files)
}

/// Prepares a dataset as its configuration says; `force` rebuilds even when the
/// dataset is up to date.
pub fn prepare(cfg: &DatasetConfig, force: bool) -> Result<PrepareOutcome> {
    let start = Instant::now();
    let root = &cfg.midi_dir;
    check_midi_dir(cfg)?;
    check_out_dir(cfg)?;
    // One `prepare` at a time per dataset folder.
    let _lock = crate::io::FolderLock::acquire(&cfg.out, "the dataset folder")?;
    let files = list_midi_files(root)?;
    let print = fingerprint(cfg, root, &files)?;
    if !force {
        if let Ok(old) = Manifest::load(&cfg.out) {
            if old.fingerprint == print && super::store::TokenStore::open(&cfg.out).is_ok() {
                return Ok(PrepareOutcome::UpToDate(old));
            }
        }
    }
    let lists = load_split_lists(&cfg.split)?;
    let name = cfg
        .out
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("dataset");
    let tmp = crate::io::temp_dir_beside(&cfg.out, &format!(".{name}.partial-"))?;

    let vocab = Vocab::new(cfg.encoding.pos_per_beat);
    let mut store = StoreWriter::create(tmp.path())?;
    let mut songs: Vec<SongRow> = Vec::new();
    let mut rejects: Vec<RejectRow> = Vec::new();
    let mut warnings: Vec<WarningRow> = Vec::new();
    let mut seen: HashMap<blake3::Hash, String> = HashMap::new();
    let mut duplicates = 0usize;
    let mut split_counts: HashMap<String, usize> = HashMap::new();
    let rule = cfg.split.clone();
    let bar = progress(files.len());
    for batch in files.chunks(BATCH) {
        let results: Vec<FileOutcome> = batch
            .par_iter()
            .map(|f| {
                let name = relative(root, f);
                let r = std::fs::read(f)
                    .map_err(anyhow::Error::from)
                    .map(|bytes| (blake3::hash(&bytes), encode_one(&bytes, cfg)));
                (name, r)
            })
            .collect();
        for (file, result) in results {
            bar.inc(1);
            let reason = match result {
                Err(e) => Some(format!("cannot read the file: {e}")),
                Ok((hash, encoded)) => match seen.get(&hash) {
                    Some(first) => {
                        duplicates += 1;
                        Some(format!("duplicate of {first}"))
                    }
                    None => {
                        seen.insert(hash, file.clone());
                        match encoded.map(|enc| (assign_split(&rule, &lists, &hash, &file), enc)) {
                            Err(e) => Some(one_line(&e)),
                            Ok((None, _)) => Some("not listed in any split file".to_string()),
                            Ok((Some(split), enc)) => {
                                let ids: Vec<u16> =
                                    enc.tokens.iter().map(|&t| vocab.id(t)).collect();
                                let starts = bar_starts(&enc.tokens);
                                store.push(&ids, &starts, split)?;
                                *split_counts.entry(split.name().to_string()).or_default() += 1;
                                warnings.extend(enc.warnings.iter().map(|w| WarningRow {
                                    file: file.clone(),
                                    warning: w.clone(),
                                }));
                                songs.push(SongRow {
                                    file: file.clone(),
                                    hash: hash.to_hex().to_string(),
                                    bars: starts.len() as u32,
                                    tokens: ids.len() as u32,
                                    instruments: enc
                                        .instruments
                                        .iter()
                                        .map(u8::to_string)
                                        .collect::<Vec<_>>()
                                        .join(","),
                                    seconds: enc.seconds,
                                    split: split.name().to_string(),
                                });
                                None
                            }
                        }
                    }
                },
            };
            if let Some(reason) = reason {
                rejects.push(RejectRow { file, reason });
                bar.set_message(format!("{} rejected", rejects.len()));
            }
        }
    }
    bar.finish_and_clear();
    store.finish()?;
    write_tables(tmp.path(), &songs, &rejects, &warnings)?;
    std::fs::write(tmp.path().join("vocab.txt"), vocab.to_fairseq())?;
    let manifest = Manifest {
        format: DATASET_FORMAT,
        name: cfg.name.clone(),
        fingerprint: print,
        created: crate::provenance::now(),
        museformer_version: env!("CARGO_PKG_VERSION").to_string(),
        config: cfg.clone(),
        files: files.len(),
        songs: songs.len(),
        rejected: rejects.len(),
        duplicates,
        rejects_by_reason: rejects.iter().fold(BTreeMap::new(), |mut m, r| {
            *m.entry(reason_kind(&r.reason)).or_insert(0) += 1;
            m
        }),
        warnings: warnings.len(),
        splits: split_counts,
        tokens: songs.iter().map(|s| s.tokens as u64).sum(),
        bars: songs.iter().map(|s| s.bars as u64).sum(),
        hours: songs.iter().map(|s| s.seconds).sum::<f64>() / 3600.0,
        vocab_size: vocab.len(),
        wall_seconds: start.elapsed().as_secs_f64(),
    };
    std::fs::write(
        tmp.path().join("manifest.json"),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    crate::io::replace_dir(tmp, &cfg.out)?;
    Ok(PrepareOutcome::Built(manifest))
}

/// One line of an error chain: `context: cause: cause`.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// Writes the metadata, rejects and warnings tables as Parquet and CSV.
fn write_tables(
    dir: &Path,
    songs: &[SongRow],
    rejects: &[RejectRow],
    warnings: &[WarningRow],
) -> Result<()> {
    let mut meta = df!(
        "file" => songs.iter().map(|s| s.file.as_str()).collect::<Vec<_>>(),
        "hash" => songs.iter().map(|s| s.hash.as_str()).collect::<Vec<_>>(),
        "bars" => songs.iter().map(|s| s.bars).collect::<Vec<_>>(),
        "tokens" => songs.iter().map(|s| s.tokens).collect::<Vec<_>>(),
        "instruments" => songs.iter().map(|s| s.instruments.as_str()).collect::<Vec<_>>(),
        "seconds" => songs.iter().map(|s| s.seconds).collect::<Vec<_>>(),
        "split" => songs.iter().map(|s| s.split.as_str()).collect::<Vec<_>>(),
    )?;
    let mut rej = df!(
        "file" => rejects.iter().map(|r| r.file.as_str()).collect::<Vec<_>>(),
        "reason" => rejects.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
    )?;
    let mut warn = df!(
        "file" => warnings.iter().map(|w| w.file.as_str()).collect::<Vec<_>>(),
        "warning" => warnings.iter().map(|w| w.warning.as_str()).collect::<Vec<_>>(),
    )?;
    for (df, name) in [
        (&mut meta, "metadata"),
        (&mut rej, "rejects"),
        (&mut warn, "warnings"),
    ] {
        let create = |ext: &str| {
            let path = dir.join(format!("{name}.{ext}"));
            std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))
        };
        ParquetWriter::new(create("parquet")?).finish(df)?;
        CsvWriter::new(create("csv")?).finish(df)?;
    }
    Ok(())
}

/// Single-core encoding throughput over a set of files (read, parse, normalize,
/// encode), the best of `repeat` passes: what `museformer data bench` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EncodeBench {
    /// Name of the measured tool.
    pub tool: String,
    /// Files encoded in one pass (failures excluded).
    pub files: usize,
    /// Files that failed.
    pub failed: usize,
    /// Tokens produced in one pass.
    pub tokens: u64,
    /// Wall seconds of the best pass.
    pub seconds: f64,
    /// Files per second of the best pass.
    pub files_per_sec: f64,
    /// Tokens per second of the best pass.
    pub tokens_per_sec: f64,
}

/// Measures [`encode_file`] on one thread over `files`, best of `repeat` passes.
pub fn bench_encode(files: &[PathBuf], cfg: &DatasetConfig, repeat: usize) -> EncodeBench {
    let mut best = f64::INFINITY;
    let (mut ok, mut failed, mut tokens) = (0, 0, 0u64);
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        (ok, failed, tokens) = (0, 0, 0);
        for f in files {
            match std::fs::read(f)
                .map_err(anyhow::Error::from)
                .and_then(|b| encode_file(&b, cfg))
            {
                Ok((t, _)) => {
                    ok += 1;
                    tokens += t.len() as u64;
                }
                Err(_) => failed += 1,
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    EncodeBench {
        tool: "museformer".into(),
        files: ok,
        failed,
        tokens,
        seconds: best,
        files_per_sec: ok as f64 / best,
        tokens_per_sec: tokens as f64 / best,
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn reasons_are_grouped_by_kind() {
        assert_eq!(reason_kind("not in 4/4 (6/8 at tick 0)"), "not in 4/4");
        assert_eq!(reason_kind("duplicate of a/b (1).mid"), "duplicate");
        assert_eq!(
            reason_kind("cannot read MIDI: truncated"),
            "cannot read MIDI"
        );
        assert_eq!(reason_kind("no notes"), "no notes");
    }

    use super::*;

    #[test]
    fn the_compat_mode_is_part_of_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = DatasetConfig::for_folder(dir.path().to_path_buf(), dir.path().join("out"));
        let ours = fingerprint(&cfg, dir.path(), &[]).unwrap();
        cfg.encoding.compat = crate::midi::Compat::Release;
        assert_ne!(fingerprint(&cfg, dir.path(), &[]).unwrap(), ours);
        let lmd6 = DatasetConfig::load(Path::new("experiments/data/lmd6.yaml")).unwrap();
        assert_eq!(lmd6.encoding.compat, crate::midi::Compat::Release);
    }

    #[test]
    fn lmd6_uses_the_release_split() {
        let cfg = DatasetConfig::load(Path::new("experiments/data/lmd6.yaml")).unwrap();
        let lists = load_split_lists(&cfg.split).unwrap();
        let count = |s: Split| lists.values().filter(|&&v| v == s).count();
        assert_eq!(
            (count(Split::Train), count(Split::Valid), count(Split::Test)),
            (23_952, 2_994, 2_994)
        );
        // The first test file of the release's list, matched by its stem wherever
        // it lies under the MIDI folder.
        let rule = &cfg.split;
        let hash = blake3::hash(b"");
        assert_eq!(
            assign_split(
                rule,
                &lists,
                &hash,
                "5/5100e8147c4ca2fd1fc4f7f35547ea18.mid"
            ),
            Some(Split::Test)
        );
        assert_eq!(
            assign_split(rule, &lists, &hash, "0/not-a-listed-song.mid"),
            None
        );
    }
}

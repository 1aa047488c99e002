//! The corpora the statistics read: a folder of MIDI files (read, normalized and
//! encoded with a dataset file's settings, by default `experiments/data/default.yaml`),
//! a prepared dataset (a folder with `manifest.json`), or a folder of token files
//! (`*.txt`, one piece of REMIGEN2 token strings each, as `museformer encode` prints
//! them and the generator writes them). Files that cannot be used are skipped with a
//! reason; identical files are counted once, as `data prepare` does.

use super::notes::{InstrumentSelection, SongBars, TokenTable};
use super::similarity::Distribution;
use crate::data::prepare::{encode_file, list_files, list_midi_files};
use crate::data::{DatasetConfig, Manifest, Split, TokenStore};
use crate::tokens::{self, Token, Vocab};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The default dataset file, built into the binary so the statistics run from any folder.
const DEFAULT_DATA_CONFIG: &str = include_str!("../../experiments/data/default.yaml");

/// Files read per parallel batch (bounds memory whatever the corpus size).
const BATCH: usize = 1024;

/// The settings MIDI and token files are read with: `experiments/data/default.yaml`
/// (built in) when `path` is `None`, else that dataset file.
pub fn data_config(path: Option<&Path>) -> Result<DatasetConfig> {
    match path {
        Some(p) => DatasetConfig::load(p),
        None => serde_yaml::from_str(DEFAULT_DATA_CONFIG)
            .context("the built-in experiments/data/default.yaml is not a valid dataset file"),
    }
}

/// What kind of corpus an input folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A folder of `.mid` / `.midi` files.
    Midi,
    /// A prepared dataset (`manifest.json` and the token store).
    Dataset,
    /// A folder of `.txt` files of REMIGEN2 token strings.
    Tokens,
}

impl fmt::Display for InputKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputKind::Midi => "midi",
            InputKind::Dataset => "dataset",
            InputKind::Tokens => "tokens",
        })
    }
}

/// How inputs are read.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Largest interval T of the distribution.
    pub max_interval: usize,
    /// Which notes make a bar's set.
    pub selection: InstrumentSelection,
    /// Only this split of prepared datasets (all splits when `None`; folders of
    /// files have no splits and are read whole).
    pub split: Option<Split>,
    /// Reading, normalization and encoding settings for MIDI and token files.
    pub data: DatasetConfig,
}

/// A file that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the input folder.
    pub file: String,
    /// One-line reason.
    pub reason: String,
}

/// One input's similarity distribution, with where it came from.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Name in tables and figures.
    pub name: String,
    /// The input folder.
    pub path: PathBuf,
    /// Its kind.
    pub kind: InputKind,
    /// Grid resolution of its tokens (positions per quarter note).
    pub pos_per_beat: u32,
    /// The split read (`None`: the whole input).
    pub split: Option<Split>,
    /// A fingerprint of the input: the manifest's for a prepared dataset; for a
    /// folder, BLAKE3 over every file's relative path and content hash, in path order.
    pub fingerprint: String,
    /// The distribution.
    pub distribution: Distribution,
    /// Files not used (unreadable, not encodable, duplicates), in path order.
    pub skipped: Vec<Skipped>,
}

/// Decides what an input folder is; refuses files, missing paths, empty folders and
/// folders that mix kinds.
pub fn classify(path: &Path) -> Result<InputKind> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    if !path.is_dir() {
        bail!(
            "{} is a file; give a folder of MIDI files, of token files or a prepared dataset \
             (`museformer stats song` reads one file)",
            path.display()
        );
    }
    let dataset = path.join("manifest.json").is_file();
    let midi = !list_midi_files(path)?.is_empty();
    let txt = !list_files(path, &["txt"])?.is_empty();
    match (dataset, midi, txt) {
        (true, false, _) => Ok(InputKind::Dataset),
        (true, true, _) => bail!(
            "{} holds both a prepared dataset (manifest.json) and MIDI files; give the dataset or a folder of MIDI files, not a mix",
            path.display()
        ),
        (false, true, true) => bail!(
            "{} holds both MIDI files and token files (.txt); put them in separate folders",
            path.display()
        ),
        (false, true, false) => Ok(InputKind::Midi),
        (false, false, true) => Ok(InputKind::Tokens),
        (false, false, false) => bail!(
            "{} holds no MIDI files (.mid, .midi), no token files (.txt) and no prepared dataset (manifest.json): nothing to analyse",
            path.display()
        ),
    }
}

/// A progress bar for reading files (hidden when stderr is not a terminal).
fn progress(len: usize, what: &str) -> ProgressBar {
    crate::progress::bar(len as u64, what, crate::progress::Counter::Units("files"))
}

/// Reads one MIDI or token file into its tokens with the given settings.
pub fn read_tokens(path: &Path, data: &DatasetConfig) -> Result<Vec<Token>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    tokens_of(path, &bytes, data)
}

/// The tokens of a file's bytes: token text for `.txt`, MIDI otherwise.
fn tokens_of(path: &Path, bytes: &[u8], data: &DatasetConfig) -> Result<Vec<Token>> {
    let is_txt = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    if is_txt {
        let text = std::str::from_utf8(bytes).context("not UTF-8 text")?;
        Ok(tokens::parse_tokens(
            text,
            &Vocab::new(data.encoding.pos_per_beat),
        )?)
    } else {
        Ok(encode_file(bytes, data)?.0)
    }
}

/// One file read in a parallel batch.
enum FileRead {
    /// The file could not be read (the I/O error).
    Unreadable(String),
    /// The file's content hash, and its bars or the one-line reason it has none.
    Read {
        hash: blake3::Hash,
        song: Result<SongBars, String>,
    },
}

impl FileRead {
    fn new(path: &Path, opts: &LoadOptions) -> FileRead {
        match std::fs::read(path) {
            Err(e) => FileRead::Unreadable(e.to_string()),
            Ok(bytes) => FileRead::Read {
                hash: blake3::hash(&bytes),
                song: tokens_of(path, &bytes, &opts.data)
                    .map(|toks| SongBars::from_tokens(toks.iter().copied(), opts.selection))
                    .map_err(|e| format!("{e:#}").replace('\n', " ")),
            },
        }
    }
}

/// The name of an input folder: its last component (`corpus` when it has none).
fn folder_name(path: &Path) -> String {
    let p = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    p.file_name()
        .map_or("corpus".to_string(), |n| n.to_string_lossy().into_owned())
}

/// The corpus of a folder of MIDI or token files.
fn load_files(dir: &Path, kind: InputKind, opts: &LoadOptions) -> Result<Corpus> {
    let files = match kind {
        InputKind::Midi => list_midi_files(dir)?,
        _ => list_files(dir, &["txt"])?,
    };
    let mut dist = Distribution::new(opts.max_interval)?;
    let mut skipped = Vec::new();
    let mut seen: HashMap<blake3::Hash, String> = HashMap::new();
    let mut fingerprint = blake3::Hasher::new();
    let what = if kind == InputKind::Midi {
        "encoding"
    } else {
        "reading"
    };
    let bar = progress(files.len(), what);
    for batch in files.chunks(BATCH) {
        let read: Vec<(String, FileRead)> = batch
            .par_iter()
            .map(|f| {
                let name = f
                    .strip_prefix(dir)
                    .unwrap_or(f)
                    .to_string_lossy()
                    .into_owned();
                (name, FileRead::new(f, opts))
            })
            .collect();
        let mut songs = Vec::with_capacity(read.len());
        for (file, r) in read {
            bar.inc(1);
            fingerprint.update(file.as_bytes());
            let reason = match r {
                FileRead::Unreadable(e) => format!("cannot read the file: {e}"),
                FileRead::Read { hash, song } => {
                    fingerprint.update(hash.as_bytes());
                    match seen.get(&hash) {
                        Some(first) => format!("duplicate of {first}"),
                        None => {
                            seen.insert(hash, file.clone());
                            match song {
                                Ok(song) => {
                                    songs.push(song);
                                    continue;
                                }
                                Err(e) => e,
                            }
                        }
                    }
                }
            };
            skipped.push(Skipped { file, reason });
        }
        dist.merge(&Distribution::par_collect(
            &songs,
            opts.max_interval,
            |d, s| d.add_song(s),
        )?);
    }
    bar.finish_and_clear();
    if dist.counts.songs == 0 {
        let first = skipped
            .first()
            .map_or(String::new(), |s| format!("; {}: {}", s.file, s.reason));
        bail!(
            "no file of {} could be used ({} skipped{first})",
            dir.display(),
            skipped.len()
        );
    }
    Ok(Corpus {
        name: folder_name(dir),
        path: dir.to_path_buf(),
        kind,
        pos_per_beat: opts.data.encoding.pos_per_beat,
        split: None,
        fingerprint: fingerprint.finalize().to_hex().to_string(),
        distribution: dist,
        skipped,
    })
}

/// The corpus of a prepared dataset (one split or all).
fn load_dataset(dir: &Path, opts: &LoadOptions) -> Result<Corpus> {
    let manifest = Manifest::load(dir)?;
    let store = TokenStore::open(dir)?;
    let indices: Vec<usize> = match opts.split {
        Some(split) => store.split_indices(split),
        None => (0..store.len()).collect(),
    };
    if indices.is_empty() {
        let which = opts
            .split
            .map_or(String::new(), |s| format!(" in the {} split", s.name()));
        bail!(
            "the dataset {} has no songs{which}: nothing to analyse",
            dir.display()
        );
    }
    let pos_per_beat = manifest.config.encoding.pos_per_beat;
    let table = TokenTable::new(&Vocab::new(pos_per_beat));
    let distribution = Distribution::par_collect(&indices, opts.max_interval, |d, &i| {
        d.add_song(&SongBars::from_ids(store.song(i), &table, opts.selection))
    })?;
    Ok(Corpus {
        name: match opts.split {
            Some(split) => format!("{}:{}", manifest.name, split.name()),
            None => manifest.name,
        },
        path: dir.to_path_buf(),
        kind: InputKind::Dataset,
        pos_per_beat,
        split: opts.split,
        fingerprint: manifest.fingerprint,
        distribution,
        skipped: Vec::new(),
    })
}

/// Reads one input folder into its similarity distribution.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Corpus> {
    match classify(path)? {
        InputKind::Dataset => load_dataset(path, opts),
        kind => load_files(path, kind, opts),
    }
}

/// Reads several inputs; names are made unique, and inputs on different grids are
/// refused (similarities on different grids are not comparable).
pub fn load_all(paths: &[PathBuf], opts: &LoadOptions) -> Result<Vec<Corpus>> {
    let mut corpora: Vec<Corpus> = Vec::with_capacity(paths.len());
    for path in paths {
        let mut c = load(path, opts)?;
        let base = c.name.clone();
        let mut n = 2;
        while corpora.iter().any(|o| o.name == c.name) {
            c.name = format!("{base}#{n}");
            n += 1;
        }
        corpora.push(c);
    }
    if let Some(first) = corpora.first() {
        if let Some(other) = corpora
            .iter()
            .find(|c| c.pos_per_beat != first.pos_per_beat)
        {
            bail!(
                "{} is on a grid of {} positions per beat and {} on one of {}: similarities on different grids \
                 are not comparable; read MIDI and token folders with a --data-config whose pos_per_beat matches the dataset's",
                first.path.display(),
                first.pos_per_beat,
                other.path.display(),
                other.pos_per_beat
            );
        }
    }
    Ok(corpora)
}

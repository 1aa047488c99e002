//! The compact token store of a prepared dataset: every song's token ids as
//! little-endian `u16` in one memory-mapped file, an index of song offsets, and the
//! token offset of every bar, so the trainer and the statistics read songs and bars
//! without parsing anything.
//!
//! Files (all little-endian):
//! - `tokens.u16`: the ids of all songs, one after another (no specials).
//! - `songs.u64`: four `u64` per song: token offset, token count, offset into
//!   `bars.u32`, bar count.
//! - `bars.u32`: per song, the index (relative to the song's first token) of the
//!   first token of each bar.
//! - `splits.u8`: per song, 0 train, 1 valid, 2 test.

use anyhow::{bail, Context, Result};
use memmap2::Mmap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Dataset split of a song.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training data.
    Train,
    /// Validation data.
    Valid,
    /// Test data.
    Test,
}

impl Split {
    /// All splits in order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    /// The split's name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<Split> {
        Split::ALL.get(code as usize).copied()
    }
}

impl std::str::FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Split> {
        Split::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .with_context(|| format!("unknown split `{s}` (expected train, valid or test)"))
    }
}

/// Streams songs into the store files of a folder.
pub struct StoreWriter {
    tokens: BufWriter<File>,
    songs: BufWriter<File>,
    bars: BufWriter<File>,
    splits: BufWriter<File>,
    token_count: u64,
    bar_count: u64,
    song_count: usize,
}

impl StoreWriter {
    /// Creates the store files in `dir` (which must exist).
    pub fn create(dir: &Path) -> Result<StoreWriter> {
        let open = |name: &str| -> Result<BufWriter<File>> {
            let path = dir.join(name);
            Ok(BufWriter::new(File::create(&path).with_context(|| {
                format!("cannot create {}", path.display())
            })?))
        };
        Ok(StoreWriter {
            tokens: open("tokens.u16")?,
            songs: open("songs.u64")?,
            bars: open("bars.u32")?,
            splits: open("splits.u8")?,
            token_count: 0,
            bar_count: 0,
            song_count: 0,
        })
    }

    /// Appends one song: its token ids and the token index of each bar's first token.
    pub fn push(&mut self, ids: &[u16], bar_starts: &[u32], split: Split) -> Result<()> {
        for id in ids {
            self.tokens.write_all(&id.to_le_bytes())?;
        }
        for b in bar_starts {
            self.bars.write_all(&b.to_le_bytes())?;
        }
        for v in [
            self.token_count,
            ids.len() as u64,
            self.bar_count,
            bar_starts.len() as u64,
        ] {
            self.songs.write_all(&v.to_le_bytes())?;
        }
        self.splits.write_all(&[split.code()])?;
        self.token_count += ids.len() as u64;
        self.bar_count += bar_starts.len() as u64;
        self.song_count += 1;
        Ok(())
    }

    /// Number of songs written so far.
    pub fn len(&self) -> usize {
        self.song_count
    }

    /// True when no song was written.
    pub fn is_empty(&self) -> bool {
        self.song_count == 0
    }

    /// Flushes and syncs every file.
    pub fn finish(self) -> Result<()> {
        for w in [self.tokens, self.songs, self.bars, self.splits] {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        Ok(())
    }
}

/// One song's entry in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SongEntry {
    /// Offset of the song's first token in `tokens.u16`.
    pub offset: u64,
    /// Number of tokens.
    pub len: u64,
    /// Offset of the song's first bar in `bars.u32`.
    pub bar_offset: u64,
    /// Number of bars.
    pub bars: u64,
    /// The song's split.
    pub split: Split,
}

/// A read-only, memory-mapped token store.
pub struct TokenStore {
    dir: PathBuf,
    tokens: Option<Mmap>,
    bars: Vec<u32>,
    songs: Vec<SongEntry>,
}

fn read_all(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

impl TokenStore {
    /// Opens the store in a prepared dataset folder, checking that the index and
    /// the token file agree.
    pub fn open(dir: &Path) -> Result<TokenStore> {
        let songs_raw = read_all(&dir.join("songs.u64"))?;
        let splits_raw = read_all(&dir.join("splits.u8"))?;
        let bars_raw = read_all(&dir.join("bars.u32"))?;
        if songs_raw.len() % 32 != 0
            || songs_raw.len() / 32 != splits_raw.len()
            || bars_raw.len() % 4 != 0
        {
            bail!("the token store in {} is damaged (index sizes disagree); prepare the dataset again", dir.display());
        }
        let bars: Vec<u32> = bars_raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut songs = Vec::with_capacity(splits_raw.len());
        for (rec, &code) in songs_raw.chunks_exact(32).zip(&splits_raw) {
            let v = |i: usize| u64::from_le_bytes(rec[i * 8..i * 8 + 8].try_into().unwrap());
            let split = Split::from_code(code).with_context(|| {
                format!(
                    "bad split code {code} in {}",
                    dir.join("splits.u8").display()
                )
            })?;
            songs.push(SongEntry {
                offset: v(0),
                len: v(1),
                bar_offset: v(2),
                bars: v(3),
                split,
            });
        }
        let tokens_path = dir.join("tokens.u16");
        let file = File::open(&tokens_path)
            .with_context(|| format!("cannot open {}", tokens_path.display()))?;
        let size = file.metadata()?.len();
        let tokens = if size == 0 {
            None
        } else {
            Some(unsafe { Mmap::map(&file) }?)
        };
        let total: u64 = songs.iter().map(|s| s.len).sum();
        let total_bars: u64 = songs.iter().map(|s| s.bars).sum();
        if size != total * 2 || total_bars != bars.len() as u64 {
            bail!(
                "the token store in {} is damaged ({} holds {} bytes, the index expects {}); prepare the dataset again",
                dir.display(),
                tokens_path.display(),
                size,
                total * 2
            );
        }
        let damaged = |what: String| {
            anyhow::anyhow!(
                "the token store in {} is damaged ({what}); prepare the dataset again",
                dir.display()
            )
        };
        // Songs lie one after another, in the token file and in the bar file; each
        // bar starts inside its song, after the bar before.
        let (mut at, mut bar_at) = (0u64, 0u64);
        for (i, e) in songs.iter().enumerate() {
            if e.offset != at || e.bar_offset != bar_at {
                return Err(damaged(format!(
                    "song {i} starts at token {} and bar {}, not at {at} and {bar_at}",
                    e.offset, e.bar_offset
                )));
            }
            at += e.len;
            bar_at += e.bars;
            let starts = &bars[e.bar_offset as usize..bar_at as usize];
            if let Some(w) = starts.windows(2).position(|w| w[0] >= w[1]).or_else(|| {
                starts
                    .last()
                    .filter(|&&b| u64::from(b) >= e.len.max(1))
                    .map(|_| starts.len() - 1)
            }) {
                return Err(damaged(format!(
                    "song {i}: bar {w} starts at token {}, out of order or past the song's {} tokens",
                    starts[w], e.len
                )));
            }
        }
        // Token ids inside the vocabulary the manifest names.
        if let (Some(map), Ok(manifest)) = (&tokens, super::prepare::Manifest::load(dir)) {
            let all: &[u16] = bytemuck::cast_slice(&map[..]);
            let max = all.iter().copied().max().unwrap_or(0);
            if usize::from(max) >= manifest.vocab_size {
                let at = all.iter().position(|&t| t == max).unwrap_or(0);
                return Err(damaged(format!(
                    "{} holds the id {max} at token {at}, outside the vocabulary of {} ids",
                    tokens_path.display(),
                    manifest.vocab_size
                )));
            }
        }
        Ok(TokenStore {
            dir: dir.to_path_buf(),
            tokens,
            bars,
            songs,
        })
    }

    /// The dataset folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of songs.
    pub fn len(&self) -> usize {
        self.songs.len()
    }

    /// True when the store holds no song.
    pub fn is_empty(&self) -> bool {
        self.songs.is_empty()
    }

    /// The index entries of all songs.
    pub fn songs(&self) -> &[SongEntry] {
        &self.songs
    }

    /// Indices of the songs of one split.
    pub fn split_indices(&self, split: Split) -> Vec<usize> {
        (0..self.songs.len())
            .filter(|&i| self.songs[i].split == split)
            .collect()
    }

    /// The token ids of song `i`.
    pub fn song(&self, i: usize) -> &[u16] {
        let e = &self.songs[i];
        match &self.tokens {
            Some(map) => {
                let all: &[u16] = bytemuck::cast_slice(&map[..]);
                &all[e.offset as usize..(e.offset + e.len) as usize]
            }
            None => &[],
        }
    }

    /// Token index (within the song) of the first token of each bar of song `i`.
    pub fn bar_starts(&self, i: usize) -> &[u32] {
        let e = &self.songs[i];
        &self.bars[e.bar_offset as usize..(e.bar_offset + e.bars) as usize]
    }

    /// Total number of tokens.
    pub fn total_tokens(&self) -> u64 {
        self.songs.iter().map(|s| s.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(dir.path()).unwrap();
        w.push(&[5, 6, 7], &[0, 2], Split::Train).unwrap();
        w.push(&[], &[], Split::Test).unwrap();
        w.push(&[9, 10], &[0], Split::Valid).unwrap();
        w.finish().unwrap();
        let s = TokenStore::open(dir.path()).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.song(0), &[5, 6, 7]);
        assert_eq!(s.song(1), &[] as &[u16]);
        assert_eq!(s.song(2), &[9, 10]);
        assert_eq!(s.bar_starts(0), &[0, 2]);
        assert_eq!(s.bar_starts(2), &[0]);
        assert_eq!(s.split_indices(Split::Valid), vec![2]);
        assert_eq!(s.total_tokens(), 5);
    }

    /// A store whose index points outside its files, whose bars are out of order,
    /// or whose ids leave the manifest's vocabulary is refused on open, never read
    /// (an unchecked offset panicked `stats similarity`; an id past the vocabulary
    /// panicked `train` inside libtorch).
    #[test]
    fn damaged_indices_and_ids_are_refused_on_open() {
        // A good store of two songs in a fresh folder.
        let fresh = || {
            let dir = tempfile::tempdir().unwrap();
            let mut w = StoreWriter::create(dir.path()).unwrap();
            w.push(&[5, 6, 7], &[0, 2], Split::Train).unwrap();
            w.push(&[9, 10], &[0], Split::Valid).unwrap();
            w.finish().unwrap();
            dir
        };
        let patch = |dir: &Path, file: &str, at: usize, bytes: &[u8]| {
            let p = dir.join(file);
            let mut raw = std::fs::read(&p).unwrap();
            raw[at..at + bytes.len()].copy_from_slice(bytes);
            std::fs::write(&p, raw).unwrap();
        };
        let refused = |dir: &Path, words: &[&str]| {
            let err = TokenStore::open(dir)
                .err()
                .expect("opened a damaged store")
                .to_string();
            assert!(
                err.contains("damaged") && err.contains("prepare the dataset again"),
                "{err}"
            );
            for w in words {
                assert!(err.contains(w), "`{w}` not in {err}");
            }
        };
        // The second song's token offset moved past the file.
        let dir = fresh();
        patch(dir.path(), "songs.u64", 32, &1000u64.to_le_bytes());
        refused(dir.path(), &["song 1 starts at token 1000"]);
        // Bars out of order, and a bar past the song's end.
        let dir = fresh();
        patch(dir.path(), "bars.u32", 4, &0u32.to_le_bytes());
        refused(dir.path(), &["song 0: bar 0"]);
        let dir = fresh();
        patch(dir.path(), "bars.u32", 4, &7u32.to_le_bytes());
        refused(dir.path(), &["song 0: bar 1 starts at token 7"]);
        // An id outside the vocabulary of the manifest.
        let dir = fresh();
        std::fs::write(
            dir.path().join("manifest.json"),
            serde_json::to_string(&test_manifest(8)).unwrap(),
        )
        .unwrap();
        refused(dir.path(), &["the id 10 at token 4", "vocabulary of 8 ids"]);
        std::fs::write(
            dir.path().join("manifest.json"),
            serde_json::to_string(&test_manifest(11)).unwrap(),
        )
        .unwrap();
        assert!(TokenStore::open(dir.path()).is_ok());
    }

    fn test_manifest(vocab_size: usize) -> super::super::prepare::Manifest {
        super::super::prepare::Manifest {
            format: 1,
            name: "t".into(),
            fingerprint: "f".into(),
            created: "now".into(),
            museformer_version: "0".into(),
            config: crate::data::DatasetConfig::for_folder("m".into(), "o".into()),
            files: 2,
            songs: 2,
            rejected: 0,
            duplicates: 0,
            rejects_by_reason: Default::default(),
            warnings: 0,
            splits: Default::default(),
            tokens: 5,
            bars: 3,
            hours: 0.0,
            vocab_size,
            wall_seconds: 0.0,
        }
    }

    #[test]
    fn damaged_store_is_refused_with_the_folder_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = StoreWriter::create(dir.path()).unwrap();
        w.push(&[5, 6, 7], &[0], Split::Train).unwrap();
        w.finish().unwrap();
        std::fs::write(dir.path().join("tokens.u16"), [0u8; 4]).unwrap();
        let err = TokenStore::open(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("damaged") && err.contains(&dir.path().display().to_string()),
            "{err}"
        );
    }
}

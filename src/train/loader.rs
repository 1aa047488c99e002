//! Training data order: each song (as [`crate::data::batch::sequence`] builds it)
//! one sample or cut into consecutive chunks (`train.chunk`); batches of several songs under a token budget (and at most
//! `train.batch_size` of them), bucketed by length to
//! limit padding, in a seeded order that depends only on (seed, epoch) so that a
//! resumed run sees the same data; and a background thread that prepares batches
//! ahead of the model.

use crate::data::batch::{sequence, Sequence, TrainBatch};
use crate::data::{Split, TokenStore};
use crate::tokens::Vocab;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

/// One training sample: input positions `start..start + len` of song `song` (as
/// [`sequence`] builds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Index of the song in the store.
    pub song: usize,
    /// First input position.
    pub start: usize,
    /// Number of positions.
    pub len: usize,
}

/// The samples of songs given as `(song, input positions)`: one per song when
/// `chunk` is 0, else consecutive chunks of `chunk` positions, the last of a song
/// possibly shorter.
pub fn samples(songs: &[(usize, usize)], chunk: usize) -> Vec<Sample> {
    let mut out = Vec::with_capacity(songs.len());
    for &(song, positions) in songs {
        let step = if chunk == 0 { positions.max(1) } else { chunk };
        let mut start = 0;
        while start < positions {
            out.push(Sample {
                song,
                start,
                len: step.min(positions - start),
            });
            start += step;
        }
    }
    out
}

/// Groups songs into batches: a seeded shuffle, then sorting within windows of 64
/// songs by length (bucketing), then filling each batch while `count × longest ≤
/// budget` and, when `max_count` is not 0, `count ≤ max_count` (a song longer than
/// the budget goes alone), then a seeded shuffle of the batch order. Depends only
/// on the inputs, so a resumed run repeats it.
pub fn plan_batches(
    lengths: &[(usize, usize)],
    budget: usize,
    max_count: usize,
    seed: u64,
    epoch: u64,
) -> Vec<Vec<usize>> {
    let mut rng =
        rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch));
    let mut order: Vec<(usize, usize)> = lengths.to_vec();
    order.shuffle(&mut rng);
    for window in order.chunks_mut(64) {
        window.sort_by_key(|&(_, len)| len);
    }
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut longest = 0;
    for (song, len) in order {
        let wider = longest.max(len);
        let full = max_count > 0 && current.len() == max_count;
        if !current.is_empty() && ((current.len() + 1) * wider > budget || full) {
            batches.push(std::mem::take(&mut current));
            longest = 0;
        }
        longest = longest.max(len);
        current.push(song);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches.shuffle(&mut rng);
    batches
}

/// Where a run stands in its data: the epoch and the next batch in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DataPosition {
    /// Epoch (0-based).
    pub epoch: u64,
    /// Next batch within the epoch.
    pub batch: usize,
}

/// Settings of a [`Loader`].
#[derive(Debug, Clone)]
pub struct LoaderConfig {
    /// Split to read.
    pub split: Split,
    /// Sequences truncated to this many positions.
    pub max_len: usize,
    /// Truncated sequences cut into chunks of this many positions (0: whole).
    pub chunk: usize,
    /// Token budget of a batch.
    pub budget: usize,
    /// At most this many samples per batch (0: the budget decides).
    pub max_samples: usize,
    /// Shuffling seed.
    pub seed: u64,
}

/// Batches in training order from a position on, prepared by a background thread
/// a few batches ahead. Each item carries the position after it.
pub struct Loader {
    rx: Receiver<(TrainBatch, DataPosition)>,
}

impl Loader {
    /// Starts the background thread at `start`.
    pub fn start(
        store: Arc<TokenStore>,
        vocab: Vocab,
        cfg: LoaderConfig,
        start: DataPosition,
    ) -> anyhow::Result<Loader> {
        let songs = store.split_indices(cfg.split);
        anyhow::ensure!(
            !songs.is_empty(),
            "the {} split of {} is empty",
            cfg.split.name(),
            store.dir().display()
        );
        let positions: Vec<(usize, usize)> = songs
            .iter()
            .map(|&i| (i, (store.songs()[i].len as usize + 1).min(cfg.max_len)))
            .collect();
        let samples = samples(&positions, cfg.chunk);
        let lengths: Vec<(usize, usize)> = samples
            .iter()
            .enumerate()
            .map(|(k, s)| (k, s.len))
            .collect();
        let (tx, rx) = sync_channel(4);
        std::thread::spawn(move || {
            let mut pos = start;
            loop {
                let plan = plan_batches(&lengths, cfg.budget, cfg.max_samples, cfg.seed, pos.epoch);
                while pos.batch < plan.len() {
                    let seqs: Vec<Sequence> = plan[pos.batch]
                        .iter()
                        .map(|&k| {
                            let s = samples[k];
                            sequence(&store, s.song, &vocab, cfg.max_len).slice(s.start, s.len)
                        })
                        .collect();
                    pos.batch += 1;
                    if tx.send((TrainBatch::collate(&seqs), pos)).is_err() {
                        return;
                    }
                }
                pos = DataPosition {
                    epoch: pos.epoch + 1,
                    batch: 0,
                };
            }
        });
        Ok(Loader { rx })
    }

    /// The next batch and the position after it.
    pub fn next_batch(&self) -> (TrainBatch, DataPosition) {
        self.rx
            .recv()
            .expect("the data thread runs as long as the loader")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::vocab::{BOS_ID, EOS_ID};

    #[test]
    fn batches_respect_the_budget_and_cover_every_song_once() {
        let lengths: Vec<(usize, usize)> = (0..300).map(|i| (i, 10 + (i * 37) % 500)).collect();
        for max_count in [0, 1, 3] {
            let plan = plan_batches(&lengths, 2000, max_count, 3, 0);
            let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..300).collect::<Vec<_>>());
            for b in &plan {
                let longest = b.iter().map(|&i| lengths[i].1).max().unwrap();
                assert!(b.len() == 1 || b.len() * longest <= 2000);
                assert!(max_count == 0 || b.len() <= max_count, "{b:?}");
            }
            assert_eq!(plan, plan_batches(&lengths, 2000, max_count, 3, 0));
            assert_ne!(plan, plan_batches(&lengths, 2000, max_count, 3, 1));
        }
        // The budget alone packs several short songs into a batch; a count of 1
        // gives one song per batch (the release's `--batch-size 1`).
        let packed = plan_batches(&lengths, 2000, 0, 3, 0);
        assert!(packed.iter().any(|b| b.len() > 3));
        assert_eq!(plan_batches(&lengths, 2000, 1, 3, 0).len(), 300);
    }

    #[test]
    fn chunks_tile_each_song_and_keep_its_bar_and_beat_indices() {
        assert_eq!(
            samples(&[(7, 10), (3, 4)], 0),
            [
                Sample {
                    song: 7,
                    start: 0,
                    len: 10
                },
                Sample {
                    song: 3,
                    start: 0,
                    len: 4
                }
            ]
        );
        let chunks = samples(&[(7, 10), (3, 4)], 4);
        assert_eq!(
            chunks
                .iter()
                .map(|s| (s.song, s.start, s.len))
                .collect::<Vec<_>>(),
            [(7, 0, 4), (7, 4, 4), (7, 8, 2), (3, 0, 4)]
        );
        let full = Sequence {
            song: 7,
            inputs: [BOS_ID as i64].into_iter().chain(10..19).collect(),
            targets: (10..19).chain([EOS_ID as i64]).collect(),
            bars: (0..10).map(|i| i / 3).collect(),
            beats: (0..10).map(|i| i % 4).collect(),
        };
        let parts: Vec<Sequence> = chunks[..3]
            .iter()
            .map(|s| full.clone().slice(s.start, s.len))
            .collect();
        // The second chunk starts with the song token whose successor is its first
        // target, not with <s>; its bars and beats are the full song's.
        assert_eq!(parts[1].inputs, [13, 14, 15, 16]);
        assert_eq!(parts[1].targets, [14, 15, 16, 17]);
        assert_eq!(parts[1].bars, [1, 1, 2, 2]);
        assert_eq!(parts[2].beats, [0, 1]);
        let joined = |f: fn(&Sequence) -> &Vec<i64>| -> Vec<i64> {
            parts.iter().flat_map(|p| f(p).clone()).collect()
        };
        assert_eq!(joined(|p| &p.inputs), full.inputs);
        assert_eq!(joined(|p| &p.targets), full.targets);
        assert_eq!(joined(|p| &p.bars), full.bars);
        assert_eq!(joined(|p| &p.beats), full.beats);
    }
}

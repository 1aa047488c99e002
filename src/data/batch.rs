//! The model-input format: a song from the token store as `<s> tokens` inputs and
//! `tokens </s>` targets, truncated to a maximum length, with their bar and beat
//! indices ([`Sequence`]); sequences padded into a batch ([`TrainBatch`]); and the
//! loss of a batch ([`batch_loss`]). The trainer, the evaluator and the benchmarks
//! all read songs through this module.

use crate::data::TokenStore;
use crate::model::{bar_beat_indices, Batch, LanguageModel};
use crate::tokens::vocab::{BOS_ID, EOS_ID, PAD_ID};
use crate::tokens::Vocab;
use tch::{Device, Kind, Tensor};

/// Target value ignored by the loss (padding).
pub const IGNORE: i64 = -100;

/// One song ready for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    /// Index of the song in the store.
    pub song: usize,
    /// Input ids: `<s>` then the song's tokens.
    pub inputs: Vec<i64>,
    /// Target ids: the song's tokens then `</s>`.
    pub targets: Vec<i64>,
    /// Bar index of each input.
    pub bars: Vec<i64>,
    /// Beat index of each input.
    pub beats: Vec<i64>,
}

/// Builds song `i` truncated to `max_len` positions.
pub fn sequence(store: &TokenStore, i: usize, vocab: &Vocab, max_len: usize) -> Sequence {
    let song = store.song(i);
    let mut ids: Vec<u16> = Vec::with_capacity(song.len() + 2);
    ids.push(BOS_ID);
    ids.extend_from_slice(song);
    ids.push(EOS_ID);
    let len = (ids.len() - 1).min(max_len.max(1));
    let (bars, beats) = bar_beat_indices(&ids[..len], vocab);
    Sequence {
        song: i,
        inputs: ids[..len].iter().map(|&x| x as i64).collect(),
        targets: ids[1..=len].iter().map(|&x| x as i64).collect(),
        bars,
        beats,
    }
}

impl Sequence {
    /// The input positions `start..start + len` with their targets, bar and beat
    /// indices: a training chunk. Chunks tile a song, so each target is predicted
    /// once. The first input of a chunk other than the first is not `<s>` but the
    /// song token before the chunk's first target (the previous chunk's last
    /// target), and bar and beat indices stay those of the full song: a chunk is a
    /// window onto the song, not a song of its own.
    pub fn slice(self, start: usize, len: usize) -> Sequence {
        if start == 0 && len >= self.inputs.len() {
            return self;
        }
        let end = (start + len).min(self.inputs.len());
        Sequence {
            song: self.song,
            inputs: self.inputs[start..end].to_vec(),
            targets: self.targets[start..end].to_vec(),
            bars: self.bars[start..end].to_vec(),
            beats: self.beats[start..end].to_vec(),
        }
    }
}

/// A batch and its targets `(batch, time)`, padding marked [`IGNORE`].
#[derive(Debug)]
pub struct TrainBatch {
    /// Model inputs.
    pub batch: Batch,
    /// Targets.
    pub targets: Tensor,
    /// Number of real target tokens.
    pub tokens: i64,
}

impl TrainBatch {
    /// Pads sequences to a batch (on the CPU).
    pub fn collate(seqs: &[Sequence]) -> TrainBatch {
        let width = seqs.iter().map(|s| s.inputs.len()).max().unwrap_or(0);
        let pad = |rows: Vec<&Vec<i64>>, value: i64| {
            let mut flat = Vec::with_capacity(rows.len() * width);
            for r in rows {
                flat.extend_from_slice(r);
                flat.extend(std::iter::repeat_n(value, width - r.len()));
            }
            Tensor::from_slice(&flat).view([seqs.len() as i64, width as i64])
        };
        TrainBatch {
            batch: Batch {
                tokens: pad(seqs.iter().map(|s| &s.inputs).collect(), PAD_ID as i64),
                bars: pad(seqs.iter().map(|s| &s.bars).collect(), 0),
                beats: pad(seqs.iter().map(|s| &s.beats).collect(), 0),
            },
            targets: pad(seqs.iter().map(|s| &s.targets).collect(), IGNORE),
            tokens: seqs.iter().map(|s| s.targets.len() as i64).sum(),
        }
    }

    /// Moves the batch to a device.
    pub fn to(self, device: Device) -> TrainBatch {
        TrainBatch {
            batch: Batch {
                tokens: self.batch.tokens.to_device(device),
                bars: self.batch.bars.to_device(device),
                beats: self.batch.beats.to_device(device),
            },
            targets: self.targets.to_device(device),
            tokens: self.tokens,
        }
    }
}

/// Mean cross-entropy of a batch's logits against its targets (padding ignored).
pub fn batch_loss(model: &dyn LanguageModel, tb: &TrainBatch, train: bool) -> Tensor {
    let logits = model.forward(&tb.batch, train);
    let v = logits.size()[2];
    logits
        .view([-1, v])
        .to_kind(Kind::Float)
        .cross_entropy_loss::<Tensor>(
            &tb.targets.view([-1]),
            None,
            tch::Reduction::Mean,
            IGNORE,
            0.0,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collate_pads_inputs_and_ignores_padded_targets() {
        let a = Sequence {
            song: 0,
            inputs: vec![0, 5, 6],
            targets: vec![5, 6, 2],
            bars: vec![0, 0, 1],
            beats: vec![0, 1, 0],
        };
        let b = Sequence {
            song: 1,
            inputs: vec![0],
            targets: vec![2],
            bars: vec![0],
            beats: vec![0],
        };
        let t = TrainBatch::collate(&[a, b]);
        assert_eq!(
            Vec::<i64>::try_from(t.batch.tokens.view([-1])).unwrap(),
            vec![0, 5, 6, 0, 1, 1]
        );
        assert_eq!(
            Vec::<i64>::try_from(t.targets.view([-1])).unwrap(),
            vec![5, 6, 2, 2, IGNORE, IGNORE]
        );
        assert_eq!(t.tokens, 4);
    }
}

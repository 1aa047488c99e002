//! The original release's LMD6 vocabulary (`release/dict.txt`, copied unchanged
//! from microsoft/muzic `museformer/`, commit 2b87396, under its MIT licence in
//! `release/LICENSE.muzic`): its token order, so that ids agree with the release's
//! binarized data and checkpoints.
//!
//! fairseq numbers a dictionary `<s>`, `<pad>`, `</s>`, `<unk>` (0 to 3, the same as
//! ours), then the lines of `dict.txt` from 4. The release's file also lists tokens
//! our encoder never writes (`b-0`, `<c>`, `</c>`, `u-0` to `u-16`); ours has tokens
//! the release's LMD6 setting never writes (time signatures, the other instruments,
//! positions past a 4/4 bar).

use super::vocab::{Vocab, NUM_SPECIALS};
use anyhow::{bail, Result};
use std::collections::HashMap;

/// The release's `dict.txt`, as it is.
pub const DICT: &str = include_str!("release/dict.txt");

/// The release's grid: 16 positions per quarter note.
pub const POS_PER_BEAT: u32 = 16;

/// The token strings of `dict.txt` in order (release id = 4 + index).
pub fn symbols() -> Vec<&'static str> {
    DICT.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// Every token the LMD6 encoding can write (4/4 bars, the six LMD6 instruments, no
/// time signatures): what a release-compatible vocabulary must hold.
fn lmd6_tokens(vocab: &Vocab) -> Vec<String> {
    let kinds = ["o-", "p-", "d-", "v-", "t-", "b-"];
    let instruments = ["i-0", "i-25", "i-43", "i-48", "i-80", "i-128"];
    vocab
        .tokens()
        .iter()
        .map(|t| t.to_string())
        .filter(|s| {
            let positions_in_4_4 = s
                .strip_prefix("o-")
                .and_then(|v| v.parse::<u32>().ok())
                .is_none_or(|p| p < 4 * POS_PER_BEAT);
            (kinds.iter().any(|k| s.starts_with(k)) && positions_in_4_4)
                || instruments.contains(&s.as_str())
        })
        .collect()
}

/// For each of our ids, the release's id of the same token (`None` where the
/// release has no such token). An error when `vocab` is not on the release's grid or
/// the release lacks a token the LMD6 encoding writes.
pub fn release_ids(vocab: &Vocab) -> Result<Vec<Option<u16>>> {
    if vocab.pos_per_beat() != POS_PER_BEAT {
        bail!(
            "the release's vocabulary has {POS_PER_BEAT} positions per quarter note; this one has {} \
             (use --pos-per-beat 16, or encoding.pos_per_beat: 16 in the dataset file)",
            vocab.pos_per_beat()
        );
    }
    let release: HashMap<&str, u16> = symbols()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, NUM_SPECIALS + i as u16))
        .collect();
    if let Some(missing) = lmd6_tokens(vocab)
        .iter()
        .find(|s| !release.contains_key(s.as_str()))
    {
        bail!("the release's dict.txt has no `{missing}`, which the LMD6 encoding writes");
    }
    Ok((0..vocab.len() as u16)
        .map(|id| {
            if id < NUM_SPECIALS {
                Some(id)
            } else {
                release.get(vocab.symbol(id).as_str()).copied()
            }
        })
        .collect())
}

/// The release's `dict.txt` after checking that `vocab` agrees with it
/// ([`release_ids`]): what `museformer vocab --release` prints.
pub fn dict_for(vocab: &Vocab) -> Result<&'static str> {
    release_ids(vocab)?;
    Ok(DICT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_agree_with_the_release_order() {
        let vocab = Vocab::new(16);
        let ids = release_ids(&vocab).unwrap();
        let names = symbols();
        assert_eq!(names.len(), 556);
        // The specials are fairseq's, in the same order.
        assert_eq!(&ids[..4], &[Some(0), Some(1), Some(2), Some(3)]);
        // A mapped id names the same token on both sides.
        let mut mapped = 0;
        for (ours, release) in ids.iter().enumerate().skip(4) {
            if let Some(r) = release {
                assert_eq!(
                    names[(*r - NUM_SPECIALS) as usize],
                    vocab.symbol(ours as u16)
                );
                mapped += 1;
            }
        }
        // Every release token but b-0, <c>, </c> and u-0..=16 is one of ours.
        assert_eq!(mapped, 556 - 20);
        let p60 = vocab.id(vocab.parse("p-60").unwrap()) as usize;
        let line = names.iter().position(|&s| s == "p-60").unwrap() as u16;
        assert_eq!(ids[p60], Some(4 + line));
        let ts = vocab.id(vocab.parse("s-9").unwrap()) as usize;
        assert_eq!(ids[ts], None);
    }

    #[test]
    fn another_grid_is_refused() {
        let err = release_ids(&Vocab::new(12)).unwrap_err().to_string();
        assert!(err.contains("16 positions") && err.contains("12"), "{err}");
    }
}

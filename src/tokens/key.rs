//! Key normalization as the original release does it: count the pitch classes of
//! the non-drum notes, score the 24 major and natural-minor scales by how many
//! notes fall in each scale, pick the best major scale and its relative minor, keep
//! the minor when its tonic is more frequent, and shift the piece so the key becomes
//! C major or A minor, keeping pitches in 0..=127.
//!
//! The release asks for duration- and velocity-weighted counts, but a loop without
//! `break` in its code leaves the plain counts in force; this module reproduces what
//! the release computes (see `docs/tokens.md`).

use crate::midi::Score;

const MAJOR_SCALE: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR_SCALE: [u8; 7] = [0, 2, 3, 5, 7, 8, 10];

/// A key: tonic pitch class (0 = C) and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Tonic pitch class, 0..12 (0 = C).
    pub tonic: u8,
    /// Minor mode when true.
    pub minor: bool,
}

fn scale_score(hist: &[u64; 12], tonic: u8, scale: &[u8; 7]) -> u64 {
    scale
        .iter()
        .map(|&d| hist[((tonic + d) % 12) as usize])
        .sum()
}

/// Finds the key of the non-drum notes, or `None` when there are none. Keys are
/// indexed as the release does (0..12 major on tonic k, 12..24 minor on tonic k−12);
/// the best major is the lowest-indexed best scale, the candidate minor the next
/// best index, and the minor wins when its tonic has more notes than the major's.
pub fn find_key(score: &Score) -> Option<Key> {
    let mut hist = [0u64; 12];
    for track in score.tracks.iter().filter(|t| !t.is_drum) {
        for n in &track.notes {
            hist[(n.pitch % 12) as usize] += 1;
        }
    }
    if hist.iter().all(|&h| h == 0) {
        return None;
    }
    let scores: Vec<u64> = (0..24u8)
        .map(|k| {
            if k < 12 {
                scale_score(&hist, k, &MAJOR_SCALE)
            } else {
                scale_score(&hist, k - 12, &MINOR_SCALE)
            }
        })
        .collect();
    let best = *scores.iter().max()?;
    let mut maxima = (0..24u8).filter(|&k| scores[k as usize] == best);
    let major = maxima.next()?;
    // The relative minor always scores the same as its major, so a second maximum exists.
    let minor = maxima.next()?;
    let key = if hist[(major % 12) as usize] < hist[(minor % 12) as usize] {
        minor
    } else {
        major
    };
    Some(if key < 12 {
        Key {
            tonic: key,
            minor: false,
        }
    } else {
        Key {
            tonic: key - 12,
            minor: true,
        }
    })
}

/// The transposition in semitones that takes the score's key to C major (shift
/// `-tonic`) or A minor (shift `9 - tonic`), moved by octaves so every non-drum
/// pitch stays in 0..=127 (0 when that is impossible or no key is found).
pub fn normalize_key_shift(score: &Score) -> i32 {
    let Some(key) = find_key(score) else { return 0 };
    let mut shift = if key.minor {
        9 - key.tonic as i32
    } else {
        -(key.tonic as i32)
    };
    let pitches = score
        .tracks
        .iter()
        .filter(|t| !t.is_drum)
        .flat_map(|t| t.notes.iter().map(|n| n.pitch as i32));
    let (lo, hi) = pitches.fold((i32::MAX, i32::MIN), |(lo, hi), p| (lo.min(p), hi.max(p)));
    while lo + shift < 0 {
        shift += 12;
    }
    while hi + shift >= 128 {
        shift -= 12;
    }
    if lo + shift < 0 {
        0
    } else {
        shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Note, Track};

    fn score(pitches: &[u8]) -> Score {
        let notes = pitches
            .iter()
            .enumerate()
            .map(|(i, &pitch)| Note {
                start: i as u64 * 480,
                end: (i as u64 + 1) * 480,
                pitch,
                velocity: 80,
            })
            .collect();
        Score {
            ticks_per_beat: 480,
            tracks: vec![Track {
                notes,
                ..Track::default()
            }],
            ..Score::default()
        }
    }

    #[test]
    fn d_major_goes_to_c_major() {
        // D major scale plus tonic triad: D is more frequent than B (its relative minor).
        let s = score(&[62, 64, 66, 67, 69, 71, 73, 62, 66, 69, 74]);
        assert_eq!(
            find_key(&s),
            Some(Key {
                tonic: 2,
                minor: false
            })
        );
        assert_eq!(normalize_key_shift(&s), -2);
    }

    #[test]
    fn e_minor_goes_to_a_minor() {
        // E natural minor with a stressed tonic: E outnumbers G (relative major).
        let s = score(&[64, 66, 67, 69, 71, 72, 74, 64, 67, 71, 64, 76]);
        assert_eq!(
            find_key(&s),
            Some(Key {
                tonic: 4,
                minor: true
            })
        );
        assert_eq!(normalize_key_shift(&s), 5);
    }

    #[test]
    fn the_shift_keeps_pitches_in_range() {
        // B major (shift -11) on very low notes must move up an octave instead.
        let s = score(&[0, 11, 1, 3, 4, 6, 8, 10, 11, 11]);
        assert_eq!(find_key(&s).map(|k| (k.tonic, k.minor)), Some((11, false)));
        assert_eq!(normalize_key_shift(&s), 1);
    }

    #[test]
    fn no_key_without_pitched_notes() {
        assert_eq!(
            find_key(&Score {
                ticks_per_beat: 480,
                ..Score::default()
            }),
            None
        );
        assert_eq!(normalize_key_shift(&Score::default()), 0);
    }
}

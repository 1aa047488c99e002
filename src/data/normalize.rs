//! The paper's data normalization (LMD6): keep only 4/4 songs, merge the
//! instruments into six (square synthesizer 80 for the melody, piano 0, guitar 25,
//! bass 43, strings 48, drums) by General MIDI program family, with one melody track
//! chosen by a documented heuristic that a dataset can override.

use crate::midi::{Score, Track};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// How the melody track is chosen before merging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MelodyRule {
    /// A track whose name mentions melody, vocal, voice, lead, sing or soprano;
    /// otherwise the non-drum, non-bass track with the highest mean pitch among the
    /// tracks holding at least a tenth of the pitched notes.
    #[default]
    Auto,
    /// The first track whose name contains this text (case-insensitive), else `Auto`.
    NameContains(String),
    /// The track with this index in the file's track list (0-based), else `Auto`.
    Track(usize),
    /// No melody track: every track is merged by family.
    None,
}

/// Normalization settings of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Reject songs with any time signature other than 4/4 (none counts as 4/4).
    pub only_4_4: bool,
    /// Merge instruments into the six LMD6 instruments.
    pub lmd6: bool,
    /// How the melody track (program 80) is chosen when merging.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub melody: MelodyRule,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            only_4_4: false,
            lmd6: false,
            melody: MelodyRule::Auto,
        }
    }
}

/// LMD6 program of the melody.
pub const MELODY_PROGRAM: u8 = 80;

/// The LMD6 program of a General MIDI program when it is not the melody, or `None`
/// for programs that are dropped (sound effects).
///
/// Families: piano, chromatic percussion and organ → piano (0); guitar → guitar
/// (25); bass → bass (43); strings, ensemble, brass, reed, pipe and synth pads →
/// strings (48); synth leads → square synthesizer (80); synth effects, ethnic and
/// percussive → piano (0); sound effects (120..=127) dropped.
pub fn lmd6_program(program: u8) -> Option<u8> {
    match program {
        0..=23 => Some(0),
        24..=31 => Some(25),
        32..=39 => Some(43),
        40..=79 => Some(48),
        80..=87 => Some(MELODY_PROGRAM),
        88..=95 => Some(48),
        96..=119 => Some(0),
        _ => None,
    }
}

const MELODY_NAMES: [&str; 6] = ["melod", "vocal", "voice", "lead", "sing", "soprano"];

/// Index of the melody track under a rule, if any.
pub fn melody_track(score: &Score, rule: &MelodyRule) -> Option<usize> {
    let by_name = |needle: &str| {
        let needle = needle.to_lowercase();
        score
            .tracks
            .iter()
            .position(|t| !t.is_drum && t.name.to_lowercase().contains(&needle))
    };
    let chosen = match rule {
        MelodyRule::None => return None,
        MelodyRule::NameContains(text) => by_name(text),
        MelodyRule::Track(i) => {
            (*i < score.tracks.len() && !score.tracks[*i].is_drum).then_some(*i)
        }
        MelodyRule::Auto => None,
    };
    chosen
        .or_else(|| MELODY_NAMES.iter().find_map(|n| by_name(n)))
        .or_else(|| highest_track(score))
}

fn highest_track(score: &Score) -> Option<usize> {
    let pitched: usize = score
        .tracks
        .iter()
        .filter(|t| !t.is_drum)
        .map(|t| t.notes.len())
        .sum();
    score
        .tracks
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            !t.is_drum
                && !(32..=39).contains(&t.program)
                && !t.notes.is_empty()
                && t.notes.len() * 10 >= pitched
        })
        .map(|(i, t)| {
            (
                i,
                t.notes.iter().map(|n| n.pitch as f64).sum::<f64>() / t.notes.len() as f64,
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
}

/// Applies the normalization to a score; `Err` carries the reason a song is rejected.
pub fn normalize(score: &Score, cfg: &NormalizeConfig) -> Result<Score> {
    if cfg.only_4_4 {
        if let Some(ts) = score
            .time_signatures
            .iter()
            .find(|t| (t.numerator, t.denominator) != (4, 4))
        {
            bail!(
                "not in 4/4 ({}/{} at tick {})",
                ts.numerator,
                ts.denominator,
                ts.tick
            );
        }
    }
    if !cfg.lmd6 {
        return Ok(score.clone());
    }
    let melody = melody_track(score, &cfg.melody);
    let mut merged: Vec<Track> = Vec::new();
    for (i, track) in score.tracks.iter().enumerate() {
        let target = if track.is_drum {
            None
        } else if Some(i) == melody {
            Some(MELODY_PROGRAM)
        } else {
            // Only the melody track plays the square synthesizer.
            match lmd6_program(track.program) {
                Some(MELODY_PROGRAM) => Some(0),
                Some(p) => Some(p),
                None => continue,
            }
        };
        let (program, is_drum) = (target.unwrap_or(0), target.is_none());
        match merged
            .iter_mut()
            .find(|t| t.is_drum == is_drum && t.program == program)
        {
            Some(t) => t.notes.extend_from_slice(&track.notes),
            None => merged.push(Track {
                name: if is_drum {
                    "drums".into()
                } else {
                    format!("lmd6 program {program}")
                },
                program,
                is_drum,
                notes: track.notes.clone(),
            }),
        }
    }
    for t in &mut merged {
        t.notes.sort();
    }
    if merged.iter().all(|t| t.notes.is_empty()) {
        bail!("no notes left after merging into the LMD6 instruments");
    }
    Ok(Score {
        tracks: merged,
        ..score.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::midi::{Note, TimeSignature};

    fn track(name: &str, program: u8, is_drum: bool, pitches: &[u8]) -> Track {
        let notes = pitches
            .iter()
            .enumerate()
            .map(|(i, &pitch)| Note {
                start: i as u64 * 10,
                end: i as u64 * 10 + 10,
                pitch,
                velocity: 64,
            })
            .collect();
        Track {
            name: name.into(),
            program,
            is_drum,
            notes,
        }
    }

    #[test]
    fn families_map_to_the_six_instruments() {
        assert_eq!(lmd6_program(0), Some(0));
        assert_eq!(lmd6_program(19), Some(0));
        assert_eq!(lmd6_program(27), Some(25));
        assert_eq!(lmd6_program(33), Some(43));
        assert_eq!(lmd6_program(48), Some(48));
        assert_eq!(lmd6_program(61), Some(48));
        assert_eq!(lmd6_program(81), Some(80));
        assert_eq!(lmd6_program(125), None);
    }

    #[test]
    fn melody_by_name_then_by_highest_pitch() {
        let s = Score {
            ticks_per_beat: 480,
            tracks: vec![
                track("Piano", 0, false, &[72, 76, 79]),
                track("Lead Vocal", 52, false, &[60, 62]),
                track("Drums", 0, true, &[36, 38]),
            ],
            ..Score::default()
        };
        assert_eq!(melody_track(&s, &MelodyRule::Auto), Some(1));
        assert_eq!(melody_track(&s, &MelodyRule::Track(0)), Some(0));
        let mut no_names = s.clone();
        no_names.tracks[1].name.clear();
        assert_eq!(melody_track(&no_names, &MelodyRule::Auto), Some(0));
        assert_eq!(melody_track(&s, &MelodyRule::None), None);
    }

    #[test]
    fn merging_maps_melody_to_80_and_merges_families() {
        let s = Score {
            ticks_per_beat: 480,
            tracks: vec![
                track("soprano", 0, false, &[72]),
                track("alto", 0, false, &[65]),
                track("organ", 19, false, &[60]),
                track("sfx", 126, false, &[50]),
                track("kit", 0, true, &[36]),
            ],
            ..Score::default()
        };
        let cfg = NormalizeConfig {
            lmd6: true,
            ..NormalizeConfig::default()
        };
        let n = normalize(&s, &cfg).unwrap();
        let summary: Vec<(u8, bool, usize)> = n
            .tracks
            .iter()
            .map(|t| (t.program, t.is_drum, t.notes.len()))
            .collect();
        assert_eq!(summary, vec![(80, false, 1), (0, false, 2), (0, true, 1)]);
    }

    #[test]
    fn only_4_4_rejects_other_meters_with_the_reason() {
        let mut s = Score {
            ticks_per_beat: 480,
            tracks: vec![track("a", 0, false, &[60])],
            ..Score::default()
        };
        let cfg = NormalizeConfig {
            only_4_4: true,
            ..NormalizeConfig::default()
        };
        assert!(normalize(&s, &cfg).is_ok());
        s.time_signatures.push(TimeSignature {
            tick: 960,
            numerator: 3,
            denominator: 4,
        });
        let err = normalize(&s, &cfg).unwrap_err().to_string();
        assert_eq!(err, "not in 4/4 (3/4 at tick 960)");
    }

    #[test]
    fn melody_rules_read_from_yaml() {
        let read = |y: &str| serde_yaml::from_str::<NormalizeConfig>(y).unwrap().melody;
        assert_eq!(read("melody: auto"), MelodyRule::Auto);
        assert_eq!(read("melody: none"), MelodyRule::None);
        assert_eq!(
            read("melody: {name_contains: vocal}"),
            MelodyRule::NameContains("vocal".into())
        );
        assert_eq!(read("melody: {track: 2}"), MelodyRule::Track(2));
    }
}

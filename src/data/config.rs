//! Dataset configuration files (`experiments/data/*.yaml`): where the MIDI files
//! are, where the prepared dataset goes, and how songs are normalized, encoded and
//! split. Unknown keys and wrong types are errors naming the file, line and key.

use super::normalize::NormalizeConfig;
use crate::tokens::EncodeOptions;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// How songs are assigned to the train, valid and test splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SplitRule {
    /// By a seeded hash of each file's content: stable when files are added.
    Hash {
        /// Seed mixed into the hash.
        #[serde(default)]
        seed: u64,
        /// Relative sizes of train, valid and test.
        #[serde(default = "default_ratios")]
        ratios: [u32; 3],
    },
    /// From file lists (one file name per line, matched by name without folders and
    /// extension), like the lists the original release publishes for LMD.
    Lists {
        /// List of training files.
        train: PathBuf,
        /// List of validation files.
        valid: PathBuf,
        /// List of test files.
        test: PathBuf,
    },
}

fn default_ratios() -> [u32; 3] {
    [8, 1, 1]
}

impl Default for SplitRule {
    fn default() -> Self {
        SplitRule::Hash {
            seed: 0,
            ratios: default_ratios(),
        }
    }
}

impl SplitRule {
    /// The list files the rule reads (none for hash splits).
    pub fn list_files(&self) -> Vec<&Path> {
        match self {
            SplitRule::Hash { .. } => Vec::new(),
            SplitRule::Lists { train, valid, test } => vec![train, valid, test],
        }
    }
}

/// A dataset: input folder, output folder, and the processing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetConfig {
    /// Name used in reports.
    pub name: String,
    /// Folder walked for `.mid` / `.midi` files (relative paths: to the current folder).
    pub midi_dir: PathBuf,
    /// Folder of the prepared dataset.
    pub out: PathBuf,
    /// Encoder options.
    #[serde(default)]
    pub encoding: EncodeOptions,
    /// Normalization before encoding.
    #[serde(default)]
    pub normalize: NormalizeConfig,
    /// Split rule.
    #[serde(default, with = "serde_yaml::with::singleton_map")]
    pub split: SplitRule,
    /// What to tell the user when `midi_dir` is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_help: Option<String>,
}

impl DatasetConfig {
    /// Reads a dataset file; errors name the file (and the line and key, when the
    /// YAML parser knows them).
    pub fn load(path: &Path) -> Result<DatasetConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let cfg: DatasetConfig = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a valid dataset file", path.display()))?;
        cfg.check()
            .with_context(|| format!("{} is not a valid dataset file", path.display()))?;
        Ok(cfg)
    }

    /// The settings a wrong value would turn silently into something else:
    /// `encoding.pos_per_beat` in 1..=32 (0 became a 2-per-beat grid), split ratios
    /// not all zero (every song would go nowhere), a name.
    pub fn check(&self) -> Result<()> {
        let max = crate::tokens::vocab::MAX_POS_PER_BEAT;
        let ppb = self.encoding.pos_per_beat;
        if !(1..=max).contains(&ppb) {
            anyhow::bail!("`encoding.pos_per_beat: {ppb}` must be in 1..={max}");
        }
        if let SplitRule::Hash { ratios, .. } = &self.split {
            if ratios.iter().all(|&r| r == 0) {
                anyhow::bail!(
                    "`split.hash.ratios: {ratios:?}` are all 0; give the relative sizes of train, valid and test (e.g. [8, 1, 1])"
                );
            }
        }
        if self.name.trim().is_empty() {
            anyhow::bail!("`name` is empty; name the dataset");
        }
        Ok(())
    }

    /// A configuration for a MIDI folder given on the command line, with defaults.
    pub fn for_folder(midi_dir: PathBuf, out: PathBuf) -> DatasetConfig {
        let name = midi_dir
            .file_name()
            .map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
        DatasetConfig {
            name,
            midi_dir,
            out,
            encoding: EncodeOptions::default(),
            normalize: NormalizeConfig::default(),
            split: SplitRule::default(),
            missing_help: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_would_be_silently_changed_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (extra, words) in [
            (
                "encoding:\n  pos_per_beat: 0\n",
                vec!["pos_per_beat: 0", "1..=32"],
            ),
            ("encoding:\n  pos_per_beat: 64\n", vec!["pos_per_beat: 64"]),
            (
                "split:\n  hash: {ratios: [0, 0, 0]}\n",
                vec!["ratios: [0, 0, 0]", "all 0"],
            ),
        ] {
            let path = dir.path().join("d.yaml");
            std::fs::write(&path, format!("name: x\nmidi_dir: a\nout: b\n{extra}")).unwrap();
            let err = format!("{:#}", DatasetConfig::load(&path).unwrap_err());
            assert!(err.contains("d.yaml"), "{err}");
            for w in words {
                assert!(err.contains(w), "`{w}` not in {err}");
            }
        }
        for file in ["default", "long", "lmd6"] {
            let path = PathBuf::from(format!("experiments/data/{file}.yaml"));
            DatasetConfig::load(&path).unwrap_or_else(|e| panic!("{file}: {e:#}"));
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.yaml");
        std::fs::write(
            &path,
            "name: x\nmidi_dir: a\nout: b\nencoding:\n  ignore_tss: true\n",
        )
        .unwrap();
        let err = format!("{:#}", DatasetConfig::load(&path).unwrap_err());
        assert!(err.contains("bad.yaml"), "{err}");
        assert!(
            err.contains("ignore_tss") && err.contains("line 5"),
            "{err}"
        );
    }

    #[test]
    fn defaults_and_lists_parse() {
        let cfg: DatasetConfig = serde_yaml::from_str("name: x\nmidi_dir: a\nout: b\n").unwrap();
        assert_eq!(
            cfg.split,
            SplitRule::Hash {
                seed: 0,
                ratios: [8, 1, 1]
            }
        );
        assert!(cfg.encoding.remove_empty_bars);
        let cfg: DatasetConfig = serde_yaml::from_str(
            "name: x\nmidi_dir: a\nout: b\nsplit:\n  lists: {train: t, valid: v, test: s}\n",
        )
        .unwrap();
        assert_eq!(cfg.split.list_files().len(), 3);
    }
}

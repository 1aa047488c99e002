//! Suite files (`experiments/suites/*.yaml`): which experiments make the rows of
//! the paper's Table 1, on which dataset, with which overrides, and how pieces are
//! generated for the similarity error. Unknown keys are errors naming the file, the
//! line and the key; a row whose experiment file is missing or invalid is named.
//! Paths in a suite file are relative to the current folder (the repository root),
//! like the `dataset:` of experiment files.

use crate::config::ExperimentConfig;
use crate::data::DatasetConfig;
use crate::eval::generate::GenerateOptions;
use crate::report::{PaperNumbers, PAPER_LENGTHS};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One row of Table 1: a label and the experiment that fills it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// Row label (e.g. `Music Transformer`); its [`slug`] names the row's stages.
    pub label: String,
    /// Experiment file (`experiments/*.yaml`).
    pub experiment: PathBuf,
    /// Overrides for this row only, applied after the suite's `set`.
    #[serde(default)]
    pub set: Vec<String>,
    /// The paper's numbers for this row, shown beside ours.
    #[serde(default)]
    pub paper: Option<PaperNumbers>,
    /// Which of the suite's `seeds` this is (0 for the row as written; the suite's
    /// [`Suite::runs`] makes the others). Not a key of the file.
    #[serde(skip)]
    pub seed: usize,
}

impl Row {
    /// The row's part of its stage names and work folders: the [`slug`] of its
    /// label, with `-seed<k>` for seed k > 0 (`museformer`, `museformer-seed1`), so
    /// a suite of one seed keeps the names (and caches) it had before seeds.
    pub fn stage_slug(&self) -> String {
        match self.seed {
            0 => slug(&self.label),
            k => format!("{}-seed{k}", slug(&self.label)),
        }
    }

    /// This row's run with seed index `seed`.
    pub fn with_seed(&self, seed: usize) -> Row {
        Row {
            seed,
            ..self.clone()
        }
    }
}

/// Evaluation settings of a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SuiteEval {
    /// The three prefix lengths of Table 1's perplexity columns.
    pub lengths: Vec<usize>,
    /// T of the similarity statistics and the similarity error (the paper: 40).
    pub max_interval: usize,
}

impl Default for SuiteEval {
    fn default() -> Self {
        SuiteEval {
            lengths: PAPER_LENGTHS.to_vec(),
            max_interval: 40,
        }
    }
}

/// A suite file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Suite name: the folders `runs/suites/<name>/` and `results/<name>/`.
    pub name: String,
    /// Dataset file every experiment of the suite uses (it replaces the
    /// experiments' own `dataset`).
    pub dataset: PathBuf,
    /// Label of the row the listening tables compare the others with (Museformer).
    pub reference: String,
    /// Overrides applied to every experiment (`train.steps=300`, ...).
    #[serde(default)]
    pub set: Vec<String>,
    /// Perplexity lengths and the similarity statistics' T.
    #[serde(default)]
    pub eval: SuiteEval,
    /// How many times every row is trained, evaluated and sampled, with seed index
    /// k = 0..seeds: training seed `train.seed + k`, sampling seed `generate.seed +
    /// k`; each run is its own cached stages (`train:<row>-seed<k>` for k > 0).
    /// Table 1 shows the mean ± standard deviation over the runs. Default 1.
    #[serde(default = "one_seed")]
    pub seeds: usize,
    /// Generation for the similarity error (`num`, `max_len`, `min_len`, `top_k`,
    /// `temperature`, `seed`; defaults: [`GenerateOptions::default`]).
    #[serde(default)]
    pub generate: GenerateOptions,
    /// The rows of Table 1, in order.
    pub rows: Vec<Row>,
    /// A `museformer bench attention` CSV (e.g. `results/attention-cpu/attention.csv`,
    /// written by `just bench-attention`) drawn as Figure 4 in the report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention: Option<PathBuf>,
}

fn one_seed() -> usize {
    1
}

/// A row's label as a stage-name part: lower case, runs of other characters as one
/// `-` (`w/o coarse-grained` → `w-o-coarse-grained`).
pub fn slug(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

impl Suite {
    /// Reads and checks a suite file: the keys, the reference row, unique labels,
    /// three lengths, and that the dataset file and every experiment file exist and
    /// load with the suite's overrides.
    pub fn load(path: &Path) -> Result<Suite> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read suite file {}", path.display()))?;
        let suite: Suite = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a valid suite file", path.display()))?;
        suite
            .check()
            .with_context(|| format!("suite file {}", path.display()))?;
        Ok(suite)
    }

    fn check(&self) -> Result<()> {
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            bail!(
                "`name: {}` must be a plain folder name (no slashes)",
                self.name
            );
        }
        if self.rows.is_empty() {
            bail!("`rows` is empty: a suite needs at least one experiment");
        }
        if self.eval.lengths.len() != 3 || self.eval.lengths.contains(&0) {
            bail!(
                "`eval.lengths` must be three positive lengths (Table 1's columns), not {:?}",
                self.eval.lengths
            );
        }
        if self.eval.max_interval == 0 {
            bail!("`eval.max_interval` must be at least 1");
        }
        if self.generate.num == 0 || self.generate.max_len == 0 {
            bail!("`generate.num` and `generate.max_len` must be at least 1");
        }
        self.generate.check().context("`generate`")?;
        if self.seeds == 0 {
            bail!("`seeds` must be at least 1");
        }
        for (i, row) in self.rows.iter().enumerate() {
            if slug(&row.label).is_empty() {
                bail!(
                    "row {}: the label `{}` needs a letter or digit",
                    i + 1,
                    row.label
                );
            }
        }
        let runs: Vec<Row> = self.rows.iter().flat_map(|r| self.runs(r)).collect();
        for (i, run) in runs.iter().enumerate() {
            let s = run.stage_slug();
            if let Some(other) = runs[..i].iter().find(|r| r.stage_slug() == s) {
                bail!(
                    "rows `{}` and `{}` have the same stage name `{s}`; give them distinct labels",
                    other.label,
                    run.label
                );
            }
        }
        if !self.rows.iter().any(|r| r.label == self.reference) {
            bail!(
                "`reference: {}` is not the label of a row (the labels: {})",
                self.reference,
                self.labels().join(", ")
            );
        }
        DatasetConfig::load(&self.dataset).context("`dataset`")?;
        for row in &self.rows {
            if !row.experiment.is_file() {
                bail!(
                    "row `{}`: the experiment file {} does not exist",
                    row.label,
                    row.experiment.display()
                );
            }
            self.experiment(row)?;
        }
        Ok(())
    }

    /// The row labels, in order.
    pub fn labels(&self) -> Vec<String> {
        self.rows.iter().map(|r| r.label.clone()).collect()
    }

    /// The resolved experiment of a row: its file with the suite's and the row's
    /// overrides, on the suite's dataset, its training seed moved by the row's seed
    /// index.
    pub fn experiment(&self, row: &Row) -> Result<ExperimentConfig> {
        let sets: Vec<String> = self.set.iter().chain(&row.set).cloned().collect();
        let mut cfg = ExperimentConfig::load(&row.experiment, &sets)
            .with_context(|| format!("row `{}`", row.label))?;
        cfg.dataset = self.dataset.clone();
        cfg.train.seed += row.seed as u64;
        Ok(cfg)
    }

    /// A row's runs, one per seed index `0..seeds`.
    pub fn runs(&self, row: &Row) -> Vec<Row> {
        (0..self.seeds).map(|k| row.with_seed(k)).collect()
    }

    /// The generation settings of a row's run: the suite's, the sampling seed moved
    /// by the run's seed index.
    pub fn generate_options(&self, row: &Row) -> GenerateOptions {
        let mut g = self.generate.clone();
        g.seed += row.seed as u64;
        g
    }

    /// The reference row.
    pub fn reference_row(&self) -> &Row {
        self.rows
            .iter()
            .find(|r| r.label == self.reference)
            .expect("checked when loaded")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stage_names() {
        assert_eq!(slug("Music Transformer"), "music-transformer");
        assert_eq!(slug("w/o coarse-grained"), "w-o-coarse-grained");
        assert_eq!(slug("  Museformer!"), "museformer");
        assert_eq!(slug("//"), "");
    }

    /// Every suite of the repository has the control row first: the full-attention
    /// Transformer (no paper numbers) of the size of the suite's Museformer row.
    #[test]
    fn the_repositorys_suites_start_with_the_full_attention_control() {
        use crate::registry::ModelKind;
        for (file, experiment, paper_rows) in [
            ("mini", "experiments/transformer-small.yaml", 7),
            ("paper", "experiments/transformer.yaml", 7),
            ("smoke", "experiments/transformer-small.yaml", 0),
        ] {
            // Suite paths are relative to the repository root, where cargo runs tests.
            let suite = Suite::load(Path::new(&format!("experiments/suites/{file}.yaml")))
                .unwrap_or_else(|e| panic!("{file}: {e:#}"));
            let control = &suite.rows[0];
            assert_eq!(
                control.label, "Transformer (full-attention control)",
                "{file}"
            );
            assert_eq!(control.experiment, Path::new(experiment), "{file}");
            assert_eq!(control.paper, None, "{file}: the paper has no such row");
            assert!(control.set.is_empty(), "{file}");
            let cfg = suite.experiment(control).unwrap();
            assert_eq!(cfg.model.kind(), ModelKind::Transformer, "{file}");
            assert_eq!(
                suite.rows.iter().filter(|r| r.paper.is_some()).count(),
                paper_rows,
                "{file}"
            );
            // The same size as the Museformer row, where there is one.
            if let Some(m) = suite.rows.iter().find(|r| r.label == "Museformer") {
                let m = suite.experiment(m).unwrap();
                assert_eq!(cfg.model.sizes, m.model.sizes, "{file}");
                assert_eq!(cfg.train, m.train, "{file}");
            }
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn bad_suites_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        write(dir.path(), "data.yaml", "name: d\nmidi_dir: m\nout: o\n");
        write(dir.path(), "e.yaml", "name: e\n");
        let suite = |rows: &str, extra: &str| {
            format!("name: s\ndataset: {d}/data.yaml\nreference: A\n{extra}rows:\n{rows}")
        };
        let ok = write(
            dir.path(),
            "ok.yaml",
            &suite(
                &format!("  - {{label: A, experiment: {d}/e.yaml, paper: {{ppl: [1, 2, 3], se: 4}}}}\n  - {{label: B, experiment: {d}/e.yaml, set: [train.seed=2]}}\n"),
                "set: [train.steps=5]\n",
            ),
        );
        let s = Suite::load(&ok).unwrap();
        let b = s.experiment(&s.rows[1]).unwrap();
        assert_eq!((b.train.steps, b.train.seed), (5, 2));
        assert_eq!(b.dataset, dir.path().join("data.yaml"));
        assert_eq!(s.reference_row().label, "A");
        // Generation settings not given take the suite defaults.
        assert_eq!(s.generate, GenerateOptions::default());
        assert_eq!((s.generate.num, s.generate.max_len), (10, 20_480));
        let partial = write(
            dir.path(),
            "gen.yaml",
            &suite(
                &format!("  - {{label: A, experiment: {d}/e.yaml}}\n"),
                "generate: {num: 6, max_len: 1024, min_len: 512, top_k: 4, temperature: 0.9, seed: 3}\n",
            ),
        );
        let g = Suite::load(&partial).unwrap().generate;
        assert_eq!(
            (g.num, g.max_len, g.min_len, g.top_k, g.temperature, g.seed),
            (6, 1024, 512, 4, 0.9, 3)
        );
        assert_eq!((g.prompt, g.no_cache), (None, false));

        let cases = [
            (
                suite(&format!("  - {{label: A, experiment: {d}/missing.yaml}}\n"), ""),
                vec!["row `A`", "missing.yaml", "does not exist"],
            ),
            (
                suite(&format!("  - {{label: A, experiment: {d}/e.yaml}}\n"), "sett: []\n"),
                vec!["sett", "line 4"],
            ),
            (
                suite(&format!("  - {{label: B, experiment: {d}/e.yaml}}\n"), ""),
                vec!["reference: A", "B"],
            ),
            (
                suite(
                    &format!("  - {{label: A, experiment: {d}/e.yaml}}\n  - {{label: a, experiment: {d}/e.yaml}}\n"),
                    "",
                ),
                vec!["same stage name `a`"],
            ),
            (
                suite(
                    &format!("  - {{label: A, experiment: {d}/e.yaml}}\n"),
                    "set: [model.layerz=3]\n",
                ),
                vec!["row `A`", "layerz"],
            ),
            (
                suite(
                    &format!("  - {{label: A, experiment: {d}/e.yaml}}\n"),
                    "eval: {lengths: [1, 2]}\n",
                ),
                vec!["eval.lengths"],
            ),
            (
                suite(
                    &format!("  - {{label: A, experiment: {d}/e.yaml}}\n"),
                    "generate: {num: 2, prompt: p.txt}\n",
                ),
                vec!["prompt"],
            ),
            (
                suite(
                    &format!("  - {{label: A, experiment: {d}/e.yaml}}\n"),
                    "generate: {max_len: 100, min_len: 200}\n",
                ),
                vec!["`generate`", "minimum length (200)", "maximum length (100)"],
            ),
        ];
        for (i, (text, words)) in cases.iter().enumerate() {
            let p = write(dir.path(), &format!("bad{i}.yaml"), text);
            let err = format!("{:#}", Suite::load(&p).unwrap_err());
            assert!(err.contains(&format!("bad{i}.yaml")), "{err}");
            for w in words {
                assert!(err.contains(w), "case {i}: `{w}` not in: {err}");
            }
        }
    }
}

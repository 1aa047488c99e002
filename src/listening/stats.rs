//! The statistics of a listening test: reading and checking a ratings CSV (and the
//! kit's key file), the Wilcoxon signed-rank test, and the paper's Table 2 (mean ±
//! standard deviation per metric and model, preference score) and Table 3 (wins,
//! ties, losses and p-value of the reference model against each other model).
//!
//! Definitions (`docs/listening.md` states them for users):
//! - A *unit* is one (rater, group) pair; it rates one piece of every model.
//! - Table 2: mean and **sample** standard deviation (divisor n − 1, empty for one
//!   unit) over the units; the preference score of a model is its share of units in
//!   which it has the highest overall score, a tie at the top between k models
//!   giving each 1/k (so the scores sum to 1).
//! - Table 3: differences d = overall(reference) − overall(other) per unit; wins
//!   d > 0, ties d = 0, losses d < 0; two-sided Wilcoxon signed-rank test with the
//!   zero differences dropped: the exact null distribution when at most
//!   [`EXACT_MAX_N`] non-zero differences remain and there were no zeros and no tied
//!   magnitudes, otherwise the normal approximation with the tie-corrected variance
//!   and no continuity correction.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The header of a ratings CSV (columns may come in any order; extra columns are
/// ignored).
pub const HEADER: [&str; 7] = [
    "rater",
    "group",
    "model",
    "musicality",
    "short_term",
    "long_term",
    "overall",
];

/// The rated metrics, in the order of [`Rating::scores`].
pub const METRICS: [&str; 4] = ["musicality", "short_term", "long_term", "overall"];

/// The index of the overall score in [`METRICS`].
pub const OVERALL: usize = 3;

/// The rating scale: scores are numbers from `min` to `max` (inclusive), whole or
/// not (`6`, `6.0` and slider values such as `7.0329` are all scores).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scale {
    /// The lowest score.
    pub min: f64,
    /// The highest score.
    pub max: f64,
}

impl Default for Scale {
    /// The paper's 1..10.
    fn default() -> Self {
        Scale {
            min: 1.0,
            max: 10.0,
        }
    }
}

impl std::fmt::Display for Scale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.min, self.max)
    }
}

impl std::str::FromStr for Scale {
    type Err = String;

    /// `MIN..MAX` (or `MIN..=MAX`), MIN below MAX: `1..10`, `0..100`, `1..=5`.
    fn from_str(text: &str) -> std::result::Result<Scale, String> {
        let bad = || format!("`{text}` is not a scale; give MIN..MAX, e.g. 1..10");
        let (a, b) = text.split_once("..").ok_or_else(bad)?;
        let b = b.strip_prefix('=').unwrap_or(b);
        let (min, max): (f64, f64) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if !(min.is_finite() && max.is_finite() && min < max) {
            return Err(format!("`{text}`: the scale needs finite MIN < MAX"));
        }
        Ok(Scale { min, max })
    }
}

/// The most non-zero differences for which the exact null distribution is used.
pub const EXACT_MAX_N: usize = 50;

/// `FILE line N` for messages.
fn at(path: &Path, line: usize) -> String {
    format!("{} line {line}", path.display())
}

/// Splits one CSV line into trimmed cells; double quotes may enclose a cell (with
/// `""` for a quote inside). Cells cannot span lines.
fn split_csv_line(line: &str) -> std::result::Result<Vec<String>, &'static str> {
    let mut cells = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.trim().is_empty() {
            in_quotes = true;
            cur.clear();
        } else if c == ',' {
            cells.push(cur.trim().to_string());
            cur.clear();
        } else {
            cur.push(c);
        }
    }
    if in_quotes {
        return Err("a quoted cell is not closed (cells cannot span lines)");
    }
    cells.push(cur.trim().to_string());
    Ok(cells)
}

/// A CSV file read for the columns `wanted`: for each record its line number and
/// the wanted cells in the order of `wanted`.
fn read_csv(path: &Path, wanted: &[&str]) -> Result<Vec<(usize, Vec<String>)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hline, header)) = lines.next() else {
        bail!(
            "{} is empty; expected the header {}",
            path.display(),
            wanted.join(",")
        );
    };
    let header = split_csv_line(header).map_err(|e| anyhow::anyhow!("{}: {e}", at(path, hline)))?;
    let mut index = Vec::with_capacity(wanted.len());
    for w in wanted {
        let found: Vec<usize> = header
            .iter()
            .enumerate()
            .filter(|(_, h)| h.eq_ignore_ascii_case(w))
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [i] => index.push(*i),
            [] => bail!(
                "{}: the header has no column `{w}` (expected {})",
                at(path, hline),
                wanted.join(",")
            ),
            _ => bail!("{}: the header has the column `{w}` twice", at(path, hline)),
        }
    }
    let mut rows = Vec::new();
    for (n, line) in lines {
        let cells = split_csv_line(line).map_err(|e| anyhow::anyhow!("{}: {e}", at(path, n)))?;
        if cells.len() != header.len() {
            bail!(
                "{}: {} cells, but the header has {} (a missing cell?)",
                at(path, n),
                cells.len(),
                header.len()
            );
        }
        rows.push((n, index.iter().map(|&i| cells[i].clone()).collect()));
    }
    Ok(rows)
}

/// The kit's key file (`key.csv`: `group,piece,model`, extra columns ignored): which
/// model each anonymous piece id of each group stands for.
#[derive(Debug, Clone, Default)]
pub struct Key {
    /// The file it was read from.
    pub path: PathBuf,
    /// group → (piece id → model label).
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
}

impl Key {
    /// Reads and checks a key file: no (group, piece) twice, no model twice in a group.
    pub fn load(path: &Path) -> Result<Key> {
        let rows = read_csv(path, &["group", "piece", "model"])?;
        let mut groups: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut piece_lines: HashMap<(String, String), usize> = HashMap::new();
        let mut model_lines: HashMap<(String, String), usize> = HashMap::new();
        for (n, cells) in rows {
            let [group, piece, model] = <[String; 3]>::try_from(cells).expect("three columns");
            for (name, v) in [("group", &group), ("piece", &piece), ("model", &model)] {
                if v.is_empty() {
                    bail!("{}: the cell `{name}` is empty", at(path, n));
                }
            }
            if let Some(first) = piece_lines.insert((group.clone(), piece.clone()), n) {
                bail!(
                    "{}: piece `{piece}` of group `{group}` is already on line {first}",
                    at(path, n)
                );
            }
            if let Some(first) = model_lines.insert((group.clone(), model.clone()), n) {
                bail!(
                    "{}: group `{group}` has model `{model}` already on line {first}; a group holds one piece per model",
                    at(path, n)
                );
            }
            groups.entry(group).or_default().insert(piece, model);
        }
        let mut sets = groups
            .iter()
            .map(|(g, pieces)| (g, pieces.values().collect::<BTreeSet<_>>()));
        let Some((first, models)) = sets.next() else {
            bail!("{} has no rows", path.display());
        };
        for (group, other) in sets {
            if other != models {
                let list = |s: &BTreeSet<&String>| {
                    s.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
                };
                bail!(
                    "{}: group `{group}` has the models {} but group `{first}` has {}; every group holds one piece of each model",
                    path.display(),
                    list(&other),
                    list(&models)
                );
            }
        }
        Ok(Key {
            path: path.to_path_buf(),
            groups,
        })
    }
}

/// One row of a ratings CSV, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    /// Line number in the file (1-based).
    pub line: usize,
    /// Rater id.
    pub rater: String,
    /// Group id.
    pub group: String,
    /// Model label (mapped from the anonymous id through the key when one is given).
    pub model: String,
    /// Scores on the scale, in the order of [`METRICS`].
    pub scores: [f64; 4],
}

/// One (rater, group) pair: the scores it gave each model.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Rater id.
    pub rater: String,
    /// Group id.
    pub group: String,
    /// Scores per model, indexed like [`Ratings::models`].
    pub scores: Vec<[f64; 4]>,
}

/// A checked ratings file: every unit rates every model exactly once.
#[derive(Debug, Clone)]
pub struct Ratings {
    /// The file.
    pub path: PathBuf,
    /// Model labels, sorted.
    pub models: Vec<String>,
    /// Units sorted by (rater, group).
    pub units: Vec<Unit>,
    /// The scale the scores were checked against.
    pub scale: Scale,
}

/// Parses one score cell: any finite number on the scale.
fn score(
    path: &Path,
    line: usize,
    column: &str,
    cell: &str,
    unit: &str,
    scale: Scale,
) -> Result<f64> {
    if cell.is_empty() {
        bail!(
            "{}: the cell `{column}` is empty (fill it in, or delete every row of {unit} to leave that group out)",
            at(path, line)
        );
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() && (scale.min..=scale.max).contains(&v) => Ok(v),
        Ok(v) if v.is_finite() => bail!(
            "{}: `{column}` is {cell}, outside the scale {scale} (pass --scale MIN..MAX for another)",
            at(path, line)
        ),
        _ => bail!(
            "{}: `{column}` is `{cell}`; a score is a number on the scale {scale}",
            at(path, line)
        ),
    }
}

impl Ratings {
    /// Reads and checks a ratings CSV. With a key, the model column holds the kit's
    /// anonymous piece ids and is mapped to model labels; without one it holds model
    /// labels. Errors name the file and line: empty cells, scores that are not
    /// numbers on the `scale`, ids not in the key, unknown (misspelt) model labels, a
    /// (rater, group, model) rated twice, and a (rater, group) without a rating of
    /// some model.
    pub fn load(path: &Path, key: Option<&Key>, scale: Scale) -> Result<Ratings> {
        let rows = read_csv(path, &HEADER)?;
        if rows.is_empty() {
            bail!("{} has a header but no ratings", path.display());
        }
        let mut ratings = Vec::with_capacity(rows.len());
        let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
        for (n, cells) in rows {
            for (name, v) in HEADER.iter().zip(&cells).take(3) {
                if v.is_empty() {
                    bail!("{}: the cell `{name}` is empty", at(path, n));
                }
            }
            let (rater, group, id) = (cells[0].clone(), cells[1].clone(), cells[2].clone());
            let unit = format!("rater `{rater}` in group `{group}`");
            let mut scores = [0.0; 4];
            for (i, s) in scores.iter_mut().enumerate() {
                *s = score(path, n, METRICS[i], &cells[3 + i], &unit, scale)?;
            }
            let model = match key {
                None => id.clone(),
                Some(key) => {
                    let Some(pieces) = key.groups.get(&group) else {
                        bail!(
                            "{}: group `{group}` is not in the key {}",
                            at(path, n),
                            key.path.display()
                        );
                    };
                    match pieces.get(&id) {
                        Some(m) => m.clone(),
                        None => bail!(
                            "{}: unknown model `{id}`: group `{group}` of the key {} has only {}",
                            at(path, n),
                            key.path.display(),
                            pieces.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    }
                }
            };
            if let Some(first) = seen.insert((rater.clone(), group.clone(), model.clone()), n) {
                bail!(
                    "{}: {unit} already rated `{id}` on line {first} (a duplicate row)",
                    at(path, n)
                );
            }
            ratings.push(Rating {
                line: n,
                rater,
                group,
                model,
                scores,
            });
        }
        let mut by_unit: BTreeMap<(String, String), Vec<&Rating>> = BTreeMap::new();
        for r in &ratings {
            by_unit
                .entry((r.rater.clone(), r.group.clone()))
                .or_default()
                .push(r);
        }
        let models: Vec<String> = match key {
            Some(key) => {
                let set: BTreeSet<&String> = key.groups.values().flat_map(|g| g.values()).collect();
                set.into_iter().cloned().collect()
            }
            None => labels_rated_everywhere(path, &ratings, by_unit.len())?,
        };
        let index: HashMap<&str, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.as_str(), i))
            .collect();
        let mut units = Vec::with_capacity(by_unit.len());
        for ((rater, group), rows) in &by_unit {
            let mut scores = vec![None; models.len()];
            for r in rows {
                scores[index[r.model.as_str()]] = Some(r.scores);
            }
            if let Some(missing) = models.iter().find(|m| scores[index[m.as_str()]].is_none()) {
                let lines: Vec<String> = rows.iter().map(|r| r.line.to_string()).collect();
                bail!(
                    "{}: rater `{rater}` in group `{group}` (lines {}) has no rating of model `{missing}`; \
                     every (rater, group) rates one piece of each model",
                    path.display(),
                    lines.join(", ")
                );
            }
            units.push(Unit {
                rater: rater.clone(),
                group: group.clone(),
                scores: scores.into_iter().map(|s| s.expect("checked")).collect(),
            });
        }
        if models.len() < 2 {
            bail!(
                "{} rates only one model ({}); a listening test compares two or more",
                path.display(),
                models.join(", ")
            );
        }
        Ok(Ratings {
            path: path.to_path_buf(),
            models,
            units,
            scale,
        })
    }

    /// The index of a model label: the label itself, else the one label equal to it
    /// ignoring ASCII case (`museformer` for `Museformer`).
    pub fn model_index(&self, label: &str) -> Option<usize> {
        self.models.iter().position(|m| m == label).or_else(|| {
            let same: Vec<usize> = (0..self.models.len())
                .filter(|&i| self.models[i].eq_ignore_ascii_case(label))
                .collect();
            match same.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        })
    }
}

/// Without a key: the model labels are those rated by more than half of the
/// units; a label rated by fewer is reported as unknown (a misspelling) at its
/// first line.
fn labels_rated_everywhere(path: &Path, ratings: &[Rating], units: usize) -> Result<Vec<String>> {
    let mut count: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for r in ratings {
        let e = count.entry(r.model.as_str()).or_insert((0, r.line));
        e.0 += 1;
    }
    let (known, rare): (Vec<_>, Vec<_>) = count.iter().partition(|(_, (c, _))| 2 * c > units);
    if let Some((label, (c, line))) = rare
        .iter()
        .min_by_key(|(_, (c, line))| (*c, std::cmp::Reverse(*line)))
    {
        let known: Vec<&str> = known.iter().map(|(m, _)| **m).collect();
        bail!(
            "{}: unknown model `{label}`: it is rated by only {c} of the {units} (rater, group) pairs \
             (the models rated by most are {}; a misspelling?)",
            at(path, *line),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(known.into_iter().map(|(m, _)| m.to_string()).collect())
}

/// How a Wilcoxon p-value was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// The exact null distribution of W+ (all 2^n sign patterns).
    Exact,
    /// The normal approximation with the tie-corrected variance.
    Normal,
    /// Every difference was zero: no evidence either way, p = 1.
    NoDifferences,
}

impl Method {
    /// The method's name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Method::Exact => "exact",
            Method::Normal => "normal",
            Method::NoDifferences => "no differences",
        }
    }
}

/// The result of a two-sided Wilcoxon signed-rank test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wilcoxon {
    /// Non-zero differences (the test's n).
    pub n: usize,
    /// Zero differences dropped.
    pub zeros: usize,
    /// Whether some non-zero magnitudes were tied (average ranks were used).
    pub tied: bool,
    /// Sum of the ranks of the positive differences.
    pub w_plus: f64,
    /// Sum of the ranks of the negative differences.
    pub w_minus: f64,
    /// The standardized statistic (W+ − n(n+1)/4) / σ of the normal approximation.
    pub z: Option<f64>,
    /// Two-sided p-value, at most 1.
    pub p_value: f64,
    /// How the p-value was computed.
    pub method: Method,
}

/// The number of subsets of {1, ..., n} with each sum 0..=n(n+1)/2: 2^n times the
/// exact null distribution of W+ without ties (n ≤ 63).
fn subset_sum_counts(n: usize) -> Vec<u64> {
    let max = n * (n + 1) / 2;
    let mut counts = vec![0u64; max + 1];
    counts[0] = 1;
    for i in 1..=n {
        for s in (i..=i * (i + 1) / 2).rev() {
            counts[s] += counts[s - i];
        }
    }
    counts
}

/// The two-sided Wilcoxon signed-rank test of the differences `diffs` (see the
/// module documentation for the exact rules). Errors on a non-finite difference.
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> Result<Wilcoxon> {
    if let Some(d) = diffs.iter().find(|d| !d.is_finite()) {
        bail!("Wilcoxon signed-rank test: the difference {d} is not a finite number");
    }
    let mut nonzero: Vec<f64> = diffs.iter().copied().filter(|&d| d != 0.0).collect();
    let zeros = diffs.len() - nonzero.len();
    let n = nonzero.len();
    if n == 0 {
        return Ok(Wilcoxon {
            n,
            zeros,
            tied: false,
            w_plus: 0.0,
            w_minus: 0.0,
            z: None,
            p_value: 1.0,
            method: Method::NoDifferences,
        });
    }
    nonzero.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // Average ranks over runs of equal magnitude; tie sizes for the variance.
    let (mut w_plus, mut w_minus, mut tie_term) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && nonzero[j].abs() == nonzero[i].abs() {
            j += 1;
        }
        let rank = (i + 1 + j) as f64 / 2.0;
        for d in &nonzero[i..j] {
            if *d > 0.0 {
                w_plus += rank;
            } else {
                w_minus += rank;
            }
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let tied = tie_term > 0.0;
    let nf = n as f64;
    if n <= EXACT_MAX_N && zeros == 0 && !tied {
        let counts = subset_sum_counts(n);
        let w = w_plus.round() as usize;
        let below: u128 = counts[..=w].iter().map(|&c| u128::from(c)).sum();
        let above: u128 = counts[w..].iter().map(|&c| u128::from(c)).sum();
        let total = 2f64.powi(n as i32);
        let p = (2.0 * below.min(above) as f64 / total).min(1.0);
        return Ok(Wilcoxon {
            n,
            zeros,
            tied,
            w_plus,
            w_minus,
            z: None,
            p_value: p,
            method: Method::Exact,
        });
    }
    let mean = nf * (nf + 1.0) / 4.0;
    let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
    let z = (w_plus - mean) / var.sqrt();
    let p = (2.0 * Normal::standard().cdf(-z.abs())).min(1.0);
    Ok(Wilcoxon {
        n,
        zeros,
        tied,
        w_plus,
        w_minus,
        z: Some(z),
        p_value: p,
        method: Method::Normal,
    })
}

/// Mean and sample standard deviation (n − 1; `None` for fewer than two values).
fn mean_std(values: &[f64]) -> (f64, Option<f64>) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.len() > 1)
        .then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    (mean, std)
}

/// One row of Table 2.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    /// Model label.
    pub model: String,
    /// Units (ratings per metric).
    pub n: usize,
    /// Mean per metric, in the order of [`METRICS`].
    pub mean: [f64; 4],
    /// Sample standard deviation per metric (`None` with one unit).
    pub std: [Option<f64>; 4],
    /// Preference score: the share of units in which the model has the highest
    /// overall score, a tie at the top between k models counting 1/k for each.
    pub preference: f64,
    /// Units in which the model alone has the highest overall score.
    pub sole_top: usize,
    /// Units in which the model shares the highest overall score with others.
    pub shared_top: usize,
}

/// Table 2 for the models in `order` (indices into [`Ratings::models`]).
pub fn table2(ratings: &Ratings, order: &[usize]) -> Vec<ModelSummary> {
    let units = &ratings.units;
    let mut preference = vec![0.0; ratings.models.len()];
    let mut sole = vec![0usize; ratings.models.len()];
    let mut shared = vec![0usize; ratings.models.len()];
    for u in units {
        let top = u
            .scores
            .iter()
            .map(|s| s[OVERALL])
            .fold(f64::NEG_INFINITY, f64::max);
        let winners: Vec<usize> = (0..u.scores.len())
            .filter(|&m| u.scores[m][OVERALL] == top)
            .collect();
        for &m in &winners {
            preference[m] += 1.0 / winners.len() as f64;
            if winners.len() == 1 {
                sole[m] += 1;
            } else {
                shared[m] += 1;
            }
        }
    }
    order
        .iter()
        .map(|&m| {
            let mut mean = [0.0; 4];
            let mut std = [None; 4];
            for k in 0..METRICS.len() {
                let values: Vec<f64> = units.iter().map(|u| u.scores[m][k]).collect();
                (mean[k], std[k]) = mean_std(&values);
            }
            ModelSummary {
                model: ratings.models[m].clone(),
                n: units.len(),
                mean,
                std,
                preference: preference[m] / units.len() as f64,
                sole_top: sole[m],
                shared_top: shared[m],
            }
        })
        .collect()
}

/// One row of Table 3: the reference model against another on the overall score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pairwise {
    /// The reference model.
    pub reference: String,
    /// The model compared with it.
    pub model: String,
    /// Units where the reference scored higher.
    pub wins: usize,
    /// Units with equal scores.
    pub ties: usize,
    /// Units where the reference scored lower.
    pub losses: usize,
    /// The Wilcoxon signed-rank test of overall(reference) − overall(model).
    pub test: Wilcoxon,
}

/// Table 3: the reference model against each model in `others` (indices into
/// [`Ratings::models`]).
pub fn table3(ratings: &Ratings, reference: usize, others: &[usize]) -> Result<Vec<Pairwise>> {
    others
        .iter()
        .map(|&m| {
            let diffs: Vec<f64> = ratings
                .units
                .iter()
                .map(|u| u.scores[reference][OVERALL] - u.scores[m][OVERALL])
                .collect();
            Ok(Pairwise {
                reference: ratings.models[reference].clone(),
                model: ratings.models[m].clone(),
                wins: diffs.iter().filter(|&&d| d > 0.0).count(),
                ties: diffs.iter().filter(|&&d| d == 0.0).count(),
                losses: diffs.iter().filter(|&&d| d < 0.0).count(),
                test: wilcoxon_signed_rank(&diffs)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1e-300)
    }

    #[test]
    fn subset_sum_counts_match_the_classic_tables() {
        // n = 5: the 32 subsets of {1..5} by sum 0..=15.
        assert_eq!(
            subset_sum_counts(5),
            vec![1, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 2, 2, 1, 1, 1]
        );
        for n in [1, 10, 50] {
            assert_eq!(subset_sum_counts(n).iter().sum::<u64>(), 1u64 << n);
        }
    }

    #[test]
    fn exact_cases_computed_by_hand() {
        // n = 10, all positive, distinct: W+ = 55 is the single largest of 1024
        // outcomes; two-sided p = 2/1024.
        let d: Vec<f64> = (1..=10).map(f64::from).collect();
        let w = wilcoxon_signed_rank(&d).unwrap();
        assert_eq!(
            (w.method, w.n, w.w_plus, w.w_minus),
            (Method::Exact, 10, 55.0, 0.0)
        );
        assert_eq!(w.p_value, 2.0 / 1024.0);
        // n = 5: d = 1, 2, 3, 4, −5: W+ = 10, W− = 5. P(W ≤ 5) = (1+1+1+2+2+3)/32
        // = 10/32 (counts of subset sums 0..5); two-sided p = 20/32 = 0.625.
        let w = wilcoxon_signed_rank(&[1.0, 2.0, 3.0, 4.0, -5.0]).unwrap();
        assert_eq!((w.w_plus, w.w_minus), (10.0, 5.0));
        assert_eq!(w.p_value, 0.625);
        // n = 6: d = −1, 2, ..., 6: W− = 1; P(W ≤ 1) = 2/64; p = 4/64 = 0.0625.
        let w = wilcoxon_signed_rank(&[-1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(w.p_value, 0.0625);
        // n = 6 all positive: p = 2/64 = 0.03125 (the classic critical value W = 0
        // at α = 0.05 two-sided).
        let w = wilcoxon_signed_rank(&[0.5, 1.0, 1.5, 2.0, 2.5, 3.0]).unwrap();
        assert_eq!(w.p_value, 0.03125);
        // n = 3: d = 1, 2, −3: W+ = W− = 3, 2 · P(W ≤ 3) = 2 · 5/8 > 1: capped at 1.
        let w = wilcoxon_signed_rank(&[1.0, 2.0, -3.0]).unwrap();
        assert_eq!((w.method, w.p_value), (Method::Exact, 1.0));
        // n = 50 distinct, all positive: still exact, p = 2 / 2^50.
        let d: Vec<f64> = (1..=50).map(f64::from).collect();
        let w = wilcoxon_signed_rank(&d).unwrap();
        assert_eq!((w.method, w.p_value), (Method::Exact, 2.0 / 2f64.powi(50)));
    }

    #[test]
    fn the_exact_p_value_counts_all_sign_patterns() {
        // Magnitudes 1..=n with every sign pattern: the distribution of W+ is
        // symmetric about n(n+1)/4, so the two-sided p is the share of the 2^n
        // patterns whose W+ is at least as far from the mean.
        for n in 1..=10usize {
            let w_of = |mask: usize| -> usize {
                (0..n).filter(|i| mask >> i & 1 == 1).map(|i| i + 1).sum()
            };
            let mean = (n * (n + 1)) as f64 / 4.0;
            let all: Vec<f64> = (0..1usize << n).map(|m| w_of(m) as f64).collect();
            for mask in 0..1usize << n {
                let d: Vec<f64> = (0..n)
                    .map(|i| {
                        if mask >> i & 1 == 1 {
                            (i + 1) as f64
                        } else {
                            -((i + 1) as f64)
                        }
                    })
                    .collect();
                let far = (all[mask] - mean).abs();
                let count = all
                    .iter()
                    .filter(|w| (*w - mean).abs() >= far - 1e-12)
                    .count();
                let w = wilcoxon_signed_rank(&d).unwrap();
                assert_eq!(w.method, Method::Exact);
                assert_eq!(w.w_plus, all[mask]);
                assert!(
                    close(w.p_value, count as f64 / (1usize << n) as f64),
                    "n {n}, mask {mask}"
                );
            }
        }
    }

    #[test]
    fn normal_approximation_cases_computed_by_hand() {
        // Zeros and ties: d = 0, 1, −1, 2, 2, 3, −4, 5. The zero is dropped: n = 7,
        // |d| = 1 1 2 2 3 4 5 with ranks 1.5 1.5 3.5 3.5 5 6 7. W+ = 1.5 + 3.5 + 3.5
        // + 5 + 7 = 20.5, W− = 7.5. Mean 7·8/4 = 14; variance 7·8·15/24 −
        // ((2³−2) + (2³−2))/48 = 35 − 0.25 = 34.75; z = 6.5/√34.75 = 1.102645609;
        // p = 2(1 − Φ(z)) = 0.270181096.
        let w = wilcoxon_signed_rank(&[0.0, 1.0, -1.0, 2.0, 2.0, 3.0, -4.0, 5.0]).unwrap();
        assert_eq!(
            (w.method, w.n, w.zeros, w.tied),
            (Method::Normal, 7, 1, true)
        );
        assert_eq!((w.w_plus, w.w_minus), (20.5, 7.5));
        assert!(close(w.z.unwrap(), 1.1026456085839622), "{w:?}");
        assert!(close(w.p_value, 0.2701810957102335), "{w:?}");
        // A zero without ties still forces the normal approximation: d = 0, 1..6:
        // n = 6, W+ = 21, mean 10.5, variance 6·7·13/24 = 22.75, z = 2.201398157,
        // p = 0.027707849 (the exact value would be 2/64 = 0.03125).
        let w = wilcoxon_signed_rank(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(w.method, Method::Normal);
        assert!(close(w.z.unwrap(), 2.2013981571160284), "{w:?}");
        assert!(close(w.p_value, 0.027707849358079864), "{w:?}");
        // Ties without zeros: d = 1, 1, 3: ranks 1.5 1.5 3, W+ = 6, mean 3,
        // variance 3·4·7/24 − 6/48 = 3.375, z = 1.632993162, p = 0.102470435.
        let w = wilcoxon_signed_rank(&[1.0, 1.0, 3.0]).unwrap();
        assert_eq!(w.method, Method::Normal);
        assert!(close(w.p_value, 0.10247043485974947), "{w:?}");
        // More than 50 non-zero differences: n = 51 all positive, W+ = 1326,
        // mean 663, variance 51·52·103/24 = 11381.5, z = 6.214608533,
        // p = 5.145276e-10.
        let d: Vec<f64> = (1..=51).map(f64::from).collect();
        let w = wilcoxon_signed_rank(&d).unwrap();
        assert_eq!(w.method, Method::Normal);
        assert!(close(w.p_value, 5.145276051717698e-10), "{w:?}");
    }

    #[test]
    fn the_test_is_symmetric_and_p_stays_in_range() {
        let cases: [&[f64]; 4] = [
            &[1.0, 2.0, -3.0, 4.0, 5.0],
            &[0.0, 1.0, -1.0, 2.0, 2.0, 3.0, -4.0, 5.0],
            &[1.0, -1.0],
            &[2.0, -2.0, 0.0],
        ];
        for d in cases {
            let w = wilcoxon_signed_rank(d).unwrap();
            let neg: Vec<f64> = d.iter().map(|x| -x).collect();
            let v = wilcoxon_signed_rank(&neg).unwrap();
            assert!(close(w.p_value, v.p_value), "{d:?}");
            assert_eq!((w.w_plus, w.w_minus), (v.w_minus, v.w_plus));
            assert!(w.p_value > 0.0 && w.p_value <= 1.0, "{d:?}: {w:?}");
        }
        // Balanced ties: W+ = W−, z = 0, p = 1.
        assert_eq!(
            wilcoxon_signed_rank(&[2.0, -2.0, 0.0]).unwrap().p_value,
            1.0
        );
        let none = wilcoxon_signed_rank(&[0.0, 0.0]).unwrap();
        assert_eq!(
            (none.method, none.p_value, none.zeros),
            (Method::NoDifferences, 1.0, 2)
        );
        assert!(wilcoxon_signed_rank(&[1.0, f64::NAN]).is_err());
    }

    #[test]
    fn csv_lines_split_with_quotes() {
        assert_eq!(
            split_csv_line(r#" a ,"b, c","d ""e""",,"#).unwrap(),
            vec!["a", "b, c", "d \"e\"", "", ""]
        );
        assert!(split_csv_line(r#"a,"b"#).is_err());
    }

    #[test]
    fn mean_and_sample_std() {
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // Σ(x − 3.5)² = 17.5; 17.5 / 5 = 3.5.
        assert_eq!(m, 3.5);
        assert!(close(s.unwrap(), 3.5f64.sqrt()));
        assert_eq!(mean_std(&[7.0]), (7.0, None));
    }
}

//! Several seeds per row: the mean ± standard deviation cells of Table 1, the rule
//! that marks a difference to the reference row as distinguishable, and the
//! similarity-error table with each run's bootstrap interval over its pieces.

use super::{ReportInput, TABLE1_STYLE};
use crate::format;
use anyhow::Result;
use polars::prelude::*;
use statrs::distribution::{ContinuousCDF, StudentsT};
use statrs::statistics::Statistics;
use std::path::{Path, PathBuf};

/// Significance level of [`distinguishable`].
pub const ALPHA: f64 = 0.05;

/// The mean and sample standard deviation (n − 1) of some runs' values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation; `None` with one value.
    pub std: Option<f64>,
    /// Number of values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`; `None` when there is none.
    pub fn of(values: &[f64]) -> Option<Spread> {
        (!values.is_empty()).then(|| Spread {
            mean: values.mean(),
            std: (values.len() > 1).then(|| values.std_dev()),
            n: values.len(),
        })
    }
}

/// `mean ± std` with `decimals` decimals, the mean alone with one value; `None`
/// without values.
pub fn spread_cell(values: &[f64], decimals: usize) -> Option<String> {
    let s = Spread::of(values)?;
    Some(match s.std {
        Some(std) => format!("{:.decimals$} ± {std:.decimals$}", s.mean),
        None => format!("{:.decimals$}", s.mean),
    })
}

/// Whether the runs `a` and the reference runs `b` differ by more than their seeds'
/// spread: Welch's two-sided t-test (unequal variances, Welch–Satterthwaite degrees
/// of freedom) rejects equal means at [`ALPHA`]. `None` when either side has fewer
/// than two runs (no spread to compare with). Two sides without any spread differ
/// exactly when their means do.
pub fn distinguishable(a: &[f64], b: &[f64]) -> Option<bool> {
    let (sa, sb) = (Spread::of(a)?, Spread::of(b)?);
    let (va, vb) = (sa.std?.powi(2) / sa.n as f64, sb.std?.powi(2) / sb.n as f64);
    let diff = (sa.mean - sb.mean).abs();
    let se = (va + vb).sqrt();
    if se == 0.0 {
        return Some(diff > 0.0);
    }
    let df =
        (va + vb).powi(2) / (va.powi(2) / (sa.n as f64 - 1.0) + vb.powi(2) / (sb.n as f64 - 1.0));
    let t = StudentsT::new(0.0, 1.0, df).ok()?;
    Some(2.0 * (1.0 - t.cdf(diff / se)) < ALPHA)
}

/// `*` when [`distinguishable`] says so, else nothing.
pub fn mark(a: &[f64], reference: &[f64]) -> &'static str {
    if distinguishable(a, reference) == Some(true) {
        "*"
    } else {
        ""
    }
}

/// The sentence of Table 1's note on the seeds.
pub fn seeds_note(seeds: usize, reference: &str) -> String {
    if seeds < 2 {
        return "One seed per row: the cells are single runs, with no spread to tell \
                differences from noise."
            .to_string();
    }
    format!(
        "Each row is trained, evaluated and sampled with {seeds} seeds; a cell is the mean ± the \
         sample standard deviation over them. `*` marks a cell distinguishable from the \
         {reference} row's: Welch's two-sided t-test over the seeds rejects equal means at the \
         {}% level; an unmarked difference is within the seeds' spread.",
        ALPHA * 100.0
    )
}

/// The similarity error of every run with its bootstrap interval over the pieces,
/// as a frame: model, seed, SE, the interval's ends, pieces, the fewest and the
/// mean bars per piece, intervals averaged over.
pub fn se_frame(input: &ReportInput) -> Result<DataFrame> {
    let runs: Vec<(&str, &super::RunResult)> = input
        .rows
        .iter()
        .flat_map(|r| r.runs.iter().map(move |run| (r.label.as_str(), run)))
        .collect();
    let col = |name: &str, f: &dyn Fn(&super::RunResult) -> Option<f64>| {
        Column::new(
            name.into(),
            runs.iter().map(|(_, r)| f(r)).collect::<Vec<_>>(),
        )
    };
    Ok(DataFrame::new_infer_height(vec![
        Column::new(
            "model".into(),
            runs.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            runs.iter().map(|(_, r)| r.seed as u64).collect::<Vec<_>>(),
        ),
        col("SE (%)", &|r| r.se),
        col("95% low", &|r| r.se_interval.map(|i| i.low)),
        col("95% high", &|r| r.se_interval.map(|i| i.high)),
        Column::new(
            "pieces".into(),
            runs.iter()
                .map(|(_, r)| r.pieces as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "fewest bars".into(),
            runs.iter()
                .map(|(_, r)| r.bars.map(|b| b.0))
                .collect::<Vec<_>>(),
        ),
        col("mean bars", &|r| r.bars.map(|b| b.1)),
        Column::new(
            "intervals".into(),
            runs.iter()
                .map(|(_, r)| r.se_intervals as u64)
                .collect::<Vec<_>>(),
        ),
    ])?)
}

/// Writes `se.md` and `se.csv`; returns them.
pub fn write_se_table(input: &ReportInput, out: &Path) -> Result<Vec<PathBuf>> {
    let mut df = se_frame(input)?;
    let md = format!(
        "{}\n\n{}",
        se_intro(input),
        format::markdown(&df, &TABLE1_STYLE)?
    );
    let md_path = out.join("se.md");
    crate::io::write_atomic(&md_path, md.as_bytes())?;
    let csv = out.join("se.csv");
    format::write_csv(&csv, &mut df)?;
    Ok(vec![md_path, csv])
}

fn se_intro(input: &ReportInput) -> String {
    let resamples = input
        .rows
        .iter()
        .flat_map(|r| &r.runs)
        .find_map(|r| r.se_interval.map(|i| i.resamples))
        .unwrap_or(0);
    format!(
        "The similarity error (Eq. 6, %, T = {}) of each run's generated pieces against the \
         training data, with a 95% percentile bootstrap interval over the pieces ({resamples} \
         resamples of as many pieces, drawn with replacement); `intervals` is how many of the \
         {} intervals t the SE averaged over (an interval is left out when the pieces have no \
         bar pair there).",
        input.training.max_interval(),
        input.training.max_interval()
    )
}

/// The README's section on the similarity error.
pub fn se_section(input: &ReportInput) -> String {
    format!(
        "## Similarity error per run\n\n{} [se.md](se.md) ([CSV](se.csv)).",
        se_intro(input)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_show_the_spread_of_several_seeds() {
        assert_eq!(spread_cell(&[3.0], 2).as_deref(), Some("3.00"));
        assert_eq!(
            spread_cell(&[1.0, 2.0, 3.0], 2).as_deref(),
            Some("2.00 ± 1.00")
        );
        assert_eq!(spread_cell(&[], 2), None);
        let s = Spread::of(&[2.0, 4.0]).unwrap();
        assert_eq!((s.mean, s.n), (3.0, 2));
        assert!((s.std.unwrap() - 2f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn only_differences_beyond_the_seeds_spread_are_distinguishable() {
        // Far apart with small spreads.
        assert_eq!(
            distinguishable(&[3.0, 3.1, 2.9], &[4.0, 4.1, 3.9]),
            Some(true)
        );
        assert_eq!(mark(&[3.0, 3.1, 2.9], &[4.0, 4.1, 3.9]), "*");
        // Within the spread.
        assert_eq!(
            distinguishable(&[3.0, 3.5, 2.5], &[3.2, 3.7, 2.7]),
            Some(false)
        );
        assert_eq!(mark(&[3.0, 3.5, 2.5], &[3.2, 3.7, 2.7]), "");
        // Welch's test by hand: means 1 and 2, variances 0.01 and 0.04, n = 3 each:
        // t = 1 / sqrt(0.05/3) = 7.75, df = 2.94, p ≈ 0.005 < 0.05.
        assert_eq!(
            distinguishable(&[0.9, 1.0, 1.1], &[1.8, 2.0, 2.2]),
            Some(true)
        );
        // No spread on one side: nothing to compare with.
        assert_eq!(distinguishable(&[1.0], &[2.0, 2.1]), None);
        assert_eq!(mark(&[1.0], &[2.0, 2.1]), "");
        // Neither side varies: distinguishable exactly when the means differ.
        assert_eq!(distinguishable(&[1.0, 1.0], &[1.0, 1.0]), Some(false));
        assert_eq!(distinguishable(&[1.0, 1.0], &[2.0, 2.0]), Some(true));
    }
}

//! Choosing Museformer's fine-grained bars from a similarity distribution (the
//! paper's Section 3.3): rank the intervals by `L_t` and take the k most similar,
//! leaving out intervals that too few songs reach. Also writes the reasoning for
//! people and a YAML snippet a model config can include.

use super::similarity::Distribution;
use anyhow::{bail, Result};
use std::fmt::Write as _;

/// The paper's choice of fine-grained bars for LMD (Section 3.3).
pub const PAPER_FINE_BARS: [usize; 8] = [1, 2, 4, 8, 12, 16, 24, 32];

/// One interval in the ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedInterval {
    /// The interval t (bars back).
    pub interval: usize,
    /// `L_t`.
    pub mean: f64,
    /// Bar pairs at t.
    pub pairs: u64,
    /// Songs with a pair at t.
    pub songs: u64,
}

/// The proposed fine-grained bars and how they were found.
#[derive(Debug, Clone, PartialEq)]
pub struct BarSelection {
    /// The k chosen intervals, ascending.
    pub chosen: Vec<usize>,
    /// The intervals chosen whatever their `L_t` (`--include`), ascending.
    pub forced: Vec<usize>,
    /// Every eligible interval, by `L_t` descending (ties: the shorter interval first).
    pub ranking: Vec<RankedInterval>,
    /// Intervals left out because fewer than `min_songs` songs have a pair there.
    pub excluded: Vec<usize>,
    /// The `min_songs` threshold used.
    pub min_songs: u64,
}

/// Ranks the intervals of `dist` by `L_t` and proposes `k` of them: the `include`d
/// ones (for example 1, the previous bar, for local continuity), then the most
/// similar of those that at least `min_songs` songs reach. Fails when fewer
/// intervals are eligible than are needed, naming how many are.
pub fn select_bars(
    dist: &Distribution,
    k: usize,
    min_songs: u64,
    include: &[usize],
) -> Result<BarSelection> {
    if k == 0 {
        bail!("k must be at least 1");
    }
    let mut forced = include.to_vec();
    forced.sort_unstable();
    forced.dedup();
    if let Some(&t) = forced.iter().find(|&&t| t == 0 || t > dist.max_interval()) {
        bail!(
            "included interval {t} is outside 1..={}",
            dist.max_interval()
        );
    }
    if forced.len() > k {
        bail!("{} intervals are included but k is {k}", forced.len());
    }
    let (mut ranking, mut excluded) = (Vec::new(), Vec::new());
    for (t, s) in dist.iter() {
        match s.mean() {
            Some(mean) if s.songs >= min_songs => ranking.push(RankedInterval {
                interval: t,
                mean,
                pairs: s.pairs,
                songs: s.songs,
            }),
            _ => excluded.push(t),
        }
    }
    ranking.sort_by(|a, b| b.mean.total_cmp(&a.mean).then(a.interval.cmp(&b.interval)));
    let free: Vec<usize> = ranking
        .iter()
        .map(|r| r.interval)
        .filter(|t| !forced.contains(t))
        .collect();
    let needed = k - forced.len();
    if free.len() < needed {
        bail!(
            "only {} of the intervals 1..={} have pairs from at least {min_songs} songs, fewer than k = {k}; \
             lower --min-songs or --k, or use a larger corpus",
            ranking.len(),
            dist.max_interval()
        );
    }
    let mut chosen: Vec<usize> = forced
        .iter()
        .copied()
        .chain(free[..needed].iter().copied())
        .collect();
    chosen.sort_unstable();
    Ok(BarSelection {
        chosen,
        forced,
        ranking,
        excluded,
        min_songs,
    })
}

/// Mean `L_t` over a set of intervals (those with pairs), or `None` when none has.
pub fn mean_similarity_over(dist: &Distribution, intervals: &[usize]) -> Option<f64> {
    let values: Vec<f64> = intervals.iter().filter_map(|&t| dist.mean(t)).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Comma-separated intervals.
fn list(intervals: &[usize]) -> String {
    intervals
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn fmt_mean(x: Option<f64>) -> String {
    x.map_or("n/a".to_string(), |v| format!("{v:.4}"))
}

impl BarSelection {
    /// The reasoning for people: the ranking, the choice, and how it compares with
    /// the paper's bars, the most recent k bars, and multiples of 4.
    pub fn explain(&self, dist: &Distribution, name: &str) -> String {
        let k = self.chosen.len();
        let mut s = String::new();
        let c = &dist.counts;
        let _ = writeln!(
            s,
            "{name}: {} songs used of {}, {} bar pairs at intervals 1..={}",
            c.songs_used,
            c.songs,
            dist.total_pairs(),
            dist.max_interval()
        );
        let _ = writeln!(s, "intervals ranked by mean similarity L_t (a bar's notes shared with the bar t bars back):");
        let _ = writeln!(s, "  rank    t     L_t     pairs   songs");
        for (rank, r) in self.ranking.iter().enumerate() {
            let mark = if self.forced.contains(&r.interval) {
                "  <- chosen (included)"
            } else if self.chosen.contains(&r.interval) {
                "  <- chosen"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:>4} {:>4}  {:.4} {:>9} {:>7}{mark}",
                rank + 1,
                r.interval,
                r.mean,
                r.pairs,
                r.songs
            );
        }
        if !self.excluded.is_empty() {
            let _ = writeln!(
                s,
                "left out (pairs from fewer than {} songs): {}",
                self.min_songs,
                list(&self.excluded)
            );
        }
        let how = match self.forced.len() {
            0 => format!("the {k} highest L_t"),
            f => format!(
                "{} included, then the {} highest L_t",
                list(&self.forced),
                k - f
            ),
        };
        let _ = writeln!(
            s,
            "proposed fine-grained bars (k = {k}, {how}): {}",
            list(&self.chosen)
        );
        let recent: Vec<usize> = (1..=k).collect();
        let common: Vec<usize> = self
            .chosen
            .iter()
            .copied()
            .filter(|t| PAPER_FINE_BARS.contains(t))
            .collect();
        let _ = writeln!(
            s,
            "mean L_t over the proposed bars: {}; the paper's LMD choice ({}): {} ({} in common: {}); \
             the most recent {k} bars (1..={k}, the paper's `w/o bar selection`): {}",
            fmt_mean(mean_similarity_over(dist, &self.chosen)),
            list(&PAPER_FINE_BARS),
            fmt_mean(mean_similarity_over(dist, &PAPER_FINE_BARS)),
            common.len(),
            list(&common),
            fmt_mean(mean_similarity_over(dist, &recent)),
        );
        let (fours, others): (Vec<usize>, Vec<usize>) =
            (1..=dist.max_interval()).partition(|t| t % 4 == 0);
        let _ = writeln!(
            s,
            "periodicity: mean L_t at multiples of 4 is {}, at other intervals {}",
            fmt_mean(mean_similarity_over(dist, &fours)),
            fmt_mean(mean_similarity_over(dist, &others)),
        );
        s
    }

    /// A YAML snippet for a model config: `fine_grained_bars: [..]` with comments
    /// saying where it came from.
    pub fn yaml_snippet(&self, dist: &Distribution, source: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Fine-grained bars proposed by `museformer stats select-bars` from {source}:"
        );
        let forced = if self.forced.is_empty() {
            String::new()
        } else {
            format!("{} (included) and ", list(&self.forced))
        };
        let _ = writeln!(
            s,
            "# {forced}the {} intervals with the highest mean bar similarity L_t among 1..={} ({} songs, {} bar pairs).",
            self.chosen.len() - self.forced.len(),
            dist.max_interval(),
            dist.counts.songs_used,
            dist.total_pairs()
        );
        let means: Vec<String> = self
            .chosen
            .iter()
            .map(|&t| format!("{t}: {}", fmt_mean(dist.mean(t))))
            .collect();
        let _ = writeln!(s, "# L_t: {}", means.join(", "));
        let _ = writeln!(s, "fine_grained_bars: [{}]", list(&self.chosen));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::notes::{BarNote, SongBars};
    use super::*;

    /// One song of 12 bars, bar b = {(0, 60, 4), (8, 60 + b % 4, 4), (12, 70 + b % 2, 4)}:
    /// bars 4 apart are identical (L = 1), bars 2 apart share 2 of 4 notes (1/2),
    /// bars an odd number apart share 1 of 5 (1/5).
    fn periodic() -> Distribution {
        let bars: Vec<Vec<BarNote>> = (0..12u8)
            .map(|b| {
                vec![
                    BarNote {
                        onset: 0,
                        pitch: 60,
                        duration: 4,
                    },
                    BarNote {
                        onset: 8,
                        pitch: 60 + b % 4,
                        duration: 4,
                    },
                    BarNote {
                        onset: 12,
                        pitch: 70 + b % 2,
                        duration: 4,
                    },
                ]
            })
            .collect();
        let mut d = Distribution::new(6).unwrap();
        d.add_song(&SongBars::from_notes(&bars));
        d
    }

    #[test]
    fn the_k_most_similar_intervals_are_chosen() {
        let d = periodic();
        assert_eq!(
            (d.mean(4), d.mean(2), d.mean(6)),
            (Some(1.0), Some(0.5), Some(0.5))
        );
        assert!((d.mean(1).unwrap() - 0.2).abs() < 1e-12);
        let sel = select_bars(&d, 3, 1, &[]).unwrap();
        // 4 first, then the tie at 1/2 broken by the shorter interval; odd intervals last.
        let order: Vec<usize> = sel.ranking.iter().map(|r| r.interval).collect();
        assert_eq!(order[..3], [4, 2, 6]);
        assert_eq!(order.len(), 6);
        assert_eq!(sel.chosen, vec![2, 4, 6]);
        let text = sel.explain(&d, "periodic");
        assert!(
            text.contains("proposed fine-grained bars (k = 3, the 3 highest L_t): 2, 4, 6"),
            "{text}"
        );
        // Multiples of 4 in 1..=6: {4} → 1; others: (1/5 + 1/2 + 1/5 + 1/5 + 1/2) / 5 = 0.32.
        assert!(
            text.contains("multiples of 4 is 1.0000, at other intervals 0.3200"),
            "{text}"
        );
        let yaml = sel.yaml_snippet(&d, "test");
        let parsed: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(
            parsed["fine_grained_bars"],
            serde_yaml::from_str::<serde_yaml::Value>("[2, 4, 6]").unwrap()
        );
    }

    #[test]
    fn included_intervals_are_kept_and_the_rest_ranked() {
        let d = periodic();
        let sel = select_bars(&d, 3, 1, &[1, 1]).unwrap();
        assert_eq!(
            (sel.chosen.clone(), sel.forced.clone()),
            (vec![1, 2, 4], vec![1])
        );
        let text = sel.explain(&d, "periodic");
        assert!(
            text.contains("(k = 3, 1 included, then the 2 highest L_t): 1, 2, 4"),
            "{text}"
        );
        assert!(sel
            .yaml_snippet(&d, "test")
            .contains("# 1 (included) and the 2 intervals"));
        // An included interval need not be eligible; out-of-range ones are refused.
        assert_eq!(select_bars(&d, 1, 100, &[5]).unwrap().chosen, vec![5]);
        assert!(select_bars(&d, 3, 1, &[7])
            .unwrap_err()
            .to_string()
            .contains("outside 1..=6"));
        assert!(select_bars(&d, 1, 1, &[1, 2]).is_err());
    }

    #[test]
    fn intervals_reached_by_too_few_songs_are_left_out() {
        let d = periodic();
        let err = select_bars(&d, 1, 2, &[]).unwrap_err().to_string();
        assert!(err.contains("only 0 of the intervals 1..=6"), "{err}");
        assert!(select_bars(&d, 7, 1, &[])
            .unwrap_err()
            .to_string()
            .contains("fewer than k = 7"));
        assert!(select_bars(&d, 0, 1, &[]).is_err());
        assert_eq!(mean_similarity_over(&d, &[4, 2, 40]), Some(0.75));
        assert_eq!(mean_similarity_over(&d, &[40]), None);
    }
}

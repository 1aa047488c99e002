//! Bar similarity and the similarity distribution of a corpus (the paper's Eq. 4
//! and 5), the distance between two distributions, and the similarity error of
//! generated music (Eq. 6).
//!
//! - `l(i, j) = |N(i) ∩ N(j)| / |N(i) ∪ N(j)|` ([`bar_similarity`]); a pair of
//!   empty bars has no similarity and is skipped (counted in [`Counts::empty_pairs`]).
//! - `L_t` is the mean of `l(i, i + t)` over every pair at interval `t` of every
//!   song (pooled, not a mean of song means), with the pair count, the standard
//!   deviation over pairs, the number of identical pairs and of songs that have a
//!   pair at `t` ([`IntervalStats`]).
//!
//! Corpus statistics run in parallel over fixed blocks of songs merged in input
//! order, so the result does not depend on the number of threads.

use super::notes::{InstrumentSelection, SongBars};
use crate::tokens::Token;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Songs per block of the parallel reduction (fixed, for reproducible sums).
const BLOCK: usize = 64;

/// Why a similarity statistic cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StructureError {
    /// The largest interval must be at least 1.
    #[error("the largest interval must be at least 1")]
    NoInterval,
    /// An interval beyond what a distribution covers was asked for.
    #[error("interval {asked} is beyond the {covered} intervals the {which} distribution covers")]
    IntervalOutOfRange {
        /// The interval asked for.
        asked: usize,
        /// The largest interval of the distribution.
        covered: usize,
        /// Which distribution (`generated`, `reference`, ...).
        which: &'static str,
    },
    /// No interval has bar pairs in both distributions.
    #[error("no interval in 1..={0} has bar pairs in both distributions (are the pieces at least 2 bars long and do they have notes of the chosen instrument?)")]
    NoCommonPairs(usize),
}

/// `|a ∩ b|` of two sorted, deduplicated slices (one linear merge).
fn intersection_len(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        common += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    common
}

/// `l = |a ∩ b| / |a ∪ b|` of two bars' note sets (sorted, deduplicated), or `None`
/// when both are empty.
pub fn bar_similarity(a: &[u32], b: &[u32]) -> Option<f64> {
    let common = intersection_len(a, b);
    let union = a.len() + b.len() - common;
    (union > 0).then(|| common as f64 / union as f64)
}

/// The pairs of bars at one interval `t`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IntervalStats {
    /// Number of bar pairs with a similarity.
    pub pairs: u64,
    /// Sum of their similarities.
    pub sum: f64,
    /// Sum of the squared similarities.
    pub sum_sq: f64,
    /// Pairs with similarity 1 (identical, non-empty bars).
    pub identical: u64,
    /// Songs with at least one pair at this interval.
    pub songs: u64,
}

impl IntervalStats {
    /// `L_t`, the mean similarity, or `None` without pairs.
    pub fn mean(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.sum / self.pairs as f64)
    }

    /// The standard deviation of the similarity over the pairs (population
    /// formula), or `None` without pairs.
    pub fn std(&self) -> Option<f64> {
        let mean = self.mean()?;
        Some(
            (self.sum_sq / self.pairs as f64 - mean * mean)
                .max(0.0)
                .sqrt(),
        )
    }

    fn merge(&mut self, other: &IntervalStats) {
        self.pairs += other.pairs;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.identical += other.identical;
        self.songs += other.songs;
    }
}

/// What went into a distribution, and what was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Songs seen.
    pub songs: u64,
    /// Songs that gave at least one bar pair.
    pub songs_used: u64,
    /// Songs skipped: no note of the chosen instrument(s).
    pub skipped_no_notes: u64,
    /// Songs skipped: fewer than 2 bars.
    pub skipped_one_bar: u64,
    /// Songs used whose bar count does not reach the largest interval (they give no
    /// pair at the intervals they are too short for).
    pub shorter_than_max_interval: u64,
    /// Bars of the songs used.
    pub bars: u64,
    /// Bar pairs skipped because both bars are empty (the union is empty).
    pub empty_pairs: u64,
}

impl Counts {
    fn merge(&mut self, o: &Counts) {
        self.songs += o.songs;
        self.songs_used += o.songs_used;
        self.skipped_no_notes += o.skipped_no_notes;
        self.skipped_one_bar += o.skipped_one_bar;
        self.shorter_than_max_interval += o.shorter_than_max_interval;
        self.bars += o.bars;
        self.empty_pairs += o.empty_pairs;
    }
}

/// The similarity distribution of a corpus: [`IntervalStats`] for t = 1..=T.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    intervals: Vec<IntervalStats>,
    /// Songs and pairs counted and skipped.
    pub counts: Counts,
}

impl Distribution {
    /// An empty distribution over intervals 1..=`max_interval`.
    pub fn new(max_interval: usize) -> Result<Distribution, StructureError> {
        if max_interval == 0 {
            return Err(StructureError::NoInterval);
        }
        Ok(Distribution {
            intervals: vec![IntervalStats::default(); max_interval],
            counts: Counts::default(),
        })
    }

    /// The largest interval T.
    pub fn max_interval(&self) -> usize {
        self.intervals.len()
    }

    /// The statistics of interval `t` (1-based), or `None` outside 1..=T.
    pub fn interval(&self, t: usize) -> Option<&IntervalStats> {
        t.checked_sub(1).and_then(|i| self.intervals.get(i))
    }

    /// `L_t`, or `None` when `t` is outside 1..=T or has no pairs.
    pub fn mean(&self, t: usize) -> Option<f64> {
        self.interval(t)?.mean()
    }

    /// `(t, stats)` for t = 1..=T.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &IntervalStats)> {
        self.intervals.iter().enumerate().map(|(i, s)| (i + 1, s))
    }

    /// Bar pairs over all intervals.
    pub fn total_pairs(&self) -> u64 {
        self.intervals.iter().map(|s| s.pairs).sum()
    }

    /// Adds every bar pair at intervals 1..=T of one song.
    pub fn add_song(&mut self, song: &SongBars) {
        let c = &mut self.counts;
        c.songs += 1;
        let n = song.len();
        if song.note_count() == 0 {
            c.skipped_no_notes += 1;
            return;
        }
        if n < 2 {
            c.skipped_one_bar += 1;
            return;
        }
        c.songs_used += 1;
        c.bars += n as u64;
        if n <= self.intervals.len() {
            c.shorter_than_max_interval += 1;
        }
        for (k, stats) in self.intervals.iter_mut().enumerate().take(n - 1) {
            let t = k + 1;
            let (mut pairs, mut sum, mut sum_sq, mut identical) = (0u64, 0.0, 0.0, 0u64);
            for i in 0..n - t {
                match bar_similarity(song.bar(i), song.bar(i + t)) {
                    Some(l) => {
                        pairs += 1;
                        sum += l;
                        sum_sq += l * l;
                        identical += u64::from(l == 1.0);
                    }
                    None => c.empty_pairs += 1,
                }
            }
            stats.merge(&IntervalStats {
                pairs,
                sum,
                sum_sq,
                identical,
                songs: u64::from(pairs > 0),
            });
        }
    }

    /// Adds another distribution over the same intervals (its songs and pairs).
    ///
    /// # Panics
    /// When the two cover different intervals.
    pub fn merge(&mut self, other: &Distribution) {
        assert_eq!(
            self.intervals.len(),
            other.intervals.len(),
            "merging distributions over different intervals"
        );
        for (a, b) in self.intervals.iter_mut().zip(&other.intervals) {
            a.merge(b);
        }
        self.counts.merge(&other.counts);
    }

    /// The distribution of many items in parallel: `add` adds one item (usually
    /// with [`Self::add_song`]). Blocks of items are summed in input order, so the
    /// result does not depend on the thread count.
    pub fn par_collect<T, F>(
        items: &[T],
        max_interval: usize,
        add: F,
    ) -> Result<Distribution, StructureError>
    where
        T: Sync,
        F: Fn(&mut Distribution, &T) + Sync,
    {
        let empty = Distribution::new(max_interval)?;
        let blocks: Vec<Distribution> = items
            .par_chunks(BLOCK)
            .map(|block| {
                let mut d = empty.clone();
                for item in block {
                    add(&mut d, item);
                }
                d
            })
            .collect();
        let mut total = empty;
        for d in &blocks {
            total.merge(d);
        }
        Ok(total)
    }
}

/// The similarity distribution (Eq. 5) of songs given as token sequences, over
/// intervals 1..=`max_interval`, from the notes `selection` chooses. Runs in parallel.
pub fn similarity_distribution<S>(
    songs: &[S],
    max_interval: usize,
    selection: InstrumentSelection,
) -> Result<Distribution, StructureError>
where
    S: AsRef<[Token]> + Sync,
{
    Distribution::par_collect(songs, max_interval, |d, s| {
        d.add_song(&SongBars::from_tokens(
            s.as_ref().iter().copied(),
            selection,
        ))
    })
}

/// The similarity error (Eq. 6) of generated music against reference data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarityError {
    /// `SE = mean |L̂_t − L_t|` as a fraction (0..=1); [`Self::percent`] for the
    /// paper's unit.
    pub value: f64,
    /// T, the largest interval asked for.
    pub t_max: usize,
    /// Intervals in 1..=T over which the mean was taken.
    pub intervals: Vec<usize>,
    /// Intervals in 1..=T left out because one of the two has no pairs there.
    pub missing: Vec<usize>,
}

impl SimilarityError {
    /// SE in percent, as the paper reports it.
    pub fn percent(&self) -> f64 {
        self.value * 100.0
    }
}

/// `SE = (1/T) Σ_{t=1..T} |L̂_t − L_t|` (Eq. 6) between the distribution of
/// generated pieces and that of the training data, T = `t_max` (the paper: 40).
/// Intervals where either side has no bar pair (pieces shorter than t + 1 bars) are
/// left out of the mean and listed in [`SimilarityError::missing`]; an error when
/// no interval is left.
pub fn similarity_error(
    generated: &Distribution,
    reference: &Distribution,
    t_max: usize,
) -> Result<SimilarityError, StructureError> {
    if t_max == 0 {
        return Err(StructureError::NoInterval);
    }
    for (d, which) in [(generated, "generated"), (reference, "reference")] {
        if t_max > d.max_interval() {
            return Err(StructureError::IntervalOutOfRange {
                asked: t_max,
                covered: d.max_interval(),
                which,
            });
        }
    }
    let (mut sum, mut intervals, mut missing) = (0.0, Vec::new(), Vec::new());
    for t in 1..=t_max {
        match (generated.mean(t), reference.mean(t)) {
            (Some(g), Some(r)) => {
                sum += (g - r).abs();
                intervals.push(t);
            }
            _ => missing.push(t),
        }
    }
    if intervals.is_empty() {
        return Err(StructureError::NoCommonPairs(t_max));
    }
    Ok(SimilarityError {
        value: sum / intervals.len() as f64,
        t_max,
        intervals,
        missing,
    })
}

/// A percentile bootstrap confidence interval of the similarity error over pieces.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapInterval {
    /// Lower end, SE in percent.
    pub low: f64,
    /// Upper end, SE in percent.
    pub high: f64,
    /// Confidence level (0.95).
    pub level: f64,
    /// Resamples drawn.
    pub resamples: usize,
}

/// The percentile bootstrap interval of [`similarity_error`] (in percent) over the
/// pieces: `resamples` times, draw as many pieces as there are with replacement
/// (`pieces[i]` is piece i's own distribution), merge their distributions, compute
/// SE against `reference` over 1..=`t_max`; the interval runs from the
/// (1 − level)/2 to the (1 + level)/2 quantile of those SEs (resamples without
/// any common interval are left out). Deterministic for a `seed`. `None` with fewer
/// than 2 pieces or when no resample has an SE.
pub fn similarity_error_bootstrap(
    pieces: &[Distribution],
    reference: &Distribution,
    t_max: usize,
    resamples: usize,
    level: f64,
    seed: u64,
) -> Option<BootstrapInterval> {
    use rand::{Rng, SeedableRng};
    if pieces.len() < 2 || resamples == 0 || !(0.0..1.0).contains(&level) {
        return None;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let empty = Distribution::new(pieces[0].max_interval()).ok()?;
    let mut values: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let mut d = empty.clone();
            for _ in 0..pieces.len() {
                d.merge(&pieces[rng.gen_range(0..pieces.len())]);
            }
            similarity_error(&d, reference, t_max)
                .ok()
                .map(|se| se.percent())
        })
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((q * values.len() as f64).floor() as usize).min(values.len() - 1)];
    Some(BootstrapInterval {
        low: at((1.0 - level) / 2.0),
        high: at((1.0 + level) / 2.0),
        level,
        resamples,
    })
}

/// How far apart two similarity distributions are, over the intervals where both
/// have pairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DistributionDistance {
    /// Mean `|L_t(a) − L_t(b)|`: the similarity error of one against the other.
    pub mean_abs_diff: f64,
    /// The largest `|L_t(a) − L_t(b)|`.
    pub max_abs_diff: f64,
    /// The interval of the largest difference.
    pub max_at: usize,
    /// Pearson correlation of the two `L_t` profiles: 1 when their shapes (peaks at
    /// the same intervals) agree whatever their levels; `None` when one is constant.
    pub pearson: Option<f64>,
    /// Number of intervals compared.
    pub intervals: usize,
}

/// The distance between two distributions over t = 1..=`t_max`, or `None` when no
/// interval has pairs in both.
pub fn distribution_distance(
    a: &Distribution,
    b: &Distribution,
    t_max: usize,
) -> Option<DistributionDistance> {
    let pairs: Vec<(usize, f64, f64)> = (1..=t_max)
        .filter_map(|t| Some((t, a.mean(t)?, b.mean(t)?)))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let (mut max_abs_diff, mut max_at) = (-1.0, 0);
    for &(t, x, y) in &pairs {
        if (x - y).abs() > max_abs_diff {
            (max_abs_diff, max_at) = ((x - y).abs(), t);
        }
    }
    let mean_abs_diff = pairs.iter().map(|&(_, x, y)| (x - y).abs()).sum::<f64>() / n;
    let (mx, my) = (
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
        pairs.iter().map(|p| p.2).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(_, x, y) in &pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    let pearson = (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt());
    Some(DistributionDistance {
        mean_abs_diff,
        max_abs_diff,
        max_at,
        pearson,
        intervals: pairs.len(),
    })
}

/// The bar-by-bar similarity matrix of one song: entry `[i][j]` is `l(i, j)`, `None`
/// when both bars are empty.
pub fn similarity_matrix(song: &SongBars) -> Vec<Vec<Option<f64>>> {
    (0..song.len())
        .map(|i| {
            (0..song.len())
                .map(|j| bar_similarity(song.bar(i), song.bar(j)))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::notes::BarNote;
    use super::*;

    /// A bar from (onset, pitch, duration) triples.
    fn bar(notes: &[(u8, u8, u8)]) -> Vec<BarNote> {
        notes
            .iter()
            .map(|&(onset, pitch, duration)| BarNote {
                onset,
                pitch,
                duration,
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn bar_similarity_is_intersection_over_union() {
        let song = SongBars::from_notes(&[
            bar(&[(0, 60, 4), (4, 62, 4)]),
            bar(&[(0, 60, 4), (4, 64, 4)]),
            bar(&[(0, 60, 5), (4, 62, 4), (8, 60, 4)]),
            bar(&[]),
        ]);
        // {a, b} vs {a, c}: 1 common of 3 distinct.
        assert_eq!(bar_similarity(song.bar(0), song.bar(1)), Some(1.0 / 3.0));
        // Same pitch and onset but another duration is another note: 1 of 4.
        assert_eq!(bar_similarity(song.bar(0), song.bar(2)), Some(1.0 / 4.0));
        assert_eq!(bar_similarity(song.bar(0), song.bar(0)), Some(1.0));
        assert_eq!(bar_similarity(song.bar(0), song.bar(3)), Some(0.0));
        assert_eq!(bar_similarity(song.bar(3), song.bar(3)), None);
    }

    /// Two hand-computed songs.
    ///
    /// Song A, bars A0..A4 = {x,y}, {x,z}, {x,y}, {}, {}:
    ///   t=1: l(A0,A1)=1/3, l(A1,A2)=1/3, l(A2,A3)=0, (A3,A4) both empty: skipped
    ///   t=2: l(A0,A2)=1, l(A1,A3)=0, l(A2,A4)=0
    ///   t=3: l(A0,A3)=0, l(A1,A4)=0
    ///   t=4: l(A0,A4)=0
    /// Song B, bars {x}, {x}: t=1: 1.
    fn two_songs() -> Distribution {
        let (x, y, z) = ((0, 60, 4), (4, 62, 4), (4, 64, 4));
        let a =
            SongBars::from_notes(&[bar(&[x, y]), bar(&[x, z]), bar(&[x, y]), bar(&[]), bar(&[])]);
        let b = SongBars::from_notes(&[bar(&[x]), bar(&[x])]);
        let mut d = Distribution::new(6).unwrap();
        d.add_song(&a);
        d.add_song(&b);
        d
    }

    #[test]
    fn interval_means_pool_every_pair_of_every_song() {
        let d = two_songs();
        let t1 = d.interval(1).unwrap();
        assert_eq!((t1.pairs, t1.identical, t1.songs), (4, 1, 2));
        // (1/3 + 1/3 + 0 + 1) / 4 = 5/12.
        assert!(close(t1.mean().unwrap(), 5.0 / 12.0));
        // E[l²] = (1/9 + 1/9 + 0 + 1) / 4 = 11/36; var = 11/36 − 25/144 = 19/144.
        assert!(close(t1.std().unwrap(), (19.0f64 / 144.0).sqrt()));
        let t2 = d.interval(2).unwrap();
        assert_eq!((t2.pairs, t2.identical, t2.songs), (3, 1, 1));
        assert!(close(d.mean(2).unwrap(), 1.0 / 3.0));
        assert_eq!(d.mean(3), Some(0.0));
        assert_eq!(d.interval(4).unwrap().pairs, 1);
        // Song A has 5 bars: no pair at 5 and 6; nothing divides by zero.
        assert_eq!(d.mean(5), None);
        assert_eq!(d.interval(6).unwrap().std(), None);
        assert_eq!((d.mean(0), d.mean(7)), (None, None));
        assert_eq!(d.total_pairs(), 4 + 3 + 2 + 1);
        let c = d.counts;
        assert_eq!(
            (
                c.songs,
                c.songs_used,
                c.bars,
                c.empty_pairs,
                c.shorter_than_max_interval
            ),
            (2, 2, 7, 1, 2)
        );
    }

    #[test]
    fn songs_without_notes_or_with_one_bar_are_counted_skips() {
        let mut d = Distribution::new(3).unwrap();
        d.add_song(&SongBars::from_notes(&[bar(&[]), bar(&[])]));
        d.add_song(&SongBars::from_notes(&[bar(&[(0, 60, 1)])]));
        d.add_song(&SongBars::default());
        assert_eq!(
            (
                d.counts.skipped_no_notes,
                d.counts.skipped_one_bar,
                d.counts.songs_used
            ),
            (2, 1, 0)
        );
        assert_eq!(d.total_pairs(), 0);
        assert!(d.iter().all(|(_, s)| s.mean().is_none()));
        assert_eq!(Distribution::new(0), Err(StructureError::NoInterval));
    }

    #[test]
    fn parallel_collection_equals_sequential_addition() {
        let songs: Vec<SongBars> = (0..300u32)
            .map(|s| {
                let bars: Vec<Vec<BarNote>> = (0..(s % 23) as u8)
                    .map(|b| bar(&[(b % 4, 60 + (s % 5) as u8, 2), (0, 60 + (b % 3), 4)]))
                    .collect();
                SongBars::from_notes(&bars)
            })
            .collect();
        let par = Distribution::par_collect(&songs, 10, |d, s| d.add_song(s)).unwrap();
        let mut seq = Distribution::new(10).unwrap();
        for s in &songs {
            seq.add_song(s);
        }
        assert_eq!(par.counts, seq.counts);
        for t in 1..=10 {
            let (p, s) = (par.interval(t).unwrap(), seq.interval(t).unwrap());
            assert_eq!(
                (p.pairs, p.identical, p.songs),
                (s.pairs, s.identical, s.songs)
            );
            assert!(close(p.sum, s.sum) && close(p.sum_sq, s.sum_sq));
        }
    }

    #[test]
    fn token_songs_give_the_same_distribution() {
        use Token::*;
        let song = vec![
            Position(0),
            Instrument(80),
            Pitch(60),
            Duration(4),
            Velocity(1),
            Bar,
            Position(0),
            Instrument(80),
            Pitch(60),
            Duration(4),
            Velocity(1),
            Position(4),
            Instrument(80),
            Pitch(62),
            Duration(4),
            Velocity(1),
            Bar,
        ];
        let d = similarity_distribution(&[song], 2, InstrumentSelection::Auto).unwrap();
        assert_eq!(d.mean(1), Some(0.5));
        assert_eq!(d.mean(2), None);
    }

    #[test]
    fn similarity_error_is_the_mean_absolute_difference() {
        let reference = two_songs();
        // Generated: one song {x}, {x}, {y}: t=1: 1, 0 → 1/2; t=2: 0.
        let (x, y) = ((0, 60, 4), (4, 62, 4));
        let mut generated = Distribution::new(6).unwrap();
        generated.add_song(&SongBars::from_notes(&[bar(&[x]), bar(&[x]), bar(&[y])]));
        let se = similarity_error(&generated, &reference, 2).unwrap();
        // (|1/2 − 5/12| + |0 − 1/3|) / 2 = (1/12 + 4/12) / 2 = 5/24.
        assert!(close(se.value, 5.0 / 24.0));
        assert!(close(se.percent(), 500.0 / 24.0));
        assert_eq!(
            (se.intervals.clone(), se.missing.clone()),
            (vec![1, 2], vec![])
        );
        // T = 4: intervals 3 and 4 have no generated pairs and are left out.
        let se4 = similarity_error(&generated, &reference, 4).unwrap();
        assert_eq!(se4.missing, vec![3, 4]);
        assert!(close(se4.value, 5.0 / 24.0));
        assert_eq!(
            similarity_error(&generated, &reference, 0),
            Err(StructureError::NoInterval)
        );
        assert!(matches!(
            similarity_error(&generated, &reference, 7),
            Err(StructureError::IntervalOutOfRange {
                asked: 7,
                covered: 6,
                which: "generated"
            })
        ));
        let empty = Distribution::new(6).unwrap();
        assert_eq!(
            similarity_error(&empty, &reference, 6),
            Err(StructureError::NoCommonPairs(6))
        );
        assert_eq!(
            similarity_error(&reference, &reference, 4).unwrap().value,
            0.0
        );
    }

    #[test]
    fn distance_reports_mean_max_and_shape_correlation() {
        let reference = two_songs();
        let (x, y) = ((0, 60, 4), (4, 62, 4));
        let mut other = Distribution::new(6).unwrap();
        other.add_song(&SongBars::from_notes(&[bar(&[x]), bar(&[x]), bar(&[y])]));
        let d = distribution_distance(&other, &reference, 6).unwrap();
        // Common intervals 1 and 2: (1/2, 5/12) and (0, 1/3).
        assert_eq!(d.intervals, 2);
        assert!(close(d.mean_abs_diff, 5.0 / 24.0));
        assert!(close(d.max_abs_diff, 1.0 / 3.0));
        assert_eq!(d.max_at, 2);
        // Two points that both decrease: correlation 1.
        assert!(close(d.pearson.unwrap(), 1.0));
        assert_eq!(
            distribution_distance(&Distribution::new(6).unwrap(), &reference, 6),
            None
        );
    }

    #[test]
    fn self_similarity_matrix_is_symmetric_with_ones_on_the_diagonal() {
        let (x, y) = ((0, 60, 4), (4, 62, 4));
        let song = SongBars::from_notes(&[bar(&[x, y]), bar(&[x]), bar(&[])]);
        let m = similarity_matrix(&song);
        assert_eq!(m[0], vec![Some(1.0), Some(0.5), Some(0.0)]);
        assert_eq!(m[1][0], Some(0.5));
        assert_eq!(m[2][2], None);
    }
}

#[cfg(test)]
mod bootstrap_tests {
    use super::*;

    /// A piece of `bars` one-note bars whose pitches cycle with `period`.
    fn piece(period: u8, bars: u8) -> Distribution {
        let mut toks = Vec::new();
        for b in 0..bars {
            toks.extend([
                Token::Position(0),
                Token::Instrument(0),
                Token::Pitch(60 + b % period),
                Token::Duration(4),
                Token::Velocity(10),
                Token::Bar,
            ]);
        }
        similarity_distribution(&[toks], 8, InstrumentSelection::Pitched).unwrap()
    }

    #[test]
    fn the_bootstrap_interval_holds_the_se_and_narrows_with_agreeing_pieces() {
        let reference = piece(2, 20);
        // Identical pieces: every resample is the same, the interval is one point.
        let same = vec![piece(3, 20); 4];
        let mut all = Distribution::new(8).unwrap();
        same.iter().for_each(|d| all.merge(d));
        let se = similarity_error(&all, &reference, 8).unwrap().percent();
        let ci = similarity_error_bootstrap(&same, &reference, 8, 200, 0.95, 1).unwrap();
        assert!(
            (ci.low - se).abs() < 1e-9 && (ci.high - se).abs() < 1e-9,
            "{ci:?} vs {se}"
        );
        // Pieces that differ: the interval is wide and contains the pooled SE.
        let mixed = vec![piece(2, 20), piece(3, 20), piece(4, 20), piece(5, 20)];
        let mut all = Distribution::new(8).unwrap();
        mixed.iter().for_each(|d| all.merge(d));
        let se = similarity_error(&all, &reference, 8).unwrap().percent();
        let ci = similarity_error_bootstrap(&mixed, &reference, 8, 500, 0.95, 1).unwrap();
        assert!(ci.low < se && se < ci.high, "{ci:?} vs {se}");
        assert!(ci.high - ci.low > 5.0, "{ci:?}");
        // Deterministic for a seed; a single piece has no interval.
        assert_eq!(
            similarity_error_bootstrap(&mixed, &reference, 8, 500, 0.95, 1),
            Some(ci)
        );
        assert_eq!(
            similarity_error_bootstrap(&mixed[..1], &reference, 8, 500, 0.95, 1),
            None
        );
    }
}

//! Throughput of the bar-similarity statistics on a prepared dataset:
//! `cargo run --release --example bench_similarity -- [DATASET] [--seconds S]`
//! (default `data/default`, made by `museformer data prepare experiments/data/default.yaml`).
//!
//! Reports, per instrument selection, bar pairs per second on one thread for the
//! pair computation alone (bars decoded beforehand) and end to end (decoding the
//! token ids included), and end to end on all threads. A bar pair is one
//! `l(i, i + t)` evaluated, t = 1..=40, pairs of two empty bars included.

use museformer::data::{Manifest, TokenStore};
use museformer::structure::{Distribution, InstrumentSelection, SongBars, TokenTable};
use museformer::tokens::Vocab;
use std::path::PathBuf;
use std::time::Instant;

const T: usize = 40;

/// Runs `f` until `seconds` have passed (at least once); returns runs and seconds.
fn timed(seconds: f64, mut f: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut runs = 0;
    while runs == 0 || start.elapsed().as_secs_f64() < seconds {
        f();
        runs += 1;
    }
    (runs, start.elapsed().as_secs_f64())
}

/// Bar pairs one pass evaluates: Σ over songs with notes and 2+ bars of Σ_t (n − t).
fn pairs_per_pass(songs: &[SongBars]) -> u64 {
    songs
        .iter()
        .filter(|s| s.note_count() > 0)
        .map(|s| {
            (1..=T.min(s.len().saturating_sub(1)))
                .map(|t| (s.len() - t) as u64)
                .sum::<u64>()
        })
        .sum()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut seconds) = (PathBuf::from("data/default"), 3.0);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds takes a number")
            }
            _ => dir = PathBuf::from(a),
        }
    }
    let manifest = Manifest::load(&dir)?;
    let store = TokenStore::open(&dir)?;
    let table = TokenTable::new(&Vocab::new(manifest.config.encoding.pos_per_beat));
    let threads = rayon::current_num_threads();
    println!(
        "dataset {} ({}): {} songs, {} bars, T = {T}",
        manifest.name,
        dir.display(),
        store.len(),
        manifest.bars
    );
    for selection in [InstrumentSelection::Auto, InstrumentSelection::All] {
        let songs: Vec<SongBars> = (0..store.len())
            .map(|i| SongBars::from_ids(store.song(i), &table, selection))
            .collect();
        let notes: usize = songs.iter().map(SongBars::note_count).sum();
        let bars: usize = songs.iter().map(SongBars::len).sum();
        let pairs = pairs_per_pass(&songs);
        let (runs, secs) = timed(seconds, || {
            let mut d = Distribution::new(T).expect("T > 0");
            for s in &songs {
                d.add_song(s);
            }
            std::hint::black_box(d);
        });
        let pair_rate = (pairs * runs) as f64 / secs;
        let (runs_e2e, secs_e2e) = timed(seconds, || {
            let mut d = Distribution::new(T).expect("T > 0");
            for i in 0..store.len() {
                d.add_song(&SongBars::from_ids(store.song(i), &table, selection));
            }
            std::hint::black_box(d);
        });
        let e2e_rate = (pairs * runs_e2e) as f64 / secs_e2e;
        let indices: Vec<usize> = (0..store.len()).collect();
        let (runs_par, secs_par) = timed(seconds, || {
            let d = Distribution::par_collect(&indices, T, |d, &i| {
                d.add_song(&SongBars::from_ids(store.song(i), &table, selection))
            });
            std::hint::black_box(d.expect("T > 0"));
        });
        let par_rate = (pairs * runs_par) as f64 / secs_par;
        println!(
            "instrument {selection}: {:.1} notes per bar, {pairs} bar pairs per pass\n  \
             1 thread, pairs only:   {:>7.1} M pairs/s ({runs} passes in {secs:.2} s)\n  \
             1 thread, end to end:   {:>7.1} M pairs/s\n  \
             {threads} thread(s), end to end:{:>7.1} M pairs/s",
            notes as f64 / bars.max(1) as f64,
            pair_rate / 1e6,
            e2e_rate / 1e6,
            par_rate / 1e6,
        );
    }
    Ok(())
}

//! The `museformer stats` commands of the structure statistics (their flags are in
//! `crate::cli::stats`). Each command reads its inputs with [`super::input`], computes with
//! [`super::similarity`] and [`super::select`], and writes with [`super::tables`]
//! and [`super::plot`].

use super::input::{self, Corpus, LoadOptions};
use super::notes::{InstrumentSelection, SongBars, MELODY_INSTRUMENT};
use super::plot::{self, DistanceRow, Series};
use super::select::{select_bars, PAPER_FINE_BARS};
use super::similarity::{distribution_distance, similarity_error, similarity_matrix, Distribution};
use super::tables;
use crate::data::Split;
use crate::tokens::Token;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// How inputs are read (shared by the subcommands that read corpora).
#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    /// Notes that make a bar's set: `auto` (the melody, instrument 80, when a song
    /// has it, else every non-drum note), `pitched` (every non-drum note), `all`
    /// (drums too), or one instrument id 0..=128 (songs without it are skipped).
    #[arg(long, default_value = "auto")]
    pub instrument: InstrumentSelection,
    /// Read only this split of prepared datasets (default: all splits). Folders of
    /// MIDI or token files are always read whole.
    #[arg(long)]
    pub split: Option<Split>,
    /// Dataset file whose normalization and encoding settings read MIDI and token
    /// folders [default: experiments/data/default.yaml, built in].
    #[arg(long)]
    pub data_config: Option<PathBuf>,
}

impl ReadArgs {
    fn options(&self, max_interval: usize) -> Result<LoadOptions> {
        Ok(LoadOptions {
            max_interval,
            selection: self.instrument,
            split: self.split,
            data: input::data_config(self.data_config.as_deref())?,
        })
    }
}

/// How the notes were chosen, in words.
fn read_description(read: &ReadArgs) -> String {
    let split = read
        .split
        .map_or(String::new(), |s| format!(", {} split", s.name()));
    format!("instrument {}{split}", read.instrument)
}

/// `name (path, kind)`.
fn describe(c: &Corpus) -> String {
    format!("{} ({}, {})", c.name, c.path.display(), c.kind)
}

/// One line of counts for a corpus.
fn summary_line(c: &Corpus) -> String {
    let n = &c.distribution.counts;
    format!(
        "{}: {} songs used of {} ({} without notes of the chosen instrument, {} with one bar), {} files skipped, \
         {} bars, {} bar pairs at 1..={} ({} pairs of two empty bars skipped)",
        describe(c),
        n.songs_used,
        n.songs,
        n.skipped_no_notes,
        n.skipped_one_bar,
        c.skipped.len(),
        n.bars,
        c.distribution.total_pairs(),
        c.distribution.max_interval(),
        n.empty_pairs
    )
}

/// Says when `--split` did not apply to a folder input.
fn note_split(c: &Corpus, read: &ReadArgs) {
    if let (Some(split), None) = (read.split, c.split) {
        eprintln!(
            "note: --split {} applies to prepared datasets; every file of {} was read",
            split.name(),
            c.path.display()
        );
    }
}

/// Says how many files of a corpus were not used, and why the first was not.
fn note_skipped(c: &Corpus) {
    if let Some(first) = c.skipped.first() {
        eprintln!(
            "note: {} files of {} were not used (first: {}: {}); `stats similarity` lists them in skipped.csv",
            c.skipped.len(),
            c.path.display(),
            first.file,
            first.reason
        );
    }
}

/// Loads one corpus and refuses one without bar pairs.
fn load_one(path: &Path, opts: &LoadOptions, read: &ReadArgs) -> Result<Corpus> {
    let corpus = input::load(path, opts)?;
    note_split(&corpus, read);
    note_skipped(&corpus);
    if corpus.distribution.total_pairs() == 0 {
        bail!("{}: no bar pairs to analyse", summary_line(&corpus));
    }
    Ok(corpus)
}

pub fn similarity(
    inputs: &[PathBuf],
    out: &Path,
    max_interval: usize,
    k: usize,
    min_songs: u64,
    read: &ReadArgs,
) -> Result<()> {
    let start = Instant::now();
    let opts = read.options(max_interval)?;
    let corpora = input::load_all(inputs, &opts)?;
    crate::io::create_dir_all(out)?;
    for c in &corpora {
        note_split(c, read);
        println!("{}", summary_line(c));
        if c.distribution.total_pairs() == 0 {
            eprintln!(
                "warning: {} has no bar pairs; its rows have pairs 0 and an empty mean_similarity",
                c.name
            );
        }
    }
    let dists: Vec<(&str, &Distribution)> = corpora
        .iter()
        .map(|c| (c.name.as_str(), &c.distribution))
        .collect();
    let mut distances = Vec::new();
    for (i, a) in dists.iter().enumerate() {
        for b in &dists[i + 1..] {
            distances.push((a.0, b.0, distribution_distance(a.1, b.1, max_interval)));
        }
    }
    let highlights: Vec<Vec<usize>> = dists
        .iter()
        .map(|(_, d)| {
            select_bars(d, k, min_songs, &[])
                .map(|s| s.chosen)
                .unwrap_or_default()
        })
        .collect();
    let series: Vec<Series> = dists
        .iter()
        .zip(&highlights)
        .map(|((name, d), h)| Series {
            name,
            distribution: d,
            highlight: h,
            min_songs,
        })
        .collect();
    let rows: Vec<DistanceRow> = distances
        .iter()
        .map(|(a, b, d)| DistanceRow {
            a,
            b,
            distance: d.as_ref(),
        })
        .collect();
    for (a, b, d) in &distances {
        match d {
            Some(d) => println!(
                "{a} vs {b}: mean |ΔL_t| {:.2} %, max {:.2} % at t = {}, Pearson r {}",
                d.mean_abs_diff * 100.0,
                d.max_abs_diff * 100.0,
                d.max_at,
                d.pearson.map_or("n/a".into(), |p| format!("{p:.3}"))
            ),
            None => println!("{a} vs {b}: no interval with pairs in both"),
        }
    }
    for (c, h) in corpora.iter().zip(&highlights) {
        let paper: Vec<usize> = h
            .iter()
            .copied()
            .filter(|t| PAPER_FINE_BARS.contains(t))
            .collect();
        if !h.is_empty() {
            println!(
                "{}: the {} highest L_t are at t = {} ({} of them in the paper's choice)",
                c.name,
                h.len(),
                h.iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                paper.len()
            );
        }
    }
    tables::write_similarity_csv(&out.join("similarity.csv"), &dists)?;
    tables::write_corpora_csv(&out.join("corpora.csv"), &corpora)?;
    let rows_csv: Vec<(&str, &str, Option<&_>)> = distances
        .iter()
        .map(|(a, b, d)| (*a, *b, d.as_ref()))
        .collect();
    tables::write_distances_csv(&out.join("distances.csv"), &rows_csv)?;
    tables::write_skipped_csv(&out.join("skipped.csv"), &corpora)?;
    for ext in ["png", "svg"] {
        plot::similarity_figure(&out.join(format!("similarity.{ext}")), &series, &rows)?;
    }
    let settings = (
        &opts.data.normalize,
        &opts.data.encoding,
        read.instrument.to_string(),
        read.split,
        max_interval,
    );
    tables::provenance(&corpora, &settings, start.elapsed().as_secs_f64())?
        .write(&out.join("provenance.json"))?;
    println!(
        "wrote similarity.csv, corpora.csv, distances.csv, skipped.csv, similarity.png, similarity.svg, provenance.json to {} ({:.1} s)",
        out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

pub fn select(
    input: &Path,
    k: usize,
    max_interval: usize,
    min_songs: u64,
    include: &[usize],
    out: Option<&Path>,
    read: &ReadArgs,
) -> Result<()> {
    let corpus = load_one(input, &read.options(max_interval)?, read)?;
    let d = &corpus.distribution;
    let selection = select_bars(d, k, min_songs, include)
        .with_context(|| format!("cannot select bars from {}", input.display()))?;
    print!("{}", selection.explain(d, &describe(&corpus)));
    let source = format!("{} ({})", input.display(), read_description(read));
    let snippet = selection.yaml_snippet(d, &source);
    println!("\n{snippet}");
    if let Some(path) = out {
        crate::io::write_atomic(path, snippet.as_bytes())?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub fn error(
    reference: PathBuf,
    generated: PathBuf,
    max_interval: usize,
    read: &ReadArgs,
) -> Result<()> {
    let opts = read.options(max_interval)?;
    let corpora = input::load_all(&[reference, generated], &opts)?;
    for c in &corpora {
        note_split(c, read);
        note_skipped(c);
    }
    let (r, g) = (&corpora[0], &corpora[1]);
    let se = similarity_error(&g.distribution, &r.distribution, max_interval)?;
    println!("reference: {}", summary_line(r));
    println!("generated: {}", summary_line(g));
    println!("  t   generated L̂_t   reference L_t   |difference|");
    for &t in &se.intervals {
        if let (Some(gm), Some(rm)) = (g.distribution.mean(t), r.distribution.mean(t)) {
            println!(
                "{t:>3}   {gm:>13.4}   {rm:>13.4}   {:>12.4}",
                (gm - rm).abs()
            );
        }
    }
    if !se.missing.is_empty() {
        let list: Vec<String> = se.missing.iter().map(usize::to_string).collect();
        println!(
            "warning: intervals {} have no bar pairs on one side and are left out of the mean",
            list.join(", ")
        );
    }
    println!(
        "similarity error SE = {:.2} % (mean over {} intervals of 1..={})",
        se.percent(),
        se.intervals.len(),
        se.t_max
    );
    Ok(())
}

pub fn song(
    file: &Path,
    out: &Path,
    instrument: InstrumentSelection,
    data_config: Option<&Path>,
) -> Result<()> {
    let data = input::data_config(data_config)?;
    let tokens = input::read_tokens(file, &data)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let bars = SongBars::from_tokens(tokens.iter().copied(), instrument);
    if bars.note_count() == 0 {
        bail!(
            "{} has no notes of the chosen instrument ({instrument}); try --instrument pitched",
            file.display()
        );
    }
    let matrix = similarity_matrix(&bars);
    let name = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let notes = match instrument {
        InstrumentSelection::Auto if tokens.contains(&Token::Instrument(MELODY_INSTRUMENT)) => {
            "melody (instrument 80)".to_string()
        }
        InstrumentSelection::Auto | InstrumentSelection::Pitched => {
            "all non-drum notes".to_string()
        }
        InstrumentSelection::All => "all notes".to_string(),
        InstrumentSelection::Instrument(i) => format!("instrument {i}"),
    };
    let title = format!(
        "{name}: bar self-similarity of {notes}, {} bars",
        bars.len()
    );
    plot::matrix_figure(out, &title, &matrix)?;
    let max_t = bars.len().saturating_sub(1).min(16);
    if max_t > 0 {
        let mut d = Distribution::new(max_t)?;
        d.add_song(&bars);
        let means: Vec<String> = d
            .iter()
            .filter_map(|(t, s)| Some(format!("{t}: {:.2}", s.mean()?)))
            .collect();
        println!(
            "{name}: {} bars; mean similarity by interval: {}",
            bars.len(),
            means.join(", ")
        );
    }
    println!("wrote {}", out.display());
    Ok(())
}

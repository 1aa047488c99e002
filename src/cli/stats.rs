//! `stats similarity`, `stats select-bars`, `stats error`, `stats song`, `stats
//! listening`.

use crate::structure::commands::{self, ReadArgs};
use crate::structure::InstrumentSelection;
use anyhow::Result;
use std::path::PathBuf;

/// `museformer stats`: structure statistics of corpora and generated music.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum StatsCommand {
    /// Bar-similarity distributions L_t (Eq. 4-5, Figure 3) of one or more corpora:
    /// writes similarity.csv, corpora.csv, distances.csv, skipped.csv,
    /// similarity.png, similarity.svg and provenance.json into --out.
    Similarity {
        /// MIDI folders, folders of token files (.txt) or prepared datasets.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output folder (created).
        #[arg(long)]
        out: PathBuf,
        /// Largest interval t.
        #[arg(long, default_value_t = 40)]
        max_interval: usize,
        /// Highlight this many intervals (those `select-bars` would choose) in the figure.
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// Intervals with pairs from fewer songs are not highlighted.
        #[arg(long, default_value_t = 10)]
        min_songs: u64,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Propose Museformer's fine-grained bars from a corpus: rank the intervals by
    /// L_t, print the reasoning and a YAML snippet for a model config.
    SelectBars {
        /// A MIDI folder, a folder of token files or a prepared dataset.
        input: PathBuf,
        /// Number of fine-grained bars (the paper: 8).
        #[arg(long, default_value_t = 8)]
        k: usize,
        /// Largest interval considered.
        #[arg(long, default_value_t = 40)]
        max_interval: usize,
        /// Leave out intervals with pairs from fewer songs than this.
        #[arg(long, default_value_t = 10)]
        min_songs: u64,
        /// Intervals to choose whatever their L_t (comma separated, e.g. `1,2`); the
        /// rest of the k are the highest L_t.
        #[arg(long, value_delimiter = ',')]
        include: Vec<usize>,
        /// Also write the YAML snippet to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Similarity error (Eq. 6): SE = mean over t = 1..T of |L̂_t − L_t| between
    /// generated pieces and reference (training) data, in percent.
    Error {
        /// The reference corpus (the training data).
        #[arg(long)]
        reference: PathBuf,
        /// The generated pieces (a folder of token files or MIDI files, or a dataset).
        #[arg(long)]
        generated: PathBuf,
        /// T, the largest interval (the paper: 40).
        #[arg(long, default_value_t = 40)]
        max_interval: usize,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Draw the bar-by-bar self-similarity matrix of one piece (PNG or SVG).
    Song {
        /// A MIDI file or a token file (.txt).
        file: PathBuf,
        /// Output figure (.png or .svg).
        #[arg(long)]
        out: PathBuf,
        /// Notes that make a bar's set (as for `similarity`).
        #[arg(long, default_value = "auto")]
        instrument: InstrumentSelection,
        /// Dataset file whose settings read the piece [default: experiments/data/default.yaml, built in].
        #[arg(long)]
        data_config: Option<PathBuf>,
    },
    /// Listening-test tables from a ratings CSV: Table 2 (mean ± sample std per metric
    /// and model, preference score) and Table 3 (wins, ties, losses and two-sided
    /// Wilcoxon signed-rank p-value of --reference against each other model on the
    /// overall score), as table2.{md,csv,tex} and table3.{md,csv,tex} with
    /// provenance.json in --out. See docs/listening.md for the definitions.
    Listening(crate::listening::StatsArgs),
}

/// Runs a `museformer stats` subcommand.
pub fn run(cmd: StatsCommand) -> Result<()> {
    match cmd {
        StatsCommand::Similarity {
            inputs,
            out,
            max_interval,
            k,
            min_songs,
            read,
        } => commands::similarity(&inputs, &out, max_interval, k, min_songs, &read),
        StatsCommand::SelectBars {
            input,
            k,
            max_interval,
            min_songs,
            include,
            out,
            read,
        } => commands::select(
            &input,
            k,
            max_interval,
            min_songs,
            &include,
            out.as_deref(),
            &read,
        ),
        StatsCommand::Error {
            reference,
            generated,
            max_interval,
            read,
        } => commands::error(reference, generated, max_interval, &read),
        StatsCommand::Song {
            file,
            out,
            instrument,
            data_config,
        } => commands::song(&file, &out, instrument, data_config.as_deref()),
        StatsCommand::Listening(args) => crate::listening::run_stats(&args).map(drop),
    }
}

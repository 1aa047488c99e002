//! The `museformer` command line, the one place that knows it: the flags of every
//! command (clap types), the dispatch to the library, and what each command prints
//! (the `Display` of the result types). `src/main.rs` only calls [`main`].
//!
//! Option structs that are a library function's input as well as a command's flags
//! (`GenerateOptions`, `bench::AttentionOptions`, `listening::StatsArgs`, ...) keep
//! their `clap::Args` derive where they are defined, so the flags and the library
//! input are one type rather than two copied field by field.

mod bench;
mod data;
mod listening;
mod runs;
pub mod stats;
mod suite;
mod tokens;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Museformer experiment suite: MIDI → REMIGEN2 tokens → datasets → models → the
/// paper's tables and figures.
#[derive(Parser)]
#[command(
    name = "museformer",
    version,
    about,
    long_about = None,
    after_help = QUICKSTART
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The end of `museformer --help`.
const QUICKSTART: &str = "Quick start (from the repository root):
  just corpus                                   # the default and long corpora (music21, offline)
  museformer reproduce                          # the mini suite -> results/mini/ (docs/reproduce.md)
  museformer train experiments/museformer-small.yaml
  museformer generate runs/museformer-small/<hash> --num 2
Every command has --help; the docs are in docs/.";

/// The commands, in the order a user meets them.
#[derive(Subcommand)]
enum Command {
    /// Run a suite end to end (data, training, PPL, generation, SE, the report); cached.
    ///
    /// Runs a suite (experiments/suites/*.yaml): prepares the data and the training
    /// data's similarity statistics, then for each row of Table 1 (and each seed)
    /// trains, evaluates (PPL and repetition perplexity), generates pieces and
    /// measures their similarity error, and writes the report into results/<suite>/.
    /// Finished stages are cached: a second run skips them and says so; an
    /// interrupted training resumes from its checkpoint. See docs/reproduce.md.
    Reproduce(suite::ReproduceArgs),
    /// Write a suite's report into results/<suite>/ from its finished stages.
    ///
    /// Table 1, Figure 3, the Appendix-C figure, the similarity-error and
    /// repetition tables, provenance.json; with --ratings, Tables 2 and 3.
    Report(suite::ReportArgs),
    /// Train an experiment into runs/<name>/<hash>/ (Ctrl-C checkpoints and stops).
    Train(runs::TrainArgs),
    /// Perplexity of a trained run on its test split (eval.csv, eval.json in the run).
    Eval(runs::EvalArgs),
    /// Generate pieces from a trained run with top-k sampling (tokens and MIDI).
    Generate(runs::GenerateArgs),
    /// Prepare and inspect token datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Statistics: bar similarity, bar selection, similarity error, listening tables.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// Listening test: build the kit for raters (`stats listening` reads the ratings).
    #[command(subcommand)]
    Listening(listening::ListeningCommand),
    /// Look inside a model: Museformer's attention layout.
    #[command(subcommand)]
    Inspect(runs::InspectCommand),
    /// Benchmarks: the efficiency curves of Figure 4, decoding.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Print the REMIGEN2 tokens of one MIDI file on one line, space separated.
    Encode(tokens::EncodeArgs),
    /// Write a MIDI file from a file of REMIGEN2 token strings.
    Decode(tokens::DecodeArgs),
    /// Print the vocabulary: `id token` per line, or fairseq's dict.txt format.
    Vocab(tokens::VocabArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Encode(a) => tokens::encode(a),
        Command::Decode(a) => tokens::decode(a),
        Command::Vocab(a) => tokens::vocab(a),
        Command::Data(c) => data::run(c),
        Command::Stats(c) => stats::run(c),
        Command::Listening(c) => listening::run(c),
        Command::Train(a) => runs::train(a),
        Command::Eval(a) => runs::eval(a),
        Command::Inspect(c) => runs::inspect(c),
        Command::Bench(c) => bench::run(c),
        Command::Generate(a) => runs::generate(a),
        Command::Reproduce(a) => suite::reproduce(a),
        Command::Report(a) => suite::report(a),
    }
}

/// The program: parses the command line, runs the command, prints an error chain
/// on one line and exits 1 on failure.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The git state of the code as the command starts: asked later, it would see
    // the results this command has written by then as uncommitted changes.
    crate::provenance::git_state();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

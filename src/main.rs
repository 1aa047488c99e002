//! The `museformer` command line: wires the library's stages together.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use museformer::config::ExperimentConfig;
use museformer::data::{self, DatasetConfig, Manifest, PrepareOutcome};
use museformer::eval::generate::GenerateOptions;
use museformer::midi;
use museformer::tokens::{self, EncodeOptions, InstrumentOrder, Vocab};
use std::path::PathBuf;
use std::process::ExitCode;

/// Museformer experiment suite: MIDI → REMIGEN2 tokens → datasets → models → the
/// paper's tables and figures.
#[derive(Parser)]
#[command(name = "museformer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the REMIGEN2 tokens of one MIDI file on one line, space separated.
    Encode {
        /// The MIDI file.
        file: PathBuf,
        #[command(flatten)]
        opts: EncodeArgs,
    },
    /// Write a MIDI file from a file of REMIGEN2 token strings.
    Decode {
        /// File of whitespace-separated token strings.
        tokens: PathBuf,
        /// Output MIDI file.
        #[arg(short, long)]
        output: PathBuf,
        /// Positions per quarter note of the tokens' grid.
        #[arg(long, default_value_t = tokens::vocab::DEFAULT_POS_PER_BEAT)]
        pos_per_beat: u32,
    },
    /// Print the vocabulary: `id token` per line, or fairseq's dict.txt format.
    Vocab {
        /// fairseq's `token 1` format (without the four special symbols fairseq adds).
        #[arg(long)]
        fairseq: bool,
        /// Positions per quarter note of the grid.
        #[arg(long, default_value_t = tokens::vocab::DEFAULT_POS_PER_BEAT)]
        pos_per_beat: u32,
    },
    /// Prepare and inspect token datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Statistics: bar-similarity distributions, bar selection, similarity error, listening-test tables.
    #[command(subcommand)]
    Stats(museformer::structure::cli::StatsCommand),
    /// Listening test: build the kit for raters (`stats listening` reads the ratings).
    #[command(subcommand)]
    Listening(museformer::listening::ListeningCommand),
    /// Train an experiment into runs/<name>/<hash>/ (Ctrl-C checkpoints and stops).
    Train {
        /// Experiment file (experiments/*.yaml).
        experiment: PathBuf,
        /// Override a setting, e.g. `--set train.steps=200` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Continue from the run's last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Folder of the runs.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
    },
    /// Perplexity of a trained run on its test split (writes eval.csv and eval.json
    /// into the run folder).
    Eval {
        /// The run folder `museformer train` printed.
        run_dir: PathBuf,
        /// Prefix lengths, comma separated (default: the experiment's eval.lengths).
        #[arg(long, value_delimiter = ',')]
        lengths: Option<Vec<usize>>,
    },
    /// Look inside a model: Museformer's attention layout.
    #[command(subcommand)]
    Inspect(InspectCommand),
    /// Benchmarks: the efficiency curves of Figure 4.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Generate pieces from a trained run with top-k sampling (tokens and MIDI).
    Generate {
        /// The run folder.
        run_dir: PathBuf,
        #[command(flatten)]
        opts: GenerateOptions,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a suite (experiments/suites/*.yaml) end to end: prepare the data, the
    /// training data's similarity statistics, then for each row of Table 1 train,
    /// evaluate (PPL), generate pieces and measure their similarity error, and write
    /// the report into results/<suite>/. Finished stages are cached: a second run
    /// skips them and says so; an interrupted training resumes from its checkpoint.
    /// See docs/reproduce.md.
    Reproduce {
        /// Suite file.
        #[arg(default_value = "experiments/suites/mini.yaml")]
        suite: PathBuf,
        /// Redo a stage even when cached: a stage name (`train:museformer`,
        /// `similarity`) or a kind (prepare, similarity, train, eval, generate, se,
        /// report); repeatable.
        #[arg(long, value_name = "STAGE")]
        force: Vec<String>,
        #[command(flatten)]
        folders: SuiteFolders,
    },
    /// Write the report of a suite (Table 1, Figure 3, the Appendix-C figure,
    /// provenance.json) into results/<suite>/ from its finished stages.
    Report {
        /// Suite file.
        #[arg(default_value = "experiments/suites/mini.yaml")]
        suite: PathBuf,
        #[command(flatten)]
        folders: SuiteFolders,
        /// A listening test's ratings CSV: adds Tables 2 and 3 (the suite's
        /// `reference` row against each other row; see `museformer stats listening`).
        #[arg(long)]
        ratings: Option<PathBuf>,
        /// The listening kit's key.csv, when the ratings name anonymous pieces.
        #[arg(long, requires = "ratings")]
        key: Option<PathBuf>,
    },
}

/// Where a suite's stages and reports go.
#[derive(Args)]
struct SuiteFolders {
    /// Folder of the stages' work: records, run folders, generated pieces
    /// (`<work>/<suite>/`).
    #[arg(long, default_value = "runs/suites")]
    work: PathBuf,
    /// Folder of the reports (`<results>/<suite>/`).
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(Subcommand)]
enum InspectCommand {
    /// Who attends to what in one piece under an experiment's Museformer layout,
    /// drawn like the paper's Figure 2b (rows: queries; columns: keys; each bar's
    /// summary after its tokens; green own bar, blue fine-grained bars, orange
    /// coarse-grained summaries, purple summarization).
    Layout {
        /// Experiment file whose `model.museformer.layout` (and dataset grid) to use.
        experiment: PathBuf,
        /// File of REMIGEN2 token strings (`<s>` is prepended, as the model sees it).
        #[arg(long)]
        tokens: PathBuf,
        /// The figure (.png or .svg).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write for each token and summary the token and summary indices it
        /// attends to, as JSON, to this file (or to standard output without one).
        #[arg(long, num_args = 0..=1, default_missing_value = "-")]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Peak memory and time of a training step (batch 1) at growing maximum
    /// lengths, Museformer against its full-attention counterpart by default;
    /// writes attention.csv, attention.json and attention.{png,svg}.
    Attention(museformer::bench::AttentionOptions),
    /// Decoding a real piece token by token with the model's cache against
    /// recomputing the prefix at every step (the latter interpolated from timed
    /// forwards at sampled prefix lengths); prints JSON.
    Decode(museformer::bench::DecodeOptions),
    /// One measurement (run by `bench attention` in a child process).
    #[command(hide = true)]
    AttentionOne {
        experiment: PathBuf,
        #[arg(long)]
        length: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        device: museformer::config::DeviceChoice,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
}

#[derive(Args)]
struct EncodeArgs {
    /// Leave out the time-signature (s-) tokens.
    #[arg(long)]
    ignore_ts: bool,
    /// Order of instruments at one position.
    #[arg(long, value_enum, default_value_t = InstrumentOrder::Id)]
    inst_order: InstrumentOrder,
    /// Keep leading empty bars (removed by default).
    #[arg(long)]
    keep_empty_bars: bool,
    /// Transpose to C major / A minor as the original release does.
    #[arg(long)]
    normalize_key: bool,
    /// Positions per quarter note (12 as the reference states; 16 as the original code).
    #[arg(long, default_value_t = tokens::vocab::DEFAULT_POS_PER_BEAT)]
    pos_per_beat: u32,
}

impl EncodeArgs {
    fn options(&self) -> EncodeOptions {
        EncodeOptions {
            ignore_ts: self.ignore_ts,
            inst_order: self.inst_order,
            remove_empty_bars: !self.keep_empty_bars,
            normalize_key: self.normalize_key,
            pos_per_beat: self.pos_per_beat,
            ..EncodeOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum DataCommand {
    /// Build a token dataset (token store, metadata, rejects, vocabulary, splits)
    /// from a MIDI folder. A re-run on unchanged input does nothing.
    Prepare {
        /// Dataset file (experiments/data/*.yaml).
        #[arg(required_unless_present = "midi_dir", conflicts_with = "midi_dir")]
        config: Option<PathBuf>,
        /// MIDI folder, instead of a dataset file (default settings).
        #[arg(long, requires = "out")]
        midi_dir: Option<PathBuf>,
        /// Output folder, with --midi-dir.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rebuild even when the dataset is up to date.
        #[arg(long)]
        force: bool,
    },
    /// Measure single-core encoding throughput (read, parse, normalize, encode) over
    /// a MIDI folder; prints one JSON line (best of --repeat passes).
    Bench {
        /// MIDI folder.
        midi_dir: PathBuf,
        /// Dataset file whose settings to use (default: plain REMIGEN2 settings).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Passes; the fastest counts.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Print the summary of a prepared dataset.
    Summary {
        /// The prepared dataset folder.
        dir: PathBuf,
    },
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inspect(InspectCommand::Layout {
            experiment,
            tokens,
            out,
            json,
        }) => {
            anyhow::ensure!(
                out.is_some() || json.is_some(),
                "say what to write: --out FIGURE and/or --json [FILE]"
            );
            let report = museformer::inspect::layout_of(&experiment, &tokens)?;
            if let Some(path) = &out {
                museformer::inspect::draw(&report, path)?;
                eprintln!("wrote {}", path.display());
            }
            match json.as_deref() {
                Some(p) if p == std::path::Path::new("-") => {
                    println!("{}", serde_json::to_string(&report)?)
                }
                Some(p) => std::fs::write(p, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", p.display()))?,
                None => {}
            }
        }
        Command::Bench(BenchCommand::Attention(opts)) => {
            museformer::bench::attention(&opts)?;
            eprintln!(
                "wrote {}/attention.{{csv,json,png,svg}}",
                opts.out.display()
            );
        }
        Command::Bench(BenchCommand::Decode(opts)) => {
            let r = museformer::bench::decode(&opts)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        Command::Bench(BenchCommand::AttentionOne {
            experiment,
            length,
            device,
            repeats,
        }) => {
            let m = museformer::bench::measure_one(&experiment, length, device, repeats)?;
            println!("{}", serde_json::to_string(&m)?);
        }
        Command::Encode { file, opts } => {
            let score = midi::read_file(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let toks = tokens::encode(&score, &opts.options())
                .with_context(|| format!("cannot encode {}", file.display()))?;
            println!("{}", tokens::to_text(&toks));
        }
        Command::Decode {
            tokens: path,
            output,
            pos_per_beat,
        } => {
            let vocab = Vocab::new(pos_per_beat);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let toks = tokens::parse_tokens(&text, &vocab)
                .with_context(|| format!("{}", path.display()))?;
            let score =
                tokens::decode(&toks, &vocab).with_context(|| format!("{}", path.display()))?;
            midi::write_file(&score, &output)
                .with_context(|| format!("cannot write {}", output.display()))?;
        }
        Command::Vocab {
            fairseq,
            pos_per_beat,
        } => {
            let vocab = Vocab::new(pos_per_beat);
            if fairseq {
                print!("{}", vocab.to_fairseq());
            } else {
                for id in 0..vocab.len() as u16 {
                    println!("{id} {}", vocab.symbol(id));
                }
            }
        }
        Command::Data(DataCommand::Prepare {
            config,
            midi_dir,
            out,
            force,
        }) => {
            let cfg = match (config, midi_dir, out) {
                (Some(path), _, _) => DatasetConfig::load(&path)?,
                (None, Some(dir), Some(out)) => DatasetConfig::for_folder(dir, out),
                _ => unreachable!("clap requires a dataset file or --midi-dir with --out"),
            };
            match data::prepare(&cfg, force)? {
                PrepareOutcome::UpToDate(m) => {
                    println!(
                        "{} is up to date; nothing to do (use --force to rebuild)",
                        cfg.out.display()
                    );
                    println!("{}", m.summary());
                }
                PrepareOutcome::Built(m) => {
                    println!(
                        "{} encoded, {} rejected -> {} ({:.1} s)",
                        m.songs,
                        m.rejected,
                        cfg.out.display(),
                        m.wall_seconds
                    );
                    println!("{}", m.summary());
                    if m.rejected > 0 {
                        println!("reasons: {}", cfg.out.join("rejects.csv").display());
                    }
                }
            }
        }
        Command::Data(DataCommand::Bench {
            midi_dir,
            config,
            repeat,
        }) => {
            let cfg = match config {
                Some(path) => DatasetConfig::load(&path)?,
                None => DatasetConfig::for_folder(midi_dir.clone(), PathBuf::new()),
            };
            let files = data::prepare::list_midi_files(&midi_dir)?;
            println!(
                "{}",
                serde_json::to_string(&data::prepare::bench_encode(&files, &cfg, repeat))?
            );
        }
        Command::Stats(cmd) => museformer::structure::cli::run(cmd)?,
        Command::Listening(cmd) => museformer::listening::run(cmd)?,
        Command::Train {
            experiment,
            sets,
            resume,
            runs,
        } => {
            let cfg = ExperimentConfig::load(&experiment, &sets)?;
            let summary = museformer::train::train(&cfg, &runs, resume)?;
            let s = &summary.state;
            let verb = if summary.interrupted {
                "interrupted at"
            } else {
                "finished"
            };
            println!(
                "{verb} step {} of {}: last loss {}, best valid loss {}, {} tokens in {:.1} s",
                s.step,
                cfg.train.steps,
                summary
                    .last_loss
                    .map_or("-".to_string(), |v| format!("{v:.4}")),
                s.best_valid.map_or("-".to_string(), |v| format!("{v:.4}")),
                s.tokens,
                s.seconds
            );
            println!("run folder: {}", summary.run_dir.display());
        }
        Command::Eval { run_dir, lengths } => {
            let rows = museformer::eval::evaluate(&run_dir, lengths)?;
            println!("perplexity on the test split of {}:", run_dir.display());
            for r in rows {
                println!(
                    "  first {:>6} tokens: PPL {:.4}  ({} songs, {} at full length, {} tokens)",
                    r.length, r.ppl, r.songs, r.full_songs, r.tokens
                );
            }
        }
        Command::Generate { run_dir, opts, out } => {
            let reports = museformer::eval::generate::generate(&run_dir, &opts, &out)?;
            for r in &reports {
                println!(
                    "{}: {} tokens sampled ({}), {} kept, {:.0} tokens/s",
                    r.midi_file.display(),
                    r.sampled,
                    if r.ended {
                        "ended with </s>"
                    } else {
                        "maximum length"
                    },
                    r.kept,
                    r.tokens_per_sec
                );
            }
        }
        Command::Reproduce {
            suite,
            force,
            folders,
        } => {
            let outcome = museformer::pipeline::reproduce(&museformer::pipeline::Options {
                suite,
                work: folders.work,
                results: folders.results,
                force,
            })?;
            println!(
                "{} stages run, {} cached, in {:.2} s; report: {}",
                outcome.ran.len(),
                outcome.cached.len(),
                outcome.seconds,
                outcome.results.display()
            );
        }
        Command::Report {
            suite,
            folders,
            ratings,
            key,
        } => {
            let ratings = ratings.map(|ratings| museformer::pipeline::Ratings { ratings, key });
            let files = museformer::pipeline::report(
                &suite,
                &folders.work,
                &folders.results,
                ratings.as_ref(),
            )?;
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        Command::Data(DataCommand::Summary { dir }) => {
            println!("{}", Manifest::load(&dir)?.summary())
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

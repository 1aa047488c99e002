//! `train`, `eval`, `generate`, `inspect layout`.

use crate::config::ExperimentConfig;
use crate::eval::generate::GenerateOptions;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct TrainArgs {
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
}

#[derive(Args)]
pub struct EvalArgs {
    /// The run folder `museformer train` printed.
    run_dir: PathBuf,
    /// Prefix lengths, comma separated (default: the experiment's eval.lengths).
    #[arg(long, value_delimiter = ',')]
    lengths: Option<Vec<usize>>,
    /// Notes that make a bar's set for the repetition perplexity (a bar repeats an
    /// earlier one when their sets are equal): `all` (every note, drums too),
    /// `pitched` (every non-drum note), `auto` (the melody, instrument 80, when a
    /// song has it, else every non-drum note), or one instrument id 0..=128.
    #[arg(long, default_value = "all")]
    instrument: crate::structure::InstrumentSelection,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// The run folder.
    run_dir: PathBuf,
    #[command(flatten)]
    opts: GenerateOptions,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
pub enum InspectCommand {
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

pub fn train(a: TrainArgs) -> Result<()> {
    let cfg = ExperimentConfig::load(&a.experiment, &a.sets)?;
    println!("{}", crate::train::train(&cfg, &a.runs, a.resume)?);
    Ok(())
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let eval = crate::eval::evaluate_with(&a.run_dir, a.lengths, a.instrument)?;
    print!(
        "{}",
        crate::eval::PerplexityTable {
            run_dir: &a.run_dir,
            rows: &eval.perplexity
        }
    );
    print!("{}", crate::eval::RepetitionTable(&eval));
    Ok(())
}

pub fn generate(a: GenerateArgs) -> Result<()> {
    for piece in crate::eval::generate::generate(&a.run_dir, &a.opts, &a.out)? {
        println!("{piece}");
    }
    Ok(())
}

pub fn inspect(cmd: InspectCommand) -> Result<()> {
    match cmd {
        InspectCommand::Layout {
            experiment,
            tokens,
            out,
            json,
        } => {
            anyhow::ensure!(
                out.is_some() || json.is_some(),
                "say what to write: --out FIGURE and/or --json [FILE]"
            );
            let report = crate::inspect::layout_of(&experiment, &tokens)?;
            if let Some(path) = &out {
                crate::inspect::draw(&report, path)?;
                eprintln!("wrote {}", path.display());
            }
            match json.as_deref() {
                Some(p) if p == Path::new("-") => println!("{}", serde_json::to_string(&report)?),
                Some(p) => {
                    crate::io::write_atomic(p, serde_json::to_string_pretty(&report)?.as_bytes())
                        .with_context(|| format!("cannot write the layout JSON {}", p.display()))?
                }
                None => {}
            }
            Ok(())
        }
    }
}

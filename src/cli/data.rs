//! `data prepare`, `data bench`, `data summary`.

use crate::data::{self, DatasetConfig, Manifest, PrepareOutcome};
use anyhow::Result;
use clap::Subcommand;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum DataCommand {
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

/// What `data prepare` did to the dataset folder `out`.
struct Prepared<'a> {
    out: &'a Path,
    outcome: PrepareOutcome,
}

impl fmt::Display for Prepared<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let out = self.out.display();
        match &self.outcome {
            PrepareOutcome::UpToDate(m) => {
                writeln!(
                    f,
                    "{out} is up to date; nothing to do (use --force to rebuild)"
                )?;
                write!(f, "{}", m.summary())
            }
            PrepareOutcome::Built(m) => {
                writeln!(
                    f,
                    "{} encoded, {} rejected -> {out} ({:.1} s)",
                    m.songs, m.rejected, m.wall_seconds
                )?;
                write!(f, "{}", m.summary())?;
                if m.rejected > 0 {
                    write!(f, "\nreasons: {}", self.out.join("rejects.csv").display())?;
                }
                if m.warnings > 0 {
                    write!(
                        f,
                        "\n{} reader warnings: {}",
                        m.warnings,
                        self.out.join("warnings.csv").display()
                    )?;
                }
                Ok(())
            }
        }
    }
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Prepare {
            config,
            midi_dir,
            out,
            force,
        } => {
            let cfg = match (config, midi_dir, out) {
                (Some(path), _, _) => DatasetConfig::load(&path)?,
                (None, Some(dir), Some(out)) => DatasetConfig::for_folder(dir, out),
                _ => unreachable!("clap requires a dataset file or --midi-dir with --out"),
            };
            let outcome = data::prepare(&cfg, force)?;
            println!(
                "{}",
                Prepared {
                    out: &cfg.out,
                    outcome
                }
            );
        }
        DataCommand::Bench {
            midi_dir,
            config,
            repeat,
        } => {
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
        DataCommand::Summary { dir } => println!("{}", Manifest::load(&dir)?.summary()),
    }
    Ok(())
}

//! `listening kit`.

use crate::listening::{build_kit, KitOptions};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// `museformer listening`: prepare a listening test.
#[derive(Debug, Clone, Subcommand)]
pub enum ListeningCommand {
    /// Build a listening-test kit: GROUPS anonymous groups, each with one randomly
    /// chosen piece of every model under a shuffled letter (group-01/piece-A.mid,
    /// plus .wav when fluidsynth and a General MIDI SoundFont are installed), a blank
    /// ratings.csv for RATERS raters (send OUT/for-raters/ to them), and key.csv,
    /// which maps the letters back to the models (keep it). `museformer stats
    /// listening RATINGS --key OUT/key.csv` computes the tables afterwards.
    Kit(KitArgs),
}

/// Arguments of `museformer listening kit`.
#[derive(Debug, Clone, Args)]
pub struct KitArgs {
    /// A suite file whose generated pieces to use: one model per row, from
    /// `<work>/<suite>/generated/<row>/` (run `museformer reproduce SUITE` first).
    /// `--model` adds more.
    pub suite: Option<PathBuf>,
    /// The suite's work folder (as `museformer reproduce --work`).
    #[arg(long, default_value = "runs/suites")]
    pub work: PathBuf,
    /// A model's label and its folder of generated MIDI files (e.g.
    /// `Museformer=gen/museformer`); repeat for each model (2 to 26).
    #[arg(
        long = "model",
        value_name = "LABEL=DIR",
        required_unless_present = "suite"
    )]
    pub models: Vec<String>,
    /// Number of groups (each holds one piece per model; each model folder needs at
    /// least this many MIDI files).
    #[arg(long, default_value_t = 5)]
    pub groups: usize,
    /// Number of raters (rows of the blank ratings sheet: raters × groups × models).
    #[arg(long, default_value_t = 10)]
    pub raters: usize,
    /// Seed of the piece choice and of the letter order in each group.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (created; must not exist or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// General MIDI SoundFont for rendering [default: /usr/share/sounds/sf2/FluidR3_GM.sf2
    /// when it exists].
    #[arg(long)]
    pub soundfont: Option<PathBuf>,
}

impl KitArgs {
    /// The models of the kit, label and folder: the suite's rows (their
    /// generated-pieces folders, [`crate::pipeline::generated_folders`]) when a
    /// suite is given, then every `--model LABEL=DIR`.
    fn models(&self) -> Result<Vec<(String, PathBuf)>> {
        let mut models = match &self.suite {
            Some(path) => crate::pipeline::generated_folders(path, &self.work)?,
            None => Vec::new(),
        };
        for m in &self.models {
            match m.split_once('=') {
                Some((label, dir)) if !label.trim().is_empty() && !dir.is_empty() => {
                    models.push((label.trim().to_string(), PathBuf::from(dir)));
                }
                _ => bail!("--model `{m}`: expected LABEL=DIR, e.g. Museformer=gen/museformer"),
            }
        }
        Ok(models)
    }
}

/// Runs a `museformer listening` subcommand.
pub fn run(cmd: ListeningCommand) -> Result<()> {
    match cmd {
        ListeningCommand::Kit(args) => {
            let models = args.models()?;
            let report = build_kit(
                &models,
                &KitOptions {
                    groups: args.groups,
                    raters: args.raters,
                    seed: args.seed,
                    out: args.out.clone(),
                    soundfont: args.soundfont.clone(),
                },
            )?;
            println!("{}", report.summary());
            Ok(())
        }
    }
}

//! `bench attention`, `bench decode`.

use crate::bench::{AttentionOptions, DecodeOptions};
use crate::config::DeviceChoice;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Peak memory and time of a training step (batch 1) at growing maximum
    /// lengths, Museformer against its full-attention counterpart by default;
    /// writes attention.csv, attention.json and attention.{png,svg}.
    Attention(AttentionOptions),
    /// Decoding a real piece token by token with the model's cache against
    /// recomputing the prefix at every step (the latter interpolated from timed
    /// forwards at sampled prefix lengths); prints JSON.
    Decode(DecodeOptions),
    /// One measurement (run by `bench attention` in a child process).
    #[command(hide = true)]
    AttentionOne {
        experiment: PathBuf,
        #[arg(long)]
        length: usize,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceChoice,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
}

pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Attention(opts) => {
            crate::bench::attention(&opts)?;
            eprintln!(
                "wrote {}/attention.{{csv,json,png,svg}}",
                opts.out.display()
            );
        }
        BenchCommand::Decode(opts) => {
            let r = crate::bench::decode(&opts)?;
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        BenchCommand::AttentionOne {
            experiment,
            length,
            device,
            repeats,
        } => {
            let m = crate::bench::measure_one(&experiment, length, device, repeats)?;
            println!("{}", serde_json::to_string(&m)?);
        }
    }
    Ok(())
}

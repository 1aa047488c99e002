//! `encode`, `decode`, `vocab`.

use crate::midi::{self, Compat};
use crate::tokens::{self, EncodeOptions, InstrumentOrder, Vocab};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct EncodeArgs {
    /// The MIDI file.
    file: PathBuf,
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
    /// Positions per quarter note, 1..=32 (12 as the reference states; 16 as the
    /// original code and every shipped dataset).
    #[arg(long, default_value_t = tokens::vocab::DEFAULT_POS_PER_BEAT, value_parser = pos_per_beat)]
    pos_per_beat: u32,
    /// Whose reader and encoder to follow: ours, or the original release's token
    /// for token (mido 1.2.10, miditoolkit 0.1.16, MidiProcessor); docs/tokens.md.
    #[arg(long, value_enum, default_value_t = Compat::Ours)]
    compat: Compat,
}

impl EncodeArgs {
    fn options(&self) -> EncodeOptions {
        EncodeOptions {
            ignore_ts: self.ignore_ts,
            inst_order: self.inst_order,
            remove_empty_bars: !self.keep_empty_bars,
            normalize_key: self.normalize_key,
            pos_per_beat: self.pos_per_beat,
            compat: self.compat,
            ..EncodeOptions::default()
        }
    }
}

#[derive(Args)]
pub struct DecodeArgs {
    /// File of whitespace-separated token strings.
    tokens: PathBuf,
    /// Output MIDI file.
    #[arg(short, long)]
    output: PathBuf,
    /// Positions per quarter note of the tokens' grid, 1..=32.
    #[arg(long, default_value_t = tokens::vocab::DEFAULT_POS_PER_BEAT, value_parser = pos_per_beat)]
    pos_per_beat: u32,
}

#[derive(Args)]
pub struct VocabArgs {
    /// fairseq's `token 1` format (without the four special symbols fairseq adds).
    #[arg(long)]
    fairseq: bool,
    /// The original release's LMD6 `dict.txt`, in its order (so ids agree with the
    /// release's data and checkpoints), after checking that every token the LMD6
    /// encoding writes is in it; implies --fairseq and 16 positions per beat.
    #[arg(long, conflicts_with = "fairseq")]
    release: bool,
    /// Positions per quarter note of the grid, 1..=32 [default: 12; 16 with --release].
    #[arg(long, value_parser = pos_per_beat)]
    pos_per_beat: Option<u32>,
}

/// A `--pos-per-beat` value: 1..=32 (0 would become another grid silently).
fn pos_per_beat(text: &str) -> std::result::Result<u32, String> {
    let max = tokens::vocab::MAX_POS_PER_BEAT;
    match text.parse::<u32>() {
        Ok(v) if (1..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "`{text}`: positions per beat must be a whole number in 1..={max}"
        )),
    }
}

pub fn encode(a: EncodeArgs) -> Result<()> {
    let reading = midi::read_file_as(&a.file, a.compat)
        .with_context(|| format!("cannot read {}", a.file.display()))?;
    for w in &reading.warnings {
        eprintln!("warning: {}: {w}", a.file.display());
    }
    let score = reading.score;
    let toks = tokens::encode(&score, &a.options())
        .with_context(|| format!("cannot encode {}", a.file.display()))?;
    println!("{}", tokens::to_text(&toks));
    Ok(())
}

pub fn decode(a: DecodeArgs) -> Result<()> {
    let vocab = Vocab::new(a.pos_per_beat);
    let text = crate::io::read_to_string(&a.tokens)?;
    let toks =
        tokens::parse_tokens(&text, &vocab).with_context(|| format!("{}", a.tokens.display()))?;
    if toks.is_empty() {
        anyhow::bail!(
            "{} holds no tokens; nothing to decode (expected REMIGEN2 tokens such as `o-0 i-0 p-60 d-4 v-20 b-1`)",
            a.tokens.display()
        );
    }
    let score = tokens::decode(&toks, &vocab).with_context(|| format!("{}", a.tokens.display()))?;
    midi::write_file(&score, &a.output)
        .with_context(|| format!("cannot write {}", a.output.display()))
}

pub fn vocab(a: VocabArgs) -> Result<()> {
    let default = if a.release {
        tokens::release::POS_PER_BEAT
    } else {
        tokens::vocab::DEFAULT_POS_PER_BEAT
    };
    let vocab = Vocab::new(a.pos_per_beat.unwrap_or(default));
    if a.release {
        print!("{}", tokens::release::dict_for(&vocab)?);
    } else if a.fairseq {
        print!("{}", vocab.to_fairseq());
    } else {
        for id in 0..vocab.len() as u16 {
            println!("{id} {}", vocab.symbol(id));
        }
    }
    Ok(())
}

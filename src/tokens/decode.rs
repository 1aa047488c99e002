//! REMIGEN2 tokens → Score: reading token text (naming the first bad token and its
//! position), checking the token grammar, and laying the bars back out in ticks.

use super::vocab::{tempo_bpm, time_signatures, velocity_value, Token, Vocab, DRUM_INSTRUMENT};
use crate::midi::{Note, Score, Tempo, TimeSignature, Track};
use std::collections::BTreeMap;

/// Ticks per quarter note of decoded scores.
pub const DECODE_TICKS_PER_BEAT: u32 = 480;

/// A token sequence that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token {position} (`{token}`): {reason}")]
pub struct DecodeError {
    /// 1-based position of the offending token in the sequence.
    pub position: usize,
    /// The offending token as written.
    pub token: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses whitespace-separated token strings, naming the first bad one.
pub fn parse_tokens(text: &str, vocab: &Vocab) -> Result<Vec<Token>, DecodeError> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, s)| {
            vocab.parse(s).map_err(|e| DecodeError {
                position: i + 1,
                token: s.to_string(),
                reason: e.reason.to_string(),
            })
        })
        .collect()
}

/// Where the grammar stands before the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a bar: `s`, `t`, `o` or `b` may follow.
    BarStart,
    /// After `s`: `t`, `o` or `b`.
    AfterTimeSig,
    /// After `t`: `o` or `b`.
    AfterTempo,
    /// After `o`: `i`.
    AfterPosition,
    /// After `i` or a complete note: `p` (or, after a note, `i`, `o` or `b`).
    AfterInstrument { note_done: bool },
    /// After `p`: `d`.
    AfterPitch,
    /// After `d`: `v`.
    AfterDuration,
}

/// The REMIGEN2 grammar as a state machine fed one token at a time: per bar
/// `[s] [t] (o (i (p d v)+)+)* b`, with positions increasing within a bar and
/// inside the bar's length. A rejected token leaves the state unchanged, so a
/// generator can drop it and go on.
#[derive(Debug, Clone)]
pub struct Grammar<'v> {
    vocab: &'v Vocab,
    state: State,
    last_pos: Option<u8>,
    bar_len: u64,
}

impl<'v> Grammar<'v> {
    /// The grammar at the start of a piece (4/4 until an `s-` token).
    pub fn new(vocab: &'v Vocab) -> Grammar<'v> {
        Grammar {
            vocab,
            state: State::BarStart,
            last_pos: None,
            bar_len: vocab.bar_positions(4, 4),
        }
    }

    /// True between bars (where a sequence may end).
    pub fn at_bar_start(&self) -> bool {
        self.state == State::BarStart
    }

    /// Takes the next token, or says why it cannot come here.
    pub fn accept(&mut self, tok: Token) -> Result<(), &'static str> {
        self.state = match (self.state, tok) {
            (State::BarStart, Token::TimeSig(id)) => {
                let (n, d) = time_signatures()[id as usize];
                self.bar_len = self.vocab.bar_positions(n, d);
                State::AfterTimeSig
            }
            (State::BarStart | State::AfterTimeSig, Token::Tempo(_)) => State::AfterTempo,
            (
                State::BarStart
                | State::AfterTimeSig
                | State::AfterTempo
                | State::AfterInstrument { note_done: true },
                Token::Position(p),
            ) => {
                if self.last_pos.is_some_and(|l| p <= l) {
                    return Err("positions must increase within a bar");
                }
                if p as u64 >= self.bar_len {
                    return Err("position lies beyond the end of the bar");
                }
                self.last_pos = Some(p);
                State::AfterPosition
            }
            (
                State::AfterPosition | State::AfterInstrument { note_done: true },
                Token::Instrument(_),
            ) => State::AfterInstrument { note_done: false },
            (State::AfterInstrument { .. }, Token::Pitch(_)) => State::AfterPitch,
            (State::AfterPitch, Token::Duration(_)) => State::AfterDuration,
            (State::AfterDuration, Token::Velocity(_)) => {
                State::AfterInstrument { note_done: true }
            }
            (
                State::BarStart
                | State::AfterTimeSig
                | State::AfterTempo
                | State::AfterInstrument { note_done: true },
                Token::Bar,
            ) => {
                self.last_pos = None;
                State::BarStart
            }
            (s, _) => return Err(expected(s)),
        };
        Ok(())
    }
}

/// Checks a whole sequence against the [`Grammar`]; the first fault is named with
/// its 1-based position.
pub fn check_grammar(tokens: &[Token], vocab: &Vocab) -> Result<(), DecodeError> {
    let mut grammar = Grammar::new(vocab);
    for (i, &tok) in tokens.iter().enumerate() {
        grammar.accept(tok).map_err(|reason| DecodeError {
            position: i + 1,
            token: tok.to_string(),
            reason: reason.to_string(),
        })?;
    }
    if !grammar.at_bar_start() {
        return Err(DecodeError {
            position: tokens.len(),
            token: tokens.last().map_or(String::new(), |t| t.to_string()),
            reason: "the sequence ends inside a bar (no closing b-1)".to_string(),
        });
    }
    Ok(())
}

fn expected(state: State) -> &'static str {
    match state {
        State::BarStart => "expected s-, t-, o- or b-1 at the start of a bar",
        State::AfterTimeSig => "expected t-, o- or b-1 after a time signature",
        State::AfterTempo => "expected o- or b-1 after a tempo",
        State::AfterPosition => "expected i- after a position",
        State::AfterInstrument { note_done: false } => "expected p- after an instrument",
        State::AfterInstrument { note_done: true } => "expected p-, i-, o- or b-1 after a note",
        State::AfterPitch => "expected d- after a pitch",
        State::AfterDuration => "expected v- after a duration",
    }
}

/// Ticks per quarter note of a decoded score: 480 when the grid divides it (as the
/// original decoder writes), otherwise 40 ticks per position.
pub fn decode_ticks_per_beat(vocab: &Vocab) -> u32 {
    let r = vocab.pos_per_beat();
    if DECODE_TICKS_PER_BEAT % r == 0 {
        DECODE_TICKS_PER_BEAT
    } else {
        40 * r
    }
}

/// Decodes a grammatical token sequence into a score, as the original decoder
/// does: one track per instrument (drums on channel 10), a tempo event at a bar
/// start where the tempo changes and a time-signature event where the time
/// signature changes (4/4 until the first `s-` token), velocity `4 * id + 2`, and
/// durations of `dec[id]` positions. `d-0` (a note shorter than half a position)
/// becomes the longest note that still rounds to zero positions, just under half a
/// position, so it encodes as `d-0` again (the original decoder writes one position).
pub fn decode(tokens: &[Token], vocab: &Vocab) -> Result<Score, DecodeError> {
    check_grammar(tokens, vocab)?;
    let tpb = decode_ticks_per_beat(vocab);
    let ticks_per_pos = tpb as u64 / vocab.pos_per_beat() as u64;
    let ticks = |pos: u64| pos * ticks_per_pos;
    let mut score = Score {
        ticks_per_beat: tpb,
        ..Score::default()
    };
    let mut tracks: BTreeMap<u8, Vec<Note>> = BTreeMap::new();
    let (mut bar_start, mut bar_len) = (0u64, vocab.bar_positions(4, 4));
    let (mut onset, mut instrument, mut pitch, mut duration) = (0u64, 0u8, 0u8, 0u64);
    for &tok in tokens {
        match tok {
            Token::TimeSig(id) => {
                let (n, d) = time_signatures()[id as usize];
                if score
                    .time_signatures
                    .last()
                    .is_none_or(|t| (t.numerator, t.denominator) != (n, d))
                {
                    score.time_signatures.push(TimeSignature {
                        tick: ticks(bar_start),
                        numerator: n,
                        denominator: d,
                    });
                }
                bar_len = vocab.bar_positions(n, d);
            }
            Token::Tempo(id) => {
                let micros = (60_000_000.0 / tempo_bpm(id)).round() as u32;
                if score
                    .tempos
                    .last()
                    .is_none_or(|t| t.micros_per_quarter != micros)
                {
                    score.tempos.push(Tempo {
                        tick: ticks(bar_start),
                        micros_per_quarter: micros,
                    });
                }
            }
            Token::Position(p) => onset = bar_start + p as u64,
            Token::Instrument(i) => instrument = i,
            Token::Pitch(p) => pitch = p,
            Token::Duration(d) => duration = vocab.duration_positions(d),
            Token::Velocity(v) => tracks.entry(instrument).or_default().push(Note {
                start: ticks(onset),
                end: if duration == 0 {
                    ticks(onset) + (ticks_per_pos - 1) / 2
                } else {
                    ticks(onset + duration)
                },
                pitch: pitch % 128,
                velocity: velocity_value(v),
            }),
            Token::Bar => bar_start += bar_len,
        }
    }
    score.tracks = tracks
        .into_iter()
        .map(|(inst, mut notes)| {
            notes.sort();
            let is_drum = inst == DRUM_INSTRUMENT;
            Track {
                name: inst.to_string(),
                program: if is_drum { 0 } else { inst },
                is_drum,
                notes,
            }
        })
        .collect();
    Ok(score)
}

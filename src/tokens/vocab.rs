//! The REMIGEN2 vocabulary: token kinds, their value ranges, the lookup tables of
//! the time grid (time signatures, tempos, durations, velocities) and the mapping
//! between token strings and the integer ids the models see.

use std::fmt;
use std::sync::OnceLock;

/// Positions per quarter note of the REMIGEN2 grid as `reference.md` states it
/// (the original release's code uses 16: see `docs/tokens.md`).
pub const DEFAULT_POS_PER_BEAT: u32 = 12;
/// Largest supported grid resolution (positions per quarter note).
pub const MAX_POS_PER_BEAT: u32 = 32;
/// Number of tempo ids (`t-0` .. `t-48`).
pub const NUM_TEMPOS: u8 = 49;
/// Number of velocity ids (`v-0` .. `v-31`).
pub const NUM_VELOCITIES: u8 = 32;
/// Instrument id of drums.
pub const DRUM_INSTRUMENT: u8 = 128;

/// One REMIGEN2 token; its string form is `<letter>-<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Token {
    /// `s-<id>`: time signature of the bar (index into [`time_signatures`]).
    TimeSig(u8),
    /// `t-<id>`: tempo of the bar (see [`tempo_id`]).
    Tempo(u8),
    /// `o-<pos>`: onset position within the bar.
    Position(u8),
    /// `i-<id>`: instrument, the program 0..=127 or 128 for drums.
    Instrument(u8),
    /// `p-<id>`: pitch 0..=127, or 128 + pitch for drum notes.
    Pitch(u8),
    /// `d-<id>`: duration id (see [`duration_id`]).
    Duration(u8),
    /// `v-<id>`: velocity id, `velocity / 4`.
    Velocity(u8),
    /// `b-1`: end of bar.
    Bar,
}

/// Why a token string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a REMIGEN2 token ({reason})")]
pub struct TokenParseError {
    /// The offending text.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Token {
    /// The token's letter.
    pub fn letter(self) -> char {
        match self {
            Token::TimeSig(_) => 's',
            Token::Tempo(_) => 't',
            Token::Position(_) => 'o',
            Token::Instrument(_) => 'i',
            Token::Pitch(_) => 'p',
            Token::Duration(_) => 'd',
            Token::Velocity(_) => 'v',
            Token::Bar => 'b',
        }
    }

    /// The token's number.
    pub fn value(self) -> u32 {
        match self {
            Token::TimeSig(v)
            | Token::Tempo(v)
            | Token::Position(v)
            | Token::Instrument(v)
            | Token::Pitch(v)
            | Token::Duration(v)
            | Token::Velocity(v) => v as u32,
            Token::Bar => 1,
        }
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.letter(), self.value())
    }
}

/// The time-signature table: for i in 0..=6 (denominator 2^i), numerators 1..=2·2^i.
pub fn time_signatures() -> &'static [(u32, u32)] {
    static TABLE: OnceLock<Vec<(u32, u32)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=6)
            .flat_map(|i| {
                let den = 1u32 << i;
                (1..=2 * den).map(move |num| (num, den))
            })
            .collect()
    })
}

/// Reduces a time signature so that it is in the table: while the denominator is
/// above 64 and both are even, halve both; then while the numerator exceeds twice
/// the denominator, divide it by its smallest factor >= 2.
pub fn reduce_time_signature(mut num: u32, mut den: u32) -> (u32, u32) {
    while den > 64 && num % 2 == 0 && den % 2 == 0 {
        num /= 2;
        den /= 2;
    }
    while num > 2 * den {
        let factor = (2..=num).find(|f| num % f == 0).unwrap_or(num);
        num /= factor;
    }
    (num, den)
}

/// The id of a time signature after [`reduce_time_signature`], or `None` when the
/// reduced signature is still not in the table (for example a denominator of 128
/// with an odd numerator, or a denominator that is not a power of two).
pub fn time_signature_id(num: u32, den: u32) -> Option<u8> {
    let reduced = reduce_time_signature(num, den);
    time_signatures()
        .iter()
        .position(|&ts| ts == reduced)
        .map(|i| i as u8)
}

/// Tempo id: `round(log2(clamp(bpm, 16, 256) / 16) * 12)`, 0..=48.
pub fn tempo_id(bpm: f64) -> u8 {
    let bpm = if bpm.is_finite() {
        bpm.clamp(16.0, 256.0)
    } else {
        120.0
    };
    ((bpm / 16.0).log2() * 12.0).round_ties_even() as u8
}

/// The tempo in bpm that a tempo id stands for: `16 * 2^(id / 12)`.
pub fn tempo_bpm(id: u8) -> f64 {
    16.0 * 2f64.powf(id as f64 / 12.0)
}

/// Velocity id: `velocity / 4`.
pub fn velocity_id(velocity: u8) -> u8 {
    velocity.min(127) / 4
}

/// The MIDI velocity a velocity id decodes to: the middle of its bucket, `4 * id + 2`.
pub fn velocity_value(id: u8) -> u8 {
    id * 4 + 2
}

/// Number of special symbols that precede the REMIGEN2 tokens in the id space.
pub const NUM_SPECIALS: u16 = 4;
/// Id of the beginning-of-sequence symbol (fairseq's `<s>`).
pub const BOS_ID: u16 = 0;
/// Id of the padding symbol.
pub const PAD_ID: u16 = 1;
/// Id of the end-of-sequence symbol (fairseq's `</s>`).
pub const EOS_ID: u16 = 2;
/// Id of the unknown symbol.
pub const UNK_ID: u16 = 3;
/// Special symbol strings by id.
pub const SPECIALS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];

/// Token kinds in vocabulary order.
const KINDS: [char; 8] = ['b', 's', 't', 'o', 'i', 'p', 'd', 'v'];

/// The vocabulary of one grid resolution: the time grid (ticks to positions, bar
/// lengths, the duration tables) and the ids. Ids 0..=3 are fairseq's special
/// symbols (`<s>`, `<pad>`, `</s>`, `<unk>`); then every REMIGEN2 token, grouped by
/// kind in the order `b s t o i p d v` and by value within a kind.
#[derive(Debug, Clone)]
pub struct Vocab {
    pos_per_beat: u32,
    /// Duration id → positions.
    dur_dec: Vec<u64>,
    /// Positions → duration id (durations past the end take the last id).
    dur_enc: Vec<u8>,
    /// First id of each kind, in [`KINDS`] order.
    first_id: [u16; 8],
    /// Number of values of each kind.
    counts: [u32; 8],
}

impl Default for Vocab {
    fn default() -> Self {
        Self::new(DEFAULT_POS_PER_BEAT)
    }
}

impl Vocab {
    /// The vocabulary of a grid with `pos_per_beat` positions per quarter note
    /// (1..=[`MAX_POS_PER_BEAT`]; values outside are clamped).
    ///
    /// Duration tables: for i in 0..8, for j in 0..pos_per_beat, push `len(enc)` onto
    /// `dec`, then push `len(dec) - 1` onto `enc` 2^i times.
    pub fn new(pos_per_beat: u32) -> Vocab {
        let r = pos_per_beat.clamp(1, MAX_POS_PER_BEAT);
        let (mut dur_dec, mut dur_enc) = (Vec::new(), Vec::new());
        for i in 0..8 {
            for _ in 0..r {
                dur_dec.push(dur_enc.len() as u64);
                let id = (dur_dec.len() - 1) as u8;
                dur_enc.extend(std::iter::repeat_n(id, 1 << i));
            }
        }
        let counts = [
            1,
            time_signatures().len() as u32,
            NUM_TEMPOS as u32,
            8 * r,
            DRUM_INSTRUMENT as u32 + 1,
            256,
            dur_dec.len() as u32,
            NUM_VELOCITIES as u32,
        ];
        let mut first_id = [0u16; 8];
        let mut next = NUM_SPECIALS;
        for (k, &c) in counts.iter().enumerate() {
            first_id[k] = next;
            next += c as u16;
        }
        Vocab {
            pos_per_beat: r,
            dur_dec,
            dur_enc,
            first_id,
            counts,
        }
    }

    /// Positions per quarter note.
    pub fn pos_per_beat(&self) -> u32 {
        self.pos_per_beat
    }

    /// Converts ticks to grid positions: `round(ticks * pos_per_beat / ticks_per_beat)`,
    /// rounding half to even (as Python's `round`), in exact integer arithmetic.
    pub fn ticks_to_positions(&self, ticks: u64, ticks_per_beat: u32) -> u64 {
        let num = ticks as u128 * self.pos_per_beat as u128;
        let den = ticks_per_beat as u128;
        let (q, r) = (num / den, num % den);
        let q = match (2 * r).cmp(&den) {
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal => q + (q & 1),
            std::cmp::Ordering::Less => q,
        };
        q as u64
    }

    /// Bar length in positions of a (reduced) time signature:
    /// `num * 4 * pos_per_beat / den` (integer division).
    pub fn bar_positions(&self, num: u32, den: u32) -> u64 {
        num as u64 * 4 * self.pos_per_beat as u64 / den as u64
    }

    /// The longest bar in positions (2/1): the number of `o-` tokens.
    pub fn max_bar_positions(&self) -> u64 {
        8 * self.pos_per_beat as u64
    }

    /// Duration id of a duration in positions.
    pub fn duration_id(&self, positions: u64) -> u8 {
        let enc = &self.dur_enc;
        enc.get(positions as usize)
            .copied()
            .unwrap_or(enc[enc.len() - 1])
    }

    /// The duration in positions of a duration id (the shortest of its bucket).
    pub fn duration_positions(&self, id: u8) -> u64 {
        self.dur_dec[(id as usize).min(self.dur_dec.len() - 1)]
    }

    /// Number of values of a token kind.
    fn count(&self, letter: char) -> Option<u32> {
        KINDS
            .iter()
            .position(|&k| k == letter)
            .map(|k| self.counts[k])
    }

    /// Builds a token from its letter and number, checking the value range.
    pub fn token_from_parts(&self, letter: char, value: u32) -> Option<Token> {
        if letter == 'b' {
            return (value == 1).then_some(Token::Bar);
        }
        if value >= self.count(letter)? {
            return None;
        }
        let v = value as u8;
        Some(match letter {
            's' => Token::TimeSig(v),
            't' => Token::Tempo(v),
            'o' => Token::Position(v),
            'i' => Token::Instrument(v),
            'p' => Token::Pitch(v),
            'd' => Token::Duration(v),
            _ => Token::Velocity(v),
        })
    }

    /// Reads one token string such as `p-60`.
    pub fn parse(&self, s: &str) -> Result<Token, TokenParseError> {
        let err = |reason| TokenParseError {
            text: s.to_string(),
            reason,
        };
        let (letter, number) = s
            .split_once('-')
            .ok_or_else(|| err("expected <letter>-<number>"))?;
        let mut chars = letter.chars();
        let (Some(letter), None) = (chars.next(), chars.next()) else {
            return Err(err("expected a single letter before '-'"));
        };
        if !KINDS.contains(&letter) {
            return Err(err("unknown token letter; expected one of s t o i p d v b"));
        }
        let value: u32 = number
            .parse()
            .map_err(|_| err("the part after '-' is not a number"))?;
        self.token_from_parts(letter, value)
            .ok_or_else(|| err("value out of range for this token kind"))
    }

    /// Number of ids, specials included.
    pub fn len(&self) -> usize {
        NUM_SPECIALS as usize + self.counts.iter().sum::<u32>() as usize
    }

    /// Always false: the vocabulary has its specials at least.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The id of a token.
    pub fn id(&self, token: Token) -> u16 {
        let k = KINDS
            .iter()
            .position(|&k| k == token.letter())
            .expect("known kind");
        let offset = if token == Token::Bar {
            0
        } else {
            token.value() as u16
        };
        self.first_id[k] + offset
    }

    /// The token of an id, or `None` for a special symbol or an id out of range.
    pub fn token(&self, id: u16) -> Option<Token> {
        let k = self.first_id.iter().rposition(|&f| f <= id)?;
        if id < NUM_SPECIALS {
            return None;
        }
        self.token_from_parts(
            KINDS[k],
            (id - self.first_id[k]) as u32 + u32::from(KINDS[k] == 'b'),
        )
    }

    /// Every REMIGEN2 token in id order.
    pub fn tokens(&self) -> Vec<Token> {
        (NUM_SPECIALS..self.len() as u16)
            .filter_map(|id| self.token(id))
            .collect()
    }

    /// The string form of an id (special symbols included).
    pub fn symbol(&self, id: u16) -> String {
        match self.token(id) {
            Some(t) => t.to_string(),
            None => SPECIALS.get(id as usize).unwrap_or(&"<unk>").to_string(),
        }
    }

    /// The vocabulary in fairseq's `dict.txt` format: one `token 1` line per
    /// REMIGEN2 token (fairseq adds its four specials itself).
    pub fn to_fairseq(&self) -> String {
        self.tokens().iter().map(|t| format!("{t} 1\n")).collect()
    }
}

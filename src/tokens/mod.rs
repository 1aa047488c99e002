//! The REMIGEN2 token representation of the original Museformer release: the
//! vocabulary ([`vocab`]), the encoder from a [`Score`](crate::midi::Score)
//! ([`encode`]), the decoder back to a score ([`decode`]) and key finding for key
//! normalization ([`key`]). `docs/tokens.md` documents every token kind and option.

pub mod decode;
pub mod encode;
pub mod key;
pub mod release;
pub mod vocab;

pub use crate::midi::Compat;
pub use decode::{
    check_grammar, decode, decode_ticks_per_beat, parse_tokens, DecodeError, Grammar,
};
pub use encode::{encode, EncodeError, EncodeOptions, InstrumentOrder, LMD6_ORDER};
pub use vocab::{Token, Vocab};

/// Joins tokens into one line of space-separated token strings.
pub fn to_text(tokens: &[Token]) -> String {
    let mut out = String::with_capacity(tokens.len() * 5);
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&t.to_string());
    }
    out
}

#[cfg(test)]
mod tests;

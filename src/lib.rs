//! Museformer experiment suite: the library behind the `museformer` binary.
//!
//! Data flows one way: MIDI files ([`midi`]) → REMIGEN2 tokens ([`tokens`]) →
//! prepared datasets ([`data`]) → structure statistics, models, evaluation.

pub mod midi;
pub mod tokens;
pub mod data;
pub mod structure;

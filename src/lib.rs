//! Museformer experiment suite: the library behind the `museformer` binary.
//!
//! Data flows one way: MIDI files ([`midi`]) → REMIGEN2 tokens ([`tokens`]) →
//! prepared datasets ([`data`]) → structure statistics ([`structure`]), models
//! ([`model`], [`baselines`], built through [`registry`]), training ([`train`]),
//! evaluation ([`eval`]); [`pipeline`] runs a suite of experiments as cached stages
//! and [`report`] writes the paper's tables and figures.

pub mod allocator;
#[path = "../baselines/mod.rs"]
pub mod baselines;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod format;
pub mod inspect;
pub mod io;
pub mod listening;
pub mod midi;
pub mod model;
pub mod pipeline;
pub mod plot;
pub mod progress;
pub mod provenance;
pub mod registry;
pub mod report;
pub mod run;
pub mod structure;
pub mod tokens;
pub mod train;

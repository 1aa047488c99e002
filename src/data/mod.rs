//! Prepared datasets: configuration ([`config`]), the LMD6 normalization
//! ([`normalize`]), preparation from a MIDI folder ([`prepare`]) and the
//! memory-mapped token store the trainer and statistics read ([`store`]).

pub mod batch;
pub mod config;
pub mod normalize;
pub mod prepare;
pub mod store;

pub use config::{DatasetConfig, SplitRule};
pub use prepare::{prepare, Manifest, PrepareOutcome};
pub use store::{Split, TokenStore};

//! The four baselines of the paper's Section 4.1, one file each, compiled into the
//! library. Each implements [`crate::model::LanguageModel`] like Museformer does and
//! defines its own section of an experiment's `model:` (its `*Config`); they depend
//! on `crate::model` only, and the registry (`src/registry.rs`) builds them.

pub mod linear_transformer;
pub mod longformer;
pub mod music_transformer;
pub mod transformer_xl;

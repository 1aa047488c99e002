//! The four baselines of the paper's Section 4.1, one file each, compiled into the
//! library and built through the model registry ([`crate::model::build`]). Each
//! implements [`crate::model::LanguageModel`] like Museformer does.

pub mod linear_transformer;
pub mod longformer;
pub mod music_transformer;
pub mod transformer_xl;

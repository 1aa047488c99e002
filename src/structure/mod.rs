//! Structure statistics (the paper's Section 3.3 and Eq. 6): the notes of each bar
//! ([`notes`]), bar similarity and the similarity distribution of a corpus, the
//! distance between distributions and the similarity error ([`similarity`]), the
//! choice of fine-grained bars ([`select`]), the corpora they read ([`input`]), the
//! tables and provenance they write ([`tables`]), figures ([`plot`]) and the
//! `museformer stats` commands ([`commands`]; their flags are in `crate::cli`). `docs/structure.md` explains how to
//! read the outputs.

pub mod commands;
pub mod input;
pub mod notes;
pub mod plot;
pub mod select;
pub mod similarity;
pub mod tables;

pub use notes::{BarNote, InstrumentSelection, SongBars, TokenTable};
pub use select::{select_bars, BarSelection, PAPER_FINE_BARS};
pub use similarity::{
    bar_similarity, distribution_distance, similarity_distribution, similarity_error,
    similarity_error_bootstrap, similarity_matrix, BootstrapInterval, Distribution,
    DistributionDistance, IntervalStats, SimilarityError, StructureError,
};

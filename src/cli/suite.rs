//! `reproduce`, `report`.

use anyhow::Result;
use clap::Args;
use std::fmt;
use std::path::PathBuf;

/// Where a suite's stages and reports go.
#[derive(Args)]
pub struct SuiteFolders {
    /// Folder of the stages' work: records, run folders, generated pieces
    /// (`<work>/<suite>/`).
    #[arg(long, default_value = "runs/suites")]
    work: PathBuf,
    /// Folder of the reports (`<results>/<suite>/`).
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

#[derive(Args)]
pub struct ReproduceArgs {
    /// Suite file.
    #[arg(default_value = "experiments/suites/mini.yaml")]
    suite: PathBuf,
    /// Redo a stage even when cached: a stage name (`train:museformer`,
    /// `similarity`) or a kind (prepare, similarity, train, eval, generate, se,
    /// report); repeatable.
    #[arg(long, value_name = "STAGE")]
    force: Vec<String>,
    #[command(flatten)]
    folders: SuiteFolders,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Suite file.
    #[arg(default_value = "experiments/suites/mini.yaml")]
    suite: PathBuf,
    #[command(flatten)]
    folders: SuiteFolders,
    /// A listening test's ratings CSV: adds Tables 2 and 3 (the suite's
    /// `reference` row against each other row; see `museformer stats listening`).
    #[arg(long)]
    ratings: Option<PathBuf>,
    /// The listening kit's key.csv, when the ratings name anonymous pieces.
    #[arg(long, requires = "ratings")]
    key: Option<PathBuf>,
    /// The rating scale MIN..MAX of the ratings.
    #[arg(long, requires = "ratings", default_value = "1..10")]
    scale: crate::listening::Scale,
}

impl fmt::Display for crate::pipeline::Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stages run, {} cached, in {:.2} s; report: {}",
            self.ran.len(),
            self.cached.len(),
            self.seconds,
            self.results.display()
        )
    }
}

pub fn reproduce(a: ReproduceArgs) -> Result<()> {
    let outcome = crate::pipeline::reproduce(&crate::pipeline::Options {
        suite: a.suite,
        work: a.folders.work,
        results: a.folders.results,
        force: a.force,
    })?;
    println!("{outcome}");
    Ok(())
}

pub fn report(a: ReportArgs) -> Result<()> {
    let ratings = a.ratings.map(|ratings| crate::pipeline::Ratings {
        ratings,
        key: a.key,
        scale: a.scale,
    });
    let files = crate::pipeline::report(
        &a.suite,
        &a.folders.work,
        &a.folders.results,
        ratings.as_ref(),
    )?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

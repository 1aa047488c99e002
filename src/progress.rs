//! One progress display for the whole process. Commands that run several stages
//! (`museformer reproduce`) [`install`] a [`MultiProgress`]; every progress bar the
//! library makes goes through [`bar`], which attaches it under the installed display
//! (so the trainer's and the generator's bars show beneath the overall bar instead
//! of drawing over it), or draws it on its own when none is installed. Lines printed
//! while bars are shown go through [`println`].

use indicatif::{MultiProgress, ProgressBar};
use std::sync::OnceLock;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Installs the process-wide display (once; later calls return the first).
pub fn install() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// A progress bar of `len` steps, under the installed display when there is one.
pub fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    match MULTI.get() {
        Some(multi) => multi.add(bar),
        None => bar,
    }
}

/// Prints a line on stdout, hiding the bars meanwhile so the line is not drawn over.
pub fn println(line: &str) {
    match MULTI.get() {
        Some(multi) => multi.suspend(|| println!("{line}")),
        None => println!("{line}"),
    }
}

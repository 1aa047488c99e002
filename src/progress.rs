//! One progress display for the whole process. Commands that run several stages
//! (`museformer reproduce`) [`install`] a [`MultiProgress`]; every progress bar the
//! library makes comes from [`bar`], in one style, and is attached under the
//! installed display (so the trainer's and the generator's bars show beneath the
//! overall bar instead of drawing over it), or drawn on its own when none is
//! installed. Lines printed while bars are shown go through [`println`].

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::OnceLock;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// Installs the process-wide display (once; later calls return the first).
pub fn install() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// What a bar counts, which decides how its position is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Whole units with a name (`12/40 files`), and their rate.
    Units(&'static str),
    /// A weighted total shown as a percentage (the suite's stages).
    Percent,
}

/// A progress bar of `len` steps labelled `label` (`encoding`, `step`, `suite
/// mini`), in the one style of the program, under the installed display when
/// there is one. `set_message` adds a detail after the count.
pub fn bar(len: u64, label: &str, counter: Counter) -> ProgressBar {
    let count = match counter {
        Counter::Units(unit) => format!("{{pos}}/{{len}} {unit} {{per_sec}}"),
        Counter::Percent => "{percent:>3}%".to_string(),
    };
    let template = format!(
        "{{spinner}} {{prefix}} [{{bar:30}}] {count} {{msg}} ({{elapsed}} elapsed, {{eta}} left)"
    );
    let bar = ProgressBar::new(len).with_style(
        ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
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

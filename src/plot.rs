//! What every figure shares: the bundled font ([`FONT`], [`register_font`]), the
//! series palette ([`COLORS`]), and the one place that picks the PNG or SVG
//! backend from a file's extension ([`save`]).

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// Font family registered for every figure (DejaVu Sans, shipped in `src/assets/`).
pub const FONT: &str = "sans-serif";

/// Series colors (Tableau 10), cycled.
pub const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the bundled font under [`FONT`] (once per process).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the bundled DejaVuSans.ttf is not a valid font"));
    });
}

/// A drawing error as an `anyhow` error.
pub fn drawing<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("cannot draw the figure: {e}")
}

/// A figure: draws itself on a drawing area of any backend.
pub trait Figure {
    /// Draws on `root` (which [`save`] then writes out).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Draws `figure` into `path`, a PNG or SVG file by its extension, `size` pixels.
pub fn save(path: &Path, size: (u32, u32), figure: &impl Figure) -> Result<()> {
    register_font();
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let result = match ext.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, size).into_drawing_area();
            figure
                .draw(&root)
                .and_then(|()| root.present().map_err(drawing))
        }
        Some("svg") => {
            let root = SVGBackend::new(path, size).into_drawing_area();
            figure
                .draw(&root)
                .and_then(|()| root.present().map_err(drawing))
        }
        _ => bail!("{}: a figure must end in .png or .svg", path.display()),
    };
    result.with_context(|| format!("cannot draw {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Square;

    impl Figure for Square {
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
            root.fill(&WHITE).map_err(drawing)?;
            root.draw(&Text::new("x", (5, 5), (FONT, 12).into_font()))
                .map_err(drawing)
        }
    }

    #[test]
    fn the_extension_picks_the_backend() {
        let dir = tempfile::tempdir().unwrap();
        for ext in ["png", "svg", "PNG"] {
            let p = dir.path().join(format!("f.{ext}"));
            save(&p, (20, 20), &Square).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 0);
        }
        let err = format!(
            "{:#}",
            save(&dir.path().join("f.gif"), (20, 20), &Square).unwrap_err()
        );
        assert!(
            err.contains("f.gif") && err.contains(".png or .svg"),
            "{err}"
        );
    }
}

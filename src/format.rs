//! Tables as text: one polars [`DataFrame`] rendered as a Markdown table
//! ([`markdown`]) or a LaTeX `table` float ([`latex`]), so every table the program
//! writes has the same look in its `.md` and `.tex` forms (its `.csv` comes from
//! polars' `CsvWriter`, see [`write_csv`]).
//!
//! How cells print is the caller's [`Style`]: strings verbatim, integers in full,
//! floats in Rust's shortest round-trip form ([`Style::PLAIN`]) or with a fixed
//! number of decimals ([`Style::fixed`]), missing values (nulls and non-finite
//! floats) as the style's `missing` text. Callers that want `mean ± std` put
//! formatted string columns into the frame they pass. Numeric columns are
//! right-aligned, the others left-aligned.

use anyhow::Result;
use polars::prelude::*;
use std::path::Path;

/// How cells are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style<'a> {
    /// Decimals of floating-point cells; `None`: Rust's shortest round-trip form.
    pub decimals: Option<usize>,
    /// The text of a missing cell (a null or a non-finite float).
    pub missing: &'a str,
}

impl Style<'static> {
    /// Cells as they are: floats in shortest round-trip form, missing cells empty.
    pub const PLAIN: Style<'static> = Style {
        decimals: None,
        missing: "",
    };

    /// Floats with `decimals` decimals, missing cells as an en dash (`–`, `--` in
    /// LaTeX): the look of the report's Table 1.
    pub const fn fixed(decimals: usize) -> Style<'static> {
        Style {
            decimals: Some(decimals),
            missing: "–",
        }
    }
}

impl Style<'_> {
    /// One cell as text.
    pub fn cell(&self, value: &AnyValue) -> String {
        match value {
            AnyValue::Null => self.missing.to_string(),
            AnyValue::String(s) => (*s).to_string(),
            AnyValue::StringOwned(s) => s.to_string(),
            AnyValue::Float64(f) => self.float(*f),
            AnyValue::Float32(f) => self.float(f64::from(*f)),
            other => other.str_value().into_owned(),
        }
    }

    fn float(&self, f: f64) -> String {
        match (f.is_finite(), self.decimals) {
            (false, _) => self.missing.to_string(),
            (true, Some(d)) => format!("{f:.d$}"),
            (true, None) => format!("{f}"),
        }
    }
}

/// A frame as text.
struct TextTable {
    /// Column names.
    names: Vec<String>,
    /// Cells, row by row.
    rows: Vec<Vec<String>>,
    /// Whether each column is numeric.
    numeric: Vec<bool>,
}

/// The frame's column names and its cells as text, row by row.
fn text_cells(df: &DataFrame, style: &Style) -> Result<TextTable> {
    let names = df.columns().iter().map(|c| c.name().to_string()).collect();
    let mut numeric: Vec<bool> = df
        .columns()
        .iter()
        .map(|c| c.dtype().is_primitive_numeric())
        .collect();
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = df
            .columns()
            .iter()
            .map(|c| c.get(i).map(|v| style.cell(&v)))
            .collect::<PolarsResult<Vec<String>>>()
            .map_err(|e| anyhow::anyhow!("cannot read row {i} of a table: {e}"))?;
        rows.push(row);
    }
    // A text column of numbers (`3.35 ± 0.02`, `5.1*`) aligns like numbers: every
    // cell missing or starting with a digit.
    for (k, c) in df.columns().iter().enumerate() {
        if c.dtype() == &DataType::String {
            numeric[k] = rows.iter().all(|r: &Vec<String>| {
                r[k] == style.missing || r[k].starts_with(|ch: char| ch.is_ascii_digit())
            });
        }
    }
    Ok(TextTable {
        names,
        rows,
        numeric,
    })
}

/// A GitHub-flavoured Markdown table: a header row, an alignment row (`---:` for
/// numeric columns) and one line per row; `|` inside cells is escaped.
pub fn markdown(df: &DataFrame, style: &Style) -> Result<String> {
    let TextTable {
        names,
        rows,
        numeric,
    } = text_cells(df, style)?;
    let escape = |s: &str| s.replace('|', "\\|");
    let line = |cells: &[String]| {
        let inner: Vec<String> = cells.iter().map(|c| escape(c)).collect();
        format!("| {} |\n", inner.join(" | "))
    };
    let mut out = line(&names);
    let rule: Vec<&str> = numeric
        .iter()
        .map(|&n| if n { "---:" } else { "---" })
        .collect();
    out.push_str(&format!("| {} |\n", rule.join(" | ")));
    for row in &rows {
        out.push_str(&line(row));
    }
    Ok(out)
}

/// Escapes LaTeX's special characters in text; `±`, `−` (minus), `–` (en dash)
/// and `×` become `$\pm$`, `$-$`, `--` and `$\times$`, so pdfLaTeX needs no
/// Unicode setup.
pub fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '±' => out.push_str("$\\pm$"),
            '−' => out.push_str("$-$"),
            '–' => out.push_str("--"),
            '×' => out.push_str("$\\times$"),
            _ => out.push(ch),
        }
    }
    out
}

/// A LaTeX `table` float holding a `tabular` with booktabs rules (`\toprule`,
/// `\midrule`, `\bottomrule`: the document needs `\usepackage{booktabs}`), the
/// given caption and, when given, a `\label`; every cell and the caption are
/// escaped with [`latex_escape`].
pub fn latex(df: &DataFrame, style: &Style, caption: &str, label: Option<&str>) -> Result<String> {
    let TextTable {
        names,
        rows,
        numeric,
    } = text_cells(df, style)?;
    let align: String = numeric.iter().map(|&n| if n { 'r' } else { 'l' }).collect();
    let line = |cells: &[String]| {
        let inner: Vec<String> = cells.iter().map(|c| latex_escape(c)).collect();
        format!("{} \\\\\n", inner.join(" & "))
    };
    let mut out = String::from("\\begin{table}[t]\n\\centering\n");
    out.push_str(&format!("\\caption{{{}}}\n", latex_escape(caption)));
    if let Some(label) = label {
        out.push_str(&format!("\\label{{{label}}}\n"));
    }
    out.push_str(&format!("\\begin{{tabular}}{{{align}}}\n\\toprule\n"));
    out.push_str(&line(&names));
    out.push_str("\\midrule\n");
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    Ok(out)
}

/// Writes a frame as CSV with polars' `CsvWriter` (header row, numbers in full,
/// empty cells for missing values, cells holding commas or quotes quoted),
/// atomically.
pub fn write_csv(path: &Path, df: &mut DataFrame) -> Result<()> {
    crate::io::write_atomic_with(path, |file| {
        CsvWriter::new(file)
            .finish(df)
            .map_err(|e| anyhow::anyhow!("{e}"))
    })
}

/// Writes `STEM.csv`, `STEM.md` and `STEM.tex` into `dir`: `csv` as data (numbers in
/// full), `display` (the same table with formatted cells) as Markdown and LaTeX in
/// [`Style::PLAIN`].
pub fn write_table(
    dir: &Path,
    stem: &str,
    csv: &mut DataFrame,
    display: &DataFrame,
    caption: &str,
) -> Result<()> {
    write_csv(&dir.join(format!("{stem}.csv")), csv)?;
    let style = Style::PLAIN;
    for (ext, text) in [
        ("md", markdown(display, &style)?),
        ("tex", latex(display, &style, caption, None)?),
    ] {
        crate::io::write_atomic(&dir.join(format!("{stem}.{ext}")), text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df!(
            "model" => ["A_b", "x|y"],
            "score" => [Some(1.5), None],
            "n" => [3u32, 10],
        )
        .unwrap()
    }

    #[test]
    fn markdown_aligns_numbers_right_and_escapes_pipes() {
        assert_eq!(
            markdown(&frame(), &Style::PLAIN).unwrap(),
            "| model | score | n |\n| --- | ---: | ---: |\n| A_b | 1.5 | 3 |\n| x\\|y |  | 10 |\n"
        );
    }

    #[test]
    fn latex_escapes_specials_and_uses_booktabs() {
        let tex = latex(
            &frame(),
            &Style::PLAIN,
            "Scores & 50% ± 1, n − 1, 1–10",
            None,
        )
        .unwrap();
        assert_eq!(
            tex,
            "\\begin{table}[t]\n\\centering\n\\caption{Scores \\& 50\\% $\\pm$ 1, n $-$ 1, 1--10}\n\
             \\begin{tabular}{lrr}\n\\toprule\nmodel & score & n \\\\\n\\midrule\n\
             A\\_b & 1.5 & 3 \\\\\nx|y &  & 10 \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n"
        );
    }

    fn table1_like() -> DataFrame {
        df!(
            "model" => ["A_1", "B & C"],
            "PPL@256" => [Some(1.234_f64), None],
        )
        .unwrap()
    }

    #[test]
    fn fixed_decimals_mark_empty_cells_with_a_dash() {
        let md = markdown(&table1_like(), &Style::fixed(2)).unwrap();
        assert_eq!(
            md,
            "| model | PPL@256 |\n| --- | ---: |\n| A_1 | 1.23 |\n| B & C | – |\n"
        );
        let inf = df!("x" => [f64::INFINITY, 2.0]).unwrap();
        assert_eq!(
            markdown(&inf, &Style::fixed(1)).unwrap(),
            "| x |\n| ---: |\n| – |\n| 2.0 |\n"
        );
    }

    #[test]
    fn fixed_decimals_in_latex_with_a_label() {
        let tex = latex(&table1_like(), &Style::fixed(2), "PPL 100%", Some("tab:t")).unwrap();
        assert!(tex.contains("\\begin{tabular}{lr}"), "{tex}");
        assert!(tex.contains("A\\_1 & 1.23 \\\\"), "{tex}");
        assert!(tex.contains("B \\& C & -- \\\\"), "{tex}");
        assert!(
            tex.contains("\\caption{PPL 100\\%}\n\\label{tab:t}\n"),
            "{tex}"
        );
        assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));
    }
}

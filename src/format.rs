//! Tables as text: one polars [`DataFrame`] rendered as a Markdown table
//! ([`markdown`]) or a LaTeX `table` float ([`latex`]), so every table the suite
//! writes has the same look in its `.md` and `.tex` forms (its `.csv` comes from
//! polars' `CsvWriter`, see [`write_csv`]).
//!
//! Cells print as they are: strings verbatim, integers in full, floats in Rust's
//! shortest round-trip form, missing values as empty cells. Callers that want a
//! fixed number of decimals (or `mean ± std`) put formatted string columns into the
//! frame they pass. Numeric columns are right-aligned, the others left-aligned.

use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::Path;

/// One cell as text: strings verbatim, numbers by `Display`, missing values empty.
pub fn cell(value: &AnyValue) -> String {
    match value {
        AnyValue::Null => String::new(),
        AnyValue::String(s) => (*s).to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        AnyValue::Float64(f) => format_float(*f),
        AnyValue::Float32(f) => format_float(f64::from(*f)),
        other => other.str_value().into_owned(),
    }
}

/// A float in Rust's shortest round-trip form; non-finite values are empty.
fn format_float(f: f64) -> String {
    if f.is_finite() {
        format!("{f}")
    } else {
        String::new()
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
fn text_cells(df: &DataFrame) -> Result<TextTable> {
    let names = df.columns().iter().map(|c| c.name().to_string()).collect();
    let numeric = df
        .columns()
        .iter()
        .map(|c| c.dtype().is_primitive_numeric())
        .collect();
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row = df
            .columns()
            .iter()
            .map(|c| c.get(i).map(|v| cell(&v)))
            .collect::<PolarsResult<Vec<String>>>()
            .map_err(|e| anyhow::anyhow!("cannot read row {i} of a table: {e}"))?;
        rows.push(row);
    }
    Ok(TextTable {
        names,
        rows,
        numeric,
    })
}

/// A GitHub-flavoured Markdown table: a header row, an alignment row (`---:` for
/// numeric columns) and one line per row; `|` inside cells is escaped.
pub fn markdown(df: &DataFrame) -> Result<String> {
    let TextTable {
        names,
        rows,
        numeric,
    } = text_cells(df)?;
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
/// `\midrule`, `\bottomrule`: the document needs `\usepackage{booktabs}`) and the
/// given caption; every cell and the caption are escaped with [`latex_escape`].
pub fn latex(df: &DataFrame, caption: &str) -> Result<String> {
    let TextTable {
        names,
        rows,
        numeric,
    } = text_cells(df)?;
    let align: String = numeric.iter().map(|&n| if n { 'r' } else { 'l' }).collect();
    let line = |cells: &[String]| {
        let inner: Vec<String> = cells.iter().map(|c| latex_escape(c)).collect();
        format!("{} \\\\\n", inner.join(" & "))
    };
    let mut out = String::from("\\begin{table}[t]\n\\centering\n");
    out.push_str(&format!("\\caption{{{}}}\n", latex_escape(caption)));
    out.push_str(&format!("\\begin{{tabular}}{{{align}}}\n\\toprule\n"));
    out.push_str(&line(&names));
    out.push_str("\\midrule\n");
    for row in &rows {
        out.push_str(&line(row));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    Ok(out)
}

/// Writes a frame as CSV with polars' `CsvWriter` (header row, empty cells for
/// missing values).
pub fn write_csv(path: &Path, df: &mut DataFrame) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    CsvWriter::new(file)
        .finish(df)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// Writes `STEM.csv`, `STEM.md` and `STEM.tex` into `dir`: `csv` as data (numbers in
/// full), `display` (the same table with formatted cells) as Markdown and LaTeX.
pub fn write_table(
    dir: &Path,
    stem: &str,
    csv: &mut DataFrame,
    display: &DataFrame,
    caption: &str,
) -> Result<()> {
    write_csv(&dir.join(format!("{stem}.csv")), csv)?;
    for (ext, text) in [
        ("md", markdown(display)?),
        ("tex", latex(display, caption)?),
    ] {
        let path = dir.join(format!("{stem}.{ext}"));
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
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
            markdown(&frame()).unwrap(),
            "| model | score | n |\n| --- | ---: | ---: |\n| A_b | 1.5 | 3 |\n| x\\|y |  | 10 |\n"
        );
    }

    #[test]
    fn latex_escapes_specials_and_uses_booktabs() {
        let tex = latex(&frame(), "Scores & 50% ± 1, n − 1, 1–10").unwrap();
        assert_eq!(
            tex,
            "\\begin{table}[t]\n\\centering\n\\caption{Scores \\& 50\\% $\\pm$ 1, n $-$ 1, 1--10}\n\
             \\begin{tabular}{lrr}\n\\toprule\nmodel & score & n \\\\\n\\midrule\n\
             A\\_b & 1.5 & 3 \\\\\nx|y &  & 10 \\\\\n\\bottomrule\n\\end{tabular}\n\\end{table}\n"
        );
    }
}

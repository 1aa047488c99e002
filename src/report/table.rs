//! Tables as files: a polars `DataFrame` written as CSV (polars' writer), Markdown
//! and LaTeX (booktabs). Floating-point cells are printed with a fixed number of
//! decimals; empty cells (nulls) as an en dash in Markdown and LaTeX and as nothing
//! in CSV.

use anyhow::{Context, Result};
use polars::prelude::*;
use std::path::Path;

/// The text of one cell.
fn cell(value: AnyValue, decimals: usize) -> String {
    match value {
        AnyValue::Null => "–".to_string(),
        AnyValue::Float64(x) => format!("{x:.decimals$}"),
        AnyValue::Float32(x) => format!("{x:.decimals$}"),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// The cells of a frame, row by row.
fn cells(df: &DataFrame, decimals: usize) -> Result<Vec<Vec<String>>> {
    (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| Ok(cell(c.get(i)?, decimals)))
                .collect()
        })
        .collect()
}

fn headers(df: &DataFrame) -> Vec<String> {
    df.columns().iter().map(|c| c.name().to_string()).collect()
}

/// A Markdown table (GitHub style): text left-aligned, numbers right-aligned.
pub fn to_markdown(df: &DataFrame, decimals: usize) -> Result<String> {
    let mut out = format!("| {} |\n|", headers(df).join(" | "));
    for c in df.columns() {
        out.push_str(if c.dtype().is_primitive_numeric() {
            " ---: |"
        } else {
            " --- |"
        });
    }
    out.push('\n');
    for row in cells(df, decimals)? {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    Ok(out)
}

/// Escapes LaTeX's special characters in text.
pub fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '\\' => out.push_str("\\textbackslash{}"),
            '–' => out.push_str("--"),
            _ => out.push(c),
        }
    }
    out
}

/// A LaTeX `table` with a booktabs `tabular` and a caption (needs
/// `\usepackage{booktabs}`).
pub fn to_latex(df: &DataFrame, decimals: usize, caption: &str, label: &str) -> Result<String> {
    let align: String = df
        .columns()
        .iter()
        .map(|c| {
            if c.dtype().is_primitive_numeric() {
                'r'
            } else {
                'l'
            }
        })
        .collect();
    let row = |cells: Vec<String>| {
        cells
            .iter()
            .map(|c| latex_escape(c))
            .collect::<Vec<_>>()
            .join(" & ")
            + " \\\\\n"
    };
    let mut out = format!(
        "\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\\label{{{label}}}\n\\begin{{tabular}}{{{align}}}\n\\toprule\n",
        latex_escape(caption)
    );
    out.push_str(&row(headers(df)));
    out.push_str("\\midrule\n");
    for r in cells(df, decimals)? {
        out.push_str(&row(r));
    }
    out.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    Ok(out)
}

/// Writes a frame as CSV.
pub fn write_csv(df: &mut DataFrame, path: &Path) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    CsvWriter::new(file)
        .finish(df)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> DataFrame {
        df!(
            "model" => ["A_1", "B & C"],
            "PPL@256" => [Some(1.234_f64), None],
        )
        .unwrap()
    }

    #[test]
    fn markdown_aligns_numbers_and_marks_empty_cells() {
        let md = to_markdown(&frame(), 2).unwrap();
        assert_eq!(
            md,
            "| model | PPL@256 |\n| --- | ---: |\n| A_1 | 1.23 |\n| B & C | – |\n"
        );
    }

    #[test]
    fn latex_escapes_and_uses_booktabs() {
        let tex = to_latex(&frame(), 2, "PPL 100%", "tab:t").unwrap();
        assert!(tex.contains("\\begin{tabular}{lr}"), "{tex}");
        assert!(tex.contains("A\\_1 & 1.23 \\\\"), "{tex}");
        assert!(tex.contains("B \\& C & -- \\\\"), "{tex}");
        assert!(tex.contains("\\caption{PPL 100\\%}"), "{tex}");
        assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"));
    }
}

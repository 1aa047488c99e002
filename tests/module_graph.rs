//! The library's top-level modules depend on each other in one direction: this test
//! reads every `crate::…` path (and `super::…` from a nested file) outside test
//! modules and comments, fails on a cycle, and checks that the graph written in
//! `docs/architecture.md` (between the `module-graph` markers) is the code's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments, string contents, and without what
/// follows its first `#[cfg(test)]` (test modules close the files here).
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut code = String::new();
        let mut in_str = false;
        let mut prev = ' ';
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if !in_str && c == '/' && chars.get(i + 1) == Some(&'/') {
                break;
            }
            if c == '"' && prev != '\\' {
                in_str = !in_str;
            } else if !in_str {
                code.push(c);
            }
            prev = c;
            i += 1;
        }
        out.push_str(&code);
        out.push('\n');
    }
    out
}

/// Names after `crate::` in `code`, including each name of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(name);
        }
    }
    names
}

/// The top-level module a file belongs to (`src/train/loader.rs` → `train`,
/// `baselines/longformer.rs` → `baselines`), `None` for the crate root files.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?;
    if first == "baselines" {
        return Some("baselines".into());
    }
    let second = parts.next()?;
    if second == "lib.rs" || second == "main.rs" {
        return None;
    }
    Some(second.trim_end_matches(".rs").to_string())
}

fn code_graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("baselines"), &mut files);
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in files {
        let Some(from) = module_of(root, &file) else {
            continue;
        };
        assert!(
            modules.contains(&from),
            "{} belongs to `{from}`, which src/lib.rs does not declare",
            file.display()
        );
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        for to in crate_paths(&code) {
            if to != from && modules.contains(&to) {
                graph.get_mut(&from).unwrap().insert(to);
            }
        }
    }
    graph
}

/// A cycle of the graph, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in &graph[node] {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The graph as `docs/architecture.md` writes it: one line per module,
/// `module → a, b, c` (or `module → (nothing)`).
fn render(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, deps)| {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            if deps.is_empty() {
                format!("{m} → (nothing)")
            } else {
                format!("{m} → {}", deps.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_have_no_cycle_and_the_documented_graph_is_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = code_graph(root);
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the modules depend on each other in a cycle: {}",
            cycle.join(" → ")
        );
    }
    let doc = std::fs::read_to_string(root.join("docs/architecture.md")).unwrap();
    let begin = "<!-- module-graph: begin -->";
    let end = "<!-- module-graph: end -->";
    let i = doc
        .find(begin)
        .expect("docs/architecture.md has the module-graph markers");
    let j = doc
        .find(end)
        .expect("docs/architecture.md has the module-graph end marker");
    let written: String = doc[i + begin.len()..j]
        .lines()
        .filter(|l| l.contains('→'))
        .collect::<Vec<_>>()
        .join("\n");
    let code = render(&graph);
    assert_eq!(
        written, code,
        "docs/architecture.md's module graph is not the code's; write this between the markers:\n{code}"
    );
}

#[test]
fn the_reader_sees_paths_and_finds_cycles() {
    let code = code_of(
        "use crate::a::x;\nuse crate::{b, c::d};\n// crate::e\nlet s = \"crate::f\";\nnot_crate::g\n#[cfg(test)]\nuse crate::h;",
    );
    assert_eq!(crate_paths(&code), ["a", "b", "c"]);
    let mut g: Graph = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x"), ("w", "x")] {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    }
    let cycle = find_cycle(&g).unwrap();
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
    g.get_mut("z").unwrap().clear();
    assert!(find_cycle(&g).is_none());
}

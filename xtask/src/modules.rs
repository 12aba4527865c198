//! `cargo xtask modules`: module cycles inside each crate of the workspace.
//!
//! Every source file under `crates/*/src` belongs to a top-level module
//! (`src/a.rs` and `src/a/**` are `a`; `lib.rs`, `main.rs` and `bin/` are
//! the root, which may import anything). A module imports another when it
//! names `crate::other` (in a `use` or inline, also inside a
//! `use crate::{..}` group). A set of modules that import each other in a
//! circle is reported; `#[cfg(test)] mod .. { .. }` blocks do not count.
//! The rule (docs/architecture.md): no module imports, directly or through
//! others, a module that imports it back.
//!
//! The scan is textual, like the reader it stands in for: it does not
//! parse Rust, so a `crate::x` inside a string or comment counts too
//! (conservative: it can only report a cycle that is not there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One cycle: the crate, its modules, and for each edge inside it a file
/// that makes it.
#[derive(Debug)]
pub struct Cycle {
    pub krate: String,
    pub modules: Vec<String>,
    pub edges: Vec<(String, String, PathBuf)>,
}

/// The cycles of every crate under `workspace/crates`.
pub fn cycles(workspace: &Path) -> Result<Vec<Cycle>, String> {
    let crates = workspace.join("crates");
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(&crates)
        .map_err(|e| format!("reading {}: {e}", crates.display()))?
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for dir in names {
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let krate = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut why: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
        for file in rust_files(&src)? {
            let Some(module) = top_module(&src, &file) else {
                continue;
            };
            let text = std::fs::read_to_string(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
            let text = strip_test_modules(&text);
            graph.entry(module.clone()).or_default();
            for target in crate_paths(&text) {
                if target != module && target != "self" && target != "super" {
                    why.entry((module.clone(), target.clone()))
                        .or_insert_with(|| file.clone());
                    graph.entry(module.clone()).or_default().insert(target);
                }
            }
        }
        let known: BTreeSet<String> = graph.keys().cloned().collect();
        for targets in graph.values_mut() {
            targets.retain(|t| known.contains(t));
        }
        for component in strongly_connected(&graph) {
            if component.len() < 2 {
                continue;
            }
            let inside: BTreeSet<&String> = component.iter().collect();
            let mut edges = Vec::new();
            for a in &component {
                for b in &graph[a] {
                    if inside.contains(b) {
                        let file = why.get(&(a.clone(), b.clone())).cloned().unwrap_or_default();
                        edges.push((a.clone(), b.clone(), file));
                    }
                }
            }
            out.push(Cycle {
                krate: krate.clone(),
                modules: component,
                edges,
            });
        }
    }
    Ok(out)
}

/// `cargo xtask modules`: prints the cycles; fails if there is one.
pub fn check(workspace: &Path) -> Result<(), String> {
    let found = cycles(workspace)?;
    for c in &found {
        eprintln!(
            "{}: cycle of {} modules: {}",
            c.krate,
            c.modules.len(),
            c.modules.join(" ")
        );
        for (a, b, file) in &c.edges {
            eprintln!(
                "    {a} -> {b}  ({})",
                file.strip_prefix(workspace).unwrap_or(file).display()
            );
        }
    }
    if found.is_empty() {
        eprintln!("xtask: no module cycles");
        Ok(())
    } else {
        Err(format!(
            "{} module cycle(s): each module may import only modules that do not import it back",
            found.len()
        ))
    }
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d)
            .map_err(|e| format!("reading {}: {e}", d.display()))?
            .flatten()
        {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `src/a.rs` and `src/a/**` are `a`; the crate root and binaries are `None`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_string_lossy().into_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" | "bin" => None,
        f => Some(f.strip_suffix(".rs").unwrap_or(f).to_owned()),
    }
}

/// The text without `#[cfg(test)] mod name { .. }` blocks (braces matched).
fn strip_test_modules(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        let Some(open) = test_module_brace(after) else {
            out.push_str("#[cfg(test)]");
            rest = after;
            continue;
        };
        let mut depth = 0usize;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Where the `{` of `[pub[(..)]] mod name {` starts in `s`, if `s` starts
/// with such a module (after white space).
fn test_module_brace(s: &str) -> Option<usize> {
    let body = s.trim_start();
    let mut t = body;
    if let Some(r) = t.strip_prefix("pub") {
        t = r.trim_start();
        if let Some(r) = t.strip_prefix('(') {
            t = &r[r.find(')')? + 1..];
        }
        t = t.trim_start();
    }
    let t = t.strip_prefix("mod")?;
    if !t.starts_with(char::is_whitespace) {
        return None;
    }
    let t = t.trim_start();
    let name = ident_at(t)?;
    let t = t[name.len()..].trim_start();
    t.starts_with('{').then(|| s.len() - t.len())
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(s.len(), |(i, _)| i);
    (end > 0).then(|| &s[..end])
}

/// The first path segment after every `crate::`, and every name that
/// starts an item of a `use crate::{..}` group.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = &rest[at + "crate::".len()..];
        if before_ok {
            if let Some(id) = ident_at(after) {
                out.insert(id.to_owned());
            } else if let Some(group) = after.strip_prefix('{') {
                let close = group.find("};").unwrap_or(group.len());
                let group = &group[..close];
                let mut prev = '{';
                for (i, c) in group.char_indices() {
                    if (prev == ',' || prev == '{') && (c.is_alphanumeric() || c == '_') {
                        if let Some(id) = ident_at(&group[i..]) {
                            out.insert(id.to_owned());
                        }
                    }
                    if !c.is_whitespace() {
                        prev = c;
                    }
                }
            }
        }
        rest = after;
    }
    out
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                component.sort();
                self.out.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_groups_and_test_modules() {
        let text = "use crate::a::X;\nuse crate::{b, c::Y, d::{e, f}};\nfn g() { crate::h(); }\nlet notcrate::z = 1;\n#[cfg(test)]\nmod tests { use crate::t; fn x() { {} } }\nuse crate::after;";
        let paths = crate_paths(&strip_test_modules(text));
        let names: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(names, ["a", "after", "b", "c", "d", "e", "f", "h"]);
    }

    #[test]
    fn a_circle_of_three_is_one_component() {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
            g.entry(a.into()).or_default().insert(b.into());
            g.entry(b.into()).or_default();
        }
        let big: Vec<Vec<String>> = strongly_connected(&g).into_iter().filter(|c| c.len() > 1).collect();
        assert_eq!(big, vec![vec!["a".to_owned(), "b".into(), "c".into()]]);
    }

    /// The rule of docs/architecture.md, on this workspace.
    #[test]
    fn no_crate_of_the_workspace_has_a_module_cycle() {
        // Cargo sets the variable when it runs the test too: a test binary
        // reused from a checkout elsewhere still scans this one.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let root = manifest_dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let found = cycles(&root).expect("scan");
        assert!(
            found.is_empty(),
            "module cycles: {:#?} (see `cargo xtask modules`)",
            found
        );
    }
}

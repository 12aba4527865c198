//! docs/first-processor.md shows this crate's files: every code block
//! that starts with `// <path>` must be that file, byte for byte, and the
//! guide's `Cargo.toml` must declare this crate's dependencies and the
//! workspace's dev profiles. So the guide cannot drift from the code its
//! readers copy.

use std::collections::BTreeMap;
use std::path::Path;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn guide() -> String {
    read(&crate_dir().join("../../docs/first-processor.md"))
}

/// The guide's fenced code blocks: (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.to_owned(), String::new())),
            (Some(_), Some("")) => out.extend(current.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn every_file_the_guide_shows_is_the_one_compiled() {
    let mut shown = Vec::new();
    for (info, body) in blocks(&guide()) {
        let Some(first) = body.lines().next() else { continue };
        let Some(path) = first.strip_prefix("// ").filter(|p| p.ends_with(".rs")) else {
            continue;
        };
        assert_eq!(info, "rust", "{path}");
        let file = read(&crate_dir().join(path));
        let shown_text = &body[first.len() + 1..];
        assert!(
            shown_text == file,
            "docs/first-processor.md shows a {path} that differs from examples/first-processor/{path}; \
             copy the file into the guide"
        );
        shown.push(path.to_owned());
    }
    assert_eq!(shown, ["src/lib.rs", "tests/word_count.rs", "src/main.rs"]);
}

/// `[section] -> key = value` lines of a Cargo.toml (comments and blank
/// lines dropped, `path = "..."` values replaced by `path`).
fn toml_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = line.to_owned();
            continue;
        }
        let mut line = line.to_owned();
        if let Some(start) = line.find("path = \"") {
            let end = line[start + 8..].find('"').map_or(line.len(), |e| start + 8 + e + 1);
            line.replace_range(start..end, "path");
        }
        sections.entry(current.clone()).or_default().push(line);
    }
    sections
}

#[test]
fn the_guides_cargo_toml_has_this_crates_dependencies_and_the_workspaces_profiles() {
    let guide = guide();
    let shown = blocks(&guide)
        .into_iter()
        .find(|(info, _)| info == "toml")
        .map(|(_, body)| toml_sections(&body))
        .expect("the guide shows a Cargo.toml");
    let this = toml_sections(&read(&crate_dir().join("Cargo.toml")));
    for section in ["[dependencies]", "[dev-dependencies]"] {
        assert_eq!(shown.get(section), this.get(section), "{section}");
    }
    let workspace = toml_sections(&read(&crate_dir().join("../../Cargo.toml")));
    for section in [
        "[profile.dev]",
        "[profile.dev.package.\"*\"]",
        "[profile.dev.build-override]",
    ] {
        assert!(workspace.contains_key(section), "the workspace has {section}");
        assert_eq!(shown.get(section), workspace.get(section), "{section}");
    }
}

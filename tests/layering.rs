//! The module layering the README promises: every `crate::` path in non-test code points down the
//! list below, never up or sideways. An arrow pointing back up fails here with the file and the
//! line, so the fix (move the type, not add the import) happens when the arrow is drawn.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layers, lowest first; a module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["wire", "http", "logging", "shutdown"],
    &["params"],
    &["script"],
    &["validation", "wallet"],
    &["chain"],
    &["peer"],
    &["mempool"],
    &["mining"],
    &["relay", "txgen"],
    &["config"],
    &["rpc"],
    &["node", "fuzzing"],
];

/// The one cross-cutting module: every layer records into it and it names the peer layer's label
/// enums, so it is exempt both ways.
const CROSS_CUTTING: &str = "metrics";

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/chain/utxo.rs` → `chain`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// `crate::name` paths used on code lines before the file's test module.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines.get(i + 1).is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + 7..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() {
                found.push((i + 1, name));
            }
        }
    }
    found
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut unknown = BTreeSet::new();
    let mut upward = Vec::new();
    for file in &files {
        let name = file.file_name().expect("file").to_string_lossy();
        let module = module_of(&src, file);
        if module == "lib" || module == "main" || module == CROSS_CUTTING || name.ends_with("_tests.rs") {
            continue;
        }
        let Some(from) = layer_of(&module) else {
            unknown.insert(module);
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read file");
        for (line, used) in uses(&text) {
            if used == module || used == CROSS_CUTTING {
                continue;
            }
            match layer_of(&used) {
                Some(to) if to < from => {}
                Some(_) => upward.push(format!("{}:{line}: {module} uses {used}", file.display())),
                None => {
                    unknown.insert(used);
                }
            }
        }
    }
    assert!(unknown.is_empty(), "modules missing from LAYERS: {unknown:?}");
    assert!(upward.is_empty(), "arrows pointing up or sideways:\n{}", upward.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_arrow() {
    let text =
        "use crate::relay::Thing;\n// crate::node in a comment\n#[cfg(test)]\nmod tests {\n use crate::rpc;\n}\n";
    assert_eq!(uses(text), vec![(1, "relay".to_string())]);
    assert!(layer_of("relay") > layer_of("mempool"));
}

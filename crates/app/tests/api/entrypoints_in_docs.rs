//! The app crate's doc opens with a table "Lambda or CLI command | module | entry": every Lambda
//! of the workspace is in it, and every row names a module of this crate that defines its
//! entry function, so a newcomer finds the code of an entrypoint from the tree in one step.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The table's rows: (entrypoint, module, entry function).
fn rows() -> Vec<(String, String, String)> {
    let lib = std::fs::read_to_string(root().join("crates/app/src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("//! | "))
        .filter(|l| !l.starts_with("Lambda or CLI") && !l.starts_with("---"))
        .map(|l| {
            let cells: Vec<&str> = l.trim_end_matches(" |").split(" | ").collect();
            assert_eq!(cells.len(), 3, "a row of three cells: {l}");
            let unquote = |c: &str| {
                c.trim_matches(|ch| ch == '`' || ch == '[' || ch == ']')
                    .to_owned()
            };
            (cells[0].to_owned(), unquote(cells[1]), unquote(cells[2]))
        })
        .collect()
}

/// The source of a module of this crate: its file and the files of its folder.
fn module_source(module: &str) -> String {
    let src = root().join("crates/app/src");
    let mut text = std::fs::read_to_string(src.join(format!("{module}.rs")))
        .unwrap_or_else(|e| panic!("module {module}: {e}"));
    if let Ok(dir) = std::fs::read_dir(src.join(module)) {
        for f in dir.flatten() {
            if f.path().extension().is_some_and(|e| e == "rs") {
                text.push_str(&std::fs::read_to_string(f.path()).unwrap());
            }
        }
    }
    text
}

#[test]
fn every_row_names_a_module_that_defines_its_entry() {
    let rows = rows();
    assert!(rows.len() >= 10, "{rows:?}");
    for (entrypoint, module, entry) in rows {
        let function = entry.rsplit("::").next().unwrap();
        let source = module_source(&module);
        assert!(
            source.contains(&format!("fn {function}("))
                || source.contains(&format!("fn {function}<")),
            "{entrypoint}: no `fn {function}` in module {module}"
        );
    }
}

#[test]
fn every_lambda_of_the_workspace_is_in_the_table() {
    let listed: Vec<String> = rows().into_iter().map(|(e, _, _)| e).collect();
    let crates = root().join("crates");
    for c in std::fs::read_dir(&crates).unwrap().flatten() {
        // A Lambda crate: a binary with a handler edge.
        if !c.path().join("src/handler.rs").exists() {
            continue;
        }
        let name = c.file_name().to_string_lossy().into_owned();
        assert!(
            listed
                .iter()
                .any(|e| e.contains(&format!("`{name}` Lambda"))),
            "the Lambda {name} is not in the entrypoint table: {listed:?}"
        );
    }
}

#[test]
fn developers_md_names_every_module_of_the_app_crate() {
    let developers = std::fs::read_to_string(root().join("DEVELOPERS.md")).unwrap();
    let layout = developers
        .split("## Layout")
        .nth(1)
        .expect("DEVELOPERS.md has a Layout section")
        .split("\n## ")
        .next()
        .unwrap()
        .to_owned();
    let src = root().join("crates/app/src");
    for f in std::fs::read_dir(&src).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        let Some(module) = name.strip_suffix(".rs") else {
            continue; // a module's folder: its file is listed
        };
        if module == "lib" {
            continue;
        }
        assert!(
            layout.contains(&format!("`{module}`")),
            "DEVELOPERS.md's Layout does not name the app module `{module}`"
        );
    }
}

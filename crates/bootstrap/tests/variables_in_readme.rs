//! Every environment variable the configuration reads is in the README's configuration table
//! (reading: `var("…")`, `flag("…")`, `number("…"` and `Missing("…"`, however rustfmt wraps
//! them, in this crate's sources; the CLI's own variables are read by the CLI).

use std::collections::BTreeSet;

fn read_here() -> BTreeSet<String> {
    let dir = format!("{}/src", env!("CARGO_MANIFEST_DIR"));
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for call in ["var(", "flag(", "number(", "Missing("] {
            for (at, _) in text.match_indices(call) {
                // The first argument, past any line break rustfmt put before it.
                let Some(rest) = text[at + call.len()..].trim_start().strip_prefix('"') else {
                    continue;
                };
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
                    .collect();
                if name.len() > 2 && rest[name.len()..].starts_with('"') {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn in_readme_table() -> String {
    let path = format!("{}/../../README.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let table = text
        .split("| variable | meaning | default |")
        .nth(1)
        .expect("the configuration table");
    table.split("\n\n").next().unwrap().to_owned()
}

#[test]
fn every_variable_the_configuration_reads_is_in_the_readme_table() {
    let read = read_here();
    assert!(
        read.len() > 20,
        "the scan found too few variables: {read:?}"
    );
    let table = in_readme_table();
    let missing: Vec<&String> = read
        .iter()
        .filter(|v| !table.contains(&format!("`{v}`")))
        .collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
}

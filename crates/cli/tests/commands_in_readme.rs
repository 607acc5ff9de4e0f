//! The README's "The CLI" block shows every top-level command `stockbridge --help` lists.

use std::collections::BTreeSet;

fn readme_commands() -> BTreeSet<String> {
    let path = format!("{}/../../README.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = &text[text.find("## The CLI").expect("a CLI section")..];
    let block = section.split("```").nth(1).expect("a code block");
    block
        .lines()
        .filter_map(|l| l.strip_prefix("stockbridge "))
        .filter_map(|l| l.split_whitespace().next())
        // `pause ... ; `resume` undoes it`: resume is named in the comment.
        .chain(block.contains("`resume`").then_some("resume"))
        .map(str::to_owned)
        .collect()
}

fn help_commands() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stockbridge"))
        .arg("--help")
        .env_clear()
        .output()
        .expect("run stockbridge --help");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands = &text[text.find("Commands:").expect("a command list")..];
    commands
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_shows_every_command() {
    let help = help_commands();
    assert!(help.len() > 5, "{help:?}");
    assert_eq!(readme_commands(), help);
}

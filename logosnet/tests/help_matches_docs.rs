//! `--help` and docs/OPERATING.md say the same thing, for each binary: the
//! same options (spelled alike, with the same short form and value name, and
//! the same default) in the operating guide's option table as in the help's
//! option list, and the same exit statuses in its exit-status table as in the
//! help's "Exit status:" section. Generic over whatever options exist: a new
//! one fails this test until the guide lists it too.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const GUIDE: &str = include_str!("../../docs/OPERATING.md");

const BINARIES: [(&str, &str); 2] = [
    ("logosnet_server", env!("CARGO_BIN_EXE_logosnet_server")),
    ("logosnet_client", env!("CARGO_BIN_EXE_logosnet_client")),
];

/// Option spelling (`-i, --ip <IP>`) to its default, if it has one.
type Options = BTreeMap<String, Option<String>>;

fn help(path: &str) -> String {
    let output = Command::new(path)
        .arg("--help")
        .output()
        .expect("run --help");
    assert!(output.status.success(), "{path} --help failed");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The lines of `text` after the line `heading`, up to the next blank line.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .collect()
}

/// The help's option list: each entry's spelling (up to the two spaces
/// before its description) and its `[default: …]`.
fn help_options(help: &str) -> Options {
    section(help, "Options:")
        .into_iter()
        .filter(|line| line.trim_start().starts_with('-'))
        .map(|line| {
            let line = line.trim();
            let spelling = line.split("  ").next().unwrap_or(line).to_owned();
            let default = line
                .rsplit_once("[default: ")
                .and_then(|(_, rest)| rest.strip_suffix(']'))
                .map(str::to_owned);
            (spelling, default)
        })
        .collect()
}

/// The statuses the help's "Exit status:" section lists.
fn help_statuses(help: &str) -> BTreeSet<u8> {
    section(help, "Exit status:")
        .into_iter()
        .filter_map(|line| line.split_whitespace().next()?.parse().ok())
        .collect()
}

/// The rows of the guide's table under `heading`, as cells without the
/// outer pipes and trimmed; the header and rule rows are skipped.
fn guide_table(heading: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = GUIDE
        .lines()
        .skip_while(|line| line.trim() != heading)
        .skip(1)
        .skip_while(|line| line.trim().is_empty())
        .take_while(|line| line.starts_with('|'))
        .skip(2)
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect();
    assert!(
        !rows.is_empty(),
        "docs/OPERATING.md has no table under {heading:?}"
    );
    rows
}

/// The guide's option table: the first cell is the spelling in backticks, the
/// second the default in backticks (anything else means no default).
fn guide_options(bin: &str) -> Options {
    guide_table(&format!("### `{bin}` options"))
        .into_iter()
        .map(|cells| {
            let spelling = cells[0].trim_matches('`').to_owned();
            let default = cells[1]
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .map(str::to_owned);
            (spelling, default)
        })
        .collect()
}

fn guide_statuses(bin: &str) -> BTreeSet<u8> {
    guide_table(&format!("### `{bin}` exit status"))
        .into_iter()
        .map(|cells| {
            cells[0]
                .parse()
                .unwrap_or_else(|_| panic!("bad status cell {:?}", cells[0]))
        })
        .collect()
}

#[test]
fn every_option_in_help_is_in_the_operating_guide_and_the_other_way_round() {
    for (bin, path) in BINARIES {
        let help = help(path);
        let in_help = help_options(&help);
        assert!(in_help.len() >= 4, "{bin}: help not parsed:\n{help}");
        assert_eq!(
            in_help,
            guide_options(bin),
            "{bin}: --help (left) and docs/OPERATING.md's option table (right) differ"
        );
    }
}

#[test]
fn exit_statuses_in_help_and_the_operating_guide_agree() {
    for (bin, path) in BINARIES {
        let in_help = help_statuses(&help(path));
        assert!(in_help.contains(&64), "{bin}: no usage status in help");
        assert_eq!(
            in_help,
            guide_statuses(bin),
            "{bin}: --help (left) and docs/OPERATING.md's exit-status table (right) differ"
        );
    }
}

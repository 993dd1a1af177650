//! The sample configuration (`etc/monasca-persister.conf`), README's table
//! of the options that are ours and docs/configuration.md's table of the
//! topic sections, written from the option table (`options.rs`); the
//! defaults docs/configuration.md's prose gives, checked against it. The
//! tests fail when a file drifts from the table;
//! `UPDATE_CONFIG_DOCS=1 cargo test -p monasca-config --lib docs` rewrites
//! the tables.

use std::fs;
use std::path::{Path, PathBuf};

use super::options::SECTIONS;
use super::schema::{OptionSpec, Part, SectionSpec};
use super::KafkaClientSection;

/// The sample's opening comment.
const SAMPLE_HEAD: &str = "\
# monasca-persister configuration (oslo.config INI format).
#
# An existing Monasca Persister (Python) monasca-persister.conf works as it
# is. Every option is listed below, commented out, with its default value and
# one line of help: uncomment and change only what you need.
#
# Syntax: \"option = value\" (or \"option: value\") inside a [section]; lines
# starting with # or ; are comments; an indented line continues the value
# above it. Booleans: true/false, yes/no, on/off, 1/0 (any case). Lists are
# comma separated. $option, ${option} (same section, else [DEFAULT]) and
# $section.option, ${section.option} are replaced by that option's value;
# write $$ for a literal $ (also in passwords). An empty value means the
# default for every option that is not a string.
#
# Check a file with: monasca-persister check-config --config-file FILE
";

/// Width of the sample's comment lines.
const WIDTH: usize = 78;

/// The header row of README's table.
const README_TABLE_HEADER: &str = "| Section | Options (defaults) |";

/// The sample configuration: every section and option of the table, each
/// option commented out with its default and its help.
pub(crate) fn sample() -> String {
    let mut out = String::from(SAMPLE_HEAD);
    for (i, section) in SECTIONS.iter().enumerate() {
        out.push_str(if i == 0 { "\n" } else { "\n\n" });
        out.push_str(&format!("[{}]\n", section.name));
        for line in section.help.lines() {
            out.push_str(&comment(line));
        }
        if section.part == Part::Passthrough {
            kafka_client_sample(&mut out);
            continue;
        }
        for option in section.own_options() {
            out.push('\n');
            for line in option.help {
                out.push_str(&comment(line.trim()));
            }
            let default = section.default_text(option);
            if default.is_empty() {
                out.push_str(&format!("#{} =\n", option.name));
            } else {
                out.push_str(&format!("#{} = {default}\n", option.name));
            }
        }
    }
    out
}

/// `[kafka_client]`'s comment after its help: what is refused, and examples.
fn kafka_client_sample(out: &mut String) {
    let refused: Vec<_> = KafkaClientSection::refused().collect();
    let text = format!(
        "Refused, because the persister commits offsets itself after the WAL fsync \
         and names the group: {}.",
        refused.join(", ")
    );
    for line in wrap(&text, WIDTH - 2) {
        out.push_str(&comment(&line));
    }
    out.push_str("# Examples:\n");
    for example in KafkaClientSection::EXAMPLES {
        out.push_str(&format!("#{example}\n"));
    }
}

fn comment(line: &str) -> String {
    if line.is_empty() {
        "#\n".to_string()
    } else {
        format!("# {line}\n")
    }
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// README's table rows: each section of ours with all its options, each
/// reference section with the options that are ours ("additions"; those
/// the topic sections inherit under `[kafka]`).
pub(crate) fn readme_rows() -> Vec<String> {
    let mut rows = Vec::new();
    for section in SECTIONS {
        if section.part == Part::Passthrough {
            let refused: Vec<_> = KafkaClientSection::refused()
                .map(|name| format!("`{name}`"))
                .collect();
            rows.push(format!(
                "| `[{}]` | raw librdkafka properties passed to every consumer (TLS, SASL, \
                 tuning), e.g. `{}`; checked by `check-config`; refused, because the \
                 persister commits offsets and manages the group membership: {} |",
                section.name,
                KafkaClientSection::EXAMPLES[0],
                refused.join(", ")
            ));
            continue;
        }
        let options: Vec<_> = section
            .own_options()
            .filter(|o| section.ours || o.spec.ours)
            .map(|o| readme_option(section, o))
            .collect();
        if options.is_empty() {
            continue;
        }
        let title = if section.ours {
            format!("`[{}]`", section.name)
        } else if section.part == Part::Kafka {
            format!("`[{}]` additions (or per topic section)", section.name)
        } else {
            format!("`[{}]` additions", section.name)
        };
        rows.push(format!("| {title} | {} |", options.join(", ")));
    }
    rows
}

fn readme_option(section: &SectionSpec, option: &OptionSpec) -> String {
    let notes: Vec<&str> = [section.default_text(option)]
        .into_iter()
        .filter(|default| !default.is_empty())
        .chain(
            option
                .spec
                .unused
                .then_some("ignored: kept for old configs"),
        )
        .collect();
    if notes.is_empty() {
        format!("`{}`", option.name)
    } else {
        format!("`{}` ({})", option.name, notes.join(", "))
    }
}

/// `text` with README's table rows replaced by `rows`; `None` when it has
/// no such table.
fn with_readme_rows(text: &str, rows: &[String]) -> Option<String> {
    with_table_rows(text, README_TABLE_HEADER, rows)
}

/// A file of the repository: this crate is `crates/config/` in it.
fn repository_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name)
}

/// Compares `file` with what the table makes of it; rewrites it instead
/// with `UPDATE_CONFIG_DOCS=1`.
fn check_file(name: &str, expected: &str) {
    let path = repository_file(name);
    let actual = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if actual == expected {
        return;
    }
    if std::env::var_os("UPDATE_CONFIG_DOCS").is_some() {
        fs::write(&path, expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let line = actual
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or_else(|| actual.lines().count().min(expected.lines().count()));
    panic!(
        "{name} differs from the option table (crates/config/src/options.rs) at line {}:\n  file:  {:?}\n  table: {:?}\n\
         rewrite it from the table with: UPDATE_CONFIG_DOCS=1 cargo test -p monasca-config --lib docs",
        line + 1,
        actual.lines().nth(line).unwrap_or("(end of file)"),
        expected.lines().nth(line).unwrap_or("(end of file)"),
    );
}

#[test]
fn the_sample_config_is_the_table() {
    check_file("etc/monasca-persister.conf", &sample());
}

#[test]
fn readmes_option_table_is_the_table() {
    let path = repository_file("README.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Some(expected) = with_readme_rows(&text, &readme_rows()) else {
        panic!("README.md has no table headed {README_TABLE_HEADER:?}");
    };
    check_file("README.md", &expected);
}

#[test]
fn a_drifted_readme_row_is_noticed() {
    let rows = readme_rows();
    let text = format!("intro\n\n{README_TABLE_HEADER}\n|---|---|\n| stale | row |\n\nafter\n");
    let fixed = with_readme_rows(&text, &rows).unwrap();
    assert_ne!(fixed, text);
    assert!(fixed.ends_with("\n\nafter\n"), "{fixed}");
    assert_eq!(with_readme_rows(&fixed, &rows).unwrap(), fixed);
    assert!(
        rows.iter().any(|r| r.contains("`writer_threads` (2)")),
        "{rows:?}"
    );
}

#[test]
fn sample_comments_fit_the_width() {
    for line in sample().lines() {
        let is_default = line.starts_with('#') && !line.starts_with("# ") && line.contains(" =");
        assert!(
            line.chars().count() <= WIDTH || is_default,
            "too long: {line:?}"
        );
    }
}

/// The header row of docs/configuration.md's table of the topic sections.
const TOPIC_TABLE_HEADER: &str = "| Option | metrics | alarm_history | events |";

/// docs/configuration.md's table of the topic sections' own options: each
/// topic's default (the `[kafka]` options they inherit are in the prose).
fn topic_table_rows() -> Vec<String> {
    let topics: Vec<&SectionSpec> = SECTIONS.iter().filter(|s| s.part == Part::Topic).collect();
    let Some(first) = topics.first() else {
        return Vec::new();
    };
    first
        .own_options()
        .map(|option| {
            let cells: Vec<&str> = topics
                .iter()
                .map(|topic| match topic.default_text(option) {
                    _ if option.spec.unused => "accepted, ignored",
                    "" => "unset",
                    text => text,
                })
                .collect();
            format!("| `{}` | {} |", option.name, cells.join(" | "))
        })
        .collect()
}

/// `text` with the table under `header` replaced by `rows`; `None` when it
/// has no such table.
fn with_table_rows(text: &str, header: &str, rows: &[String]) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| *l == header)? + 2;
    let end = first
        + lines[first..]
            .iter()
            .take_while(|l| l.starts_with('|'))
            .count();
    let mut out: Vec<String> = lines[..first].iter().map(|l| l.to_string()).collect();
    out.extend(rows.iter().cloned());
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    Some(out.join("\n") + "\n")
}

/// Where the prose of a paragraph opening with **`[section]`** gives an
/// option's default as "`option` (default…", the default that disagrees
/// with the table: `(section, option, written, table)`.
fn prose_default_mismatches(text: &str) -> Vec<(String, String, String, String)> {
    let mut found = Vec::new();
    for paragraph in text.split("\n\n") {
        let paragraph = paragraph.replace('\n', " ");
        let Some(rest) = paragraph.strip_prefix("**`[") else {
            continue;
        };
        let Some((name, _)) = rest.split_once("]`**") else {
            continue;
        };
        let Some(section) = SECTIONS.iter().find(|s| s.name == name) else {
            continue;
        };
        for option in section.options() {
            let table = section.default_text(option);
            let pattern = format!("`{}` (", option.name);
            for (at, _) in paragraph.match_indices(&pattern) {
                let written = paragraph[at + pattern.len()..].replace('`', "");
                if table.is_empty() {
                    continue;
                }
                if !written.starts_with(table) {
                    let written: String = written.chars().take(table.len() + 12).collect();
                    found.push((
                        name.to_string(),
                        option.name.to_string(),
                        written,
                        table.to_string(),
                    ));
                }
            }
        }
    }
    found
}

#[test]
fn configuration_mds_topic_table_is_the_table() {
    let path = repository_file("docs/configuration.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Some(expected) = with_table_rows(&text, TOPIC_TABLE_HEADER, &topic_table_rows()) else {
        panic!("docs/configuration.md has no table headed {TOPIC_TABLE_HEADER:?}");
    };
    check_file("docs/configuration.md", &expected);
}

#[test]
fn configuration_mds_defaults_are_the_tables() {
    let path = repository_file("docs/configuration.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mismatches = prose_default_mismatches(&text);
    assert!(
        mismatches.is_empty(),
        "docs/configuration.md gives defaults the option table (crates/config/src/options.rs) does not \
         have (section, option, written, table): {mismatches:#?}"
    );
}

#[test]
fn a_drifted_default_in_the_prose_is_noticed() {
    let text = "intro\n\n**`[influxdb]`**: `database_name` (mon); `batch_size`\n(999; points).\n\n\
                **`[wal]`**: nothing here.\n";
    assert_eq!(
        prose_default_mismatches(text),
        [(
            "influxdb".to_string(),
            "batch_size".to_string(),
            "999; points).".to_string(),
            "10000".to_string()
        )]
    );
}

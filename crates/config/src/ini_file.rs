//! Reading one oslo-style INI text into its assignments, in file order, in
//! one pass that follows oslo.config's own parser (`oslo_config.iniparser`)
//! line by line: a blank line ends a value, an indented line continues it,
//! `[name]` starts a section, `#` and `;` start comment lines, anything else
//! is `name = value` or `name: value` inside a section. Backslashes and
//! quotes inside a value are literal.
//!
//! Hand-written rather than rust-ini (which this replaced): rust-ini joins
//! a line ending in `\` with the next, accepts keys before any section and
//! lines without `=`, and reads a blank line inside an indented value as
//! part of it, so it needed a pass of oslo's rules in front of it and a
//! cross-check behind it; those rules are the whole parser.

/// One `option = value` line (with its continuation lines) of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assignment {
    /// Section name as written (trimmed).
    pub section: String,
    /// Option name as written (trimmed).
    pub key: String,
    /// The value: surrounding quotes of the first line removed, continuation
    /// lines joined with `\n` (an empty first line is left out).
    pub value: String,
}

/// A line oslo.config would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

/// An assignment whose value may still have continuation lines.
struct Open<'a> {
    section: &'a str,
    key: &'a str,
    /// The first line's value (trimmed), then the continuation lines.
    lines: Vec<&'a str>,
}

impl Open<'_> {
    /// The finished assignment. oslo removes one pair of matching quotes
    /// around the first line; an empty first line is left out of the
    /// value (its continuation lines then keep their quotes).
    fn close(self) -> Assignment {
        let value = match self.lines.split_first() {
            Some((first, rest)) if !first.is_empty() => {
                let mut value = strip_quotes(first);
                for line in rest {
                    value.push('\n');
                    value.push_str(line);
                }
                value
            }
            Some((_, rest)) => rest.join("\n"),
            None => String::new(),
        };
        Assignment {
            section: self.section.to_string(),
            key: self.key.to_string(),
            value,
        }
    }
}

/// Parses `text` into its assignments, in the order they appear, or the
/// first line oslo would refuse.
pub(crate) fn parse(text: &str) -> Result<Vec<Assignment>, SyntaxError> {
    let mut out = Vec::new();
    let mut section: Option<&str> = None;
    let mut open: Option<Open> = None;
    for (index, line) in normalised_lines(text).into_iter().enumerate() {
        let err = |message: String| SyntaxError {
            line: index + 1,
            message,
        };
        if line.is_empty() {
            out.extend(open.take().map(Open::close));
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(value) = open.as_mut() else {
                return Err(err(
                    "indented line with no option above it to continue (indentation marks a continuation line)"
                        .to_string(),
                ));
            };
            value.lines.push(line.trim_start());
            continue;
        }
        out.extend(open.take().map(Open::close));
        if let Some(header) = line.strip_prefix('[') {
            let Some(name) = header.strip_suffix(']') else {
                return Err(err(format!(
                    "section header {line:?} does not end with ']'"
                )));
            };
            if name.trim().is_empty() || name.contains(['[', ']']) {
                return Err(err(format!("invalid section header {line:?}")));
            }
            section = Some(name.trim());
        } else if line.starts_with(['#', ';']) {
            // comment
        } else {
            let Some(sep) = line.find(['=', ':']) else {
                // The line is not quoted: it may be a secret with a typo.
                return Err(err(
                    "expected 'option = value', a [section] header or a comment".to_string(),
                ));
            };
            let key = line[..sep].trim();
            if key.is_empty() {
                return Err(err(
                    "assignment with no option name before '=' or ':'".to_string()
                ));
            }
            let Some(section) = section else {
                return Err(err(format!(
                    "option {key:?} appears before any [section] header"
                )));
            };
            open = Some(Open {
                section,
                key,
                lines: vec![line[sep + 1..].trim()],
            });
        }
    }
    out.extend(open.map(Open::close));
    Ok(out)
}

/// Splits on any line ending (`\r\n`, `\r`, `\n`, as Python's universal
/// newlines do) and drops trailing whitespace, as oslo does with every line.
fn normalised_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(['\r', '\n']) {
        lines.push(rest[..pos].trim_end());
        let skip = if rest[pos..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[pos + skip..];
    }
    if !rest.is_empty() {
        lines.push(rest.trim_end());
    }
    lines
}

/// oslo removes one pair of matching quotes around the first line of a value
/// (and, like oslo, turns a lone quote character into an empty value).
fn strip_quotes(value: &str) -> String {
    let (first, rest) = match value.find('\n') {
        Some(pos) => value.split_at(pos),
        None => (value, ""),
    };
    for quote in ['"', '\''] {
        if let Some(inner) = first.strip_prefix(quote) {
            if inner.is_empty() {
                return rest.to_string();
            }
            if let Some(inner) = inner.strip_suffix(quote) {
                return format!("{inner}{rest}");
            }
        }
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn a(section: &str, key: &str, value: &str) -> Assignment {
        Assignment {
            section: section.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn reads_sections_comments_separators_and_quotes() {
        let text = "# top comment\n[DEFAULT]\ndebug = True\n; other comment\n\n[influxdb]\n\
                    ip_address: 10.0.0.1\npassword = \"p#ss;word\"\nuser='mon'\nempty =\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                a("DEFAULT", "debug", "True"),
                a("influxdb", "ip_address", "10.0.0.1"),
                a("influxdb", "password", "p#ss;word"),
                a("influxdb", "user", "mon"),
                a("influxdb", "empty", ""),
            ]
        );
    }

    #[test]
    fn joins_indented_continuation_lines() {
        let text = "[kafka_metrics]\nuri = a:1,\n    b:2,\n\tc:3\ntopic = m\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                a("kafka_metrics", "uri", "a:1,\nb:2,\nc:3"),
                a("kafka_metrics", "topic", "m")
            ]
        );
    }

    #[test]
    fn quotes_are_removed_from_the_first_line_only() {
        let text = "[a]\nk = \n\t\"\nq = \"x\"\n  \"y\"\nlone = '\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                a("a", "k", "\""),
                a("a", "q", "x\n\"y\""),
                a("a", "lone", "")
            ]
        );
    }

    #[test]
    fn keeps_backslashes_literally() {
        let text = "[influxdb]\npassword = ab\\\nuser = c\\d\\\\e\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                a("influxdb", "password", "ab\\"),
                a("influxdb", "user", "c\\d\\\\e")
            ]
        );
    }

    #[test]
    fn accepts_crlf_and_cr_line_endings() {
        let text = "[a]\r\nx = 1\r\ny = 2\rz = 3";
        assert_eq!(
            parse(text).unwrap(),
            vec![a("a", "x", "1"), a("a", "y", "2"), a("a", "z", "3")]
        );
    }

    #[test]
    fn keeps_duplicates_in_order() {
        let text = "[a]\nx = 1\n[b]\ny = 2\n[a]\nx = 3\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![a("a", "x", "1"), a("b", "y", "2"), a("a", "x", "3")]
        );
    }

    #[test]
    fn refuses_what_oslo_refuses() {
        for (text, line, needle) in [
            ("[a]\njunk\nx = 1\n", 2, "expected 'option = value'"),
            ("x = 1\n[a]\n", 1, "before any [section]"),
            ("[a]\n  x = 1\n", 2, "indented line"),
            ("[a]\nx = 1\n\n  more\n", 4, "indented line"),
            ("[a\nx = 1\n", 1, "does not end with ']'"),
            ("[]\n", 1, "invalid section header"),
            ("[a]\n= 1\n", 2, "no option name"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e:?}");
            assert!(e.message.contains(needle), "{text:?}: {e:?}");
        }
    }

    /// oslo.config's parser (`iniparser.BaseParser._parse_file`), written
    /// down plainly and apart from `parse`: the oracle it must agree with.
    fn oslo_model(text: &str) -> Option<Vec<Assignment>> {
        let mut out: Vec<Assignment> = Vec::new();
        let mut section: Option<String> = None;
        let mut open = false;
        for line in normalised_lines(text) {
            if line.is_empty() {
                open = false;
            } else if line.starts_with([' ', '\t']) {
                if !open {
                    return None;
                }
                let last = out.last_mut()?;
                last.value.push('\n');
                last.value.push_str(line.trim_start());
            } else if let Some(h) = line.strip_prefix('[') {
                open = false;
                let name = h.strip_suffix(']')?;
                if name.trim().is_empty() || name.contains(['[', ']']) {
                    return None;
                }
                section = Some(name.trim().to_string());
            } else if line.starts_with(['#', ';']) {
                open = false;
            } else {
                let sep = line.find(['=', ':'])?;
                let key = line[..sep].trim();
                if key.is_empty() {
                    return None;
                }
                let value = strip_quotes(line[sep + 1..].trim());
                out.push(a(section.as_deref()?, key, &value));
                open = true;
            }
        }
        Some(out)
    }

    /// Text made of the fragments that matter to the grammar.
    fn fragments() -> impl Strategy<Value = String> {
        let fragment = prop_oneof![
            Just("["),
            Just("]"),
            Just("="),
            Just(":"),
            Just("\\"),
            Just("\""),
            Just("'"),
            Just("#"),
            Just(";"),
            Just(" "),
            Just("\t"),
            Just("$x"),
            Just("k"),
            Just("v"),
        ];
        prop::collection::vec(fragment, 0..8).prop_map(|v| v.concat())
    }

    /// Files of section headers, assignments, comments, blank, indented and
    /// garbled lines, with mixed line endings.
    fn ini_like() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            2 => "[a-c ]{0,3}".prop_map(|s| format!("[{s}]")),
            8 => (fragments(), prop_oneof![Just(" = "), Just("="), Just(": ")], fragments())
                .prop_map(|(k, sep, v)| format!("k{k}{sep}{v}")),
            1 => fragments().prop_map(|s| format!("# {s}")),
            2 => fragments().prop_map(|s| format!("  {s}")),
            1 => fragments().prop_map(|s| format!("\t{s}")),
            1 => fragments(),
            2 => Just(String::new()),
        ];
        let ending = prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("  \n")];
        let header = prop_oneof![3 => Just("[a]\n"), 1 => Just("")];
        (header, prop::collection::vec((line, ending), 0..12)).prop_map(|(header, lines)| {
            let body: String = lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect();
            format!("{header}{body}")
        })
    }

    proptest! {
        #[test]
        fn agrees_with_the_oslo_model(text in ini_like()) {
            let ours = parse(&text).ok();
            let model = oslo_model(&text);
            // Values may differ only in leading newlines (`parse` drops an
            // empty first line of a value, oslo keeps it); typing trims anyway.
            let trim = |v: Option<Vec<Assignment>>| v.map(|v| v.into_iter().map(|mut x| {
                x.value = x.value.trim_start_matches('\n').to_string();
                x
            }).collect::<Vec<_>>());
            prop_assert_eq!(trim(ours), trim(model), "text: {:?}", text);
        }

        #[test]
        fn never_panics_on_any_string(text in ".{0,200}") {
            let _ = parse(&text);
        }
    }
}

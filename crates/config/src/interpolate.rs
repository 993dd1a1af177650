//! oslo.config `$` substitution: `$opt`, `${opt}`, `$group.opt`,
//! `${group.opt}`, and `$$` for a literal `$`.
//!
//! As in oslo (a `string.Template` with identifiers `[_a-z][._a-z0-9]*`,
//! any case): `$opt` names an option of the same section, else of
//! `[DEFAULT]`; a `$` not followed by a name, `{name}` or `$` stays as it is;
//! a name that is no option is an error; referenced values are themselves
//! substituted, in their own section.

/// Where substitution finds the values it references.
pub(crate) trait Values {
    /// The text of `[section] option` before substitution, with the section
    /// in which its own `$opt` references resolve (`[kafka]` for a value a
    /// topic section inherits from it) and whether it is a secret; `None`
    /// when there is no such option.
    fn raw(&self, section: &str, option: &str) -> Option<RawValue>;

    /// Takes `bytes` of substitution work (text scanned) from the budget
    /// of the whole configuration; false once it is spent.
    fn spend(&self, bytes: usize) -> bool;
}

/// An option's text before substitution.
pub(crate) struct RawValue {
    /// The text.
    pub text: String,
    /// Section its `$opt` references resolve in.
    pub context: String,
    /// Whether the option holds a secret.
    pub secret: bool,
}

/// A substituted value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expanded {
    /// The text after substitution.
    pub text: String,
    /// True when a secret went into it: such a value is masked in messages.
    pub secret: bool,
}

/// Why a secret's value cannot be substituted, without quoting any of it.
pub(crate) const SECRET_SUBSTITUTION_ERROR: &str =
    "holds a $ reference that cannot be substituted (write $$ for a literal $)";

/// References nested deeper than this are refused (a loop is caught
/// earlier; this only bounds pathological chains).
const MAX_DEPTH: usize = 32;

/// A value longer than this after substitution is refused: references
/// that multiply ("billion laughs") would otherwise exhaust memory. The
/// longest sensible value, a PEM bundle in `[kafka_client]`, is far below.
pub(crate) const MAX_EXPANDED_BYTES: usize = 1 << 20;

/// Bytes of text all substitutions of one configuration may scan together
/// (see [`Values::spend`]): chains of references to empty values expand
/// to nothing, yet can take exponential time.
pub(crate) const WORK_BUDGET_BYTES: usize = 4 << 20;

/// What one reference costs of that budget besides the text it scans.
const REFERENCE_COST_BYTES: usize = 64;

/// Substitutes every reference in `text`, a value of `[section]`.
pub(crate) fn expand(values: &dyn Values, section: &str, text: &str) -> Result<Expanded, String> {
    let mut stack = Vec::new();
    expand_in(values, section, text, &mut stack)
}

fn expand_in(
    values: &dyn Values,
    section: &str,
    text: &str,
    stack: &mut Vec<(String, String)>,
) -> Result<Expanded, String> {
    if !values.spend(text.len() + REFERENCE_COST_BYTES) {
        return Err(format!(
            "$ substitution takes too long: the configuration's references scan more than {WORK_BUDGET_BYTES} bytes (references that multiply?)"
        ));
    }
    let mut out = Expanded {
        text: String::with_capacity(text.len()),
        secret: false,
    };
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.text.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.text.push('$');
            rest = tail;
            continue;
        }
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let len = identifier_len(braced);
            if len > 0 && braced[len..].starts_with('}') {
                (&braced[..len], len + 2)
            } else {
                ("", 0)
            }
        } else {
            let len = identifier_len(after);
            (&after[..len], len)
        };
        if name.is_empty() {
            // Not a reference: oslo's safe_substitute leaves the `$` alone.
            out.text.push('$');
            rest = after;
            continue;
        }
        let value = resolve(values, section, name, stack)?;
        if out.text.len() + value.text.len() > MAX_EXPANDED_BYTES {
            return Err(format!(
                "$ substitution expands to more than {MAX_EXPANDED_BYTES} bytes (references that multiply?)"
            ));
        }
        out.text.push_str(&value.text);
        out.secret |= value.secret;
        rest = &after[consumed..];
    }
    out.text.push_str(rest);
    Ok(out)
}

/// Length of the identifier at the start of `s`: `[_a-zA-Z][._a-zA-Z0-9]*`.
fn identifier_len(s: &str) -> usize {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b == b'_' || b.is_ascii_alphabetic() => {}
        _ => return 0,
    }
    1 + bytes
        .take_while(|b| *b == b'_' || *b == b'.' || b.is_ascii_alphanumeric())
        .count()
}

fn resolve(
    values: &dyn Values,
    section: &str,
    name: &str,
    stack: &mut Vec<(String, String)>,
) -> Result<Expanded, String> {
    let found = match name.split_once('.') {
        Some((group, option)) => {
            let group = normalise_section(group);
            values
                .raw(&group, option)
                .map(|v| (group, option.to_string(), v))
        }
        None => values
            .raw(section, name)
            .map(|v| (section.to_string(), name.to_string(), v))
            .or_else(|| {
                values
                    .raw("DEFAULT", name)
                    .map(|v| ("DEFAULT".to_string(), name.to_string(), v))
            }),
    };
    let Some((group, option, raw)) = found else {
        let place = match name.split_once('.') {
            Some((group, option)) => format!("[{}] {option}", normalise_section(group)),
            None => format!("{name} in [{section}] or [DEFAULT]"),
        };
        return Err(format!(
            "cannot substitute ${name}: there is no option {place} (write $$ for a literal $)"
        ));
    };
    let key = (group, option);
    if stack.contains(&key) {
        let mut chain: Vec<String> = stack.iter().map(|(g, o)| format!("[{g}] {o}")).collect();
        chain.push(format!("[{}] {}", key.0, key.1));
        return Err(format!("substitution loop: {}", chain.join(" -> ")));
    }
    if stack.len() >= MAX_DEPTH {
        return Err(format!(
            "substitution nested deeper than {MAX_DEPTH} levels"
        ));
    }
    stack.push(key);
    let expanded = expand_in(values, &raw.context, &raw.text, stack);
    let key = stack.pop();
    let mut expanded = match expanded {
        Ok(e) => e,
        // The reason would quote part of the secret (the name after its `$`).
        Err(_) if raw.secret => {
            let (group, option) = key.unwrap_or_default();
            return Err(format!(
                "[{group}] {option} (a secret) {SECRET_SUBSTITUTION_ERROR}"
            ));
        }
        Err(e) => return Err(e),
    };
    expanded.secret |= raw.secret;
    Ok(expanded)
}

/// oslo compares section names in lower case, except `DEFAULT`.
pub(crate) fn normalise_section(name: &str) -> String {
    if name == "DEFAULT" {
        name.to_string()
    } else {
        name.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Map(
        BTreeMap<(String, String), (String, bool)>,
        std::cell::Cell<usize>,
    );

    impl Values for Map {
        fn raw(&self, section: &str, option: &str) -> Option<RawValue> {
            self.0
                .get(&(section.to_string(), option.to_string()))
                .map(|(text, secret)| RawValue {
                    text: text.clone(),
                    context: section.to_string(),
                    secret: *secret,
                })
        }

        fn spend(&self, bytes: usize) -> bool {
            let left = self.1.get();
            self.1.set(left.saturating_sub(bytes));
            left >= bytes
        }
    }

    fn values(entries: &[(&str, &str, &str)]) -> Map {
        Map(
            entries
                .iter()
                .map(|(s, o, v)| {
                    (
                        (s.to_string(), o.to_string()),
                        (v.to_string(), *o == "password"),
                    )
                })
                .collect(),
            std::cell::Cell::new(WORK_BUDGET_BYTES),
        )
    }

    fn ok(m: &Map, section: &str, text: &str) -> String {
        expand(m, section, text).unwrap().text
    }

    #[test]
    fn substitutes_every_form() {
        let m = values(&[
            ("DEFAULT", "host", "10.0.0.5"),
            ("kafka", "fetch_size_bytes", "4096"),
            ("kafka_metrics", "topic", "metrics"),
        ]);
        assert_eq!(ok(&m, "influxdb", "$host"), "10.0.0.5");
        assert_eq!(ok(&m, "influxdb", "${host}:9092"), "10.0.0.5:9092");
        assert_eq!(ok(&m, "x", "$kafka.fetch_size_bytes"), "4096");
        assert_eq!(ok(&m, "x", "/p/${kafka_metrics.topic}/x"), "/p/metrics/x");
        assert_eq!(ok(&m, "x", "/p/$KAFKA_METRICS.topic"), "/p/metrics");
        assert_eq!(ok(&m, "kafka_metrics", "t-$topic"), "t-metrics");
    }

    #[test]
    fn same_section_wins_over_default() {
        let m = values(&[("DEFAULT", "x", "d"), ("a", "x", "a")]);
        assert_eq!(ok(&m, "a", "$x"), "a");
        assert_eq!(ok(&m, "b", "$x"), "d");
    }

    #[test]
    fn dollar_escapes_and_non_references_stay() {
        let m = values(&[]);
        assert_eq!(ok(&m, "a", "pa$$word"), "pa$word");
        assert_eq!(ok(&m, "a", "$$$$"), "$$");
        assert_eq!(ok(&m, "a", "cost: 5$"), "cost: 5$");
        assert_eq!(ok(&m, "a", "$1abc"), "$1abc");
        assert_eq!(ok(&m, "a", "${unterminated"), "${unterminated");
        assert_eq!(ok(&m, "a", "${}"), "${}");
    }

    #[test]
    fn references_are_substituted_recursively_in_their_own_section() {
        let m = values(&[
            ("DEFAULT", "base", "/var/lib"),
            ("wal", "dir", "$base/wal"),
            ("b", "x", "${wal.dir}/x"),
        ]);
        assert_eq!(ok(&m, "b", "$x"), "/var/lib/wal/x");
    }

    #[test]
    fn unknown_references_and_loops_are_errors() {
        let m = values(&[("a", "x", "$y"), ("a", "y", "${a.x}")]);
        let e = expand(&m, "a", "$nope").unwrap_err();
        assert!(e.contains("$nope") && e.contains("$$"), "{e}");
        let e = expand(&m, "a", "$b.c").unwrap_err();
        assert!(e.contains("no option [b] c"), "{e}");
        let e = expand(&m, "a", "$x").unwrap_err();
        assert!(
            e.contains("substitution loop: [a] x -> [a] y -> [a] x"),
            "{e}"
        );
    }

    /// `levels` options in section `a`, `{name}N` holding ten references to
    /// `{name}N-1`, and `{name}0` holding `base`.
    fn chain(name: &str, base: &str, levels: usize) -> Map {
        let mut entries = vec![(format!("{name}0"), base.to_string())];
        for level in 1..=levels {
            let refs = format!("${name}{}", level - 1).repeat(10);
            entries.push((format!("{name}{level}"), refs));
        }
        let borrowed: Vec<(&str, &str, &str)> = entries
            .iter()
            .map(|(o, v)| ("a", o.as_str(), v.as_str()))
            .collect();
        values(&borrowed)
    }

    #[test]
    fn references_that_multiply_are_refused_quickly() {
        // Ten levels of ten references each: 10^10 bytes if expanded.
        let m = chain("l", "lol", 10);
        let started = std::time::Instant::now();
        let e = expand(&m, "a", "$l10").unwrap_err();
        assert!(
            e.contains(&format!("more than {MAX_EXPANDED_BYTES} bytes"))
                || e.contains("takes too long"),
            "{e}"
        );
        // Within both limits, the length limit speaks.
        let big = "x".repeat(MAX_EXPANDED_BYTES / 2 + 1);
        let m = values(&[("a", "big", &big)]);
        let e = expand(&m, "a", "$big$big").unwrap_err();
        assert!(
            e.contains(&format!("expands to more than {MAX_EXPANDED_BYTES} bytes")),
            "{e}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));

        // References to nothing expand to nothing, but take exponential time.
        let m = chain("e", "", 12);
        let started = std::time::Instant::now();
        let e = expand(&m, "a", "$e12").unwrap_err();
        assert!(e.contains("takes too long"), "{e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn secrets_taint_what_they_go_into() {
        let m = values(&[
            ("influxdb", "password", "s3cret"),
            ("influxdb", "user", "u"),
        ]);
        let e = expand(&m, "a", "${influxdb.user}").unwrap();
        assert!(!e.secret);
        let e = expand(&m, "a", "x${influxdb.password}").unwrap();
        assert_eq!(e.text, "xs3cret");
        assert!(e.secret);
    }

    #[test]
    fn a_failing_secret_is_not_quoted() {
        let m = values(&[("influxdb", "password", "ab$hidden")]);
        let e = expand(&m, "a", "${influxdb.password}").unwrap_err();
        assert_eq!(
            e,
            format!("[influxdb] password (a secret) {SECRET_SUBSTITUTION_ERROR}")
        );
    }
}

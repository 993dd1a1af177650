//! The Python reference persister as an oracle: runs
//! `tests/reference/transform.py` (monasca-persister 9.0.0's own
//! `process_message`) in the private virtualenv `tests/reference/venv`
//! creates, on many messages at once, and reads back what it would write.

use base64::Engine as _;

/// Which topic a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `metrics`.
    Metric,
    /// `alarm-state-transitions`.
    AlarmTransition,
}

/// What the reference does with one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It writes `line` (without the final newline) and, in db_per_tenant
    /// mode, puts it in the database `<database_name>_<tenant>`; with a
    /// `tenant` that is not `hashable` it drops the message in that mode.
    Line {
        line: Vec<u8>,
        tenant: Vec<u8>,
        hashable: bool,
    },
    /// Its line (or database name) holds a lone surrogate: the InfluxDB
    /// client fails to encode the batch, so it is never stored.
    Unencodable(String),
    /// `process_message` raised `name`: the message is logged and dropped.
    Error { name: String, detail: String },
}

impl Outcome {
    /// The line, when the reference writes one.
    pub fn line(&self) -> Option<&[u8]> {
        match self {
            Outcome::Line { line, .. } => Some(line),
            _ => None,
        }
    }
}

/// How the reference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As deployed.
    AsDeployed,
    /// With Python's integer-digit limit and recursion limit lifted and
    /// `"dimensions": null` read as `{}`: what it would write where only
    /// those make it drop a message (our deliberate differences).
    Lenient,
}

/// Runs the reference on every message, in order.
pub fn run(messages: &[(Kind, &[u8])], mode: Mode) -> Vec<Outcome> {
    let args = match mode {
        Mode::AsDeployed => Vec::new(),
        Mode::Lenient => vec!["--lenient".to_string()],
    };
    let requests: Vec<(char, &[u8])> = messages
        .iter()
        .map(|&(kind, payload)| {
            let tag = match kind {
                Kind::Metric => 'M',
                Kind::AlarmTransition => 'A',
            };
            (tag, payload)
        })
        .collect();
    crate::support::reference::run("transform.py", &args, &requests)
        .iter()
        .map(|answer| parse(answer))
        .collect()
}

fn parse(answer: &str) -> Outcome {
    let value: serde_json::Value = serde_json::from_str(answer)
        .unwrap_or_else(|e| panic!("the reference's answer {answer:?}: {e}"));
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    let bytes = |key: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(value[key].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{key} of {answer:?}: {e}"))
    };
    if value.get("line").is_some() {
        Outcome::Line {
            line: bytes("line"),
            tenant: bytes("tenant"),
            hashable: value["hashable"].as_bool() == Some(true),
        }
    } else if value.get("unencodable").is_some() {
        Outcome::Unencodable(text("unencodable"))
    } else {
        Outcome::Error {
            name: text("error"),
            detail: text("detail"),
        }
    }
}

//! The Python reference persister as an oracle: runs
//! `tests/reference/transform.py` (monasca-persister 9.0.0's own
//! `process_message`) in the private virtualenv `tests/reference/venv`
//! creates, on many messages at once, and reads back what it would write.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/transform.py");
    let mut command = Command::new(crate::support::reference::python());
    command.arg(&script);
    if mode == Mode::Lenient {
        command.arg("--lenient");
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start the reference ({}): {e}", script.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let requests: Vec<u8> = messages
        .iter()
        .flat_map(|(kind, payload)| {
            let tag = match kind {
                Kind::Metric => "M ",
                Kind::AlarmTransition => "A ",
            };
            let mut line = tag.as_bytes().to_vec();
            line.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(payload)
                    .as_bytes(),
            );
            line.push(b'\n');
            line
        })
        .collect();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(&requests)
            .expect("send the messages to the reference");
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let outcomes: Vec<Outcome> = BufReader::new(stdout)
        .lines()
        .map(|line| parse(&line.expect("read the reference's answer")))
        .collect();
    writer.join().expect("writer thread");
    let status = child.wait().expect("wait for the reference");
    assert!(status.success(), "the reference exited with {status}");
    assert_eq!(
        outcomes.len(),
        messages.len(),
        "the reference answered {} of {} messages",
        outcomes.len(),
        messages.len()
    );
    outcomes
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

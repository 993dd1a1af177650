//! Where the Python reference persister lives: the private virtualenv
//! `tests/reference/venv` creates (or `MONASCA_REFERENCE_PYTHON`), for the
//! differential tests of the transform and of events.

use std::path::PathBuf;

/// The Python of the reference's virtualenv; panics saying how to create it.
pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("MONASCA_REFERENCE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/reference-venv/bin/python"));
    assert!(
        python.exists(),
        "the Python reference persister is not installed ({} is missing): run tests/reference/venv \
         (scripts/test does it; it installs monasca-persister 9.0.0 from PyPI into target/reference-venv)",
        python.display()
    );
    python
}

/// Runs the reference driver `tests/reference/<script>` with `args` on
/// `requests`, one line each (`<tag> <base64 of the bytes>`), and returns
/// its answers, one line each; panics unless it answers every request and
/// exits successfully.
pub fn run(script: &str, args: &[String], requests: &[(char, &[u8])]) -> Vec<String> {
    use base64::Engine as _;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/reference")
        .join(script);
    let mut child = Command::new(python())
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start the reference ({}): {e}", script.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input: Vec<u8> = requests
        .iter()
        .flat_map(|(tag, bytes)| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            format!("{tag} {b64}\n").into_bytes()
        })
        .collect();
    let writer = std::thread::spawn(move || {
        stdin
            .write_all(&input)
            .expect("send the requests to the reference")
    });
    let answers: Vec<String> = BufReader::new(child.stdout.take().expect("piped stdout"))
        .lines()
        .map(|line| line.expect("read the reference's answer"))
        .collect();
    writer.join().expect("writer thread");
    let status = child.wait().expect("wait for the reference");
    assert!(
        status.success(),
        "the reference ({}) exited with {status}",
        script.display()
    );
    assert_eq!(
        answers.len(),
        requests.len(),
        "the reference ({}) answered {} of {} requests",
        script.display(),
        answers.len(),
        requests.len()
    );
    answers
}

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

//! What every answer of the transform must satisfy, shared by the fuzz
//! targets: a written line is exactly one point to the line splitter the
//! writer uses (`monasca_transform::lines`, a port of InfluxDB's own), a rejection
//! leaves the buffer as it was, and the db_per_tenant mode writes the same
//! line as the shared mode or refuses the tenant.

use monasca_transform::lines::split_lines;
use monasca_transform::{Rejection, Target, Transformer};

/// Bytes already in the buffer before the transform appends its line.
const BEFORE: &[u8] = b"earlier line\n";

/// The two transformers: shared database and database per tenant.
pub fn transformers() -> [Transformer; 2] {
    [false, true].map(|db_per_tenant| Transformer::new("mon", db_per_tenant))
}

/// Runs `encode` on a buffer that already holds a line, checks the answer
/// and returns it with the line written (without the earlier bytes).
pub fn answer<'p>(
    payload: &'p [u8],
    encode: impl FnOnce(&'p [u8], &mut Vec<u8>) -> Result<Target<'p>, Rejection>,
) -> (Result<Target<'p>, Rejection>, Vec<u8>) {
    let mut out = BEFORE.to_vec();
    let result = encode(payload, &mut out);
    assert!(out.starts_with(BEFORE), "earlier bytes changed: {out:?}");
    let line = out.split_off(BEFORE.len());
    match &result {
        Ok(_) => one_point(&line),
        Err(rejection) => assert!(
            line.is_empty(),
            "rejected ({rejection}) but left {line:?} behind"
        ),
    }
    (result, line)
}

/// A written line: UTF-8, ending in its only newline-terminated point as
/// InfluxDB's line splitter sees it (no comment, no second line).
pub fn one_point(line: &[u8]) {
    assert!(std::str::from_utf8(line).is_ok(), "not UTF-8: {line:?}");
    assert_eq!(line.last(), Some(&b'\n'), "no final newline: {line:?}");
    let points = split_lines(line);
    assert_eq!(
        points.len(),
        1,
        "not one point: {line:?} splits into {points:?}"
    );
    let point = points[0];
    assert_eq!(
        (point.start, point.end, point.next),
        (0, line.len() - 1, line.len()),
        "the point does not span the line: {line:?}"
    );
}

/// Whether two answers are the same (rejections compared by their text,
/// since a NaN value is not equal to itself). Only the metric target has
/// two decoders to compare; the alarm target compiles this module too.
#[allow(dead_code)]
pub fn same(
    a: &(Result<Target<'_>, Rejection>, Vec<u8>),
    b: &(Result<Target<'_>, Rejection>, Vec<u8>),
) -> bool {
    a.1 == b.1 && format!("{:?}", a.0) == format!("{:?}", b.0)
}

/// The db_per_tenant answer agrees with the shared one: the same line for
/// a tenant's database, or the tenant refused.
pub fn same_but_tenant(
    shared: &(Result<Target<'_>, Rejection>, Vec<u8>),
    per_tenant: &(Result<Target<'_>, Rejection>, Vec<u8>),
) {
    match (&shared.0, &per_tenant.0) {
        (Ok(Target::Shared), Ok(Target::Tenant(_))) => {
            assert_eq!(shared.1, per_tenant.1, "db_per_tenant wrote another line")
        }
        (Ok(Target::Shared), Err(Rejection::BadTenant { .. })) => {}
        (Err(_), Err(_)) => {}
        (s, t) => panic!("shared mode {s:?}, db_per_tenant mode {t:?}"),
    }
}

//! Fuzzes the metric transform: the direct path must answer exactly as the
//! serde path it stands in for, line
//! bytes and rejections alike, and every answer must satisfy `check.rs`.

#![no_main]

mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let [shared, per_tenant] = check::transformers();
    let fast = check::answer(payload, |p, out| shared.metric(p, out));
    let serde = check::answer(payload, |p, out| shared.metric_via_serde(p, out));
    assert!(
        check::same(&fast, &serde),
        "fast path and serde path disagree: {fast:?} and {serde:?}"
    );
    let fast_tenant = check::answer(payload, |p, out| per_tenant.metric(p, out));
    let serde_tenant = check::answer(payload, |p, out| per_tenant.metric_via_serde(p, out));
    assert!(
        check::same(&fast_tenant, &serde_tenant),
        "db_per_tenant: fast path and serde path disagree: {fast_tenant:?} and {serde_tenant:?}"
    );
    check::same_but_tenant(&fast, &fast_tenant);
});

//! Fuzzes the alarm-transition transform (it has one decoder, serde's):
//! every answer must satisfy `check.rs`, in both database modes.

#![no_main]

mod check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|payload: &[u8]| {
    let [shared, per_tenant] = check::transformers();
    let answer = check::answer(payload, |p, out| shared.alarm_transition(p, out));
    let tenant = check::answer(payload, |p, out| per_tenant.alarm_transition(p, out));
    check::same_but_tenant(&answer, &tenant);
});

//! The metric mix of `benches/transform.rs`, shared with
//! `examples/transform_mix.rs` (which counts its instructions): what a
//! Monasca agent sends, five dimensions, value_meta null nine times in ten
//! and a small object otherwise.

/// Messages in one cycle of the mix.
pub const MIX: usize = 1000;

/// Message `i` of the mix (cycling every [`MIX`]).
pub fn metric(i: usize) -> String {
    let i = i % MIX;
    let value_meta = if i % 10 == 9 {
        r#"{"status": "ok", "detail": "within threshold", "code": 200}"#
    } else {
        "null"
    };
    format!(
        r#"{{"metric": {{"name": "{}", "dimensions": {{"hostname": "compute-{:03}", "service": "monitoring", "component": "monasca-agent", "device": "sda{}", "mount_point": "/var/lib/nova"}}, "timestamp": {}, "value": {}, "value_meta": {value_meta}}}, "meta": {{"region": "RegionOne", "tenantId": "0123456789abcdef0123456789abcdef"}}, "creation_time": 1554725988}}"#,
        [
            "cpu.idle_perc",
            "disk.space_used_perc",
            "mem.free_mb",
            "net.in_bytes_sec"
        ][i % 4],
        i % 200,
        i % 4,
        1_554_725_987_408 + i as u64,
        (i as f64) * 1.37,
    )
}

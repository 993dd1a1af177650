//! Throughput of the hot path: decoding Monasca metric messages and encoding
//! their InfluxDB lines into a reused buffer, on one core. The mix
//! (`support/metric_mix.rs`) is what a Monasca agent sends. Criterion
//! reports messages per second.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use monasca_persister::transform::Transformer;

#[path = "support/metric_mix.rs"]
mod metric_mix;
use metric_mix::MIX;

fn metric_mix() -> Vec<String> {
    (0..MIX).map(metric_mix::metric).collect()
}

fn alarm_transition() -> String {
    r#"{"alarm-transitioned": {"alarmId": "8a6d8e2f-3c4b-4a57-9b36-0c5b0a9d2f11", "metrics": [{"id": null, "name": "cpu.idle_perc", "dimensions": {"hostname": "devstack"}}], "newState": "ALARM", "oldState": "OK", "link": "http://some.link", "lifecycleState": "OPEN", "stateChangeReason": "Thresholds were exceeded for the sub-alarms: avg(cpu.idle_perc) < 10.0 with the values: [5.0]", "tenantId": "0123456789abcdef0123456789abcdef", "timestamp": 1554725987408, "subAlarms": [{"subAlarmExpression": {"function": "AVG", "metricName": "cpu.idle_perc", "dimensions": {"hostname": "devstack"}, "operator": "LT", "threshold": 10.0, "period": 60, "periods": 1}, "subAlarmState": "ALARM", "currentValues": [5.0]}]}}"#.to_string()
}

fn bench(c: &mut Criterion) {
    let messages = metric_mix();
    let mut group = c.benchmark_group("transform");
    group.throughput(Throughput::Elements(MIX as u64));
    for (label, db_per_tenant) in [("metric mix", false), ("metric mix, db_per_tenant", true)] {
        let transformer = Transformer::new("mon", db_per_tenant);
        let mut out = Vec::with_capacity(MIX * 320);
        group.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                for m in &messages {
                    let target = transformer.metric(black_box(m.as_bytes()), &mut out);
                    black_box(&target);
                }
                black_box(out.len())
            })
        });
    }
    let alarm = alarm_transition();
    let transformer = Transformer::new("mon", false);
    let mut out = Vec::with_capacity(MIX * 1024);
    group.bench_function("alarm transition", |b| {
        b.iter(|| {
            out.clear();
            for _ in 0..MIX {
                let target = transformer.alarm_transition(black_box(alarm.as_bytes()), &mut out);
                black_box(&target);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(30);
    targets = bench
}
criterion_main!(benches);

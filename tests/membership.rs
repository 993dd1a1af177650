//! Group membership from the outside: the real binary as child processes
//! on a real Apache Kafka (one broker shared by the tests of this file, a
//! topic and a group per test) and a real influxd. A SIGKILLed static
//! member consumes again within seconds where a dynamic one waits for its
//! session to end; a rolling restart never stops the other members; two
//! persisters with the same instance name end in a clear error (classic
//! protocol) or a clear wait (consumer protocol), never a silent loop; a
//! crash-looping unit does not keep the next persister waiting.
//!
//! Every produced message has a unique timestamp, so InfluxDB's point count
//! is the number of distinct messages stored.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use monasca_persister::config::{Config, GroupProtocol};

use support::binary::{wait_until, Persister};
use support::influxd::Influxd;
use support::kafka::TestKafka;
use support::load::Load;
use support::persister as p;
use support::real_kafka::Stream;

const MEASUREMENT: &str = "membership";
const LONG: Duration = Duration::from_secs(120);

/// Messages at `rate` per second to every partition of `stream`, each
/// with a unique timestamp, until stopped.
fn load(stream: &Stream, rate: u64) -> Load {
    let (partitions, ts0) = (stream.partitions, p::base_ts());
    Load::start(stream.kafka, &stream.topic, u64::MAX, rate, move |i| {
        p::stream_message(MEASUREMENT, i, partitions, ts0)
    })
}

/// Waits until `member` has read messages; `what` names it for the message.
fn wait_consuming(member: &Persister, what: &str) {
    wait_until(
        what,
        LONG,
        || member.tail(),
        || (member.consumed() > 0).then_some(()),
    );
}

fn stored(influx: &Influxd) -> u64 {
    p::count_field(influx, "mon", MEASUREMENT, "value")
}

/// Waits until `total` messages are in InfluxDB, then stops `members`
/// with SIGTERM: each exits 0.
fn deliver_all_and_stop(influx: &Influxd, total: u64, members: &mut [&mut Persister]) {
    let tails = || members.iter().map(|m| m.tail()).collect::<String>();
    wait_until(
        &format!("all {total} messages in InfluxDB"),
        LONG,
        tails,
        || (stored(influx) == total).then_some(()),
    );
    for m in members.iter_mut() {
        m.signal(libc::SIGTERM);
        let (status, _) = m.wait_exit(LONG);
        assert_eq!(status.code(), Some(0), "{status}{}", m.tail());
    }
    assert_eq!(stored(influx), total);
}

/// Kills a consuming persister with SIGKILL under load and starts it again
/// at once; returns the time from the kill to the restarted persister's
/// first messages, after checking that nothing was lost.
fn sigkill_and_restart(cfg: &Config, stream: &Stream, influx: &Influxd, dir: &Path) -> Duration {
    let load = load(stream, 1_000);
    let mut first = Persister::start(cfg, dir, "persister");
    wait_consuming(&first, "the first persister consuming");
    first.kill9();
    let killed = Instant::now();
    let mut second = Persister::start(cfg, dir, "persister");
    wait_consuming(&second, "the restarted persister consuming");
    let waited = killed.elapsed();
    check_group_reports(&second, cfg, stream);
    let total = load.stop();
    deliver_all_and_stop(influx, total, &mut [&mut second]);
    waited
}

/// `/healthcheck` shows the member's group state, `/metrics` the
/// rebalance that gave it its partitions and the time it waited for them.
fn check_group_reports(member: &Persister, cfg: &Config, stream: &Stream) {
    // The group state comes with librdkafka's statistics, every 2 s.
    let (health, body) = wait_until(
        "the group state in /healthcheck",
        LONG,
        || member.tail(),
        || {
            let (_, body) = member.get("/healthcheck")?;
            let health: serde_json::Value = serde_json::from_str(&body).expect("health JSON");
            (health["kafka"]["topics"][&stream.topic]["group"][0]["join_state"] == "steady")
                .then_some((health, body))
        },
    );
    let topic = &health["kafka"]["topics"][&stream.topic];
    let group = &topic["group"][0];
    assert_eq!(group["state"], "up", "{body}");
    assert!(group["assigned_partitions"].as_i64() > Some(0), "{body}");
    assert_eq!(group["protocol"], "classic", "{body}");
    assert_eq!(
        group["instance_id"].as_str(),
        cfg.kafka_metrics.group_instance_id(0).as_deref(),
        "{body}"
    );
    assert!(topic["rebalances"].as_u64() >= Some(1), "{body}");
    let rebalances = member.metric("monasca_persister_rebalances_total{topic=\"metrics\"}");
    assert!(rebalances >= Some(1.0), "{rebalances:?}");
    let unowned =
        member.metric("monasca_persister_partitions_unowned_seconds_total{topic=\"metrics\"}");
    assert!(unowned > Some(0.0), "{unowned:?}");
}

#[test]
fn a_sigkilled_static_member_with_a_45s_session_consumes_again_within_10s() {
    let influx = Influxd::start();
    let stream = Stream::new(8);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = p::stream_config(&stream, &influx, dir.path());
    // librdkafka's default session: the dead member would hold the
    // partitions this long if the restart could not take its place.
    cfg.kafka_metrics.session_timeout_ms = None;
    let waited = sigkill_and_restart(&cfg, &stream, &influx, dir.path());
    eprintln!("static member, 45 s session: consuming {waited:?} after the SIGKILL");
    assert!(
        waited < Duration::from_secs(10),
        "the restarted static member consumed only {waited:?} after the SIGKILL"
    );
}

/// The difference static membership makes: without it the restarted
/// persister is a new member, and the group gives it the dead member's
/// partitions only once that member's session has expired (6 s here; 45 s
/// by default, which this test does not wait for).
#[test]
fn a_sigkilled_dynamic_member_is_replaced_only_after_its_session_timeout() {
    const SESSION: Duration = Duration::from_secs(6);
    let influx = Influxd::start();
    let stream = Stream::new(8);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = p::stream_config(&stream, &influx, dir.path());
    cfg.kafka_metrics.group_instance_name = String::new();
    cfg.kafka_metrics.session_timeout_ms = Some(SESSION.as_millis() as u64);
    let waited = sigkill_and_restart(&cfg, &stream, &influx, dir.path());
    eprintln!("dynamic member, {SESSION:?} session: consuming {waited:?} after the SIGKILL");
    // The session counts from the dead member's last heartbeat, at most a
    // heartbeat interval (a tenth of the session) before the kill.
    assert!(
        waited >= SESSION - SESSION / 10,
        "the restarted dynamic member consumed {waited:?} after the SIGKILL, within the {SESSION:?} session"
    );
}

/// The longest time between two increases of a member's consumed counter.
struct Gaps {
    last: Vec<(u64, Instant)>,
    longest: Vec<Duration>,
}

impl Gaps {
    fn new(n: usize) -> Gaps {
        Gaps {
            last: vec![(0, Instant::now()); n],
            longest: vec![Duration::ZERO; n],
        }
    }

    /// Samples the members' counters; `skip` is being restarted.
    fn sample(&mut self, members: &[Persister], skip: Option<usize>) {
        for (i, m) in members.iter().enumerate() {
            if Some(i) == skip {
                continue;
            }
            let consumed = m.consumed();
            let now = Instant::now();
            let (last, since) = self.last[i];
            if consumed != last {
                self.last[i] = (consumed, now);
            } else {
                self.longest[i] = self.longest[i].max(now - since);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }

    /// Member `i` restarted: its counter starts again from 0, now.
    fn restarted(&mut self, i: usize) {
        self.last[i] = (0, Instant::now());
    }
}

#[test]
fn a_rolling_restart_of_three_members_never_stops_the_others() {
    const MEMBERS: usize = 3;
    let influx = Influxd::start();
    let stream = Stream::new(64);
    let dirs: Vec<_> = (0..MEMBERS).map(|_| tempfile::tempdir().unwrap()).collect();
    let configs: Vec<Config> = dirs
        .iter()
        .map(|d| {
            let mut c = p::stream_config(&stream, &influx, d.path());
            // The default session: the restarts do not depend on it.
            c.kafka_metrics.session_timeout_ms = None;
            c
        })
        .collect();
    let load = load(&stream, 3_000);
    let mut members: Vec<Persister> = configs
        .iter()
        .zip(&dirs)
        .map(|(c, d)| Persister::start(c, d.path(), "persister"))
        .collect();
    // A rolling restart begins with a settled group (not in the
    // cooperative rounds after the three started together).
    wait_until(
        "every member consuming, the 64 partitions shared, the group steady",
        LONG,
        || members.iter().map(|m| m.tail()).collect(),
        || {
            let steady = members.iter().all(|m| {
                m.consumed() > 0
                    && m.get("/healthcheck").is_some_and(|(_, body)| {
                        let health: serde_json::Value =
                            serde_json::from_str(&body).expect("health JSON");
                        health["kafka"]["topics"][&stream.topic]["group"][0]["join_state"]
                            == "steady"
                    })
            });
            let shared: i64 = members.iter().map(|m| m.assigned()).sum();
            (steady && shared == 64).then_some(())
        },
    );
    let mut gaps = Gaps::new(MEMBERS);
    let (mut stops, mut restarts) = (Vec::new(), Vec::new());
    for k in 0..MEMBERS {
        let stopped = Instant::now();
        members[k].signal(libc::SIGTERM);
        while members[k].running() {
            assert!(stopped.elapsed() < LONG, "{}", members[k].tail());
            gaps.sample(&members, Some(k));
        }
        let log = members[k].log();
        stops.push(stopped.elapsed());
        if stopped.elapsed() > Duration::from_secs(10) {
            eprintln!("a slow stop: {:?}{}", stopped.elapsed(), members[k].tail());
        }
        members[k] = Persister::start(&configs[k], dirs[k].path(), "persister");
        assert!(log.contains(" stopped: "), "no orderly stop: {log}");
        gaps.restarted(k);
        while members[k].consumed() == 0 {
            assert!(stopped.elapsed() < LONG, "{}", members[k].tail());
            gaps.sample(&members, Some(k));
        }
        restarts.push(stopped.elapsed());
        gaps.restarted(k);
    }
    let total = load.stop();
    eprintln!("stops (SIGTERM to exit): {stops:?}; restarts (SIGTERM to consuming again): {restarts:?}; longest gap in each member's consumption: {:?}", gaps.longest);
    for (i, gap) in gaps.longest.iter().enumerate() {
        assert!(
            *gap < Duration::from_secs(2),
            "member {i} stopped consuming for {gap:?} while another restarted{}",
            members[i].tail()
        );
    }
    let [a, b, c] = &mut members[..] else {
        unreachable!("three members")
    };
    deliver_all_and_stop(&influx, total, &mut [a, b, c]);
}

/// Two persisters of one group under the same instance name: the first
/// consuming under load when the second starts.
struct Namesakes {
    influx: Influxd,
    stream: Stream,
    first_cfg: Config,
    first: Persister,
    second: Persister,
    load: Load,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

fn namesakes(protocol: GroupProtocol) -> Namesakes {
    let influx = Influxd::start();
    let stream = Stream::new(4);
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first_cfg = p::with_protocol(p::stream_config(&stream, &influx, dirs.0.path()), protocol);
    let mut second_cfg =
        p::with_protocol(p::stream_config(&stream, &influx, dirs.1.path()), protocol);
    second_cfg.kafka_metrics.group_instance_name =
        first_cfg.kafka_metrics.group_instance_name.clone();
    let load = load(&stream, 500);
    let first = Persister::start(&first_cfg, dirs.0.path(), "first");
    wait_consuming(&first, "the first persister consuming");
    let second = Persister::start(&second_cfg, dirs.1.path(), "second");
    Namesakes {
        influx,
        stream,
        first_cfg,
        first,
        second,
        load,
        _dirs: dirs,
    }
}

#[test]
fn a_duplicate_instance_name_fences_the_first_persister_with_a_clear_error() {
    let Namesakes {
        influx,
        stream,
        first_cfg,
        mut first,
        mut second,
        load,
        _dirs,
    } = namesakes(GroupProtocol::Classic);
    let (status, _) = first.wait_exit(LONG);
    // The status the unit's RestartPreventExitStatus= names: systemd does
    // not bring it back to fence the second in turn.
    assert_eq!(status.code(), Some(3), "{status}{}", first.tail());
    // It stopped in order: what its WAL held went to InfluxDB first (the
    // second persister reads on from the committed offsets).
    assert_eq!(first.summary().left, 0, "{}", first.tail());
    // The process's last word names the option to change.
    let error = first.wait_log(" fatal: consuming ", Duration::from_secs(1));
    let name = first_cfg.kafka_metrics.instance_name();
    assert!(
        error.contains(&format!(
            "another consumer of group {} uses the static instance id {name}-{}-0 (",
            stream.group, stream.topic
        )) && error.contains(&format!("): two persisters run with group_instance_name = {name}; give each its own group_instance_name in [kafka]")),
        "{error}"
    );
    wait_consuming(&second, "the second persister consuming");
    let total = load.stop();
    deliver_all_and_stop(&influx, total, &mut [&mut second]);
}

/// The consumer protocol refuses a second member with an instance id in
/// use: the second persister says so, waits (it cannot tell another
/// persister from its own killed run whose session has not ended) and
/// takes the partitions once the first one stops.
#[test]
fn a_duplicate_instance_name_under_the_consumer_protocol_waits_and_says_why() {
    // `_dirs` bound: dropped, the persisters' directories would go.
    let Namesakes {
        influx,
        mut first,
        mut second,
        load,
        _dirs,
        ..
    } = namesakes(GroupProtocol::Consumer);
    let warning = second.wait_log("is still held in group", LONG);
    assert!(
        warning.contains(" WARNING ")
            && warning.contains("or by another persister with the same group_instance_name"),
        "{warning}"
    );
    let consumed = first.consumed();
    wait_until(
        "the first persister consuming on",
        LONG,
        || first.tail(),
        || (first.consumed() > consumed).then_some(()),
    );
    assert_eq!(second.consumed(), 0, "{}", second.tail());
    first.signal(libc::SIGTERM);
    let (status, _) = first.wait_exit(LONG);
    assert_eq!(status.code(), Some(0), "{status}{}", first.tail());
    let stopped = Instant::now();
    wait_consuming(&second, "the second persister consuming");
    eprintln!(
        "the second persister consumed {:?} after the first stopped",
        stopped.elapsed()
    );
    let total = load.stop();
    deliver_all_and_stop(&influx, total, &mut [&mut second]);
}

/// A crash-looping unit: ten persisters stopped by SIGTERM 0–50 ms after
/// their start, one after the other, with the default 45 s session. The
/// persister started next consumes within 10 s: the stopped ones left no
/// member behind that the group would wait for.
#[test]
fn ten_persisters_stopped_right_after_start_leave_the_next_one_consuming_within_10s() {
    let influx = Influxd::start();
    let stream = Stream::new(8);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = p::stream_config(&stream, &influx, dir.path());
    cfg.kafka_metrics.session_timeout_ms = None;
    for round in 0..10u64 {
        let mut child = Persister::start(&cfg, dir.path(), "crash-loop");
        // The moment is what is tested, not a synchronisation.
        std::thread::sleep(Duration::from_millis(round * 50 / 9));
        child.signal(libc::SIGTERM);
        let (status, _) = child.wait_exit(LONG);
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: {status}{}",
            child.tail()
        );
    }
    let ts0 = p::base_ts();
    for i in 0..1_000 {
        stream.produce(
            i,
            p::metric(MEASUREMENT, "t1", "h", ts0 + i, i as f64).as_bytes(),
        );
    }
    stream.kafka.flush();
    let mut next = Persister::start(&cfg, dir.path(), "persister");
    let waited = wait_until(
        "the next persister consuming",
        LONG,
        || next.tail(),
        || (next.consumed() > 0).then(|| next.spawned.elapsed()),
    );
    eprintln!("the persister after ten quick stops consumed {waited:?} after its start");
    assert!(
        waited < Duration::from_secs(10),
        "the persister after ten quick stops consumed only {waited:?} after its start{}",
        next.tail()
    );
    deliver_all_and_stop(&influx, 1_000, &mut [&mut next]);
}

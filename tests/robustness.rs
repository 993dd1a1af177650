//! The persister under conditions that are nobody's fault in particular,
//! proven with the real binary: paths it may not use, secrets that
//! librdkafka would quote, hostile clients of the health endpoint, and a
//! disk that fills while InfluxDB is down.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use monasca_persister::config::Config;
use support::binary::{wait_until, Persister, BIN};
use support::influxd::Influxd;
use support::kafka::TestKafka;
use support::persister as p;
use support::real_kafka::Stream;

const LONG: Duration = Duration::from_secs(120);

/// The user the binary runs as where permissions must bite: root bypasses
/// them, so as root the child runs as `nobody`.
const NOBODY: u32 = 65534;

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A directory the child may write into.
fn writable_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("create directory");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if running_as_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
    }
    path.to_path_buf()
}

/// A directory the child may read but not write into.
fn read_only_dir(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).expect("create directory");
    let mode = if running_as_root() { 0o755 } else { 0o555 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_path_buf()
}

/// The binary, runnable by the unprivileged user (a copy in `dir` as root:
/// the checkout may live below a directory `nobody` cannot enter).
fn unprivileged_command(dir: &Path) -> Command {
    if !running_as_root() {
        return Command::new(BIN);
    }
    let copy = dir.join("monasca-persister");
    if !copy.exists() {
        std::fs::copy(BIN, &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut command = Command::new(copy);
    command.uid(NOBODY).gid(NOBODY);
    command
}

/// A temporary directory everyone may enter (tempfile makes them private).
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// Runs the binary unprivileged with `args`; (exit code, stdout + stderr).
fn run_unprivileged(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = unprivileged_command(dir)
        .args(args)
        .output()
        .expect("run monasca-persister");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Exit 1, one error line naming `path`, and the OS error exactly once.
fn assert_one_clear_line(what: &str, (code, output): (Option<i32>, String), path: &Path) {
    assert_eq!(code, Some(1), "{what}: exit code\n{output}");
    let errors: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("error") || l.contains(" ERROR "))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line\n{output}");
    let line = errors[0];
    eprintln!("{what}: {line}");
    assert!(
        line.contains(&path.display().to_string()),
        "{what}: the line names {}\n{output}",
        path.display()
    );
    assert_eq!(
        output.matches("Permission denied").count(),
        1,
        "{what}: the OS error once\n{output}"
    );
    assert_eq!(
        output.matches("(os error 13)").count(),
        1,
        "{what}: the OS error once\n{output}"
    );
}

/// A configuration file for the unprivileged child; `extra` is appended.
fn unprivileged_config(dir: &Path, name: &str, extra: &str) -> PathBuf {
    let state = writable_dir(&dir.join(format!("{name}-state")));
    let path = dir.join(format!("{name}.conf"));
    std::fs::write(
        &path,
        format!(
            "[wal]\npath = {}/wal\ndead_letter_path = {}/dl.jsonl\n[health]\nenabled = false\n{extra}",
            state.display(),
            state.display()
        ),
    )
    .expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    path
}

#[test]
fn paths_it_may_not_use_give_one_clear_line_with_the_os_error_once() {
    let dir = open_tempdir();
    let d = dir.path();
    let arg = |p: &Path| p.to_string_lossy().into_owned();

    // The configuration file.
    let conf = unprivileged_config(d, "unreadable", "");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
    assert_one_clear_line("config file", out, &conf);
    let out = run_unprivileged(d, &["check-config", "--config-file", &arg(&conf)]);
    assert_one_clear_line("config file (check-config)", out, &conf);

    // The log, WAL and dead-letter directories.
    for (what, options, file) in [
        (
            "log directory",
            "[DEFAULT]\nlog_dir = {}\nlog_file = persister.log\n",
            "persister.log",
        ),
        ("WAL directory", "[wal]\npath = {}/wal\n", "wal"),
        (
            "dead-letter directory",
            "[wal]\ndead_letter_path = {}/dl.jsonl\n",
            "dl.jsonl",
        ),
    ] {
        let locked = read_only_dir(&d.join(format!("locked-{file}")));
        let extra = options.replace("{}", &locked.display().to_string());
        let conf = unprivileged_config(d, file, &extra);
        let out = run_unprivileged(d, &["--config-file", &arg(&conf)]);
        assert_one_clear_line(what, out, &locked.join(file));
    }
}

// ---------------------------------------------------------------------------
// A persister at work, against the real broker and a real influxd.

/// The usual test configuration for the stream, with a health endpoint on a
/// free port and only the metrics topic.
fn running_config(stream: &Stream, influx: &Influxd, dir: &Path) -> Config {
    let mut c = p::config(stream.kafka, influx, dir);
    c.kafka_metrics.topic = stream.topic.clone();
    c.kafka_metrics.group_id = stream.group.clone();
    c.kafka_alarm_history.enabled = false;
    c.health.enabled = true;
    c.health.bind = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    c.influxdb.retry_initial_ms = 50;
    c.influxdb.retry_max_ms = 500;
    c.wal.drain_timeout_seconds = 5;
    c
}

/// Starts the binary on `config` with `extra` appended to its file (for
/// secrets, which the printed configuration masks).
fn start(config: &Config, extra: &str, dir: &Path, name: &str) -> Persister {
    let conf = dir.join(format!("{name}.conf"));
    std::fs::write(&conf, format!("{config}\n{extra}")).expect("write config");
    Persister::start_with_file(&conf, config.health.bind, dir, name)
}

fn stored(influx: &Influxd) -> u64 {
    p::count_field(influx, "mon", "cpu.idle_perc", "value")
}

#[test]
fn configured_secrets_never_reach_logs_metrics_health_or_dead_letters() {
    const INFLUX_SECRET: &str = "influx-S3cret-4410";
    const SASL_SECRET: &str = "sasl-S3cret-7120";
    const USER_SECRET: &str = "sasl-user-9931";
    const KEY_SECRET: &str = "key-S3cret-2291";
    const SECRETS: [&str; 4] = [INFLUX_SECRET, SASL_SECRET, USER_SECRET, KEY_SECRET];
    const TOTAL: i64 = 200;
    let influx = Influxd::start();
    let stream = Stream::new(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = running_config(&stream, &influx, dir.path());
    cfg.default.debug = true;
    cfg.default.log_dir = Some(dir.path().to_path_buf());
    cfg.default.log_file = Some(PathBuf::from("persister.log"));
    cfg.default.use_stderr = true;
    let extra = format!(
        "[influxdb]\npassword = {INFLUX_SECRET}\n[kafka_client]\nsasl.username = {USER_SECRET}\n\
         sasl.password = {SASL_SECRET}\nssl.key.password = {KEY_SECRET}\n\
         client.rack = rack-${{influxdb.password}}\n"
    );
    let conf = dir.path().join("check.conf");
    std::fs::write(&conf, format!("{cfg}\n{extra}")).expect("write config");
    let check = Command::new(BIN)
        .arg("check-config")
        .arg("--config-file")
        .arg(&conf)
        .output()
        .expect("run check-config");
    let check = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.contains("client.rack = rack-****\n"), "{check}");
    let mut a = start(&cfg, &extra, dir.path(), "persister");
    let ts0 = p::base_ts();
    for i in 0..TOTAL {
        let body = p::metric("cpu.idle_perc", "t1", "h1", ts0 + i, 1.0);
        stream.produce(i, body.as_bytes());
    }
    // A message that cannot be stored: a dead letter.
    stream.produce(0, b"{\"metric\": not json");
    stream.kafka.flush();
    wait_until(
        "every message in InfluxDB",
        LONG,
        || a.tail(),
        || (stored(&influx) == TOTAL as u64).then_some(()),
    );
    let dead_letters = wait_until(
        "the dead letter",
        LONG,
        || a.tail(),
        || {
            std::fs::read_to_string(&cfg.wal.dead_letter_path)
                .ok()
                .filter(|t| t.contains("not json"))
        },
    );
    let (_, metrics) = a.get("/metrics").expect("/metrics answers");
    let (_, health) = a.get("/healthcheck").expect("/healthcheck answers");
    a.signal(libc::SIGTERM);
    let (status, _) = a.wait_exit(LONG);
    assert!(status.success(), "{status}{}", a.tail());
    let log = std::fs::read_to_string(dir.path().join("persister.log")).expect("the log file");
    assert!(
        log.contains("sasl.password = ****"),
        "the configuration is logged at DEBUG"
    );
    assert!(log.contains("client.rack = rack-****"), "{log}");
    for (what, text) in [
        ("check-config", &check),
        ("the log", &log),
        ("stdout and stderr", &a.log()),
        ("/metrics", &metrics),
        ("/healthcheck", &health),
        ("the dead letters", &dead_letters),
    ] {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} is in {what}:\n{text}");
        }
    }
}

/// Threads and open descriptors of process `pid`.
fn threads_and_fds(pid: i32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("thread count");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("process descriptors")
        .count();
    (threads, fds)
}

/// One GET, with how long the answer took; None when there was none
/// within `timeout`.
fn timed_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some((answer, started.elapsed()))
}

/// A complete /healthcheck answer (its verdict is not what is tested here:
/// Kafka's state in it comes from librdkafka's statistics, on their own clock).
fn assert_answered(answer: &str) {
    assert!(
        (answer.starts_with("HTTP/1.1 200 ") || answer.starts_with("HTTP/1.1 503 "))
            && answer.trim_end().ends_with('}')
            && answer.contains("\"status\""),
        "{answer}"
    );
}

/// Sets this process's soft descriptor limit to at least `n`.
fn raise_descriptor_limit(n: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < n {
            limit.rlim_cur = n.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= n,
        "the test needs {n} file descriptors; the hard limit is {}",
        limit.rlim_max
    );
}

#[test]
fn health_survives_idle_floods_and_slow_clients() {
    const IDLE: usize = 1500;
    const TOTAL: i64 = 3000;
    /// systemd's default soft limit, which the flood exhausted before.
    const CHILD_DESCRIPTORS: u64 = 1024;
    raise_descriptor_limit(IDLE as u64 + 512);
    let influx = Influxd::start();
    let stream = Stream::new(2);
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = running_config(&stream, &influx, dir.path());
    let conf = dir.path().join("persister.conf");
    std::fs::write(&conf, cfg.to_string()).expect("write config");
    let mut command = Command::new(BIN);
    command.arg("--config-file").arg(&conf);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: CHILD_DESCRIPTORS,
                rlim_max: CHILD_DESCRIPTORS,
            };
            match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let mut a = Persister::spawn(command, cfg.health.bind, dir.path(), "persister");
    let addr = cfg.health.bind;
    wait_until(
        "partitions assigned",
        LONG,
        || a.tail(),
        || {
            (a.metric("monasca_persister_assigned_partitions{topic=\"metrics\"}")? == 2.0)
                .then_some(())
        },
    );
    let (threads_before, fds_before) = threads_and_fds(a.pid());

    let ts0 = p::base_ts();
    let mut idle = Vec::with_capacity(IDLE);
    let mut refused = 0;
    for i in 0..IDLE {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => idle.push(s),
            Err(_) => refused += 1,
        }
        if i % 100 == 0 {
            let body = p::metric("cpu.idle_perc", "t1", "h1", ts0 + i as i64, 1.0);
            stream.produce(i as i64, body.as_bytes());
        }
    }
    // A slow client, after the flood (which makes room by closing the
    // oldest connections): a request head a byte at a time, never finished.
    let slow = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).expect("connect the slow client");
        let connected = Instant::now();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("read timeout");
        let _ = stream.write_all(b"GET /healthcheck HTTP/1.1\r\n");
        let mut byte = [0u8; 1];
        loop {
            if connected.elapsed() > Duration::from_secs(60) {
                return None;
            }
            if stream.write_all(b"X").is_err() {
                return Some(connected.elapsed());
            }
            match stream.read(&mut byte) {
                Ok(0) => return Some(connected.elapsed()),
                Ok(_) => return None, // answered an unfinished request?
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Some(connected.elapsed()),
            }
        }
    });

    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let (answer, took) = timed_get(addr, "/healthcheck", Duration::from_secs(1))
            .unwrap_or_else(|| {
                panic!(
                    "no /healthcheck answer within 1 s during the flood ({i}){}",
                    a.tail()
                )
            });
        assert_answered(&answer);
        slowest = slowest.max(took);
    }
    let (threads_during, fds_during) = threads_and_fds(a.pid());
    for i in (IDLE as i64)..TOTAL {
        let body = p::metric("cpu.idle_perc", "t1", "h1", ts0 + i, 1.0);
        stream.produce(i, body.as_bytes());
    }
    stream.kafka.flush();
    let sent = (IDLE as u64).div_ceil(100) as i64 + (TOTAL - IDLE as i64);
    wait_until(
        "every message in InfluxDB",
        LONG,
        || a.tail(),
        || (stored(&influx) == sent as u64).then_some(()),
    );
    let loris = slow.join().expect("slow client thread");
    drop(idle);

    for i in 0..5 {
        let (answer, took) = timed_get(addr, "/healthcheck", Duration::from_secs(1))
            .unwrap_or_else(|| {
                panic!(
                    "no /healthcheck answer within 1 s after the flood ({i}){}",
                    a.tail()
                )
            });
        assert_answered(&answer);
        slowest = slowest.max(took);
    }
    let (_, fds_after) = wait_until(
        "the flood's descriptors closed",
        LONG,
        || a.tail(),
        || {
            let (t, f) = threads_and_fds(a.pid());
            (f <= fds_before + 2).then_some((t, f))
        },
    );
    eprintln!(
        "{IDLE} idle connections ({refused} refused) and a slow client: threads {threads_before} -> {threads_during}, \
         descriptors {fds_before} -> {fds_during} -> {fds_after}; slowest /healthcheck {slowest:?}; \
         slow client closed after {loris:?}"
    );
    assert!(
        threads_during <= threads_before + 1,
        "threads {threads_before} -> {threads_during}"
    );
    assert!(
        fds_during <= fds_before + 64 + 2,
        "descriptors {fds_before} -> {fds_during}"
    );
    let loris = loris.expect("the slow client was closed, not answered");
    assert!(
        loris < Duration::from_secs(15),
        "the slow client was held {loris:?}"
    );
    assert!(
        !a.log().contains("Too many open files"),
        "the process ran out of descriptors{}",
        a.tail()
    );
    a.signal(libc::SIGTERM);
    let (status, _) = a.wait_exit(LONG);
    assert!(status.success(), "{status}{}", a.tail());
}

// ---------------------------------------------------------------------------
// A disk that fills up.

/// A small tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u64) -> SmallDisk {
        std::fs::create_dir_all(path).expect("create mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a {megabytes} MiB tmpfs at {} failed: {}; this test needs root (CAP_SYS_ADMIN), as in CI",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        SmallDisk {
            path: path.to_path_buf(),
        }
    }

    /// Bytes an unprivileged writer may still use.
    fn free_bytes(&self) -> u64 {
        let c = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: statvfs fills the zeroed struct for a NUL-terminated path.
        unsafe {
            let mut stat: libc::statvfs = std::mem::zeroed();
            assert_eq!(libc::statvfs(c.as_ptr(), &mut stat), 0, "statvfs");
            stat.f_bavail * stat.f_frsize
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// `n` metrics of `disk.io` with ~1 000 bytes of incompressible
/// `value_meta` each (~1.1 KB of line), with unique timestamps, produced
/// and acknowledged.
fn produce_large_metrics(stream: &Stream, n: i64) {
    let mut rng = fastrand::Rng::with_seed(5);
    let ts0 = p::base_ts();
    for i in 0..n {
        let noise: String = (0..1000).map(|_| rng.alphanumeric()).collect();
        let body = p::metric_with_meta("t1", "h1", ts0 + i, &noise);
        stream.produce(i, body.as_bytes());
    }
    stream.kafka.flush();
}

#[test]
fn a_full_wal_disk_pauses_consumption_and_loses_nothing() {
    use monasca_persister::pipeline::disk_space::RESERVE_BYTES;
    const TOTAL: i64 = 12_000;
    const PARTITIONS: i32 = 4;
    let mut influx = Influxd::start();
    let stream = Stream::new(PARTITIONS);
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = SmallDisk::mount(&dir.path().join("disk"), 48);
    let mut cfg = running_config(&stream, &influx, dir.path());
    cfg.wal.path = disk.path.join("wal");
    cfg.wal.dead_letter_path = disk.path.join("dead-letter.jsonl");
    cfg.wal.drain_timeout_seconds = 3;
    influx.stop(false);
    let measured = |influx: &Influxd| p::count_field(influx, "mon", "disk.io", "value");

    let mut a = start(&cfg, "", dir.path(), "persister");
    a.wait_log("running", LONG);
    // Leave 4 MiB above the reserve: room for about a third of the messages.
    let filler = disk.path.join("filler");
    let fill = disk.free_bytes() - RESERVE_BYTES - (4 << 20);
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("fill the disk");
    produce_large_metrics(&stream, TOTAL);

    // Consumption pauses; the process answers and says why.
    let health = |who: &Persister| {
        let (status, body) = who.get("/healthcheck")?;
        let json: serde_json::Value = serde_json::from_str(&body).ok()?;
        let reason = json["wal"]["disk_full"].as_str()?.to_string();
        Some((status, reason))
    };
    let (status, reason) = wait_until(
        "a full disk in /healthcheck",
        LONG,
        || a.tail(),
        || health(&a),
    );
    assert_eq!(status, 503, "{reason}");
    assert!(
        reason.contains(&disk.path.display().to_string()) && reason.contains("reserve"),
        "{reason}"
    );
    assert_eq!(a.metric("monasca_persister_wal_disk_full"), Some(1.0));
    a.wait_log("no room on the WAL's disk: pausing", LONG);
    assert_eq!(a.metric("monasca_persister_consumers_paused"), Some(1.0));
    let committed = stream.committed_total();
    assert!(committed > 0 && committed < TOTAL, "committed {committed}");

    // SIGTERM while full: an orderly exit within the drain timeout.
    a.signal(libc::SIGTERM);
    let (status, took) = a.wait_exit(LONG);
    assert!(status.success(), "{status}{}", a.tail());
    assert!(
        took <= Duration::from_secs(cfg.wal.drain_timeout_seconds + 5),
        "SIGTERM on a full disk took {took:?}{}",
        a.tail()
    );

    // Started again on the full disk, it waits; freed, it resumes.
    let mut b = start(&cfg, "", dir.path(), "persister");
    wait_until(
        "a full disk in /healthcheck",
        LONG,
        || b.tail(),
        || health(&b),
    );
    std::fs::remove_file(&filler).expect("free the disk");
    wait_until(
        "every offset committed",
        LONG,
        || b.tail(),
        || (stream.committed_total() == TOTAL).then_some(()),
    );
    assert_eq!(b.metric("monasca_persister_wal_disk_full"), Some(0.0));
    b.wait_log("with room on its disk: resuming", Duration::ZERO);
    influx.restart();
    wait_until(
        "every message in InfluxDB",
        LONG,
        || b.tail(),
        || (measured(&influx) == TOTAL as u64).then_some(()),
    );
    b.signal(libc::SIGTERM);
    let (status, _) = b.wait_exit(LONG);
    assert!(status.success(), "{status}{}", b.tail());
    assert_eq!(measured(&influx), TOTAL as u64);
}

/// The newest segment file of the WAL in `dir`.
fn newest_segment(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .expect("list the WAL")
        .map(|e| e.expect("WAL entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .max()
        .unwrap_or_else(|| panic!("no segment in {}", dir.display()))
}

/// `chattr <flag> path` (e2fsprogs, on the ext4 the temporary directory is on).
fn chattr(flag: &str, path: &Path) {
    let out = Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
        .expect("run chattr (Debian's e2fsprogs)");
    assert!(
        out.status.success(),
        "chattr {flag} {}: {} (the test needs a file system with the immutable attribute, e.g. ext4)",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_write_the_wal_cannot_do_is_fatal_and_exits_within_seconds() {
    const TOTAL: i64 = 3_000;
    const PARTITIONS: i32 = 4;
    let influx = Influxd::start();
    let stream = Stream::new(PARTITIONS);
    let dir = open_tempdir();
    let state = writable_dir(&dir.path().join("state"));
    let mut cfg = running_config(&stream, &influx, dir.path());
    cfg.wal.path = state.join("wal");
    cfg.wal.dead_letter_path = state.join("dead-letter.jsonl");
    // One flush point for everything.
    cfg.kafka_metrics.batch_size = 100_000;
    cfg.wal.commit_interval_ms = 2_000;
    let conf = dir.path().join("persister.conf");
    std::fs::write(&conf, cfg.to_string()).expect("write config");
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let spawn = |name: &str| {
        let mut command = unprivileged_command(dir.path());
        command.arg("--config-file").arg(&conf);
        Persister::spawn(command, cfg.health.bind, dir.path(), name)
    };
    let mut a = spawn("a");
    a.wait_log("running", LONG);
    // The WAL's segment made immutable: the next append fails (EPERM), as
    // a write to a failing disk would.
    let segment = newest_segment(&cfg.wal.path);
    chattr("+i", &segment);
    produce_large_metrics(&stream, TOTAL);
    let fatal = a.wait_log("appending", LONG);
    let noticed = Instant::now();
    let (status, _) = a.wait_exit(LONG);
    let took = noticed.elapsed();
    eprintln!("fatal: {fatal}\nexited {status} {took:?} after the fatal error was logged");
    assert_eq!(status.code(), Some(1), "{status}{}", a.tail());
    // Within the orderly stop (3 s), not by the watchdog (10 s).
    assert!(
        took < Duration::from_secs(8),
        "exit took {took:?}{}",
        a.tail()
    );
    assert_eq!(
        stream.committed_total(),
        0,
        "nothing was durable, nothing committed"
    );

    // Repaired, the next start delivers everything.
    chattr("-i", &segment);
    let mut b = spawn("b");
    wait_until(
        "every message in InfluxDB",
        LONG,
        || b.tail(),
        || (p::count_field(&influx, "mon", "disk.io", "value") == TOTAL as u64).then_some(()),
    );
    b.signal(libc::SIGTERM);
    let (status, _) = b.wait_exit(LONG);
    assert!(status.success(), "{status}{}", b.tail());
}

//! `migrate-db-per-tenant` against a real influxd, through the binary: every
//! point lands in its tenant's database intact (names with spaces, quotes,
//! dots, commas and backslashes included), retention policies are as asked,
//! re-runs skip finished measurements, a failing measurement is recorded
//! while the others go on, skip patterns and dry runs change nothing they
//! should not.

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::influxd::Influxd;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const PASSWORD: &str = "never-shown-pw-7741";

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
}

/// A measurement name and how line protocol spells it.
struct Name {
    name: &'static str,
    line: &'static str,
}

/// A tenant id and how line protocol spells it as a tag value.
struct Tenant {
    id: &'static str,
    line: &'static str,
}

const ALPHA: Tenant = Tenant {
    id: "alpha",
    line: "alpha",
};
const BETA: Tenant = Tenant {
    id: "beta",
    line: "beta",
};
const ODD: Tenant = Tenant {
    id: r#"it's "odd" one"#,
    line: r#"it's\ "odd"\ one"#,
};

/// One test's influxd, config file and state directory.
struct Setup {
    influx: Influxd,
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// What a run of the binary printed and returned.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        for text in [&self.stdout, &self.stderr] {
            assert!(!text.contains(PASSWORD), "the password was printed: {text}");
        }
    }
}

impl Setup {
    fn new(influxdb_extra: &str) -> Setup {
        let influx = Influxd::start();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("persister.conf");
        std::fs::write(
            &config,
            format!(
                "[influxdb]\nip_address = 127.0.0.1\nport = {}\ndatabase_name = mon\n\
                 password = {PASSWORD}\n{influxdb_extra}\n",
                influx.port
            ),
        )
        .expect("write config");
        let created = influx.query(None, "CREATE DATABASE mon");
        assert!(created["results"][0]["error"].is_null(), "{created}");
        Setup {
            influx,
            dir,
            config,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    fn state_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.state_file(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs the migration in days, 30 back, with `args` added.
    fn migrate(&self, args: &[&str]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_monasca-persister"))
            .arg("migrate-db-per-tenant")
            .arg("--config-file")
            .arg(&self.config)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args([
                "--migrate-time-unit",
                "d",
                "--migrate-end-time-offset",
                "30",
            ])
            .args(args)
            .output()
            .expect("run monasca-persister migrate-db-per-tenant");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn write(&self, db: &str, lines: &[String]) {
        let (status, body) = self.influx.write_lines(db, &lines.join("\n"));
        assert_eq!(status, 204, "write to {db}: {body}");
    }

    fn statement(&self, db: Option<&str>, q: &str) {
        let answer = self.influx.query(db, q);
        assert!(answer["results"][0]["error"].is_null(), "{q}: {answer}");
    }

    /// Every series (name, tags, columns, values) of a query, as JSON.
    fn series(&self, db: &str, q: &str) -> Vec<Value> {
        let answer = self.influx.query(Some(db), q);
        assert!(
            answer["results"][0]["error"].is_null(),
            "{q} on {db}: {answer}"
        );
        answer["results"][0]["series"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn point_count(&self, db: &str, from: &str) -> usize {
        self.series(db, &format!("SELECT * FROM {from}"))
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum()
    }

    fn databases(&self) -> BTreeSet<String> {
        self.influx.databases().into_iter().collect()
    }

    /// (name, duration, default) of each retention policy of `db`.
    fn policies(&self, db: &str) -> Vec<(String, String, bool)> {
        let q = format!("SHOW RETENTION POLICIES ON {}", ident(db));
        self.series(db, &q)
            .iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .map(|row| {
                (
                    row[0].as_str().unwrap_or_default().to_string(),
                    row[1].as_str().unwrap_or_default().to_string(),
                    row[4].as_bool().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Every column of `SHOW RETENTION POLICIES` on `db`, in name order.
    fn policy_rows(&self, db: &str) -> Vec<Value> {
        let q = format!("SHOW RETENTION POLICIES ON {}", ident(db));
        let mut rows: Vec<Value> = self
            .series(db, &q)
            .iter()
            .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
            .collect();
        rows.sort_by_key(|row| row[0].to_string());
        rows
    }

    /// The points of `tenant` in `measurement` of the source and of the
    /// tenant's database, series by series, tags and fields included.
    fn assert_copied(&self, measurement: &str, tenant: &str) -> usize {
        let source = self.series(
            "mon",
            &format!(
                "SELECT * FROM {} WHERE \"_tenant_id\" = {} GROUP BY *",
                ident(measurement),
                literal(tenant)
            ),
        );
        let target_db = format!("mon_{tenant}");
        let target = self.series(
            &target_db,
            &format!("SELECT * FROM {} GROUP BY *", ident(measurement)),
        );
        assert!(
            !source.is_empty(),
            "no source points for {measurement:?}/{tenant:?}"
        );
        assert_eq!(
            source, target,
            "{measurement:?} of tenant {tenant:?} differs between mon and {target_db:?}"
        );
        for show in ["SHOW FIELD KEYS FROM", "SHOW TAG KEYS FROM"] {
            let q = format!("{show} {}", ident(measurement));
            assert_eq!(
                self.series("mon", &q),
                self.series(&target_db, &q),
                "{q} differs between mon and {target_db:?}"
            );
        }
        source
            .iter()
            .map(|s| s["values"].as_array().map_or(0, Vec::len))
            .sum()
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `count` points of `tenant` in `m`, the i-th `age(i)` ms old, with a few
/// tags and float, string (and for some, integer and boolean) fields.
fn points(m: &Name, tenant: &Tenant, count: i64, age: impl Fn(i64) -> i64) -> Vec<String> {
    let now = now_ms();
    (0..count)
        .map(|i| {
            let extra = if m.name.starts_with("cpu") {
                format!(",count={i}i,ok={}", i % 2 == 0)
            } else {
                String::new()
            };
            format!(
                "{},_tenant_id={},_region=useast,hostname=h{} value={}.25,value_meta=\"{{\\\"i\\\": {i}}}\"{extra} {}",
                m.line,
                tenant.line,
                i % 3,
                i * 10,
                now - age(i)
            )
        })
        .collect()
}

fn measurement_names(setup: &Setup) -> BTreeSet<String> {
    setup
        .series("mon", "SHOW MEASUREMENTS")
        .iter()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|row| row[0].as_str().map(str::to_string))
        .collect()
}

#[test]
fn every_point_lands_in_its_tenants_database_with_the_policy_asked_for() {
    let setup = Setup::new("default_retention_hours = 1000");
    let names = [
        Name {
            name: "cpu.idle_perc",
            line: "cpu.idle_perc",
        },
        Name {
            name: "disk space used",
            line: r"disk\ space\ used",
        },
        Name {
            name: r#"it's "quoted".total"#,
            line: r#"it's\ "quoted".total"#,
        },
        Name {
            name: r"a.b\c,d",
            line: r"a.b\c\,d",
        },
    ];
    // 26 points over about three weeks, differently offset per tenant.
    for m in &names {
        for (t, tenant) in [&ALPHA, &BETA, &ODD].into_iter().enumerate() {
            let shift = t as i64 * HOUR_MS + HOUR_MS / 2;
            setup.write("mon", &points(m, tenant, 26, |i| i * 19 * HOUR_MS + shift));
        }
    }
    let expected: BTreeSet<String> = names.iter().map(|m| m.name.to_string()).collect();
    assert_eq!(measurement_names(&setup), expected, "test data names");
    let source_before = setup.series("mon", "SELECT * FROM /.*/ GROUP BY *");

    let run = setup.migrate(&["--migrate-retention-policy", "alpha:30,beta:3w", "--verify"]);
    run.assert_code(0);
    assert!(run.stdout.contains("4 migrated"), "{}", run.stdout);
    assert_eq!(
        run.stderr
            .matches("verified: source and target agree")
            .count(),
        12,
        "every measurement × tenant verified, on InfluxDB's clock:\n{}",
        run.stderr
    );
    assert!(!run.stderr.contains("Date header"), "{}", run.stderr);

    for m in &names {
        for tenant in [&ALPHA, &BETA, &ODD] {
            assert_eq!(setup.assert_copied(m.name, tenant.id), 26);
        }
    }
    assert_eq!(
        setup.policies("mon_alpha"),
        [
            ("30d".to_string(), "720h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
    assert_eq!(
        setup.policies("mon_beta"),
        [
            ("3w".to_string(), "504h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
    assert_eq!(
        setup.policies(&format!("mon_{}", ODD.id)),
        [
            ("1000h".to_string(), "1000h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
    let expected_dbs: BTreeSet<String> =
        ["mon", "mon_alpha", "mon_beta", &format!("mon_{}", ODD.id)]
            .into_iter()
            .map(str::to_string)
            .collect();
    assert_eq!(setup.databases(), expected_dbs);
    assert_eq!(
        setup.series("mon", "SELECT * FROM /.*/ GROUP BY *"),
        source_before,
        "the source changed"
    );
    let success: BTreeSet<String> = setup.state_lines("migrate-success").into_iter().collect();
    assert_eq!(success, expected);
    let cached: BTreeSet<String> = setup
        .state_lines("migrate-measurements")
        .into_iter()
        .collect();
    assert_eq!(cached, expected);
    assert!(setup.state_lines("migrate-failure").is_empty());

    // The policies — names, durations, shard durations, replication,
    // default — are those the reference's migration tool makes with its
    // InfluxDB client's two statements.
    setup.statement(None, "CREATE DATABASE \"reference_beta\"");
    setup.statement(
        None,
        "CREATE RETENTION POLICY \"3w\" ON \"reference_beta\" DURATION 3w REPLICATION 1 SHARD DURATION 0s DEFAULT",
    );
    assert_eq!(
        setup.policy_rows("mon_beta"),
        setup.policy_rows("reference_beta")
    );
}

#[test]
fn a_failing_measurement_is_recorded_the_rest_goes_on_and_reruns_skip_what_is_done() {
    let setup = Setup::new("");
    let names = [
        Name {
            name: "m.ok1",
            line: "m.ok1",
        },
        Name {
            name: "m.broken",
            line: "m.broken",
        },
        Name {
            name: "m.ok2",
            line: "m.ok2",
        },
    ];
    let age = |i: i64| i * 9 * HOUR_MS + HOUR_MS;
    for m in &names {
        for tenant in [&ALPHA, &BETA] {
            setup.write("mon", &points(m, tenant, 20, age));
        }
    }
    // A point of beta's m.broken already in its target database, at the
    // time of a source point but with `value` a string: InfluxDB refuses
    // the float of the copy (field type conflict, same shard).
    let conflict_at = setup.series(
        "mon",
        "SELECT value FROM \"m.broken\" WHERE \"_tenant_id\" = 'beta' LIMIT 1",
    )[0]["values"][0][0]
        .as_i64()
        .expect("a beta point of m.broken");
    setup.statement(None, "CREATE DATABASE mon_beta");
    setup.write(
        "mon_beta",
        &[format!("m.broken,hostname=x value=\"text\" {conflict_at}")],
    );

    let first = setup.migrate(&["--verify", "--migrate-retention-policy", "beta:30"]);
    first.assert_code(1);
    // mon_beta existed: its policy is left as it is, and the log says so.
    assert_eq!(
        setup.policies("mon_beta"),
        [("autogen".to_string(), "0s".to_string(), true)]
    );
    assert!(
        first.stderr.contains("\"30d\" asked for but not applied"),
        "{}",
        first.stderr
    );
    let failures = setup.state_lines("migrate-failure");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("m.broken\t")
            && failures[0].contains("field type conflict")
            && failures[0].contains("\"beta\"")
            && failures[0].contains("chunk"),
        "{failures:?}"
    );
    assert!(first.stdout.contains("1 failed"), "{}", first.stdout);
    let success: BTreeSet<String> = setup.state_lines("migrate-success").into_iter().collect();
    assert_eq!(success, BTreeSet::from(["m.ok1".into(), "m.ok2".into()]));
    // The other tenant of the failed measurement, and the measurements
    // after it, were copied.
    assert_eq!(setup.assert_copied("m.broken", "alpha"), 20);
    for tenant in ["alpha", "beta"] {
        assert_eq!(setup.assert_copied("m.ok1", tenant), 20);
        assert_eq!(setup.assert_copied("m.ok2", tenant), 20);
    }

    // A finished measurement is not copied again: dropped from a target,
    // it stays away.
    setup.statement(Some("mon_alpha"), "DROP MEASUREMENT \"m.ok1\"");
    let second = setup.migrate(&[]);
    second.assert_code(1);
    assert!(
        second.stdout.contains("2 already done"),
        "{}",
        second.stdout
    );
    assert_eq!(setup.point_count("mon_alpha", "\"m.ok1\""), 0);
    assert_eq!(
        setup.state_lines("migrate-failure").len(),
        1,
        "the failure list describes the latest run only"
    );

    // With the conflict gone the measurement completes.
    setup.statement(Some("mon_beta"), "DROP MEASUREMENT \"m.broken\"");
    let third = setup.migrate(&["--verify"]);
    third.assert_code(0);
    assert!(setup.state_lines("migrate-failure").is_empty());
    assert_eq!(setup.assert_copied("m.broken", "beta"), 20);
    assert_eq!(setup.state_lines("migrate-success").len(), 3);

    // Copying everything again (no success list) duplicates nothing.
    std::fs::remove_file(setup.state_file("migrate-success")).expect("remove migrate-success");
    let again = setup.migrate(&["--verify"]);
    again.assert_code(0);
    for m in &names {
        for tenant in ["alpha", "beta"] {
            assert_eq!(setup.assert_copied(m.name, tenant), 20, "{}", m.name);
        }
    }
}

#[test]
fn skip_patterns_and_dry_runs_leave_things_alone() {
    let setup = Setup::new("");
    let names = [
        Name {
            name: "log.api",
            line: "log.api",
        },
        Name {
            name: "syslog.x",
            line: "syslog.x",
        },
        Name {
            name: "cpu.load",
            line: "cpu.load",
        },
    ];
    for m in &names {
        for tenant in [&ALPHA, &BETA] {
            setup.write("mon", &points(m, tenant, 5, |i| i * DAY_MS + HOUR_MS));
        }
    }
    // Alarm history has no _tenant_id: nothing to copy.
    setup.write(
        "mon",
        &[format!(
            "alarm_state_history,tenant_id=alpha new_state=\"OK\" {}",
            now_ms() - HOUR_MS
        )],
    );
    let databases_before = setup.databases();
    let skip = ["--migrate-skip-regex", r"log\..+,nothing\.matches"];

    let dry = setup.migrate(&[&["--dry-run", "--verify"][..], &skip[..]].concat());
    dry.assert_code(0);
    for expected in [
        "Dry run",
        "\"mon_alpha\" for tenant \"alpha\": to create with retention policy \"autogen\"",
        "\"log.api\": skipped (matches --migrate-skip-regex \"log\\\\..+\")",
        "\"syslog.x\": 2 tenant(s) [\"alpha\", \"beta\"], 60 chunk(s)",
        "\"alarm_state_history\": no _tenant_id values, nothing to copy",
        "Total: 3 measurement(s) to migrate, 4 measurement × tenant copies, 120 chunk(s)",
    ] {
        assert!(
            dry.stdout.contains(expected),
            "{expected:?} not in\n{}",
            dry.stdout
        );
    }
    assert_eq!(
        setup.databases(),
        databases_before,
        "a dry run created databases"
    );
    assert!(
        !setup.state_dir().exists(),
        "a dry run wrote state files in {}",
        setup.state_dir().display()
    );

    let run = setup.migrate(&skip);
    run.assert_code(0);
    for tenant in ["alpha", "beta"] {
        assert_eq!(setup.assert_copied("cpu.load", tenant), 5);
        assert_eq!(setup.assert_copied("syslog.x", tenant), 5);
        let db = format!("mon_{tenant}");
        assert_eq!(
            setup.point_count(&db, "\"log.api\""),
            0,
            "skipped, yet copied"
        );
        assert_eq!(setup.point_count(&db, "alarm_state_history"), 0);
    }
    let success: BTreeSet<String> = setup.state_lines("migrate-success").into_iter().collect();
    assert_eq!(
        success,
        BTreeSet::from([
            "syslog.x".into(),
            "cpu.load".into(),
            "alarm_state_history".into()
        ])
    );
    let after = setup.migrate(&[&["--dry-run"][..], &skip[..]].concat());
    after.assert_code(0);
    assert!(
        after.stdout.contains("\"cpu.load\": already done"),
        "{}",
        after.stdout
    );
}

#[test]
fn a_short_retention_policy_limits_what_is_copied() {
    let setup = Setup::new("");
    let m = Name {
        name: "cpu.short",
        line: "cpu.short",
    };
    // Points 0.5, 1.5, ... 5.5 days old: a 2-day policy keeps two.
    for tenant in [&ALPHA, &BETA] {
        setup.write("mon", &points(&m, tenant, 6, |i| i * DAY_MS + DAY_MS / 2));
    }
    let run = setup.migrate(&["--migrate-retention-policy", "alpha:2", "--verify"]);
    run.assert_code(0);
    assert!(!run.stdout.contains("dropped"), "{}", run.stdout);
    assert_eq!(
        setup.policies("mon_alpha"),
        [
            ("2d".to_string(), "48h0m0s".to_string(), true),
            ("autogen".to_string(), "0s".to_string(), false)
        ]
    );
    let kept = setup.series(
        "mon",
        "SELECT * FROM \"cpu.short\" WHERE \"_tenant_id\" = 'alpha' AND time > now() - 2d GROUP BY *",
    );
    assert_eq!(
        setup.series("mon_alpha", "SELECT * FROM \"cpu.short\" GROUP BY *"),
        kept
    );
    assert_eq!(setup.point_count("mon_alpha", "\"cpu.short\""), 2);
    assert_eq!(setup.assert_copied("cpu.short", "beta"), 6);
}

#[test]
fn a_stop_signal_ends_the_run_between_chunks_with_the_state_files_consistent() {
    let setup = Setup::new("");
    let names = [
        Name {
            name: "m.a",
            line: "m.a",
        },
        Name {
            name: "m.b",
            line: "m.b",
        },
        Name {
            name: "m.c",
            line: "m.c",
        },
    ];
    for m in &names {
        for tenant in [&ALPHA, &BETA] {
            setup.write("mon", &points(m, tenant, 20, |i| i * DAY_MS + HOUR_MS));
        }
    }
    // Hour chunks over 30 days: hundreds of statements per tenant, so that
    // the signal comes in the middle of a measurement.
    let mut command = Command::new(env!("CARGO_BIN_EXE_monasca-persister"));
    command
        .arg("migrate-db-per-tenant")
        .arg("--config-file")
        .arg(&setup.config)
        .arg("--state-dir")
        .arg(setup.state_dir())
        .args([
            "--migrate-time-unit",
            "h",
            "--migrate-end-time-offset",
            "720",
        ]);
    let dummy: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
    let mut run = support::binary::Persister::spawn(command, dummy, setup.dir.path(), "migrate");
    run.wait_log("Migrating \"m.b\"", std::time::Duration::from_secs(120));
    run.signal(libc::SIGTERM);
    let (status, _) = run.wait_exit(std::time::Duration::from_secs(60));
    let log = run.log();
    assert_eq!(status.code(), Some(130), "{status}{}", run.tail());
    assert!(
        log.contains("received SIGTERM: stopping before the next chunk")
            && log.contains("interrupted by a stop signal")
            && log.contains("stopped while copying \"m.b\""),
        "{}",
        run.tail()
    );
    assert!(!log.contains(PASSWORD), "the password was printed");
    // m.a is finished; m.b, being copied, is recorded neither way.
    assert_eq!(setup.state_lines("migrate-success"), ["m.a"]);
    assert!(setup.state_lines("migrate-failure").is_empty());
    let listed = std::fs::read_to_string(setup.state_file("migrate-success")).expect("read");
    assert!(listed.ends_with('\n'), "{listed:?}");

    // The next run (in day chunks, quicker) resumes and completes.
    let second = setup.migrate(&[]);
    second.assert_code(0);
    assert!(
        second.stdout.contains("1 already done"),
        "{}",
        second.stdout
    );
    for m in &names {
        for tenant in ["alpha", "beta"] {
            assert_eq!(setup.assert_copied(m.name, tenant), 20, "{}", m.name);
        }
    }
}

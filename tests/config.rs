//! The configuration as operators use it: existing monasca-persister.conf
//! files, several files and a config dir, oslo syntax, every kind of bad
//! value, and secrets kept out of every output (library and real binary).

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use monasca_persister::config::{
    load, load_str, Config, ConfigError, GroupProtocol, Loaded, Sources,
};
use proptest::prelude::*;

const PASSWORD: &str = "Zq7-unique-influx-pw";
const TOKEN: &str = "tok-9f8e7d-unique";
const SASL_PASSWORD: &str = "sasl-unique-4711";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path
}

fn load_files(files: &[&Path], dir: Option<&Path>) -> Result<Loaded, ConfigError> {
    load(&Sources {
        config_files: files.iter().map(|p| p.to_path_buf()).collect(),
        config_dir: dir.map(Path::to_path_buf),
    })
}

fn load_text(text: &str) -> Loaded {
    load_str("/etc/monasca/monasca-persister.conf", text)
        .unwrap_or_else(|e| panic!("did not load: {e}"))
}

fn error_of(text: &str) -> String {
    match load_str("/etc/monasca/monasca-persister.conf", text) {
        Ok(l) => panic!("loaded although it should not: {text:?} -> {:?}", l.config),
        Err(e) => e.to_string(),
    }
}

/// The minimum configuration seed 004's README asks operators to write,
/// filled in.
const SEED_004_SHAPE: &str = "\
[zookeeper]
uri = zk1:2181,zk2:2181,zk3:2181

[kafka_alarm_history]
uri = kafka1:9092,kafka2:9092

[kafka_metrics]
uri = kafka1:9092,kafka2:9092

[influxdb]
database_name = mon
ip_address = 192.168.10.4
port = 8086
user = mon_persister
password = Zq7-unique-influx-pw
ssl = True
verify_ssl = False

[repositories]
metrics_driver = monasca_persister.repositories.influxdb.metrics_repository:MetricInfluxdbRepository
alarm_state_history_driver = monasca_persister.repositories.influxdb.alarm_state_history_repository:AlarmStateHistInfluxdbRepository
";

#[test]
fn the_reference_readme_shape_loads() {
    let l = load_text(SEED_004_SHAPE);
    let c = &l.config;
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    assert_eq!(c.zookeeper.uri, ["zk1:2181", "zk2:2181", "zk3:2181"]);
    assert_eq!(c.kafka_metrics.uri, ["kafka1:9092", "kafka2:9092"]);
    assert_eq!(c.kafka_alarm_history.uri, ["kafka1:9092", "kafka2:9092"]);
    assert_eq!(c.kafka_events.uri, ["127.0.0.1:9092"]);
    assert_eq!(c.influxdb.ip_address, "192.168.10.4");
    assert_eq!(c.influxdb.port, 8086);
    assert_eq!(c.influxdb.password.expose(), PASSWORD);
    assert!(c.influxdb.ssl);
    assert!(!c.influxdb.verify_ssl);
    // untouched sections keep the reference defaults
    assert_eq!(c.kafka_metrics.group_id, "1_metrics");
    assert_eq!(c.kafka_metrics.batch_size, 20000);
    assert_eq!(c.kafka_alarm_history.batch_size, 1);
    assert_eq!(c.kafka_alarm_history.topic, "alarm-state-transitions");
    assert!(!c.kafka_events.enabled);
    assert_eq!(c.wal, Config::default().wal);
}

#[test]
fn the_readme_template_with_empty_values_means_defaults() {
    // seed 004: "database_name =", "port =", "ssl =" ... left empty
    let l =
        load_text("[influxdb]\nip_address =\nport =\nuser =\npassword =\nssl =\nverify_ssl =\n");
    let i = &l.config.influxdb;
    assert_eq!(
        (i.ip_address.as_str(), i.port, i.ssl, i.verify_ssl),
        ("127.0.0.1", 8086, false, false)
    );
    assert_eq!(i.user, "", "an empty string option is an empty string");
    assert!(i.password.is_empty());
    assert!(error_of("[influxdb]\ndatabase_name =\n")
        .ends_with("[influxdb] database_name = \"\": must not be empty"));
}

/// An installed persister's file as deployments write it (the reference's
/// etc/ and docker templates): old options, comments, `:` separators.
const REALISTIC: &str = "\
[DEFAULT]
log_config_append=/etc/monasca/persister-logging.conf
# Show debugging output in logs (sets DEBUG log level output)
debug = False
verbose = True
log_dir = /var/log/monasca/persister
log_file = persister.log
use_stderr = yes

[repositories]
# The driver to use for the metrics repository
metrics_driver = monasca_persister.repositories.influxdb.metrics_repository:MetricInfluxdbRepository
#metrics_driver = monasca_persister.repositories.cassandra.metrics_repository:MetricCassandraRepository
alarm_state_history_driver = monasca_persister.repositories.influxdb.alarm_state_history_repository:AlarmStateHistInfluxdbRepository
# Don't exit on InfluxDB parse point errors
ignore_parse_point_error = true

[zookeeper]
# Comma separated list of host:port
uri = 192.168.10.4:2181
partition_interval_recheck_seconds = 15

[kafka]
num_processors = 2
legacy_kafka_client_enabled = false

[kafka_alarm_history]
# Comma separated list of Kafka broker host:port.
uri = 192.168.10.4:9092
group_id = 1_alarm-state-transitions
topic = alarm-state-transitions
consumer_id = 1
client_id = 1
database_batch_size = 1000
max_wait_time_seconds = 30
# The following 3 values are set to the kakfa-python defaults
fetch_size_bytes = 4096
buffer_size = 4096
# 8 times buffer size
max_buffer_size = 32768
# Path in zookeeper for kafka consumer group partitioning algo
zookeeper_path = /persister_partitions/alarm-state-transitions
num_processors = 1

[kafka_metrics]
# Comma separated list of Kafka broker host:port
uri = 192.168.10.4:9092,
      192.168.10.5:9092
group_id = 1_metrics
topic = metrics
consumer_id = 1
client_id = 1
database_batch_size = 1000
batch_size = 5000
max_wait_time_seconds = 15
fetch_size_bytes = 4096
buffer_size = 4096
max_buffer_size = 32768
zookeeper_path = /persister_partitions/$kafka_metrics.topic

[influxdb]
database_name = mon
db_per_tenant = on
default_retention_hours = 2160
ip_address = 192.168.10.4
port = 8086
user = mon_persister
password = \"Zq7-unique-influx-pw\"

# Uncomment, set cluster_ip_addresses, and change the repositories to point to the cassandra classes
#[cassandra]
# Comma separated list of Cassandra node IP addresses. No spaces.
#cluster_ip_addresses: 192.168.10.6
#keyspace: monasca
[cassandra]
contact_points: 192.168.10.6
password: cassandra-pw
";

#[test]
fn a_realistic_installed_file_loads_with_warnings_for_what_is_ignored() {
    let l = load_text(REALISTIC);
    let c = &l.config;
    assert!(!c.default.debug);
    assert!(c.default.use_stderr);
    assert_eq!(
        c.default.log_path(),
        Some(PathBuf::from("/var/log/monasca/persister/persister.log"))
    );
    assert!(c.repositories.ignore_parse_point_error);
    assert_eq!(c.zookeeper.uri, ["192.168.10.4:2181"]);

    let m = &c.kafka_metrics;
    assert_eq!(m.uri, ["192.168.10.4:9092", "192.168.10.5:9092"]);
    assert_eq!(m.batch_size, 5000);
    assert_eq!(m.max_wait_time_seconds, 15);
    assert_eq!(m.consumer_id.as_deref(), Some("1"));
    assert_eq!(m.client_id, "1");
    assert_eq!(m.buffer_size, Some(4096));
    assert_eq!(m.num_processors, 2, "inherited from [kafka]");
    assert_eq!(
        m.zookeeper_path.as_deref(),
        Some("/persister_partitions/metrics")
    );

    let a = &c.kafka_alarm_history;
    assert_eq!(
        a.num_processors, 1,
        "the section's own value wins over [kafka]"
    );
    assert_eq!(a.batch_size, 1);
    assert_eq!(c.kafka_events.num_processors, 2);

    let i = &c.influxdb;
    assert!(i.db_per_tenant);
    assert_eq!(i.default_retention_hours, 2160);
    assert_eq!(
        i.password.expose(),
        PASSWORD,
        "quotes around a value are removed"
    );

    let f = "/etc/monasca/monasca-persister.conf";
    assert_eq!(
        l.warnings,
        vec![
            format!("{f}: [DEFAULT] log_config_append is ignored: logging is set by debug, log_file, log_dir and use_stderr"),
            format!("{f}: [DEFAULT] verbose (oslo.log) is not supported; ignored"),
            format!("{f}: [cassandra] is not used: InfluxDB is the only store; section ignored"),
            format!("{f}: [kafka_alarm_history] database_batch_size is not used by this version (batch_size in [kafka_metrics] and [kafka_alarm_history] sets the batch); ignored"),
            format!("{f}: [kafka_metrics] database_batch_size is not used by this version (batch_size in [kafka_metrics] and [kafka_alarm_history] sets the batch); ignored"),
        ]
    );
}

#[test]
fn files_then_config_dir_later_ones_win() {
    let tmp = tempfile::tempdir().unwrap();
    let first = write(
        tmp.path(),
        "monasca-persister.conf",
        "[influxdb]\nport = 8087\nuser = a\n[kafka]\nnum_processors = 2\n[kafka_metrics]\nuri = k1:9092\n",
    );
    let second = write(
        tmp.path(),
        "override.conf",
        "[influxdb]\nport = 8088\n[wal]\nfsync = off\n",
    );
    let dir = tmp.path().join("conf.d");
    fs::create_dir(&dir).unwrap();
    write(&dir, "20-b.conf", "[influxdb]\nuser = from-20\n");
    let ten = write(
        &dir,
        "10-a.conf",
        "[influxdb]\nport = 8089\nuser = from-10\n",
    );
    write(&dir, "30-ignored.txt", "[influxdb]\nport = not read\n");
    write(&dir, ".hidden.conf", "[influxdb]\nport = not read\n");

    let l = load_files(&[&first, &second], Some(&dir)).unwrap();
    let c = &l.config;
    assert_eq!(
        c.sources,
        vec![first.clone(), second.clone(), ten, dir.join("20-b.conf")]
    );
    assert_eq!(
        c.influxdb.port, 8089,
        "config-dir files come after the files"
    );
    assert_eq!(c.influxdb.user, "from-20", "config-dir files in name order");
    assert!(!c.wal.fsync);
    assert_eq!(c.kafka_metrics.uri, ["k1:9092"]);
    assert_eq!(c.kafka_metrics.num_processors, 2);

    // without the dir, the second file wins over the first
    let l = load_files(&[&first, &second], None).unwrap();
    assert_eq!(
        (l.config.influxdb.port, l.config.influxdb.user.as_str()),
        (8088, "a")
    );
    // and the order of the files decides
    let l = load_files(&[&second, &first], None).unwrap();
    assert_eq!(l.config.influxdb.port, 8087);
}

#[test]
fn oslo_syntax_substitution_booleans_lists_continuations() {
    let l = load_text(
        "# comment\n; another\n\
         [DEFAULT]\n\
         state = /srv/mon\n\
         brokers = k1:9092\n\
         [kafka_metrics]\n\
         uri = $brokers,\n\
         \x20   ${DEFAULT.brokers},,\n\
         \tk2:9093\n\
         topic: metrics-$$raw\n\
         enabled = NO\n\
         [kafka_events]\n\
         enabled = On\n\
         group_id = ${kafka_metrics.group_id}-events\n\
         [wal]\n\
         path = ${state}/wal\n\
         dead_letter_path = $DEFAULT.state/dead\n\
         fsync = 0\n\
         [health]\n\
         enabled = FALSE\n\
         bind = [::1]:9999\n\
         [kafka_client]\n\
         security.protocol = SASL_SSL\n\
         sasl.username = ${influxdb.user}\n",
    );
    let c = &l.config;
    assert_eq!(c.kafka_metrics.uri, ["k1:9092", "k1:9092", "k2:9093"]);
    assert_eq!(c.kafka_metrics.topic, "metrics-$raw");
    assert!(!c.kafka_metrics.enabled);
    assert!(c.kafka_events.enabled);
    assert_eq!(
        c.kafka_events.group_id, "1_metrics-events",
        "defaults can be referenced"
    );
    assert_eq!(c.wal.path, PathBuf::from("/srv/mon/wal"));
    assert_eq!(c.wal.dead_letter_path, PathBuf::from("/srv/mon/dead"));
    assert!(!c.wal.fsync);
    assert!(!c.health.enabled);
    assert_eq!(c.health.bind, "[::1]:9999".parse::<SocketAddr>().unwrap());
    let props: Vec<(&str, &str)> = c
        .kafka_client
        .properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        props,
        [
            ("sasl.username", "mon_persister"),
            ("security.protocol", "SASL_SSL")
        ]
    );
    assert!(
        l.warnings.is_empty(),
        "used [DEFAULT] helpers are not unknown: {:?}",
        l.warnings
    );
}

#[test]
fn unknown_options_and_sections_are_warned_about_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = write(
        tmp.path(),
        "a.conf",
        "[influxdb]\nprot = 1\n[mystery]\nx = 1\ny = 2\n",
    );
    let b = write(
        tmp.path(),
        "b.conf",
        "[influxdb]\nprot = 2\n[mystery]\nx = 3\n[kafka]\nlegacy_kafka_client_enabled = true\n",
    );
    let l = load_files(&[&a, &b], None).unwrap();
    let (a, b) = (a.display(), b.display());
    assert_eq!(
        l.warnings,
        vec![
            format!("{b}: [influxdb] prot: unknown option, ignored"),
            format!("{b}: [kafka] legacy_kafka_client_enabled = true is ignored: librdkafka is the only Kafka client"),
            format!("{a}: unknown section [mystery], ignored"),
        ]
    );
}

fn assert_error(text: &str, expected: &str) {
    assert_eq!(
        error_of(text),
        format!("/etc/monasca/monasca-persister.conf{expected}"),
        "for {text:?}"
    );
}

#[test]
fn group_membership_options_are_read_per_topic_and_checked() {
    let l = load_text(
        "[kafka]\ngroup_instance_name = edge-17\nsession_timeout_ms = 10000\n\
         [kafka_alarm_history]\ngroup_instance_name =\ngroup_protocol = Consumer\nsession_timeout_ms =\n",
    );
    let (m, a) = (&l.config.kafka_metrics, &l.config.kafka_alarm_history);
    assert_eq!(m.group_instance_id(3).as_deref(), Some("edge-17-metrics-3"));
    assert_eq!(m.protocol(), GroupProtocol::Classic);
    assert_eq!(m.session_timeout_ms, Some(10_000));
    assert_eq!(a.group_instance_id(0), None, "empty: static membership off");
    assert_eq!(a.protocol(), GroupProtocol::Consumer);
    assert_eq!(a.session_timeout_ms, None);
    // Unset: the host name.
    let d = load_text("").config.kafka_metrics;
    assert_eq!(d.group_instance_name, "<host name>");
    let id = d
        .group_instance_id(0)
        .expect("static membership by default");
    assert!(
        id.ends_with("-metrics-0") && id.len() > "-metrics-0".len(),
        "{id}"
    );

    assert_error(
        "[kafka]\ngroup_instance_name = edge 17\n",
        ": [kafka] group_instance_name = \"edge 17\": ' ' is not allowed in a Kafka group instance id (letters, digits, '.', '_' and '-' are; empty turns static membership off)",
    );
    assert_error(
        "[kafka_metrics]\ngroup_protocol = eager\n",
        ": [kafka_metrics] group_protocol = \"eager\": not a group protocol (classic or consumer)",
    );
    assert_error(
        "[kafka]\nsession_timeout_ms = 0\n",
        ": [kafka] session_timeout_ms = \"0\": out of range: must be between 1 and 3600000",
    );
    assert_error(
        "[kafka]\ngroup_protocol = consumer\nsession_timeout_ms = 10000\n",
        ": [kafka] session_timeout_ms = \"10000\": not with group_protocol = consumer: that protocol's session timeout is the group's, set on the brokers (group.consumer.session.timeout.ms, or consumer.session.timeout.ms of the group)",
    );
}

#[test]
fn each_kind_of_bad_value_names_file_section_option_and_value() {
    assert_error(
        "[influxdb]\nport = abc\n",
        ": [influxdb] port = \"abc\": not a port number (1-65535)",
    );
    assert_error(
        "[influxdb]\nport = 70000\n",
        ": [influxdb] port = \"70000\": not a port number (1-65535)",
    );
    assert_error(
        "[kafka_metrics]\nbatch_size = -5\n",
        ": [kafka_metrics] batch_size = \"-5\": negative: must be between 1 and 1000000",
    );
    assert_error(
        "[wal]\nwriter_threads = two\n",
        ": [wal] writer_threads = \"two\": not a whole number (must be between 1 and 64)",
    );
    assert_error(
        "[wal]\nmax_size_mb = 0\n",
        ": [wal] max_size_mb = \"0\": out of range: must be between 1 and 16777216",
    );
    assert_error(
        "[influxdb]\nssl = maybe\n",
        ": [influxdb] ssl = \"maybe\": not a boolean (true/false, yes/no, on/off, 1/0)",
    );
    assert_error(
        "[kafka_metrics]\nuri = kafka1\n",
        ": [kafka_metrics] uri = \"kafka1\": \"kafka1\" is not host:port",
    );
    assert_error(
        "[zookeeper]\nuri = zk:2181,zk2:x\n",
        ": [zookeeper] uri = \"zk:2181,zk2:x\": \"zk2:x\" is not host:port: \"x\" is not a port number (1-65535)",
    );
    assert_error(
        "[influxdb]\nip_address = http://db\n",
        ": [influxdb] ip_address = \"http://db\": not an IP address or host name",
    );
    assert_error(
        "[health]\nbind = localhost:8091\n",
        ": [health] bind = \"localhost:8091\": not an IP:port address (for example 127.0.0.1:8091 or [::1]:8091)",
    );
    assert_error(
        "[kafka_metrics]\ntopic = \n",
        ": [kafka_metrics] topic = \"\": must not be empty",
    );
    assert_error(
        "[DEFAULT]\nbase = 99999\n[influxdb]\nport = $base\n",
        ": [influxdb] port = \"$base\" (expands to \"99999\"): not a port number (1-65535)",
    );
    assert_error(
        "[wal]\npath = $nowhere/wal\n",
        ": [wal] path = \"$nowhere/wal\": cannot substitute $nowhere: there is no option nowhere in [wal] or [DEFAULT] (write $$ for a literal $)",
    );
    assert_error(
        "[DEFAULT]\na = $b\nb = ${a}\n[wal]\npath = $a\n",
        ": [wal] path = \"$a\": substitution loop: [DEFAULT] a -> [DEFAULT] b -> [DEFAULT] a",
    );
    assert_error(
        "[repositories]\nmetrics_driver = monasca_persister.repositories.cassandra.metrics_repository:MetricCassandraRepository\n",
        ": [repositories] metrics_driver = \"monasca_persister.repositories.cassandra.metrics_repository:MetricCassandraRepository\": \
         cassandra is not supported: this persister writes to InfluxDB only (use monasca_persister.repositories.influxdb.*)",
    );
    assert_error(
        "[repositories]\nalarm_state_history_driver = monasca_persister.repositories.elasticsearch.x:Y\n",
        ": [repositories] alarm_state_history_driver = \"monasca_persister.repositories.elasticsearch.x:Y\": \
         elasticsearch is not supported: this persister writes to InfluxDB only (use monasca_persister.repositories.influxdb.*)",
    );
}

#[test]
fn syntax_errors_name_file_and_line() {
    assert_error(
        "[influxdb]\nport = 1\nthis is not an assignment\n",
        ":3: expected 'option = value', a [section] header or a comment",
    );
    assert_error(
        "port = 1\n",
        ":1: option \"port\" appears before any [section] header",
    );
    assert_error(
        "[influxdb]\n\n   port = 1\n",
        ":3: indented line with no option above it to continue (indentation marks a continuation line)",
    );
    assert_error(
        "[influxdb\n",
        ":1: section header \"[influxdb\" does not end with ']'",
    );
}

#[test]
fn unreadable_sources_name_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.conf");
    let e = load_files(&[&missing], None).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("config file {} does not exist", missing.display())
    );

    let missing_dir = tmp.path().join("conf.d");
    let e = load_files(&[], Some(&missing_dir)).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot read config directory {}: ",
            missing_dir.display()
        )),
        "{e}"
    );

    let e = load_files(&[tmp.path()], None).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot read config file {}: ",
            tmp.path().display()
        )),
        "{e}"
    );

    let binary = tmp.path().join("binary.conf");
    fs::write(&binary, b"[influxdb]\nuser = ok\npassword = \xff\xfe\n").unwrap();
    let e = load_files(&[&binary], None).unwrap_err().to_string();
    assert_eq!(e, format!("{}:3: not valid UTF-8 text", binary.display()));
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let l = load_text(&format!(
        "[influxdb]\npassword = {PASSWORD}\ntoken = {TOKEN}\n[kafka_client]\nsasl.password = {SASL_PASSWORD}\nssl.key.password = {SASL_PASSWORD}\nclient.id = visible\n"
    ));
    let debug = format!("{:?} {:#?}", l.config, l);
    let display = l.config.to_string();
    for text in [&debug, &display] {
        for secret in [PASSWORD, TOKEN, SASL_PASSWORD] {
            assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
        }
        assert!(text.contains("visible"), "{text}");
    }
    assert!(
        display.contains("password = ****\ntoken = ****\n"),
        "{display}"
    );
    assert!(display.contains("sasl.password = ****\n"), "{display}");

    // a bad secret value is shown as ****, even when substituted elsewhere
    for text in [
        format!("[influxdb]\npassword = {PASSWORD}$oops\n"),
        format!("[influxdb]\npassword = {PASSWORD}\nport = ${{influxdb.password}}\n"),
        format!("[kafka_client]\nsasl.password = {SASL_PASSWORD}$x\n"),
    ] {
        let e = error_of(&text);
        assert!(e.contains("= \"****\""), "{e}");
        for secret in [PASSWORD, SASL_PASSWORD] {
            assert!(!e.contains(secret), "{secret} leaked into: {e}");
        }
    }
}

#[test]
fn the_effective_configuration_reads_back_to_itself() {
    let l = load_text(REALISTIC);
    let printed = l.config.to_string();
    let again = load_text(&printed);
    let mut expected = l.config.clone();
    // printed secrets are masked, so they read back as "****"
    expected.influxdb.password = monasca_persister::config::Secret::new("****");
    assert_eq!(again.config, expected);
    assert!(again.warnings.is_empty(), "{:?}", again.warnings);
}

/// `#option = value` lines of the sample (help lines are `# text`).
fn commented_option(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('#')?;
    let name_end = rest.find(" =")?;
    let name = &rest[..name_end];
    let is_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    is_name.then_some(rest)
}

#[test]
fn the_sample_config_documents_every_option_and_loads() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/monasca-persister.conf");
    let text = fs::read_to_string(&sample).unwrap_or_else(|e| panic!("{}: {e}", sample.display()));
    // as shipped (all commented out) it is the defaults
    let l = load_str("sample", &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    // uncommenting every `#option = value` gives the defaults again: the
    // documented defaults are the real ones
    let uncommented: String = text
        .lines()
        .map(|line| format!("{}\n", commented_option(line).unwrap_or(line)))
        .collect();
    let u = load_str("sample", &uncommented).unwrap_or_else(|e| panic!("uncommented sample: {e}"));
    assert!(u.warnings.is_empty(), "{:?}", u.warnings);
    let expected = Config {
        sources: vec![PathBuf::from("sample")],
        ..Config::default()
    };
    assert_eq!(u.config, expected);

    // every option the loader knows is documented in its section (options
    // every topic section inherits, in [kafka])
    let documented = |section: &str| -> Vec<String> {
        let header = format!("[{section}]");
        let Some(start) = text.lines().position(|l| l == header) else {
            panic!("{header} missing from the sample");
        };
        text.lines()
            .skip(start + 1)
            .take_while(|l| !l.starts_with('['))
            .filter_map(commented_option)
            .map(|rest| rest[..rest.find(" =").unwrap_or(0)].to_string())
            .collect()
    };
    let kafka = documented("kafka");
    for option in [
        "consumer_id",
        "client_id",
        "max_wait_time_seconds",
        "fetch_size_bytes",
        "buffer_size",
        "max_buffer_size",
        "num_processors",
        "legacy_kafka_client_enabled",
    ] {
        assert!(
            kafka.iter().any(|o| o == option),
            "[kafka] {option} missing from the sample"
        );
    }
    for section in Config::default().effective() {
        if section.name == "kafka_client" {
            assert!(
                text.contains("\n[kafka_client]\n"),
                "[kafka_client] missing from the sample"
            );
            continue;
        }
        let here = documented(section.name);
        for o in &section.options {
            let found = here.contains(&o.name)
                || (section.name.starts_with("kafka_") && kafka.contains(&o.name));
            assert!(
                found,
                "[{}] {} missing from the sample",
                section.name, o.name
            );
        }
    }
}

fn run_binary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monasca-persister"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running monasca-persister {args:?}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn secret_config(dir: &Path, extra_default: &str) -> PathBuf {
    write(
        dir,
        "monasca-persister.conf",
        &format!(
            "[DEFAULT]\n{extra_default}\n[influxdb]\nuser = mon\npassword = {PASSWORD}\ntoken = {TOKEN}\n\
             [kafka_client]\nsasl.password = {SASL_PASSWORD}\nsasl.mechanism = PLAIN\n[nosuch]\nx = 1\n"
        ),
    )
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = secret_config(tmp.path(), "");
    let conf_s = conf.to_string_lossy().into_owned();
    let out = run_binary(&["check-config", "--config-file", &conf_s]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(&format!("#   {conf_s}\n")),
        "sources listed:\n{stdout}"
    );
    for section in [
        "[DEFAULT]",
        "[kafka_metrics]",
        "[kafka_alarm_history]",
        "[kafka_events]",
        "[zookeeper]",
        "[influxdb]",
        "[repositories]",
        "[wal]",
        "[health]",
        "[kafka_client]",
    ] {
        assert!(stdout.contains(section), "{section} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("user = mon\npassword = ****\ntoken = ****\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("sasl.mechanism = PLAIN\nsasl.password = ****\n"),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        format!("warning: {conf_s}: unknown section [nosuch], ignored\n")
    );
    for secret in [PASSWORD, TOKEN, SASL_PASSWORD] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked:\n{stdout}\n{stderr}"
        );
    }
}

#[test]
fn without_config_options_the_oslo_default_locations_are_searched() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".monasca");
    fs::create_dir(&dir).unwrap();
    let conf = write(&dir, "monasca-persister.conf", "[influxdb]\nport = 18086\n");
    let out = Command::new(env!("CARGO_BIN_EXE_monasca-persister"))
        .arg("check-config")
        .env("HOME", home.path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("#   {}\n", conf.display())),
        "{stdout}"
    );
    assert!(stdout.contains("\nport = 18086\n"), "{stdout}");
}

#[test]
fn check_config_fails_with_the_reason_and_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(
        tmp.path(),
        "bad.conf",
        &format!("[influxdb]\npassword = {PASSWORD}$x\n"),
    );
    let bad_s = bad.to_string_lossy().into_owned();
    let out = run_binary(&["--config-file", &bad_s, "check-config"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr,
        format!(
            "error: invalid configuration: {bad_s}: [influxdb] password = \"****\": \
             holds a $ reference that cannot be substituted (write $$ for a literal $)\n"
        )
    );
    assert!(!stderr.contains(PASSWORD), "{stderr}");

    let missing = tmp.path().join("missing.conf");
    let out = run_binary(&["check-config", "--config-file", &missing.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: invalid configuration: config file {} does not exist\n",
            missing.display()
        )
    );
}

#[test]
fn the_persister_logs_no_secret_even_at_debug() {
    let tmp = tempfile::tempdir().unwrap();
    // A WAL path below a regular file cannot be opened: the run stops at
    // start-up with a fatal error, after logging the configuration.
    let blocker = write(tmp.path(), "not-a-directory", "");
    let conf = secret_config(
        tmp.path(),
        &format!(
            "debug = true\nlog_dir = {}\nlog_file = persister.log\nuse_stderr = true\n[wal]\npath = {}/wal\n[health]\nenabled = false",
            tmp.path().display(),
            blocker.display()
        ),
    );
    let out = run_binary(&["--config-file", &conf.to_string_lossy()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let log = fs::read_to_string(tmp.path().join("persister.log")).unwrap();
    assert!(
        log.contains(" DEBUG monasca_persister.cli [-] password = ****\n"),
        "{log}"
    );
    assert!(log.contains(" WARNING monasca_persister.cli [-] "), "{log}");
    assert!(
        log.contains(&format!(
            " ERROR monasca_persister.cli [-] opening the WAL ([wal] path): WAL {}/wal: ",
            blocker.display()
        )),
        "{log}"
    );
    assert_eq!(stderr, log, "use_stderr = true copies the log to stderr");
    for secret in [PASSWORD, TOKEN, SASL_PASSWORD] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}

#[test]
fn the_persister_reports_a_bad_configuration_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(tmp.path(), "bad.conf", "[influxdb]\nport = abc\n");
    let out = run_binary(&["--config-file", &bad.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "monasca-persister: error: invalid configuration: {}: [influxdb] port = \"abc\": not a port number (1-65535)\n",
            bad.display()
        )
    );
}

proptest! {
    // Failing seeds are kept in the repository and replayed first (see
    // proptest-regressions/README.md).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/config.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_bytes_load_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = load_str("fuzz", &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn any_option_value_loads_or_fails_cleanly(
        section in prop::sample::select(vec!["DEFAULT", "kafka", "kafka_metrics", "kafka_events", "zookeeper",
            "influxdb", "repositories", "wal", "health", "kafka_client", "other"]),
        option in prop::sample::select(vec!["debug", "log_file", "uri", "port", "batch_size", "bind", "enabled",
            "password", "num_processors", "metrics_driver", "path", "fsync", "ip_address", "sasl.password", "x"]),
        value in "[ -~\\t\u{80}-\u{10ffff}]{0,40}",
    ) {
        let text = format!("[DEFAULT]\nd = 1\n[{section}]\n{option} = {value}\n");
        match load_str("fuzz", &text) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("fuzz"), "{}", msg);
                let secret = (section == "influxdb" && option == "password")
                    || (section == "kafka_client" && option == "sasl.password");
                if secret {
                    let masked = format!("fuzz: [{section}] {option} = \"****\": ");
                    prop_assert!(msg.starts_with(&masked), "{}", msg);
                    prop_assert!(!msg[masked.len()..].contains(value.trim()), "secret leaked: {}", msg);
                }
            }
        }
    }
}

#[test]
fn properties_that_would_commit_or_change_the_group_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    for (property, value, because) in [
        (
            "enable.auto.commit",
            "true",
            "commits them itself after the WAL fsync",
        ),
        (
            "auto.commit.enable",
            "true",
            "commits them itself after the WAL fsync",
        ),
        (
            "enable.auto.offset.store",
            "true",
            "stores and commits them itself",
        ),
        ("offset.store.method", "file", "commits them to the group"),
        (
            "offset.store.path",
            "/tmp",
            "commits offsets to the consumer group",
        ),
        ("group.id", "other", "group_id in [kafka_metrics]"),
        (
            "group.instance.id",
            "p-1",
            "set group_instance_name in [kafka]",
        ),
        (
            "group.protocol",
            "consumer",
            "set per topic by group_protocol",
        ),
        (
            "session.timeout.ms",
            "10000",
            "set per topic by session_timeout_ms",
        ),
    ] {
        let conf = write(
            tmp.path(),
            "refused.conf",
            &format!("[kafka_client]\nfetch.wait.max.ms = 50\n{property} = {value}\n"),
        );
        let conf = conf.to_string_lossy().into_owned();
        let expected = format!(
            "invalid configuration: {conf}: [kafka_client] {property} = \"{value}\": cannot be set here: "
        );
        for (args, prefix) in [
            (vec!["--config-file", &conf], "monasca-persister: error: "),
            (vec!["check-config", "--config-file", &conf], "error: "),
        ] {
            let out = run_binary(&args);
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("{prefix}{expected}")) && stderr.contains(because),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    }
    // Tuning properties pass through.
    let conf = write(
        tmp.path(),
        "tuning.conf",
        "[kafka_client]\nfetch.wait.max.ms = 50\nheartbeat.interval.ms = 1000\nauto.commit.interval.ms = 1000\nclient.rack = r1\n",
    );
    let out = run_binary(&["check-config", "--config-file", &conf.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("client.rack = r1\nfetch.wait.max.ms = 50\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_secret_in_a_property_librdkafka_rejects_is_masked_in_every_output() {
    const SECRET: &str = "oidc-S3cret-unique-5521";
    const OTHER: &str = "custom-S3cret-unique-8830";
    let tmp = tempfile::tempdir().unwrap();
    // The first is refused by a librdkafka built without OIDC, the second
    // is no librdkafka property at all: both errors quote the value.
    for property in [
        format!("sasl.oauthbearer.client.secret = {SECRET}"),
        format!("my.custom.secret = {OTHER}"),
    ] {
        let conf = write(
            tmp.path(),
            "leaky.conf",
            &format!(
                "[DEFAULT]\nlog_dir = {}\nlog_file = persister.log\nuse_stderr = true\n\
                 [health]\nenabled = false\n[wal]\npath = {}/wal\ndead_letter_path = {}/dl.jsonl\n\
                 [kafka_client]\n{property}\n",
                tmp.path().display(),
                tmp.path().display(),
                tmp.path().display()
            ),
        );
        let conf = conf.to_string_lossy().into_owned();
        let name = property.split(" = ").next().unwrap_or_default();
        let check = run_binary(&["check-config", "--config-file", &conf]);
        let run = run_binary(&["--config-file", &conf]);
        let log = fs::read_to_string(tmp.path().join("persister.log")).unwrap_or_default();
        for (what, out) in [("check-config", &check), ("the persister", &run)] {
            let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
            assert_eq!(out.status.code(), Some(1), "{what}: {all}");
            assert!(
                all.contains("librdkafka refuses the consumer configuration")
                    && all.contains(&format!("{name} ****")),
                "{what}: {all}"
            );
            for secret in [SECRET, OTHER] {
                assert!(!all.contains(secret), "{what} printed the secret: {all}");
            }
        }
        for secret in [SECRET, OTHER] {
            assert!(!log.contains(secret), "the log holds the secret: {log}");
        }
    }
}

#[test]
fn configuration_input_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    // Ten levels of ten references each: 10^10 bytes if expanded.
    let mut laughs = String::from("[DEFAULT]\nl0 = lol\n");
    for level in 1..=10 {
        laughs.push_str(&format!(
            "l{level} = {}\n",
            format!("$l{}", level - 1).repeat(10)
        ));
    }
    laughs.push_str("[wal]\npath = /tmp/$l10\n");
    let laughs = write(tmp.path(), "laughs.conf", &laughs);
    for (path, expected) in [
        (
            laughs.to_string_lossy().into_owned(),
            format!(
                "{}: [wal] path = \"/tmp/$l10\": $ substitution",
                laughs.display()
            ),
        ),
        (
            "/dev/zero".to_string(),
            "config file /dev/zero is larger than 1048576 bytes: not a configuration file (is the path right?)"
                .to_string(),
        ),
    ] {
        for (args, prefix) in [
            (vec!["--config-file", &path], "monasca-persister: error: "),
            (vec!["check-config", "--config-file", &path], "error: "),
        ] {
            let started = std::time::Instant::now();
            let out = run_binary(&args);
            let took = started.elapsed();
            let stderr = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with(&format!("{prefix}invalid configuration: {expected}")),
                "{args:?}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            // Measured 0.3 s for the substitution in a debug build; the bound
            // only tells a refusal from a hang or an abort.
            assert!(took < std::time::Duration::from_secs(10), "{args:?} took {took:?}");
        }
    }
}

#[test]
fn an_empty_path_option_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write(tmp.path(), "empty.conf", "[wal]\npath =\n");
    let out = run_binary(&["--config-file", &conf.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "monasca-persister: error: invalid configuration: {}: [wal] path = \"\": must not be empty (remove the line to use the default, /var/lib/monasca-persister/wal)\n",
            conf.display()
        )
    );
}

#[test]
fn check_config_shows_elasticsearch_with_its_secrets_masked_and_warns_about_sniffing() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = write(
        tmp.path(),
        "events.conf",
        "[kafka_events]\nenabled = true\n\
         [elasticsearch]\nindex_name = monevents\nhosts = es1:9200, 10.0.0.2:9201\n\
         sniff_on_start = true\nsniffer_timeout = 60\nmax_retries = 5\n\
         user = persister\npassword = es-pass-4711\napi_key = a2V5OnNlY3JldA-key\n",
    );
    let conf_s = conf.to_string_lossy().into_owned();
    let out = run_binary(&["check-config", "--config-file", &conf_s]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "[elasticsearch]\nindex_name = monevents\nhosts = es1:9200,10.0.0.2:9201\n\
             sniff_on_start = true\nsniff_on_connection_fail = false\nsniffer_timeout = 60\n\
             max_retries = 5\nbatch_size = 500\nssl = false\nverify_ssl = false\nca_file =\n\
             user = persister\npassword = ****\napi_key = ****\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("elasticsearch_unhealthy_after_seconds = 60\n"),
        "{stdout}"
    );
    for secret in ["es-pass-4711", "a2V5OnNlY3JldA-key"] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} leaked:\n{stdout}\n{stderr}"
        );
    }
    for option in ["sniff_on_start", "sniffer_timeout"] {
        assert!(
            stderr.contains(&format!(
                "warning: {conf_s}: [elasticsearch] {option} is ignored: nodes are not sniffed"
            )),
            "{stderr}"
        );
    }
    assert_error(
        "[elasticsearch]\nmax_retries = 0\n",
        ": [elasticsearch] max_retries = \"0\": out of range: must be between 1 and 1000",
    );
    assert_error(
        "[elasticsearch]\nhosts = es1\n",
        ": [elasticsearch] hosts = \"es1\": \"es1\" is not host:port",
    );
    assert_error(
        "[elasticsearch]\napi_key = ${missing}\n",
        ": [elasticsearch] api_key = \"****\": holds a $ reference that cannot be substituted (write $$ for a literal $)",
    );
}

#[test]
fn check_config_asks_librdkafka_about_every_enabled_topic_section() {
    let tmp = tempfile::tempdir().unwrap();
    // 1.5 GB per partition fetch: within the option's bounds, beyond
    // librdkafka's max.partition.fetch.bytes (1 000 000 000).
    for (section, enabled) in [
        ("kafka_metrics", ""),
        ("kafka_alarm_history", ""),
        ("kafka_events", "enabled = true\n"),
    ] {
        let conf = write(
            tmp.path(),
            &format!("{section}.conf"),
            &format!("[{section}]\n{enabled}max_buffer_size = 1500000000\n"),
        );
        let out = run_binary(&["check-config", "--config-file", &conf.to_string_lossy()]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "[{section}]: {stderr}");
        assert!(
            stderr.contains(&format!(
                "librdkafka refuses the consumer configuration of [{section}] with [kafka_client]"
            )) && stderr.contains("max.partition.fetch.bytes"),
            "[{section}]: {stderr}"
        );
    }
    // A disabled section is not consumed, so not checked.
    let conf = write(
        tmp.path(),
        "disabled.conf",
        "[kafka_events]\nenabled = false\nmax_buffer_size = 1500000000\n",
    );
    let out = run_binary(&["check-config", "--config-file", &conf.to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

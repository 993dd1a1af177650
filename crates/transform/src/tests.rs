//! Behaviour of the transform beyond the shared compat corpus: the
//! deliberate fixes, targets, and the rejection contract.

use super::*;

fn transformer(db_per_tenant: bool) -> Transformer {
    Transformer::new("mon", db_per_tenant)
}

fn metric_json(name: &str, dimensions: &str, value: &str, value_meta: &str) -> String {
    format!(
        r#"{{"metric": {{"name": {name}, "dimensions": {dimensions}, "timestamp": 1554725987408, "value": {value}, "value_meta": {value_meta}}}, "meta": {{"region": "RegionOne", "tenantId": "t1"}}, "creation_time": 1554725988}}"#
    )
}

fn line(payload: &str) -> Result<String, Rejection> {
    let mut out = Vec::new();
    transformer(false).metric(payload.as_bytes(), &mut out)?;
    Ok(String::from_utf8(out).unwrap_or_default())
}

fn dims(dimensions: &str) -> Result<String, Rejection> {
    line(&metric_json("\"m\"", dimensions, "1", "null"))
}

#[test]
fn common_metric_is_one_line_like_the_reference() {
    let got = line(&metric_json(
        "\"cpu.idle_perc\"",
        r#"{"service": "persister", "hostname": "devstack"}"#,
        "7.5",
        "null",
    ));
    assert_eq!(
        got.as_deref(),
        Ok("cpu.idle_perc,_region=RegionOne,_tenant_id=t1,hostname=devstack,service=persister value=7.5,value_meta=\"{}\" 1554725987408\n")
    );
}

#[test]
fn values_influxdb_cannot_store_are_not_finite() {
    for value in [
        "\"nan\"",
        "\"NaN\"",
        "\"inf\"",
        "\"-Infinity\"",
        "1e400",
        "-1e400",
    ] {
        match line(&metric_json("\"m\"", "{}", value, "null")) {
            Err(Rejection::NotFinite {
                field: "metric.value",
                ..
            }) => {}
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn value_accepts_what_python_float_accepts() {
    for (value, want) in [
        ("\" 1_000.5 \"", "1000.5"),
        ("true", "1.0"),
        ("1e16", "1e+16"),
        ("0.00001", "1e-05"),
        // A JSON integer is a Python int: -0 is 0 (the reference writes 0.0).
        ("-0", "0.0"),
        ("-0.0", "-0.0"),
    ] {
        let got = line(&metric_json("\"m\"", "{}", value, "null"))
            .unwrap_or_else(|e| panic!("{value}: {e}"));
        assert!(got.contains(&format!(" value={want},")), "{value}: {got}");
    }
    for value in ["null", "[]", "{}", "\"abc\"", "\"\""] {
        assert_eq!(
            line(&metric_json("\"m\"", "{}", value, "null")).map_err(|e| e.kind()),
            Err("bad_value"),
            "{value}"
        );
    }
}

#[test]
fn empty_dimension_names_and_values_are_omitted() {
    assert_eq!(
        dims(r#"{"": "x", "empty": "", "k": "v"}"#).as_deref(),
        Ok("m,_region=RegionOne,_tenant_id=t1,k=v value=1.0,value_meta=\"{}\" 1554725987408\n")
    );
}

#[test]
fn newlines_in_tags_and_names_become_spaces_carriage_returns_stay() {
    let got = line(&metric_json(
        "\"a\\nb\"",
        r#"{"k\r\n": "line one\nline two"}"#,
        "1",
        "null",
    ));
    assert_eq!(
        got.as_deref(),
        Ok("a\\ b,_region=RegionOne,_tenant_id=t1,k\r\\ =line\\ one\\ line\\ two value=1.0,value_meta=\"{}\" 1554725987408\n")
    );
    // InfluxDB stores a carriage return as it is: as the reference writes it.
    let payload = r#"{"metric": {"name": "cr\rname", "dimensions": {"k\r": "v\r"}, "timestamp": 1, "value": 1}, "meta": {"region": "r", "tenantId": "t"}}"#;
    assert_eq!(
        line(payload).as_deref(),
        Ok("cr\rname,_region=r,_tenant_id=t,k\r=v\r value=1.0,value_meta=\"{}\" 1\n")
    );
}

#[test]
fn any_json_type_is_written_as_python_str_of_it() {
    // Expected lines are the reference's (tests/reference/transform.py).
    let payload = r#"{"metric": {"name": 5, "dimensions": {"n": 1.5, "b": true, "z": null, "l": [1, "it's", {"k": 1e400}], "big": 123456789012345678901234567890, "neg0": -0, "e": 1e16}, "timestamp": 7, "value": 1}, "meta": {"region": null, "tenantId": false}}"#;
    assert_eq!(
        line(payload).as_deref(),
        Ok("5,_region=None,_tenant_id=False,b=True,big=123456789012345678901234567890,e=1e+16,l=[1\\,\\ \"it's\"\\,\\ {'k':\\ inf}],n=1.5,neg0=0,z=None value=1.0,value_meta=\"{}\" 7\n")
    );
    let mut out = Vec::new();
    assert_eq!(
        transformer(true).metric(payload.as_bytes(), &mut out),
        Ok(Target::Tenant("False".into()))
    );
    let payload = r#"{"metric": {"name": {"a": "b\u0085"}, "timestamp": "  ١٢٣ ", "value": "\u3000١٢.٥"}, "meta": {"region": "r", "tenantId": "t", "region": "last"}}"#;
    assert_eq!(
        line(payload).as_deref(),
        Ok("{'a':\\ 'b\\\\x85'},_region=last,_tenant_id=t value=12.5,value_meta=\"{}\" 123\n")
    );
    // An array or object cannot key the reference's per-tenant batches.
    let payload = r#"{"metric": {"name": "m", "timestamp": 1, "value": 1}, "meta": {"region": "r", "tenantId": ["t"]}}"#;
    assert!(line(payload).is_ok());
    assert!(matches!(
        transformer(true).metric(payload.as_bytes(), &mut out),
        Err(Rejection::BadTenant {
            reason: TenantNameError::Unhashable,
            ..
        })
    ));
}

/// Every JSON escape in a name, a dimension key and a value is decoded as
/// `json.loads` decodes it (the direct path leaves such strings to serde).
#[test]
fn escapes_in_names_and_dimensions_are_decoded() {
    let payload = metric_json(
        r#""a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#,
        r#"{"k\u0041": "v\u0042", "x": "\"q\""}"#,
        "1",
        "null",
    );
    assert!(!metric_takes_direct_path(payload.as_bytes()));
    assert_eq!(
        line(&payload).as_deref(),
        Ok("a\"\\\\/\x08\x0c\\ \r\té😀,_region=RegionOne,_tenant_id=t1,kA=vB,x=\"q\" value=1.0,value_meta=\"{}\" 1554725987408\n")
    );
}

#[test]
fn a_byte_order_mark_before_the_json_is_skipped() {
    for mark in ["\u{feff}", "\u{ef}\u{bb}\u{bf}"] {
        let payload = format!(
            r#"{mark}{{"metric": {{"name": "bom", "timestamp": 1, "value": 1}}, "meta": {{"region": "r", "tenantId": "t"}}}}"#
        );
        assert_eq!(
            line(&payload).as_deref(),
            Ok("bom,_region=r,_tenant_id=t value=1.0,value_meta=\"{}\" 1\n")
        );
    }
    let late = " \u{feff}{}";
    assert_eq!(line(late).map_err(|e| e.kind()), Err("malformed"));
}

#[test]
fn infinite_floats_in_value_meta_are_refused_like_simplejson() {
    let payload = r#"{"metric": {"name": "n", "timestamp": 1, "value": 1, "value_meta": {"x": 1e400}}, "meta": {"region": "r", "tenantId": "t"}}"#;
    assert_eq!(line(payload).map_err(|e| e.kind()), Err("bad_value"));
}

#[test]
fn trailing_backslashes_in_tags_are_dropped() {
    assert_eq!(
        dims(r#"{"path": "C:\\temp\\", "only": "\\\\"}"#).as_deref(),
        Ok("m,_region=RegionOne,_tenant_id=t1,path=C:\\\\temp value=1.0,value_meta=\"{}\" 1554725987408\n")
    );
}

#[test]
fn names_influxdb_would_lose_are_rejected() {
    for name in [
        "\"\"",
        "\"#comment\"",
        "\"\\t#comment\"",
        "\"\\t\"",
        "\"\\\\\"",
        r#""a\\ b""#,
        r#""a\\,b""#,
        r#""a\\=b""#,
        r#""a\\\"b""#,
        r#""a\\\nb""#,
    ] {
        assert_eq!(
            line(&metric_json(name, "{}", "1", "null")).map_err(|e| e.kind()),
            Err("bad_value"),
            "{name}"
        );
    }
    assert_eq!(
        dims(r#"{"time": "x"}"#).map_err(|e| e.kind()),
        Err("bad_value")
    );
}

#[test]
fn repeated_dimensions_keep_the_last_value_and_meta_overrides() {
    assert_eq!(
        dims(r#"{"k": "first", "_region": "fake", "k": "last"}"#).as_deref(),
        Ok("m,_region=RegionOne,_tenant_id=t1,k=last value=1.0,value_meta=\"{}\" 1554725987408\n")
    );
}

#[test]
fn repeated_message_fields_keep_the_last_one_like_python() {
    let payload = r#"{"metric": {"name": "old", "dimensions": {"a": "1"}, "timestamp": 1, "value": 1}, "metric": {"name": "m", "timestamp": 2, "value": 3, "dimensions": {"b": "1"}, "dimensions": {"c": "2"}}, "meta": {"region": "r", "tenantId": "t"}}"#;
    assert_eq!(
        line(payload).as_deref(),
        Ok("m,_region=r,_tenant_id=t,c=2 value=3.0,value_meta=\"{}\" 2\n")
    );
}

#[test]
fn many_dimensions_spill_past_the_inline_array_and_stay_sorted() {
    let dimensions: Vec<String> = (0..40)
        .rev()
        .map(|i| format!("\"d{i:02}\": \"v{i}\""))
        .collect();
    let got = dims(&format!("{{{}}}", dimensions.join(", "))).unwrap_or_else(|e| panic!("{e}"));
    let tags: String = (0..40).map(|i| format!(",d{i:02}=v{i}")).collect();
    assert_eq!(
        got,
        format!(
            "m,_region=RegionOne,_tenant_id=t1{tags} value=1.0,value_meta=\"{{}}\" 1554725987408\n"
        )
    );
}

#[test]
fn value_meta_is_python_json_in_a_string_field() {
    let got = line(&metric_json(
        "\"m\"",
        "{}",
        "1",
        r#"{"a": 1.0, "b": "x\"y\\z", "c": [1e16]}"#,
    ));
    assert_eq!(
        got.as_deref(),
        Ok("m,_region=RegionOne,_tenant_id=t1 value=1.0,value_meta=\"{\\\"a\\\": 1.0, \\\"b\\\": \\\"x\\\\\\\"y\\\\\\\\z\\\", \\\"c\\\": [1e+16]}\" 1554725987408\n")
    );
    for falsy in ["{}", "[]", "\"\"", "0", "false"] {
        let got = line(&metric_json("\"m\"", "{}", "1", falsy)).unwrap_or_else(|e| panic!("{e}"));
        assert!(got.contains("value_meta=\"{}\""), "{falsy}: {got}");
    }
    assert!(line(&metric_json("\"m\"", "{}", "1", "\"text\""))
        .is_ok_and(|l| l.contains(r#"value_meta="\"text\"""#)));
    assert_eq!(
        line(&metric_json("\"m\"", "{}", "1", r#"{"a": "\ud800"}"#)).map_err(|e| e.kind()),
        Err("bad_value")
    );
}

#[test]
fn timestamps_are_integer_milliseconds_in_influxdb_range() {
    for (ts, want) in [
        ("1554725987408.9", "1554725987408"),
        ("\"1554725987408\"", "1554725987408"),
        ("-1.5", "-1"),
        ("9223372036854", "9223372036854"),
    ] {
        let payload = metric_json("\"m\"", "{}", "1", "null").replace("1554725987408", ts);
        let got = line(&payload).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert!(got.ends_with(&format!(" {want}\n")), "{ts}: {got}");
    }
    for ts in [
        "9223372036855",
        "-9223372036855",
        "1e300",
        "\"1.5\"",
        "null",
        "\"x\"",
        "99999999999999999999999",
    ] {
        let payload = metric_json("\"m\"", "{}", "1", "null").replace("1554725987408", ts);
        assert_eq!(
            line(&payload).map_err(|e| e.kind()),
            Err("bad_value"),
            "{ts}"
        );
    }
}

#[test]
fn rejection_leaves_the_buffer_as_it_was() {
    let t = transformer(false);
    let mut out = b"earlier line\n".to_vec();
    let bad_meta = metric_json("\"m\"", r#"{"k": "v"}"#, "1", r#"{"a": "\ud800"}"#);
    assert!(t.metric(bad_meta.as_bytes(), &mut out).is_err());
    assert!(t.metric(b"not json", &mut out).is_err());
    let huge = metric_json(
        "\"m\"",
        &format!(r#"{{"k": "{}"}}"#, "x".repeat(70_000)),
        "1",
        "null",
    );
    assert!(t.metric(huge.as_bytes(), &mut out).is_err());
    assert_eq!(out, b"earlier line\n");
}

#[test]
fn series_keys_over_influxdb_limit_are_rejected() {
    let fits = 65521 - "m,_region=RegionOne,_tenant_id=t1,k=".len();
    assert!(dims(&format!(r#"{{"k": "{}"}}"#, "x".repeat(fits))).is_ok());
    assert_eq!(
        dims(&format!(r#"{{"k": "{}"}}"#, "x".repeat(fits + 1))).map_err(|e| e.kind()),
        Err("bad_value")
    );
}

#[test]
fn targets_follow_db_per_tenant() {
    let payload = metric_json("\"m\"", "{}", "1", "null");
    let mut out = Vec::new();
    let shared = transformer(false);
    assert_eq!(
        shared.metric(payload.as_bytes(), &mut out),
        Ok(Target::Shared)
    );
    assert_eq!(shared.database(&Target::Shared), "mon");
    let per_tenant = transformer(true);
    let target = per_tenant.metric(payload.as_bytes(), &mut out);
    assert_eq!(target, Ok(Target::Tenant(Cow::Borrowed("t1"))));
    assert!(
        matches!(target, Ok(Target::Tenant(Cow::Borrowed(_)))),
        "tenant should borrow from the payload"
    );
    assert_eq!(per_tenant.database(&Target::Tenant("t1".into())), "mon_t1");

    let slash = payload.replace("\"t1\"", "\"a/b\"");
    assert_eq!(
        shared.metric(slash.as_bytes(), &mut out).map(|_| ()),
        Ok(())
    );
    match per_tenant.metric(slash.as_bytes(), &mut out) {
        Err(Rejection::BadTenant {
            tenant,
            reason: TenantNameError::Character('/'),
        }) => assert_eq!(tenant, "a/b"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_fields_are_named_by_path() {
    let t = transformer(false);
    let mut out = Vec::new();
    let cases: &[(&str, &str)] = &[
        ("{}", "metric"),
        (
            r#"{"metric": {"timestamp": 1, "value": 1}, "meta": {}}"#,
            "metric.name",
        ),
        (
            r#"{"metric": {"name": "x", "timestamp": 1, "value": 1}}"#,
            "meta",
        ),
        (
            r#"{"metric": {"name": "x", "timestamp": 1, "value": 1}, "meta": {"tenantId": "t"}}"#,
            "meta.region",
        ),
        (
            r#"{"metric": {"name": "x", "timestamp": 1, "value": 1}, "meta": {"region": "r"}}"#,
            "meta.tenantId",
        ),
        (
            r#"{"metric": {"name": "x", "value": 1}, "meta": {"region": "r", "tenantId": "t"}}"#,
            "metric.timestamp",
        ),
        (
            r#"{"metric": {"name": "x", "timestamp": 1}, "meta": {"region": "r", "tenantId": "t"}}"#,
            "metric.value",
        ),
    ];
    for &(payload, field) in cases {
        assert_eq!(
            t.metric(payload.as_bytes(), &mut out),
            Err(Rejection::MissingField(field)),
            "{payload}"
        );
    }
    assert_eq!(
        t.metric(b"[1]", &mut out).map_err(|e| e.kind()),
        Err("malformed")
    );
    assert_eq!(
        t.metric(br#"{"metric": {"name": 5}}"#, &mut out),
        Err(Rejection::MissingField("meta"))
    );
}

#[test]
fn rejections_explain_themselves() {
    let r = Rejection::BadValue {
        field: "metric.value",
        detail: "could not convert string to float: \"abc\"".into(),
    };
    assert_eq!(
        r.to_string(),
        "bad value in `metric.value`: could not convert string to float: \"abc\""
    );
    assert_eq!(
        Rejection::MissingField("meta").to_string(),
        "missing field `meta`"
    );
    let r = Rejection::NotFinite {
        field: "metric.value",
        value: f64::NAN,
    };
    assert_eq!(
        r.to_string(),
        "`metric.value` is NaN, which InfluxDB cannot store"
    );
    for r in [
        r,
        Rejection::Malformed(String::new()),
        Rejection::MissingField("x"),
    ] {
        assert!(Rejection::KINDS.contains(&r.kind()));
    }
}

fn alarm_json(fields: &str) -> String {
    format!(
        r#"{{"alarm-transitioned": {{"alarmId": "a1", "metrics": [], "newState": "OK", "oldState": "ALARM", "stateChangeReason": "r", "tenantId": "t1", "timestamp": 5{fields}}}}}"#
    )
}

#[test]
fn alarm_transition_defaults_and_renames() {
    let t = transformer(false);
    let mut out = Vec::new();
    assert_eq!(
        t.alarm_transition(alarm_json("").as_bytes(), &mut out),
        Err(Rejection::MissingField("alarm-transitioned.subAlarms"))
    );
    let payload = alarm_json(
        r#", "subAlarms": [{"subAlarmState": "OK", "metricDefinition": {"currentValues": [0.5]}}], "link": null"#,
    );
    assert_eq!(
        t.alarm_transition(payload.as_bytes(), &mut out),
        Ok(Target::Shared)
    );
    assert_eq!(
        String::from_utf8(out).unwrap_or_default(),
        "alarm_state_history,tenant_id=t1 tenant_id=\"t1\",alarm_id=\"a1\",metrics=\"[]\",new_state=\"OK\",old_state=\"ALARM\",link=\"\",lifecycle_state=\"\",reason=\"r\",reason_data=\"{}\",sub_alarms=\"[{\\\"sub_alarm_state\\\": \\\"OK\\\", \\\"metric_definition\\\": {\\\"current_values\\\": [0.5]}}]\" 5\n"
    );
    let mut out = Vec::new();
    let null_metrics =
        alarm_json(r#", "subAlarms": null"#).replace(r#""metrics": []"#, r#""metrics": null"#);
    assert_eq!(
        t.alarm_transition(null_metrics.as_bytes(), &mut out),
        Ok(Target::Shared)
    );
    let text = String::from_utf8(out).unwrap_or_default();
    assert!(text.contains(",metrics=\"null\","), "{text}");
    assert!(text.contains(",sub_alarms=\"[]\" "), "{text}");
}

#[test]
fn alarm_transition_fields_of_any_type_and_repeated_fields() {
    // The expected line is the reference's (tests/reference/transform.py).
    let payload = r#"{"alarm-transitioned": {"alarmId": 5, "alarmId": null, "metrics": [1e16], "newState": true, "oldState": ["x"], "link": 0, "lifecycleState": null, "stateChangeReason": {"r": 1}, "tenantId": 7, "timestamp": "12", "subAlarms": {"subAlarmState": 1}}}"#;
    let mut out = Vec::new();
    assert_eq!(
        transformer(false).alarm_transition(payload.as_bytes(), &mut out),
        Ok(Target::Shared)
    );
    assert_eq!(
        String::from_utf8(out).unwrap_or_default(),
        "alarm_state_history,tenant_id=7 tenant_id=\"7\",alarm_id=\"None\",metrics=\"[1e+16]\",new_state=\"True\",old_state=\"['x']\",link=\"0\",lifecycle_state=\"\",reason=\"{'r': 1}\",reason_data=\"{}\",sub_alarms=\"{\\\"sub_alarm_state\\\": 1}\" 12\n"
    );
}

#[test]
fn alarm_transition_in_db_per_tenant_mode() {
    let mut out = Vec::new();
    let payload = alarm_json(r#", "subAlarms": []"#);
    assert_eq!(
        transformer(true).alarm_transition(payload.as_bytes(), &mut out),
        Ok(Target::Tenant("t1".into()))
    );
    let tab = payload.replace("\"t1\"", "\"a\\tb\"");
    assert_eq!(
        transformer(true)
            .alarm_transition(tab.as_bytes(), &mut out)
            .map_err(|e| e.kind()),
        Err("bad_tenant")
    );
}

#[test]
fn events_are_validated() {
    let t = transformer(false);
    let ok = br#"{"event": {"event_type": "compute.instance.create.start", "timestamp": "2017-06-01 09:15:11.494606", "payload": {"a": 1}, "dimensions": {}}, "meta": {"project_id": "p1"}}"#;
    assert_eq!(t.event(ok), Ok(()));
    assert_eq!(
        t.event(br#"{"meta": {"project_id": "p1"}}"#),
        Err(Rejection::MissingField("event"))
    );
    assert_eq!(
        t.event(br#"{"event": {"event_type": "x", "timestamp": 1, "payload": {}}, "meta": {"project_id": "p"}}"#),
        Err(Rejection::MissingField("event.dimensions"))
    );
    assert_eq!(
        t.event(br#"{"event": {"event_type": "x", "timestamp": 1, "payload": {}, "dimensions": {}}, "meta": {}}"#),
        Err(Rejection::MissingField("meta.project_id"))
    );
    assert_eq!(
        t.event(b"{"),
        Err(Rejection::Malformed(
            "EOF while parsing an object at line 1 column 1".into()
        ))
    );
}

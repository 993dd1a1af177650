//! Monasca messages in, InfluxDB line protocol out: the hot path of the
//! persister.
//!
//! [`Transformer`] decodes one Kafka message (a metric, an alarm state
//! transition or an event) and, for metrics and alarm transitions, appends
//! exactly the line the Python reference (monasca-persister 9.0.0) writes,
//! with the deliberate fixes listed in `docs/line-protocol.md`. A message it
//! cannot turn into a storable point is a typed [`Rejection`] for the
//! dead-letter file. [`lines`] splits line protocol where InfluxDB does.
//!
//! Pure: no I/O, no clock, no Kafka; the daemon re-exports it as
//! `monasca_persister::transform`.

mod database;
mod direct;
mod lexer;
mod line;
pub mod lines;
mod message;
pub mod pyjson;
pub mod pynum;
mod pyunicode;
mod simd;
mod swar;
mod tags;

use std::borrow::Cow;

use thiserror::Error;

pub use database::{Target, TenantNameError, MAX_DATABASE_NAME_LEN};
use line::{
    max_series_key_len, normalise_tag_text, push_string_field, push_tag_text,
    trim_trailing_backslashes, StringFieldSink,
};
use message::{AlarmEnvelope, DimensionList, EventEnvelope, JsonKind, Object};
use pynum::{FloatRepr, IntError};

/// Earliest timestamp (ms) InfluxDB 1.x stores: its range is ±(2^63 - 2) ns.
pub const MIN_TIMESTAMP_MS: i64 = -9_223_372_036_854;
/// Latest timestamp (ms) InfluxDB 1.x stores.
pub const MAX_TIMESTAMP_MS: i64 = 9_223_372_036_854;

/// Measurement of alarm state transitions.
const ALARM_MEASUREMENT: &str = "alarm_state_history";

/// Longest field key of a metric line (`value_meta`).
const METRIC_LONGEST_FIELD_KEY: usize = "value_meta".len();
/// Longest field key of an alarm line (`lifecycle_state`).
const ALARM_LONGEST_FIELD_KEY: usize = "lifecycle_state".len();

/// Sub-alarm keys the reference renames to snake case in `sub_alarms`.
const SUB_ALARM_RENAMES: &[(&str, &str)] = &[
    ("subAlarmExpression", "sub_alarm_expression"),
    ("currentValues", "current_values"),
    ("metricDefinition", "metric_definition"),
    ("subAlarmState", "sub_alarm_state"),
];

/// Why a message was not turned into a line. Every variant carries enough to
/// explain the message in the dead-letter file.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Rejection {
    /// Not JSON, or not an object where the reference reads a dict (and in
    /// an event message, a repeated field).
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A required field is absent (or, for `metric`, `meta` and
    /// `alarm-transitioned`, `null`); the dotted path names it.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is present but its value cannot be used.
    #[error("bad value in `{field}`: {detail}")]
    BadValue {
        /// Dotted path of the field (`metric.value`).
        field: &'static str,
        /// What is wrong, quoting the value.
        detail: String,
    },
    /// The metric value is NaN or ±Infinity, which InfluxDB cannot store.
    #[error("`{field}` is {value}, which InfluxDB cannot store")]
    NotFinite {
        /// Dotted path of the field.
        field: &'static str,
        /// The value as decoded.
        value: f64,
    },
    /// In `db_per_tenant` mode, the tenant id cannot form a database name.
    #[error("tenant {tenant:?} cannot name a database: {reason}")]
    BadTenant {
        /// The tenant id as sent.
        tenant: String,
        /// Why InfluxDB would refuse the name.
        reason: TenantNameError,
    },
}

impl Rejection {
    /// A short fixed name for the variant (a Prometheus label value).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::MissingField(_) => "missing_field",
            Rejection::BadValue { .. } => "bad_value",
            Rejection::NotFinite { .. } => "not_finite",
            Rejection::BadTenant { .. } => "bad_tenant",
        }
    }

    /// Every value [`Rejection::kind`] can return, for pre-registering metrics.
    pub const KINDS: [&'static str; 5] = [
        "malformed",
        "missing_field",
        "bad_value",
        "not_finite",
        "bad_tenant",
    ];
}

fn bad_value(field: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection::BadValue {
        field,
        detail: detail.into(),
    }
}

fn malformed(error: serde_json::Error) -> Rejection {
    Rejection::Malformed(error.to_string())
}

/// Parses a whole message. UTF-8 is checked once up front so that serde_json
/// need not re-check every string and raw value it borrows.
fn decode<'p, T: serde::Deserialize<'p>>(payload: &'p [u8]) -> Result<T, Rejection> {
    serde_json::from_str(utf8(payload)?).map_err(malformed)
}

fn utf8(payload: &[u8]) -> Result<&str, Rejection> {
    std::str::from_utf8(payload).map_err(|e| Rejection::Malformed(format!("not UTF-8: {e}")))
}

/// The payload without the byte-order mark the reference's `json.loads`
/// skips at its very start: U+FEFF, or the three characters `ï»¿` (the
/// mark's bytes read as Latin-1, which simplejson checks for too).
fn without_byte_order_mark(payload: &[u8]) -> &[u8] {
    payload
        .strip_prefix("\u{feff}".as_bytes())
        .or_else(|| payload.strip_prefix("\u{ef}\u{bb}\u{bf}".as_bytes()))
        .unwrap_or(payload)
}

/// Python's `str()` of a raw JSON field value (see [`pyjson::python_str`]).
#[inline]
fn python_str<'p>(raw: &'p str, field: &'static str) -> Result<Cow<'p, str>, Rejection> {
    pyjson::python_str(raw).map_err(|e| bad_value(field, e.to_string()))
}

/// Whether a metric message may take the direct path (`direct.rs`), which
/// hands anything else to serde anyway.
#[derive(Debug, Clone, Copy)]
enum Decoder {
    Direct,
    Serde,
}

/// Whether the direct path (`direct.rs`) writes the line of `payload` by
/// itself (a test hook: generated cases must actually exercise it).
#[doc(hidden)]
pub fn metric_takes_direct_path(payload: &[u8]) -> bool {
    direct::encode_metric(payload, None, &mut Vec::new()).is_some()
}

/// The JSON reader that answers for a metric message in
/// [`Transformer::metric`] (a measuring hook: `examples/transform_tiers.rs`).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricReader {
    /// `direct.rs` wrote the line.
    Direct,
    /// serde decoded the message (or refused it).
    Serde,
}

/// Which reader answers for `payload` (see [`MetricReader`]).
#[doc(hidden)]
pub fn metric_reader(payload: &[u8]) -> MetricReader {
    if metric_takes_direct_path(payload) {
        MetricReader::Direct
    } else {
        MetricReader::Serde
    }
}

/// Runs `encode` on `out`; on rejection `out` is left as it was.
fn rolled_back_on_error<T>(
    out: &mut Vec<u8>,
    encode: impl FnOnce(&mut Vec<u8>) -> Result<T, Rejection>,
) -> Result<T, Rejection> {
    let start = out.len();
    let result = encode(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Turns Monasca messages into InfluxDB lines for one `[influxdb]` setup.
/// Cheap to share between consumer threads (`&self` everywhere).
#[derive(Debug, Clone)]
pub struct Transformer {
    database_name: String,
    db_per_tenant: bool,
}

impl Transformer {
    /// A transformer writing to `database_name`, or per tenant when
    /// `db_per_tenant` is set (`[influxdb] database_name` and
    /// `db_per_tenant`).
    pub fn new(database_name: impl Into<String>, db_per_tenant: bool) -> Transformer {
        Transformer {
            database_name: database_name.into(),
            db_per_tenant,
        }
    }

    /// Whether metrics and alarm transitions go to a database per tenant
    /// (`[influxdb] db_per_tenant`) rather than all to the shared one.
    pub fn db_per_tenant(&self) -> bool {
        self.db_per_tenant
    }

    /// The database name for `target`; borrowed for the shared database.
    pub fn database<'a>(&'a self, target: &Target<'_>) -> Cow<'a, str> {
        match target {
            Target::Shared => Cow::Borrowed(&self.database_name),
            Target::Tenant(tenant) => Cow::Owned(format!("{}_{}", self.database_name, tenant)),
        }
    }

    /// Decodes a metric message and appends its line (ending in `\n`) to
    /// `out`. On rejection `out` is left as it was.
    pub fn metric<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
    ) -> Result<Target<'p>, Rejection> {
        rolled_back_on_error(out, |out| self.encode_metric(payload, out, Decoder::Direct))
    }

    /// [`Transformer::metric`] with the direct path switched off: the
    /// reference the direct path is tested against.
    #[doc(hidden)]
    pub fn metric_via_serde<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
    ) -> Result<Target<'p>, Rejection> {
        rolled_back_on_error(out, |out| self.encode_metric(payload, out, Decoder::Serde))
    }

    /// Decodes an `alarm-transitioned` message and appends its
    /// `alarm_state_history` line (ending in `\n`) to `out`. On rejection
    /// `out` is left as it was.
    pub fn alarm_transition<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
    ) -> Result<Target<'p>, Rejection> {
        rolled_back_on_error(out, |out| self.encode_alarm_transition(payload, out))
    }

    /// Decodes and validates an event message (there is no events store yet).
    pub fn event(&self, payload: &[u8]) -> Result<(), Rejection> {
        let envelope: EventEnvelope<'_> = decode(payload)?;
        let event = envelope.event.ok_or(Rejection::MissingField("event"))?;
        event
            .event_type
            .ok_or(Rejection::MissingField("event.event_type"))?;
        event
            .timestamp
            .ok_or(Rejection::MissingField("event.timestamp"))?;
        event
            .payload
            .ok_or(Rejection::MissingField("event.payload"))?;
        let meta = envelope.meta.ok_or(Rejection::MissingField("meta"))?;
        let project = meta
            .project_id
            .ok_or(Rejection::MissingField("meta.project_id"))?;
        event
            .dimensions
            .ok_or(Rejection::MissingField("event.dimensions"))?;
        self.target(&project.0, JsonKind::String)?;
        Ok(())
    }

    /// Where a line goes; `tenant` is the tenant id as text, `kind` its
    /// JSON type (an array or object cannot key the reference's per-tenant
    /// batches: it drops those messages).
    fn target<'p>(&self, tenant: &Cow<'p, str>, kind: JsonKind) -> Result<Target<'p>, Rejection> {
        if !self.db_per_tenant {
            return Ok(Target::Shared);
        }
        let check = match kind {
            JsonKind::Array | JsonKind::Object => Err(TenantNameError::Unhashable),
            _ => database::check_tenant(&self.database_name, tenant),
        };
        check.map_err(|reason| Rejection::BadTenant {
            tenant: tenant.to_string(),
            reason,
        })?;
        Ok(Target::Tenant(tenant.clone()))
    }

    fn encode_metric<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
        decoder: Decoder,
    ) -> Result<Target<'p>, Rejection> {
        if let Decoder::Direct = decoder {
            let tenant_database = self.db_per_tenant.then_some(self.database_name.as_str());
            if let Some(target) = direct::encode_metric(payload, tenant_database, out) {
                return Ok(target);
            }
        }
        self.encode_metric_in_full(payload, out)
    }

    /// The full path of [`Transformer::encode_metric`]: serde, then the
    /// reference's rules field by field. Out of line, so that the direct
    /// path stays small where it is inlined.
    #[inline(never)]
    fn encode_metric_in_full<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
    ) -> Result<Target<'p>, Rejection> {
        let text = utf8(without_byte_order_mark(payload))?;
        let mut tags = DimensionList::new();
        let envelope = message::decode_metric(text, &mut tags).map_err(malformed)?;
        // Required fields are looked up in the order of the reference's
        // `process_message`, so that a message missing several is refused
        // naming the one the reference names.
        let metric = Object::required(envelope.metric, "metric")?;
        let name = metric.name.ok_or(Rejection::MissingField("metric.name"))?;
        let meta = Object::required(envelope.meta, "meta")?;
        let region = meta.region.ok_or(Rejection::MissingField("meta.region"))?;
        let tenant = meta
            .tenant_id
            .ok_or(Rejection::MissingField("meta.tenantId"))?;
        let timestamp = metric
            .timestamp
            .ok_or(Rejection::MissingField("metric.timestamp"))?;
        let value = metric_value(metric.value)?;
        // The reference adds the meta tags to the dimensions dict: `null`
        // (a deliberate difference: no dimensions) or an object.
        if let Some(
            kind @ (JsonKind::Bool(_) | JsonKind::Number | JsonKind::String | JsonKind::Array),
        ) = metric.dimensions
        {
            return Err(Rejection::Malformed(format!(
                "`metric.dimensions` is {}, not an object",
                kind.name()
            )));
        }
        let value_meta = metric.value_meta.filter(|raw| !pyjson::is_falsy(raw));
        let name = python_str(name, "metric.name")?;
        let region = python_str(region, "meta.region")?;
        let tenant_kind = JsonKind::of(tenant);
        let tenant = python_str(tenant, "meta.tenantId")?;
        let timestamp = timestamp_ms(Some(timestamp), "metric.timestamp");
        let target = self.target(&tenant, tenant_kind)?;

        let series_start = out.len();
        push_measurement(out, name)?;

        tags::push_metric_tags(
            out,
            &mut tags,
            [("_region", region), ("_tenant_id", tenant)],
        )?;
        check_series_key(
            out.len() - series_start,
            METRIC_LONGEST_FIELD_KEY,
            "metric.dimensions",
        )?;

        out.extend_from_slice(b" value=");
        out.extend_from_slice(value.as_str().as_bytes());
        out.extend_from_slice(b",value_meta=\"");
        match value_meta {
            Some(raw) => {
                pyjson::write(raw, &[], &mut StringFieldSink(out))
                    .map_err(|e| bad_value("metric.value_meta", e.to_string()))?;
            }
            None => out.extend_from_slice(b"{}"),
        }
        out.extend_from_slice(b"\" ");
        push_timestamp(out, timestamp?);
        Ok(target)
    }

    fn encode_alarm_transition<'p>(
        &self,
        payload: &'p [u8],
        out: &mut Vec<u8>,
    ) -> Result<Target<'p>, Rejection> {
        let envelope: AlarmEnvelope<'p> =
            message::decode_alarm(utf8(without_byte_order_mark(payload))?).map_err(malformed)?;
        let alarm = Object::required(envelope.alarm_transitioned, "alarm-transitioned")?;
        let required =
            |raw: Option<&'p str>, field: &'static str| raw.ok_or(Rejection::MissingField(field));
        // In the order of the reference's `parse_alarm_state_hist_message`
        // (see `encode_metric`).
        let alarm_id = required(alarm.alarm_id, "alarm-transitioned.alarmId")?;
        let metrics = required(alarm.metrics, "alarm-transitioned.metrics")?;
        let new_state = required(alarm.new_state, "alarm-transitioned.newState")?;
        let old_state = required(alarm.old_state, "alarm-transitioned.oldState")?;
        let reason = required(
            alarm.state_change_reason,
            "alarm-transitioned.stateChangeReason",
        )?;
        let tenant = required(alarm.tenant_id, "alarm-transitioned.tenantId")?;
        let timestamp = required(alarm.timestamp, "alarm-transitioned.timestamp")?;
        let sub_alarms = required(alarm.sub_alarms, "alarm-transitioned.subAlarms")?;
        // `link` and `lifecycleState` are "" when missing or null.
        let optional = |raw: Option<&'p str>, field| match raw {
            None | Some("null") => Ok(Cow::Borrowed("")),
            Some(raw) => python_str(raw, field),
        };
        let link = optional(alarm.link, "alarm-transitioned.link")?;
        let lifecycle_state = optional(alarm.lifecycle_state, "alarm-transitioned.lifecycleState")?;
        let tenant_kind = JsonKind::of(tenant);
        let tenant = python_str(tenant, "alarm-transitioned.tenantId")?;
        let alarm_id = python_str(alarm_id, "alarm-transitioned.alarmId")?;
        let new_state = python_str(new_state, "alarm-transitioned.newState")?;
        let old_state = python_str(old_state, "alarm-transitioned.oldState")?;
        let reason = python_str(reason, "alarm-transitioned.stateChangeReason")?;
        let timestamp = timestamp_ms(Some(timestamp), "alarm-transitioned.timestamp");
        let target = self.target(&tenant, tenant_kind)?;

        let series_start = out.len();
        out.extend_from_slice(ALARM_MEASUREMENT.as_bytes());
        let tenant_tag = trim_trailing_backslashes(Cow::Borrowed(&tenant));
        if !tenant_tag.is_empty() {
            out.extend_from_slice(b",tenant_id=");
            push_tag_text(out, &tenant_tag);
        }
        check_series_key(
            out.len() - series_start,
            ALARM_LONGEST_FIELD_KEY,
            "alarm-transitioned.tenantId",
        )?;

        out.extend_from_slice(b" tenant_id=");
        push_string_field(out, &tenant);
        out.extend_from_slice(b",alarm_id=");
        push_string_field(out, &alarm_id);
        out.extend_from_slice(b",metrics=\"");
        pyjson::write(metrics, &[], &mut StringFieldSink(out))
            .map_err(|e| bad_value("alarm-transitioned.metrics", e.to_string()))?;
        out.extend_from_slice(b"\",new_state=");
        push_string_field(out, &new_state);
        out.extend_from_slice(b",old_state=");
        push_string_field(out, &old_state);
        out.extend_from_slice(b",link=");
        push_string_field(out, &link);
        out.extend_from_slice(b",lifecycle_state=");
        push_string_field(out, &lifecycle_state);
        out.extend_from_slice(b",reason=");
        push_string_field(out, &reason);
        out.extend_from_slice(b",reason_data=\"{}\",sub_alarms=\"");
        if pyjson::is_falsy(sub_alarms) {
            out.extend_from_slice(b"[]");
        } else {
            pyjson::write(sub_alarms, SUB_ALARM_RENAMES, &mut StringFieldSink(out))
                .map_err(|e| bad_value("alarm-transitioned.subAlarms", e.to_string()))?;
        }
        out.extend_from_slice(b"\" ");
        push_timestamp(out, timestamp?);
        Ok(target)
    }
}

/// Writes the metric name as the measurement, refusing names InfluxDB would
/// lose: empty ones, ones it reads as a comment line (`#…`, after the tabs
/// and NULs it skips at the start of a line), and ones with a backslash
/// right before a space, comma, `=` or `"` — InfluxDB 1.6 stores those
/// under a name that no query finds again.
fn push_measurement(out: &mut Vec<u8>, mut name: Cow<'_, str>) -> Result<(), Rejection> {
    tags::make_writable(&mut name, normalise_tag_text);
    if name
        .as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b'\\' && matches!(pair[1], b' ' | b',' | b'=' | b'"'))
    {
        return Err(bad_value(
            "metric.name",
            format!("{name:?} has a backslash before a space, comma, `=` or `\"`, which InfluxDB 1.x stores unfindably"),
        ));
    }
    let significant = name.trim_start_matches(['\t', '\0']);
    if significant.is_empty() {
        return Err(bad_value(
            "metric.name",
            format!("{name:?} is empty once made writable"),
        ));
    }
    if significant.starts_with('#') {
        return Err(bad_value(
            "metric.name",
            format!("{name:?} starts with `#`, which InfluxDB reads as a comment line"),
        ));
    }
    push_tag_text(out, &name);
    Ok(())
}

fn check_series_key(
    len: usize,
    longest_field_key: usize,
    field: &'static str,
) -> Result<(), Rejection> {
    let max = max_series_key_len(longest_field_key);
    if len > max {
        return Err(bad_value(
            field,
            format!("the series key would be {len} bytes, over InfluxDB's limit of {max}"),
        ));
    }
    Ok(())
}

fn push_timestamp(out: &mut Vec<u8>, ms: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(ms).as_bytes());
    out.push(b'\n');
}

/// The reference's `int(timestamp)`, limited to InfluxDB's time range.
fn timestamp_ms(raw: Option<&str>, field: &'static str) -> Result<i64, Rejection> {
    let raw = raw.ok_or(Rejection::MissingField(field))?;
    let ms = match JsonKind::of(raw) {
        JsonKind::Number => pynum::small_json_int(raw.as_bytes())
            .map_or_else(|| pynum::int_from_json_number(raw), Ok),
        JsonKind::String => pynum::int_from_text(&python_str(raw, field)?),
        JsonKind::Bool(b) => Ok(i64::from(b)),
        kind => {
            return Err(bad_value(
                field,
                format!("expected milliseconds as an integer, found {}", kind.name()),
            ))
        }
    };
    match ms {
        Ok(ms) if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) => Ok(ms),
        Ok(_) | Err(IntError::OutOfRange) => Err(bad_value(
            field,
            format!(
                "{} is outside InfluxDB's range of {MIN_TIMESTAMP_MS}..={MAX_TIMESTAMP_MS} ms",
                raw
            ),
        )),
        Err(IntError::NotInteger) => Err(bad_value(field, format!("{} is not an integer", raw))),
    }
}

/// The reference's `float(value)`, refusing what InfluxDB cannot store.
fn metric_value(raw: Option<&str>) -> Result<FloatRepr, Rejection> {
    const FIELD: &str = "metric.value";
    let raw = raw.ok_or(Rejection::MissingField(FIELD))?;
    let value = match JsonKind::of(raw) {
        JsonKind::Number => {
            if let Some(repr) = FloatRepr::from_short_decimal(raw.as_bytes()) {
                return Ok(repr);
            }
            pynum::float_from_json_number(raw)
                .ok_or_else(|| bad_value(FIELD, format!("{raw} is not a number")))?
        }
        JsonKind::String => {
            let text = python_str(raw, FIELD)?;
            pynum::float_from_text(&text).ok_or_else(|| {
                bad_value(
                    FIELD,
                    format!("could not convert string to float: {text:?}"),
                )
            })?
        }
        JsonKind::Bool(b) => f64::from(u8::from(b)),
        kind => {
            return Err(bad_value(
                FIELD,
                format!("expected a number, found {}", kind.name()),
            ))
        }
    };
    if !value.is_finite() {
        return Err(Rejection::NotFinite {
            field: FIELD,
            value,
        });
    }
    Ok(FloatRepr::new(value))
}

#[cfg(test)]
mod tests;

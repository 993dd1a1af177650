//! Serde shapes of the three Monasca message kinds as they arrive on Kafka.
//!
//! Decoding borrows every string from the payload (a `Cow` is owned only when
//! the JSON string had escapes) and keeps the fields the reference takes in
//! any JSON type (names, tenant, region, alarm texts, `value`, `timestamp`,
//! `value_meta`, `metrics`, `subAlarms`) as raw JSON text, which the
//! encoder makes into text, numbers or JSON as Python would. Fields are
//! `Option`s so that a missing one becomes a typed rejection naming it
//! rather than a serde error string. A repeated field keeps its last value,
//! as `json.loads` does.
//!
//! serde_json, not sonic-rs: on the 2 700 metric messages the direct path
//! leaves to this decoder in the differential, compat and fuzz corpora, the
//! same borrowed shapes (every field raw: `&RawValue` vs `LazyValue`) took
//! 9 095 instructions per message with serde_json 1.0.154 and 15 796 with
//! sonic-rs 0.5.12 (callgrind; 0.9 vs 1.6 µs of wall clock), both accepting
//! the same messages; sonic-rs would also change the text of every
//! `Malformed` rejection.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::pyjson;

/// A JSON string, borrowed from the payload unless it contained escapes.
/// Borrowed text is raw JSON string content, so it holds no backslash and no control character,
/// which `tags.rs` relies on to skip normalising it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text<'p>(pub Cow<'p, str>);

impl<'de: 'p, 'p> Deserialize<'de> for Text<'p> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor<'p>(std::marker::PhantomData<&'p ()>);
        impl<'de: 'p, 'p> Visitor<'de> for TextVisitor<'p> {
            type Value = Text<'p>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'p>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'p>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'p>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

/// Keeps a present field as raw JSON, `null` included, so that "absent" and
/// "null" stay distinguishable (the reference treats them differently).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(deserializer).map(Some)
}

/// Dimensions as (name, value) pairs in message order, duplicates included;
/// up to 16 live inline so that the common message needs no heap.
pub(crate) type DimensionList<'p> = SmallVec<[(Cow<'p, str>, Cow<'p, str>); 16]>;

/// A metric message: `{"metric": {...}, "meta": {...}, "creation_time": ...}`,
/// without its dimensions, which [`decode_metric`] puts in a list the caller
/// owns: kept out of the message, the inline list is not copied around as
/// the decoded value moves.
#[derive(Debug, Default)]
pub(crate) struct MetricEnvelope<'p> {
    pub metric: Option<Object<Metric<'p>>>,
    pub meta: Option<Object<MetricMeta<'p>>>,
}

/// A member the reference reads as a dict (`message['metric']`): an object,
/// `null`, or a value of another type. Decoding notes the last two rather
/// than failing, since only the last of a repeated member counts.
#[derive(Debug)]
pub(crate) enum Object<T> {
    Value(T),
    Null,
    Other(JsonKind),
}

/// The `metric` object of a metric message (dimensions aside). Every field
/// is raw JSON text, `null` included: the reference accepts a value of any
/// type in each (`str(name)`, `float(value)`, `int(timestamp)`).
#[derive(Debug, Default)]
pub(crate) struct Metric<'p> {
    pub name: Option<&'p str>,
    pub timestamp: Option<&'p str>,
    pub value: Option<&'p str>,
    pub value_meta: Option<&'p str>,
    /// The JSON type of the (last) `dimensions` member, when present; the
    /// dimensions of an object are in the caller's list.
    pub dimensions: Option<JsonKind>,
}

/// Decodes a metric message, appending its dimensions to `dimensions`.
/// A repeated field keeps its last value, as Python's `json.loads` does:
/// members that may be objects are read raw first (an earlier one of
/// another type, or holding a lone surrogate, must not matter) and only the
/// last is decoded.
pub(crate) fn decode_metric<'p>(
    text: &'p str,
    dimensions: &mut DimensionList<'p>,
) -> Result<MetricEnvelope<'p>, serde_json::Error> {
    let [metric, meta] = members(text, &["metric", "meta"])?;
    let metric = match metric.map(|raw| object(raw, MetricSeed)).transpose()? {
        Some(Object::Value((mut metric, Some(raw)))) => {
            metric.dimensions = Some(match object(raw, DimensionsSeed(dimensions))? {
                Object::Value(()) => JsonKind::Object,
                Object::Null => JsonKind::Null,
                Object::Other(kind) => kind,
            });
            Some(Object::Value(metric))
        }
        other => other.map(|metric| metric.map(|(metric, _)| metric)),
    };
    let meta = meta
        .map(|raw| {
            object(
                raw,
                RawMembers {
                    names: &["region", "tenantId"],
                },
            )
        })
        .transpose()?
        .map(|meta| meta.map(|[region, tenant_id]| MetricMeta { region, tenant_id }));
    Ok(MetricEnvelope { metric, meta })
}

/// The members named in `names` of the JSON object `text`, raw.
fn members<'p, const N: usize>(
    text: &'p str,
    names: &'static [&'static str; N],
) -> Result<[Option<&'p str>; N], serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let members = deserializer.deserialize_map(RawMembers { names })?;
    deserializer.end()?;
    Ok(members)
}

/// Reads raw JSON `raw` with `visitor` when it is an object; notes `null`
/// or the type of anything else (see [`Object`]).
fn object<'p, V: Visitor<'p>>(
    raw: &'p str,
    visitor: V,
) -> Result<Object<V::Value>, serde_json::Error> {
    match JsonKind::of(raw) {
        JsonKind::Object => serde_json::Deserializer::from_str(raw)
            .deserialize_map(visitor)
            .map(Object::Value),
        JsonKind::Null => Ok(Object::Null),
        kind => Ok(Object::Other(kind)),
    }
}

/// The `metric` object, and its (last) `dimensions` member raw.
struct MetricSeed;

impl<'de> Visitor<'de> for MetricSeed {
    type Value = (Metric<'de>, Option<&'de str>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut metric = Metric::default();
        let mut dimensions = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            let field = match key.as_ref() {
                "name" => &mut metric.name,
                "dimensions" => &mut dimensions,
                "timestamp" => &mut metric.timestamp,
                "value" => &mut metric.value,
                "value_meta" => &mut metric.value_meta,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *field = Some(map.next_value::<&'de RawValue>()?.get());
        }
        Ok((metric, dimensions))
    }
}

/// Fills the list from a `metric.dimensions` object, whose values are made
/// text as the reference's `str()` makes them.
struct DimensionsSeed<'l, 'p>(&'l mut DimensionList<'p>);

impl<'de: 'p, 'p> Visitor<'de> for DimensionsSeed<'_, 'p> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of dimension names to values")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A value that cannot be made text matters only if it is the last
        // of its name (Python's dict keeps the last) and not replaced by a
        // meta tag (the reference sets `_region` and `_tenant_id` over it).
        let mut unwritable: SmallVec<[(usize, pyjson::JsonError); 1]> = SmallVec::new();
        while let Some((Text(name), value)) = map.next_entry::<Text<'p>, &'de RawValue>()? {
            let value = pyjson::python_str(value.get()).unwrap_or_else(|e| {
                unwritable.push((self.0.len(), e));
                Cow::Borrowed("")
            });
            self.0.push((name, value));
        }
        for (at, error) in unwritable {
            let name = &self.0[at].0;
            let replaced = name == "_region" || name == "_tenant_id";
            if !replaced && !self.0[at + 1..].iter().any(|(later, _)| later == name) {
                return Err(A::Error::custom(error));
            }
        }
        Ok(())
    }
}

impl<T> Object<T> {
    /// The object, or the reference's failure to read a dict from this:
    /// `null` as a missing `field` (as before any JSON type was taken),
    /// another type as malformed.
    pub(crate) fn required(
        member: Option<Object<T>>,
        field: &'static str,
    ) -> Result<T, super::Rejection> {
        match member {
            Some(Object::Value(value)) => Ok(value),
            None | Some(Object::Null) => Err(super::Rejection::MissingField(field)),
            Some(Object::Other(kind)) => Err(super::Rejection::Malformed(format!(
                "`{field}` is {}, not an object",
                kind.name()
            ))),
        }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Object<U> {
        match self {
            Object::Value(value) => Object::Value(f(value)),
            Object::Null => Object::Null,
            Object::Other(kind) => Object::Other(kind),
        }
    }
}

/// The `meta` object of a metric message: raw JSON text of any type, as
/// for [`Metric`]. A repeated field keeps its last value.
#[derive(Debug, Default)]
pub(crate) struct MetricMeta<'p> {
    pub region: Option<&'p str>,
    pub tenant_id: Option<&'p str>,
}

/// An alarm state transition message: `{"alarm-transitioned": {...}}`. A
/// repeated field keeps its last value, at either level.
#[derive(Debug, Default)]
pub(crate) struct AlarmEnvelope<'p> {
    pub alarm_transitioned: Option<Object<AlarmTransition<'p>>>,
}

/// The `alarm-transitioned` object: every field raw JSON text of any type,
/// `null` included (the reference writes `str()` of each text field).
#[derive(Debug, Default)]
pub(crate) struct AlarmTransition<'p> {
    pub alarm_id: Option<&'p str>,
    pub metrics: Option<&'p str>,
    pub new_state: Option<&'p str>,
    pub old_state: Option<&'p str>,
    pub link: Option<&'p str>,
    pub lifecycle_state: Option<&'p str>,
    pub state_change_reason: Option<&'p str>,
    pub tenant_id: Option<&'p str>,
    pub timestamp: Option<&'p str>,
    pub sub_alarms: Option<&'p str>,
}

/// The members of the `alarm-transitioned` object the transform reads.
const ALARM_FIELDS: &[&str; 10] = &[
    "alarmId",
    "metrics",
    "newState",
    "oldState",
    "link",
    "lifecycleState",
    "stateChangeReason",
    "tenantId",
    "timestamp",
    "subAlarms",
];

/// Decodes an alarm transition message (repeated fields as for
/// [`decode_metric`]). One pass decodes the message; the raw pass of
/// [`decode_metric`] is for what it refuses, since an earlier
/// `alarm-transitioned` holding a string with a lone surrogate must not
/// matter (and a malformed message is refused by both).
pub(crate) fn decode_alarm(text: &str) -> Result<AlarmEnvelope<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let at_once = deserializer
        .deserialize_map(AlarmEnvelopeVisitor)
        .and_then(|envelope| deserializer.end().map(|()| envelope));
    at_once.or_else(|_| {
        let [transition] = members(text, &["alarm-transitioned"])?;
        let alarm_transitioned = transition
            .map(|raw| {
                object(
                    raw,
                    RawMembers {
                        names: ALARM_FIELDS,
                    },
                )
            })
            .transpose()?
            .map(|fields| fields.map(alarm_transition));
        Ok(AlarmEnvelope { alarm_transitioned })
    })
}

fn alarm_transition(fields: [Option<&str>; 10]) -> AlarmTransition<'_> {
    let [alarm_id, metrics, new_state, old_state, link, lifecycle_state, state_change_reason, tenant_id, timestamp, sub_alarms] =
        fields;
    AlarmTransition {
        alarm_id,
        metrics,
        new_state,
        old_state,
        link,
        lifecycle_state,
        state_change_reason,
        tenant_id,
        timestamp,
        sub_alarms,
    }
}

/// The alarm message in one pass: each `alarm-transitioned` decoded as it
/// comes (of any type), the last one kept.
struct AlarmEnvelopeVisitor;

impl<'de> Visitor<'de> for AlarmEnvelopeVisitor {
    type Value = AlarmEnvelope<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an alarm transition message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = AlarmEnvelope::default();
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            if key == "alarm-transitioned" {
                let fields = map.next_value_seed(AnyType(RawMembers {
                    names: ALARM_FIELDS,
                }))?;
                envelope.alarm_transitioned = Some(fields.map(alarm_transition));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(envelope)
    }
}

/// Reads a member with the visitor when it is an object, and notes `null`
/// or the type of anything else (see [`Object`]). serde_json decodes a
/// string member to tell its type, and refuses one with a lone surrogate.
struct AnyType<V>(V);

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for AnyType<V> {
    type Value = Object<V::Value>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for AnyType<V> {
    type Value = Object<V::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map).map(Object::Value)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Object::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Object::Other(JsonKind::Bool(v)))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Object::Other(JsonKind::Number))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Object::Other(JsonKind::Number))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Object::Other(JsonKind::Number))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Object::Other(JsonKind::String))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Object::Other(JsonKind::Array))
    }
}

/// The members of an object named in `names`, as raw JSON text (the last
/// one of a repeated name); other members are skipped.
struct RawMembers<const N: usize> {
    names: &'static [&'static str; N],
}

impl<'de, const N: usize> Visitor<'de> for RawMembers<N> {
    type Value = [Option<&'de str>; N];
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = [None; N];
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match self.names.iter().position(|name| *name == key) {
                Some(i) => members[i] = Some(map.next_value::<&'de RawValue>()?.get()),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(members)
    }
}

/// An event message: `{"event": {...}, "meta": {"project_id": ...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventEnvelope<'p> {
    #[serde(borrow)]
    pub event: Option<Event<'p>>,
    #[serde(borrow)]
    pub meta: Option<EventMeta<'p>>,
}

/// The `event` object of an event message.
#[derive(Debug, Deserialize)]
pub(crate) struct Event<'p> {
    #[serde(borrow)]
    pub event_type: Option<Text<'p>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub timestamp: Option<&'p RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub payload: Option<&'p RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub dimensions: Option<&'p RawValue>,
}

/// The `meta` object of an event message.
#[derive(Debug, Deserialize)]
pub(crate) struct EventMeta<'p> {
    #[serde(borrow)]
    pub project_id: Option<Text<'p>>,
}

/// The broad JSON type of a raw value, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonKind {
    Null,
    Bool(bool),
    Number,
    String,
    Array,
    Object,
}

impl JsonKind {
    /// Classifies raw JSON text that has already been validated.
    pub(crate) fn of(raw: &str) -> JsonKind {
        match raw.as_bytes().first() {
            Some(b'n') => JsonKind::Null,
            Some(b't') => JsonKind::Bool(true),
            Some(b'f') => JsonKind::Bool(false),
            Some(b'"') => JsonKind::String,
            Some(b'[') => JsonKind::Array,
            Some(b'{') => JsonKind::Object,
            _ => JsonKind::Number,
        }
    }

    /// The name the reference's error messages would use.
    pub(crate) fn name(self) -> &'static str {
        match self {
            JsonKind::Null => "null",
            JsonKind::Bool(_) => "a boolean",
            JsonKind::Number => "a number",
            JsonKind::String => "a string",
            JsonKind::Array => "an array",
            JsonKind::Object => "an object",
        }
    }
}

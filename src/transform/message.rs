//! Serde shapes of the three Monasca message kinds as they arrive on Kafka.
//!
//! Decoding borrows every string from the payload (a `Cow` is owned only when
//! the JSON string had escapes) and keeps values whose exact JSON spelling
//! matters later (`value`, `timestamp`, `value_meta`, `metrics`, `subAlarms`)
//! as raw JSON text. Fields are `Option`s so that a missing one becomes a typed
//! rejection naming it rather than a serde error string.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// A JSON string, borrowed from the payload unless it contained escapes.
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

/// `metric.dimensions`: a JSON object of strings.
#[derive(Debug, Default)]
pub(crate) struct Dimensions<'p>(pub DimensionList<'p>);

impl<'de: 'p, 'p> Deserialize<'de> for Dimensions<'p> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DimensionsVisitor<'p>(std::marker::PhantomData<&'p ()>);
        impl<'de: 'p, 'p> Visitor<'de> for DimensionsVisitor<'p> {
            type Value = Dimensions<'p>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of dimension names to string values")
            }
            fn visit_unit<E>(self) -> Result<Dimensions<'p>, E> {
                Ok(Dimensions::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Dimensions<'p>, A::Error> {
                let mut list = DimensionList::new();
                while let Some((Text(name), Text(value))) =
                    map.next_entry::<Text<'p>, Text<'p>>()?
                {
                    list.push((name, value));
                }
                Ok(Dimensions(list))
            }
        }
        deserializer.deserialize_any(DimensionsVisitor(std::marker::PhantomData))
    }
}

/// A metric message: `{"metric": {...}, "meta": {...}, "creation_time": ...}`.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricEnvelope<'p> {
    #[serde(borrow)]
    pub metric: Option<Metric<'p>>,
    #[serde(borrow)]
    pub meta: Option<MetricMeta<'p>>,
}

/// The `metric` object of a metric message.
#[derive(Debug, Deserialize)]
pub(crate) struct Metric<'p> {
    #[serde(borrow)]
    pub name: Option<Text<'p>>,
    #[serde(borrow, default)]
    pub dimensions: Option<Dimensions<'p>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub timestamp: Option<&'p RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub value: Option<&'p RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub value_meta: Option<&'p RawValue>,
}

/// The `meta` object of a metric message.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricMeta<'p> {
    #[serde(borrow)]
    pub region: Option<Text<'p>>,
    #[serde(borrow, rename = "tenantId")]
    pub tenant_id: Option<Text<'p>>,
}

/// An alarm state transition message: `{"alarm-transitioned": {...}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct AlarmEnvelope<'p> {
    #[serde(borrow, rename = "alarm-transitioned")]
    pub alarm_transitioned: Option<AlarmTransition<'p>>,
}

/// The `alarm-transitioned` object.
#[derive(Debug, Deserialize)]
pub(crate) struct AlarmTransition<'p> {
    #[serde(borrow, rename = "alarmId")]
    pub alarm_id: Option<Text<'p>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub metrics: Option<&'p RawValue>,
    #[serde(borrow, rename = "newState")]
    pub new_state: Option<Text<'p>>,
    #[serde(borrow, rename = "oldState")]
    pub old_state: Option<Text<'p>>,
    #[serde(borrow)]
    pub link: Option<Text<'p>>,
    #[serde(borrow, rename = "lifecycleState")]
    pub lifecycle_state: Option<Text<'p>>,
    #[serde(borrow, rename = "stateChangeReason")]
    pub state_change_reason: Option<Text<'p>>,
    #[serde(borrow, rename = "tenantId")]
    pub tenant_id: Option<Text<'p>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub timestamp: Option<&'p RawValue>,
    #[serde(borrow, default, deserialize_with = "present", rename = "subAlarms")]
    pub sub_alarms: Option<&'p RawValue>,
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
    /// Classifies raw JSON text that serde_json has already validated.
    pub(crate) fn of(raw: &RawValue) -> JsonKind {
        match raw.get().as_bytes().first() {
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

//! Serde shapes of the three Monasca message kinds as they arrive on Kafka.
//!
//! Decoding borrows every string from the payload (a `Cow` is owned only when
//! the JSON string had escapes) and keeps values whose exact JSON spelling
//! matters later (`value`, `timestamp`, `value_meta`, `metrics`, `subAlarms`)
//! as raw JSON text. Fields are `Option`s so that a missing one becomes a typed
//! rejection naming it rather than a serde error string.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// A JSON string, borrowed from the payload unless it contained escapes.
/// Both decoders (this one and `scan.rs`) keep to that: borrowed text is raw
/// JSON string content, so it holds no backslash and no control character,
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
    pub metric: Option<Metric<'p>>,
    pub meta: Option<MetricMeta<'p>>,
}

/// The `metric` object of a metric message (dimensions aside).
#[derive(Debug, Default)]
pub(crate) struct Metric<'p> {
    pub name: Option<Text<'p>>,
    pub timestamp: Option<&'p str>,
    pub value: Option<&'p str>,
    pub value_meta: Option<&'p str>,
}

/// Decodes a metric message, appending its dimensions to `dimensions`.
/// A repeated field keeps its last value, as Python's `json.loads` does.
pub(crate) fn decode_metric<'p>(
    text: &'p str,
    dimensions: &mut DimensionList<'p>,
) -> Result<MetricEnvelope<'p>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let envelope = EnvelopeSeed(dimensions).deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(envelope)
}

struct EnvelopeSeed<'l, 'p>(&'l mut DimensionList<'p>);

impl<'de: 'p, 'p> DeserializeSeed<'de> for EnvelopeSeed<'_, 'p> {
    type Value = MetricEnvelope<'p>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'p, 'p> Visitor<'de> for EnvelopeSeed<'_, 'p> {
    type Value = MetricEnvelope<'p>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = MetricEnvelope::default();
        while let Some(Text(key)) = map.next_key::<Text<'p>>()? {
            match key.as_ref() {
                "metric" => envelope.metric = map.next_value_seed(MetricSeed(&mut *self.0))?,
                "meta" => envelope.meta = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

struct MetricSeed<'l, 'p>(&'l mut DimensionList<'p>);

impl<'de: 'p, 'p> DeserializeSeed<'de> for MetricSeed<'_, 'p> {
    type Value = Option<Metric<'p>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_option(self)
    }
}

impl<'de: 'p, 'p> Visitor<'de> for MetricSeed<'_, 'p> {
    type Value = Option<Metric<'p>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric object")
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // A repeated `metric` object replaces the earlier one whole.
        self.0.clear();
        let mut metric = Metric::default();
        while let Some(Text(key)) = map.next_key::<Text<'p>>()? {
            match key.as_ref() {
                "name" => metric.name = map.next_value()?,
                "dimensions" => {
                    self.0.clear();
                    map.next_value_seed(DimensionsSeed(&mut *self.0))?;
                }
                "timestamp" => metric.timestamp = Some(map.next_value::<&RawValue>()?.get()),
                "value" => metric.value = Some(map.next_value::<&RawValue>()?.get()),
                "value_meta" => {
                    metric.value_meta = Some(map.next_value::<&RawValue>()?.get());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Some(metric))
    }
}

/// Fills the list from `metric.dimensions`: an object of strings, or `null`.
struct DimensionsSeed<'l, 'p>(&'l mut DimensionList<'p>);

impl<'de: 'p, 'p> DeserializeSeed<'de> for DimensionsSeed<'_, 'p> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'p, 'p> Visitor<'de> for DimensionsSeed<'_, 'p> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of dimension names to string values")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some((Text(name), Text(value))) = map.next_entry::<Text<'p>, Text<'p>>()? {
            self.0.push((name, value));
        }
        Ok(())
    }
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

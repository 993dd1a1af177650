//! The tag set of a metric line: dimensions and the meta tags made
//! writable, sorted by key as the reference does, and written once per key
//! (the last value of a repeated name wins, as in a Python dict).

use std::borrow::Cow;

use smallvec::SmallVec;

use super::line::{normalise_tag_text, push_tag_text, trim_trailing_backslashes};
use super::message::DimensionList;
use super::{bad_value, Rejection};

/// Appends `,key=value` for every writable tag, sorted by key: the
/// dimensions, then `meta` (`_region`, `_tenant_id`), which override
/// dimensions of the same name.
pub(crate) fn push_metric_tags<'p>(
    out: &mut Vec<u8>,
    dimensions: &mut DimensionList<'p>,
    meta: [(&'static str, Cow<'p, str>); 2],
) -> Result<(), Rejection> {
    let [mut region, mut tenant] = meta;
    make_writable(&mut region.1, trim_trailing_backslashes);
    make_writable(&mut tenant.1, trim_trailing_backslashes);
    let mut tags: SmallVec<[Tag<'_>; 16]> = SmallVec::new();
    let mut reserved_key = false;
    for (key, value) in dimensions.iter_mut() {
        make_writable(key, normalise_tag_text);
        make_writable(value, trim_trailing_backslashes);
    }
    for (key, value) in dimensions.iter() {
        // InfluxDB refuses a point with a tag key `time`.
        reserved_key |= key == "time";
        // The meta tags override dimensions of the same name, as in the
        // reference. An empty key or value cannot be written (InfluxDB
        // refuses it), but it still replaces an earlier value of its name,
        // so it is left out only once the last of each name is known.
        if key != "_region" && key != "_tenant_id" {
            tags.push(Tag::new(key, value));
        }
    }
    if reserved_key {
        return Err(bad_value(
            "metric.dimensions",
            "a dimension named `time`, which InfluxDB refuses as a tag key",
        ));
    }
    for (key, text) in [&region, &tenant] {
        if !text.is_empty() {
            tags.push(Tag::new(key, text));
        }
    }
    // Stable, so that among repeated names the last one stays last.
    tags.sort_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| a.key.cmp(b.key)));
    for (i, tag) in tags.iter().enumerate() {
        if tags.get(i + 1).is_some_and(|next| next.key == tag.key)
            || tag.key.is_empty()
            || tag.value.is_empty()
        {
            continue;
        }
        out.push(b',');
        push_tag_text(out, tag.key);
        out.push(b'=');
        push_tag_text(out, tag.value);
    }
    Ok(())
}

/// Applies `rule` (normalising or trimming) to text decoded from escapes.
/// Borrowed text is raw JSON string content, which can hold neither a
/// backslash nor a line break (both would have been escapes), so the rules
/// leave it as it is and it is not scanned again.
pub(crate) fn make_writable<'t>(text: &mut Cow<'t, str>, rule: fn(Cow<'t, str>) -> Cow<'t, str>) {
    match text {
        Cow::Borrowed(raw) => {
            debug_assert!(
                !raw.contains(['\\', '\n', '\r']),
                "{raw:?} is not raw JSON text"
            );
        }
        Cow::Owned(_) => *text = rule(std::mem::take(text)),
    }
}

/// A tag to sort: the first eight bytes of the key as a big-endian number
/// (zero-padded, so its order agrees with the key's) decide most
/// comparisons without a `memcmp`.
struct Tag<'t> {
    prefix: u64,
    key: &'t str,
    value: &'t str,
}

impl<'t> Tag<'t> {
    fn new(key: &'t str, value: &'t str) -> Tag<'t> {
        let bytes = key.as_bytes();
        let mut head = [0u8; 8];
        for (slot, &b) in head.iter_mut().zip(bytes) {
            *slot = b;
        }
        Tag {
            prefix: u64::from_be_bytes(head),
            key,
            value,
        }
    }
}

//! The `_bulk` request and answer: a body is a run of items (an action line
//! and a document line each, as `document.rs` writes them), and the answer
//! says for each item whether it was stored, failed for now (retried) or
//! was refused for good (dead-lettered with the server's reason).

use serde::Deserialize;

/// One item of a body: its action and document lines, each with its `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item<'b> {
    /// The action and document lines together.
    pub bytes: &'b [u8],
    /// Length of the action line within `bytes`, newline included.
    action_len: usize,
}

impl<'b> Item<'b> {
    /// The action line (without its newline).
    pub fn action(&self) -> &'b [u8] {
        &self.bytes[..self.action_len - 1]
    }

    /// The document line (without its newline).
    pub fn document(&self) -> &'b [u8] {
        let end = self.bytes.len() - usize::from(self.bytes.ends_with(b"\n"));
        &self.bytes[self.action_len..end]
    }

    /// `(index, id)` from the action line.
    pub fn target(&self) -> (String, String) {
        #[derive(Deserialize)]
        struct Action {
            index: Target,
        }
        #[derive(Deserialize)]
        struct Target {
            #[serde(rename = "_index")]
            index: String,
            #[serde(rename = "_id")]
            id: String,
        }
        serde_json::from_slice::<Action>(self.action())
            .map(|a| (a.index.index, a.index.id))
            .unwrap_or_default()
    }
}

/// The items of a body, in order. Neither line of an item holds a raw
/// newline (JSON escapes them), so items are pairs of lines.
pub fn items(body: &[u8]) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let action_len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        let document_len =
            memchr::memchr(b'\n', &rest[action_len..]).map_or(rest.len() - action_len, |i| i + 1);
        let (bytes, tail) = rest.split_at(action_len + document_len);
        out.push(Item { bytes, action_len });
        rest = tail;
    }
    out
}

/// What happened to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored (created or overwritten).
    Stored,
    /// Not stored for a reason that may pass: overload (429), a node or
    /// shard unavailable (5xx), authorisation (401/403), a missing index
    /// that may not be created automatically (404), a read-only index.
    Retry(String),
    /// Refused for good: the document or its index name is bad (mapping
    /// conflict, unparsable document, invalid index name).
    Refused(String),
}

#[derive(Deserialize)]
struct Answer {
    items: Vec<std::collections::HashMap<String, ItemAnswer>>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Reads a 200 answer to a request of `expected` items.
pub fn read_answer(answer: &[u8], expected: usize) -> Result<Vec<ItemOutcome>, String> {
    let parsed: Answer = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
    if parsed.items.len() != expected {
        return Err(format!(
            "{} item answers for {expected} items",
            parsed.items.len()
        ));
    }
    parsed
        .items
        .into_iter()
        .map(|item| {
            let answer = item
                .into_values()
                .next()
                .ok_or_else(|| "an empty item answer".to_string())?;
            Ok(classify(answer.status, answer.error.as_ref()))
        })
        .collect()
}

/// Error types that pass whatever their status: shards recovering, nodes
/// overloaded, indices blocked (disk flood stage, closed for maintenance).
const TRANSIENT_TYPES: [&str; 5] = [
    "unavailable_shards_exception",
    "es_rejected_execution_exception",
    "rejected_execution_exception",
    "cluster_block_exception",
    "circuit_breaking_exception",
];

/// The outcome of an item answer of `status` with its `error` object.
pub fn classify(status: u16, error: Option<&serde_json::Value>) -> ItemOutcome {
    if (200..300).contains(&status) {
        return ItemOutcome::Stored;
    }
    let reason = error.map_or_else(|| format!("HTTP {status}"), error_text);
    let kind = error
        .and_then(|e| e.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("");
    let transient = matches!(status, 401 | 403 | 404 | 408 | 429 | 500..=599)
        || TRANSIENT_TYPES.contains(&kind);
    if transient {
        ItemOutcome::Retry(format!("HTTP {status}: {reason}"))
    } else {
        ItemOutcome::Refused(reason)
    }
}

/// `type: reason` of an Elasticsearch error object, with the reason of its
/// cause when it names one.
pub fn error_text(error: &serde_json::Value) -> String {
    let part = |e: &serde_json::Value| -> String {
        match (e.get("type").and_then(|t| t.as_str()), e.get("reason")) {
            (Some(t), Some(serde_json::Value::String(r))) => format!("{t}: {r}"),
            (Some(t), _) => t.to_string(),
            (None, _) => e.to_string(),
        }
    };
    if let serde_json::Value::String(s) = error {
        return s.clone();
    }
    let mut text = part(error);
    if let Some(cause) = error.get("caused_by") {
        text.push_str(&format!(" (caused by {})", part(cause)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_is_pairs_of_lines() {
        let body = b"{\"index\":{\"_index\":\"i\",\"_id\":\"a\"}}\n{\"x\": 1}\n{\"index\":{\"_index\":\"j\",\"_id\":\"b\"}}\n{}\n";
        let items = items(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].document(), b"{\"x\": 1}");
        assert_eq!(items[1].target(), ("j".to_string(), "b".to_string()));
        let joined: Vec<u8> = items.iter().flat_map(|i| i.bytes.to_vec()).collect();
        assert_eq!(joined, body);
    }

    #[test]
    fn item_answers_are_classified() {
        let answer = json!({"took": 3, "errors": true, "items": [
            {"index": {"status": 201, "result": "created"}},
            {"index": {"status": 200, "result": "updated"}},
            {"index": {"status": 400, "error": {"type": "mapper_parsing_exception",
                "reason": "failed to parse field [payload]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "bad"}}}},
            {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}},
            {"index": {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary not active"}}},
            {"index": {"status": 403, "error": {"type": "cluster_block_exception", "reason": "index read-only"}}},
            {"index": {"status": 400, "error": {"type": "invalid_index_name_exception", "reason": "must be lowercase"}}},
        ]});
        let outcomes = read_answer(answer.to_string().as_bytes(), 7).expect("readable");
        assert_eq!(outcomes[0], ItemOutcome::Stored);
        assert_eq!(outcomes[1], ItemOutcome::Stored);
        assert_eq!(
            outcomes[2],
            ItemOutcome::Refused(
                "mapper_parsing_exception: failed to parse field [payload] (caused by illegal_argument_exception: bad)"
                    .to_string()
            )
        );
        assert!(matches!(outcomes[3], ItemOutcome::Retry(_)));
        assert!(matches!(outcomes[4], ItemOutcome::Retry(_)));
        assert!(matches!(outcomes[5], ItemOutcome::Retry(_)));
        assert_eq!(
            outcomes[6],
            ItemOutcome::Refused("invalid_index_name_exception: must be lowercase".to_string())
        );
        assert!(read_answer(answer.to_string().as_bytes(), 6).is_err());
        assert!(read_answer(b"<html>", 1).is_err());
    }
}

//! What an InfluxDB `/write` answer means for the data that was sent: a pure
//! function of the HTTP status and body, so every case is unit-tested.
//!
//! What influxd 1.6 actually answers (tried against the real server):
//!
//! | situation | status | body `error` |
//! |---|---|---|
//! | all stored | 204 | — |
//! | database missing | 404 | `database not found: "mon"` |
//! | some lines unparsable, rest stored | 400 | `partial write: unable to parse '<line>': <why>\nunable to parse '…': … dropped=0` |
//! | every line unparsable | 400 | `unable to parse '<line>': <why>\n…` |
//! | field type conflict | 400 | `partial write: field type conflict: input field "value" on measurement "cpu" is type string, already exists as type float dropped=N` |
//! | too old for the retention policy | 400 | `partial write: points beyond retention policy dropped=N` |
//! | body above `max-body-size` | 413 | `Request Entity Too Large` |
//! | bad or missing credentials | 401 | `authorization failed` / `unable to parse authentication credentials` |
//! | no write privilege | 403 | `"u" user is not authorized to write to database "mon"` |
//! | plain http to an https port | 400 | plain text `Client sent an HTTP request to an HTTPS server.` |
//!
//! The server reports only one storage error per request: a type conflict
//! hides unparsable lines and retention drops in the same request, and a
//! retention drop hides unparsable lines. [`Rejection`] keeps what was said;
//! the writer decides how much of it identifies the rejected lines.

use crate::client::InfluxError;

/// InfluxDB's reason for points dropped for being older than the retention policy.
pub const BEYOND_RETENTION: &str = "points beyond retention policy";

/// The meaning of one `/write` answer.
#[derive(Debug)]
pub enum WriteResponse {
    /// 2xx: every point was stored.
    Stored,
    /// 404 `database not found`: nothing was stored.
    DatabaseNotFound {
        /// InfluxDB's message.
        message: String,
    },
    /// 400: InfluxDB refused some (maybe all) points and stored the others.
    Rejected(Rejection),
    /// 413: the body is above InfluxDB's `max-body-size`; nothing was stored.
    TooLarge {
        /// InfluxDB's message.
        message: String,
    },
    /// Authentication, server error, timeout or connection failure: nothing
    /// can be assumed stored; keep the data and retry later.
    Retriable(InfluxError),
}

/// The content of a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// InfluxDB's error text, verbatim.
    pub message: String,
    /// Lines the line-protocol parser refused, as InfluxDB quoted them.
    pub unparsable: Vec<UnparsableLine>,
    /// Points the storage layer dropped (type conflict, retention, limits).
    pub dropped: Option<DroppedPoints>,
}

/// One line InfluxDB could not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnparsableLine {
    /// The line as quoted in the error (leading blanks trimmed; invalid
    /// UTF-8 arrives as U+FFFD).
    pub line: String,
    /// The parser's reason, e.g. `invalid field format`.
    pub reason: String,
}

/// Points InfluxDB parsed but did not store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPoints {
    /// The reason, e.g. `points beyond retention policy`.
    pub reason: String,
    /// `dropped=N`: points dropped by the first failing shard (influxd
    /// reports no more than that).
    pub count: usize,
}

impl DroppedPoints {
    /// True when the points were older than the retention policy allows.
    pub fn beyond_retention(&self) -> bool {
        self.reason == BEYOND_RETENTION
    }
}

impl Rejection {
    /// Only parse errors were reported. influxd checks parse errors last,
    /// so this also says every parsed point was stored: the rejection names
    /// exactly the lines that were not.
    pub fn only_unparsable(&self) -> bool {
        self.dropped.is_none() && !self.unparsable.is_empty()
    }

    /// Only points beyond the retention policy were reported.
    pub fn only_beyond_retention(&self) -> bool {
        self.unparsable.is_empty()
            && self
                .dropped
                .as_ref()
                .is_some_and(DroppedPoints::beyond_retention)
    }
}

/// Classifies a `/write` answer. `database` and `url` (without credentials)
/// only go into the error of a retriable answer.
pub fn classify(status: u16, body: &[u8], database: &str, url: &str) -> WriteResponse {
    if (200..300).contains(&status) {
        return WriteResponse::Stored;
    }
    let json = json_error(body);
    let from_influxdb = json.is_some();
    let message = json.unwrap_or_else(|| plain_text(body));
    match status {
        404 if message.contains("database not found") => {
            WriteResponse::DatabaseNotFound { message }
        }
        413 => WriteResponse::TooLarge { message },
        400 if from_influxdb => WriteResponse::Rejected(parse_rejection(message)),
        // Only InfluxDB's write handler answers 400 with a JSON error. A
        // plain 400 comes from elsewhere — Go's own "Client sent an HTTP
        // request to an HTTPS server." when ssl is off against https, or a
        // proxy — and says nothing about the points: bisecting it would
        // dead-letter every line over a configuration mistake.
        400 => WriteResponse::Retriable(InfluxError::NotInfluxDb {
            action: write_action(database),
            url: url.to_string(),
            status,
            message,
        }),
        401 | 403 => WriteResponse::Retriable(InfluxError::Auth {
            action: write_action(database),
            url: url.to_string(),
            status,
            message,
        }),
        // 5xx, 429, a 404 from a proxy or a wrong path…: nothing is known to
        // be stored and the cause is outside the data, so keep it and retry.
        _ => WriteResponse::Retriable(InfluxError::Status {
            action: write_action(database),
            url: url.to_string(),
            status,
            message,
        }),
    }
}

/// The action named in write errors.
pub fn write_action(database: &str) -> String {
    format!("writing to InfluxDB database {database:?}")
}

/// InfluxDB's error text from a response body: `{"error": …}` (1.x),
/// `{"message": …}` (2.x/3.x), else the body itself as text.
pub fn error_message(body: &[u8]) -> String {
    json_error(body).unwrap_or_else(|| plain_text(body))
}

fn json_error(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok()?;
    parsed.error.or(parsed.message)
}

fn plain_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).trim().to_string()
}

/// Parses the text of a 400 answer.
pub fn parse_rejection(message: String) -> Rejection {
    let (partial, reason, dropped) = split_partial_write(&message);
    let mut rejection = Rejection {
        unparsable: Vec::new(),
        dropped: None,
        message: String::new(),
    };
    if reason.starts_with(UNABLE_TO_PARSE) {
        rejection.unparsable = parse_unparsable(reason);
    } else if partial {
        rejection.dropped = Some(DroppedPoints {
            reason: reason.to_string(),
            count: dropped.unwrap_or(0),
        });
    }
    rejection.message = message;
    rejection
}

const PARTIAL_WRITE: &str = "partial write: ";
const UNABLE_TO_PARSE: &str = "unable to parse '";

/// `partial write: <reason> dropped=N` → (true, reason, Some(N)).
fn split_partial_write(message: &str) -> (bool, &str, Option<usize>) {
    let Some(rest) = message.strip_prefix(PARTIAL_WRITE) else {
        return (false, message, None);
    };
    if let Some(at) = rest.rfind(" dropped=") {
        if let Ok(n) = rest[at + " dropped=".len()..].trim().parse::<usize>() {
            return (true, &rest[..at], Some(n));
        }
    }
    (true, rest, None)
}

/// `unable to parse '<line>': <reason>` entries, one per line, joined by `\n`.
fn parse_unparsable(text: &str) -> Vec<UnparsableLine> {
    // A quoted line may itself hold a newline (inside a string value), so
    // split on the entry prefix rather than on every newline.
    let mut out = Vec::new();
    for entry in text.split("\nunable to parse '") {
        let entry = entry.strip_prefix(UNABLE_TO_PARSE).unwrap_or(entry);
        // The parser's reasons never contain "': ", the quoted line may: the
        // last occurrence is the separator.
        match entry.rfind("': ") {
            Some(at) => out.push(UnparsableLine {
                line: entry[..at].to_string(),
                reason: entry[at + 3..].to_string(),
            }),
            None => out.push(UnparsableLine {
                line: entry.to_string(),
                reason: String::new(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_json(status: u16, error: &str) -> WriteResponse {
        let body = serde_json::json!({ "error": error }).to_string();
        classify(status, body.as_bytes(), "mon", "http://127.0.0.1:8086")
    }

    fn rejection(status: u16, error: &str) -> Rejection {
        match classify_json(status, error) {
            WriteResponse::Rejected(r) => r,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn success_statuses_mean_stored() {
        assert!(matches!(
            classify(204, b"", "mon", "u"),
            WriteResponse::Stored
        ));
        assert!(matches!(
            classify(200, b"", "mon", "u"),
            WriteResponse::Stored
        ));
    }

    #[test]
    fn database_not_found() {
        match classify_json(404, "database not found: \"mon_abc\"") {
            WriteResponse::DatabaseNotFound { message } => {
                assert_eq!(message, "database not found: \"mon_abc\"")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_404_from_something_else_is_retriable() {
        let r = classify(
            404,
            b"<html>404 page not found</html>",
            "mon",
            "http://proxy/influx",
        );
        match r {
            WriteResponse::Retriable(e) => {
                assert!(e.is_retriable());
                let text = e.to_string();
                assert!(
                    text.contains("404")
                        && text.contains("http://proxy/influx")
                        && text.contains("\"mon\""),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_write_with_unparsable_lines() {
        let r = rejection(
            400,
            "partial write: unable to parse 'bad line here': invalid field format\nunable to parse 'mem value= 5': missing field value dropped=0",
        );
        assert!(r.only_unparsable());
        assert_eq!(
            r.unparsable,
            vec![
                UnparsableLine {
                    line: "bad line here".into(),
                    reason: "invalid field format".into()
                },
                UnparsableLine {
                    line: "mem value= 5".into(),
                    reason: "missing field value".into()
                },
            ]
        );
    }

    #[test]
    fn every_line_unparsable_has_no_partial_write_prefix() {
        let r = rejection(400, "unable to parse 'bad line here': invalid field format");
        assert!(r.only_unparsable());
        assert_eq!(r.unparsable.len(), 1);
        assert_eq!(r.unparsable[0].line, "bad line here");
    }

    #[test]
    fn quoted_line_containing_the_separator_and_a_newline() {
        let r = rejection(400, "partial write: unable to parse 'x': y': invalid field format\nunable to parse 'm v=\"a\nb': unbalanced quotes dropped=0");
        assert_eq!(
            r.unparsable[0],
            UnparsableLine {
                line: "x': y".into(),
                reason: "invalid field format".into()
            }
        );
        assert_eq!(
            r.unparsable[1],
            UnparsableLine {
                line: "m v=\"a\nb".into(),
                reason: "unbalanced quotes".into()
            }
        );
    }

    #[test]
    fn field_type_conflict_is_a_count_without_lines() {
        let r = rejection(400, "partial write: field type conflict: input field \"value\" on measurement \"cpu\" is type string, already exists as type float dropped=2");
        assert!(!r.only_unparsable() && !r.only_beyond_retention());
        let d = r.dropped.expect("dropped points");
        assert_eq!(d.count, 2);
        assert!(
            d.reason
                .starts_with("field type conflict: input field \"value\""),
            "{}",
            d.reason
        );
        assert!(!d.beyond_retention());
    }

    #[test]
    fn points_beyond_retention() {
        let r = rejection(
            400,
            "partial write: points beyond retention policy dropped=7",
        );
        assert!(r.only_beyond_retention());
        assert_eq!(
            r.dropped,
            Some(DroppedPoints {
                reason: BEYOND_RETENTION.into(),
                count: 7
            })
        );
    }

    #[test]
    fn unknown_400_keeps_the_message_and_names_no_lines() {
        let r = rejection(400, "something new");
        assert!(r.unparsable.is_empty() && r.dropped.is_none());
        assert_eq!(r.message, "something new");
    }

    #[test]
    fn a_400_without_influxdbs_json_error_is_retriable_not_a_rejection() {
        let body = b"Client sent an HTTP request to an HTTPS server.\n";
        match classify(400, body, "mon", "http://127.0.0.1:8086") {
            WriteResponse::Retriable(e) => {
                assert!(e.is_retriable());
                let text = e.to_string();
                assert!(
                    text.contains("HTTP 400")
                        && text.contains("Client sent an HTTP request to an HTTPS server."),
                    "{text}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_too_large() {
        assert!(matches!(
            classify_json(413, "Request Entity Too Large"),
            WriteResponse::TooLarge { .. }
        ));
    }

    #[test]
    fn auth_failures_and_server_errors_are_retriable() {
        for (status, msg) in [
            (401, "authorization failed"),
            (
                403,
                "\"w\" user is not authorized to write to database \"mon\"",
            ),
            (500, "timeout"),
            (503, "busy"),
            (429, "slow down"),
        ] {
            match classify_json(status, msg) {
                WriteResponse::Retriable(e) => {
                    assert!(e.is_retriable());
                    let text = e.to_string();
                    assert!(
                        text.contains(&status.to_string()) && text.contains(msg),
                        "{text}"
                    );
                    assert_eq!(e.is_auth(), status == 401 || status == 403);
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn error_message_reads_1x_2x_and_plain_bodies() {
        assert_eq!(error_message(br#"{"error":"a"}"#), "a");
        assert_eq!(error_message(br#"{"code":"invalid","message":"b"}"#), "b");
        assert_eq!(error_message(b"  plain text\n"), "plain text");
        assert_eq!(error_message(b"\xff"), "\u{fffd}");
    }
}

//! The InfluxDB 1.x HTTP API over one shared `ureq::Agent`: `/write`,
//! `/query`, `/ping`, database creation. Blocking, with connection reuse and
//! per-request timeouts; https with optional verification; basic auth or a
//! token. Credentials travel only in the `Authorization` header, so no URL,
//! log line or error message can carry them.

use ureq::Agent;

use crate::response::{classify, write_action, WriteResponse};
use crate::schema::{DatabaseCreation, RetentionPolicy};
use monasca_config::InfluxSection;
pub use monasca_http_client::SetupError;
use monasca_http_client::{shown, AgentSettings, Credentials};

/// Largest answer body read; a 400 echoing every line of a big write is
/// about the size of the request, so this leaves plenty of room.
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// A failed exchange with InfluxDB. Every variant names what was being done
/// and the server URL (which never holds credentials).
///
/// An underlying error is part of the message (a `cause` field, not
/// `source()`), so an `anyhow` chain printed with `{:#}` shows it once.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    /// The request did not complete: connection refused, DNS, TLS, reset.
    #[error("{action} at {url}: cannot reach InfluxDB: {cause}")]
    Transport {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// The HTTP client's error.
        cause: ureq::Error,
    },
    /// No complete answer within `[influxdb] timeout_seconds`.
    #[error("{action} at {url}: no answer within {seconds} s ([influxdb] timeout_seconds)")]
    Timeout {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// The configured timeout.
        seconds: u64,
    },
    /// 401/403: the credentials are wrong or lack a privilege.
    #[error(
        "{action} at {url}: authentication failed (HTTP {status}): {}; check [influxdb] user, password and token",
        shown(message)
    )]
    Auth {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// InfluxDB's message.
        message: String,
    },
    /// Any other unexpected status.
    #[error(
        "{action} at {url}: InfluxDB answered HTTP {status}: {}",
        shown(message)
    )]
    Status {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// InfluxDB's message.
        message: String,
    },
    /// An answer that did not come from InfluxDB's API (a proxy, or Go's
    /// reply to plain http on an https port): a configuration problem.
    #[error(
        "{action} at {url}: answered HTTP {status} by something other than InfluxDB's API \
         (check [influxdb] ip_address, port and ssl): {}",
        shown(message)
    )]
    NotInfluxDb {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The body, as text.
        message: String,
    },
    /// A query statement failed (HTTP 200 with an `error` in its result).
    #[error(
        "{action} at {url}: InfluxDB refused the statement: {}",
        shown(message)
    )]
    Statement {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// InfluxDB's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("{action} at {url}: unreadable answer: {detail}")]
    BadAnswer {
        /// What was being done.
        action: String,
        /// Server URL.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
}

impl InfluxError {
    /// True when trying again later may succeed, so the data must be kept.
    /// A 400 or a refused statement is about the request itself and would
    /// fail the same way again.
    pub fn is_retriable(&self) -> bool {
        match self {
            InfluxError::Status { status, .. } => *status != 400,
            InfluxError::Statement { .. } => false,
            _ => true,
        }
    }

    /// True for 401/403.
    pub fn is_auth(&self) -> bool {
        matches!(self, InfluxError::Auth { .. })
    }

    /// The HTTP status, when an answer arrived.
    pub fn status(&self) -> Option<u16> {
        match self {
            InfluxError::Auth { status, .. }
            | InfluxError::Status { status, .. }
            | InfluxError::NotInfluxDb { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// InfluxDB's message, when it sent one.
    pub fn message(&self) -> Option<&str> {
        match self {
            InfluxError::Auth { message, .. }
            | InfluxError::Status { message, .. }
            | InfluxError::NotInfluxDb { message, .. }
            | InfluxError::Statement { message, .. } => Some(message),
            _ => None,
        }
    }
}

/// An InfluxDB 1.x HTTP client. Cheap to clone; clones share connections.
#[derive(Clone, Debug)]
pub struct InfluxClient {
    agent: Agent,
    base_url: String,
    write_url: String,
    query_url: String,
    auth: Option<Credentials>,
    timeout_seconds: u64,
}

impl InfluxClient {
    /// Builds a client from `[influxdb]`. It does not contact the server.
    pub fn new(config: &InfluxSection) -> Result<InfluxClient, SetupError> {
        let scheme = if config.ssl { "https" } else { "http" };
        let base_url = format!(
            "{scheme}://{}:{}",
            monasca_http_client::url_host(&config.ip_address),
            config.port
        );
        let agent = monasca_http_client::agent(&AgentSettings {
            section: "influxdb",
            ssl: config.ssl,
            verify_ssl: config.verify_ssl,
            ca_file: config.ca_file.as_deref(),
            timeout_seconds: config.timeout_seconds,
            server: &base_url,
        })?;
        let (auth, how) = monasca_http_client::credentials(
            "Token",
            "token",
            &config.token,
            &config.user,
            &config.password,
        );
        log::info!(
            "InfluxDB at {base_url}: {how}, timeout {} s",
            config.timeout_seconds
        );
        Ok(InfluxClient {
            agent,
            write_url: format!("{base_url}/write"),
            query_url: format!("{base_url}/query"),
            base_url,
            auth,
            timeout_seconds: config.timeout_seconds,
        })
    }

    /// The server's base URL, e.g. `http://127.0.0.1:8086` (no credentials).
    pub fn url(&self) -> &str {
        &self.base_url
    }

    /// Posts line protocol (millisecond timestamps) to `database` and
    /// classifies the answer. Never fails otherwise: transport problems come
    /// back as [`WriteResponse::Retriable`].
    pub fn write(&self, database: &str, body: &[u8]) -> WriteResponse {
        let url = format!(
            "{}?db={}&precision=ms",
            self.write_url,
            encode_query_value(database)
        );
        let mut request = self
            .agent
            .post(&url)
            .header("Content-Type", "text/plain; charset=utf-8");
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth.header_value());
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => {
                return WriteResponse::Retriable(self.transport_error(write_action(database), e))
            }
        };
        let status = response.status().as_u16();
        if status == 204 {
            return WriteResponse::Stored;
        }
        let answer = match monasca_http_client::read_body(&mut response, MAX_ANSWER_BYTES) {
            Ok(a) => a,
            Err(e) => {
                return WriteResponse::Retriable(self.transport_error(write_action(database), e))
            }
        };
        classify(status, &answer, database, &self.base_url)
    }

    /// Runs InfluxQL (POST `/query`, so statements that change things are
    /// allowed) and returns the parsed JSON answer. A statement that failed
    /// is an [`InfluxError::Statement`]. Do not put secrets in `statement`:
    /// it is quoted in errors.
    pub fn query(
        &self,
        database: Option<&str>,
        statement: &str,
    ) -> Result<serde_json::Value, InfluxError> {
        let action = || format!("running InfluxQL `{}`", shown(statement));
        let mut request = self.agent.post(&self.query_url);
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth.header_value());
        }
        let mut form = vec![("q", statement)];
        if let Some(db) = database {
            form.push(("db", db));
        }
        let mut response = request
            .send_form(form)
            .map_err(|e| self.transport_error(action(), e))?;
        let status = response.status().as_u16();
        let answer = monasca_http_client::read_body(&mut response, MAX_ANSWER_BYTES)
            .map_err(|e| self.transport_error(action(), e))?;
        if status != 200 {
            let message = crate::response::error_message(&answer);
            let (action, url) = (action(), self.base_url.clone());
            return Err(if status == 401 || status == 403 {
                InfluxError::Auth {
                    action,
                    url,
                    status,
                    message,
                }
            } else {
                InfluxError::Status {
                    action,
                    url,
                    status,
                    message,
                }
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(&answer).map_err(|e| InfluxError::BadAnswer {
                action: action(),
                url: self.base_url.clone(),
                detail: format!(
                    "not JSON ({e}): {}",
                    shown(&String::from_utf8_lossy(&answer))
                ),
            })?;
        let failed = value["results"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|r| r["error"].as_str().map(str::to_string))
            .or_else(|| value["error"].as_str().map(str::to_string));
        match failed {
            Some(message) => Err(InfluxError::Statement {
                action: action(),
                url: self.base_url.clone(),
                message,
            }),
            None => Ok(value),
        }
    }

    /// Creates database `name`; when `retention_hours > 0` its default
    /// retention policy is `"<h>h"` (`DURATION <h>h REPLICATION 1`), with
    /// `autogen` beside it, as the reference creates it.
    ///
    /// One statement creates the database with its default policy —
    /// `CREATE DATABASE "<name>" WITH DURATION <h>h REPLICATION 1 NAME
    /// "<h>h"` — and `autogen` is added after it, rather than the
    /// reference's `CREATE DATABASE` then `CREATE RETENTION POLICY …
    /// DEFAULT`: between those two, another writer's points land in
    /// `autogen`, where queries on the default policy never see them (a test
    /// caught exactly that). Idempotent; a database that already exists with
    /// other policies (created by someone else) is left as it is, with a
    /// warning.
    pub fn create_database(&self, name: &str, retention_hours: u32) -> Result<(), InfluxError> {
        let policy = (retention_hours > 0).then(|| RetentionPolicy {
            name: format!("{retention_hours}h"),
            hours: u64::from(retention_hours),
        });
        if self.create_database_with_policy(name, policy.as_ref())?
            == DatabaseCreation::ExistsWithOtherPolicies
        {
            log::warn!(
                "InfluxDB database {name:?} already exists with other retention policies; left as it is \
                 (default_retention_hours = {retention_hours} applies only to databases this persister creates)"
            );
        }
        Ok(())
    }

    /// `GET /ping`: the server's version when it answers 204.
    pub fn ping(&self) -> Result<String, InfluxError> {
        let action = || "pinging InfluxDB".to_string();
        let mut request = self.agent.get(format!("{}/ping", self.base_url));
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth.header_value());
        }
        let mut response = request
            .call()
            .map_err(|e| self.transport_error(action(), e))?;
        let status = response.status().as_u16();
        if status != 204 && status != 200 {
            let answer = response.body_mut().read_to_vec().unwrap_or_default();
            let message = crate::response::error_message(&answer);
            return Err(InfluxError::Status {
                action: action(),
                url: self.base_url.clone(),
                status,
                message,
            });
        }
        let version = response
            .headers()
            .get("X-Influxdb-Version")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        Ok(version.to_string())
    }

    /// The server's clock, from the `Date` header of its `/ping` answer
    /// (whole seconds, rounded down); `None` when the answer has none.
    /// Lets a client bound a time range exactly where the server's `now()`
    /// would, whatever its own clock says.
    pub fn server_time(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, InfluxError> {
        let action = || "reading InfluxDB's clock (/ping)".to_string();
        let mut request = self.agent.get(format!("{}/ping", self.base_url));
        if let Some(auth) = &self.auth {
            request = request.header("Authorization", auth.header_value());
        }
        let response = request
            .call()
            .map_err(|e| self.transport_error(action(), e))?;
        Ok(response
            .headers()
            .get("Date")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.with_timezone(&chrono::Utc)))
    }

    fn transport_error(&self, action: String, error: ureq::Error) -> InfluxError {
        let url = self.base_url.clone();
        if monasca_http_client::is_timeout(&error) {
            InfluxError::Timeout {
                action,
                url,
                seconds: self.timeout_seconds,
            }
        } else {
            InfluxError::Transport {
                action,
                url,
                cause: error,
            }
        }
    }
}

/// An InfluxQL double-quoted identifier: `\` and `"` escaped.
pub fn quote_identifier(name: &str) -> String {
    quoted(name, '"')
}

/// An InfluxQL single-quoted string literal: `\` and `'` escaped.
pub fn quote_string(value: &str) -> String {
    quoted(value, '\'')
}

/// `text` between `quote`s, each `\` and `quote` in it escaped by a `\`.
fn quoted(text: &str, quote: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        if c == quote || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push(quote);
    out
}

/// Percent-encodes a URL query value (everything but RFC 3986 unreserved bytes).
fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use monasca_config::Secret;

    #[test]
    fn identifiers_are_quoted_and_escaped() {
        assert_eq!(quote_identifier("mon"), "\"mon\"");
        assert_eq!(quote_identifier("we\"ird\\db"), "\"we\\\"ird\\\\db\"");
    }

    #[test]
    fn database_names_are_percent_encoded_in_the_url() {
        assert_eq!(encode_query_value("mon_abc-1.x~"), "mon_abc-1.x~");
        assert_eq!(encode_query_value("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = InfluxSection {
            password: Secret::new("hunter2-password"),
            token: Secret::new("tok-secret-123"),
            ..InfluxSection::default()
        };
        let client = InfluxClient::new(&config).expect("client");
        let text = format!("{client:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("tok-secret"),
            "{text}"
        );
        let basic = InfluxClient::new(&InfluxSection {
            password: Secret::new("hunter2-password"),
            ..InfluxSection::default()
        })
        .expect("client");
        let encoded =
            base64::engine::general_purpose::STANDARD.encode("mon_persister:hunter2-password");
        let text = format!("{basic:?}");
        assert!(
            !text.contains(&encoded) && !text.contains("hunter2"),
            "credentials leaked: {text}"
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let c = InfluxClient::new(&InfluxSection {
            ip_address: "::1".into(),
            ssl: true,
            ..InfluxSection::default()
        })
        .expect("client");
        assert_eq!(c.url(), "https://[::1]:8086");
    }

    #[test]
    fn a_missing_ca_file_is_a_setup_error_naming_it() {
        let config = InfluxSection {
            ssl: true,
            verify_ssl: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..InfluxSection::default()
        };
        let e = InfluxClient::new(&config).expect_err("must fail");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}

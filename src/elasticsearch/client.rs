//! HTTP to the Elasticsearch (or OpenSearch) nodes of `[elasticsearch]
//! hosts`: `POST /_bulk` and `GET /`, over the shared agent (TLS, timeouts),
//! with basic authentication or an API key. A node that cannot be reached
//! hands the request to the next one at once, up to `max_retries` times;
//! later requests stay with the node that answered.

use std::sync::atomic::{AtomicUsize, Ordering};

use ureq::Agent;

use crate::config::ElasticsearchSection;
use crate::http_client::{shown, AgentSettings, Credentials, SetupError};

/// Largest answer read: a `_bulk` answer is a few hundred bytes per item.
const MAX_ANSWER_BYTES: u64 = 64 * 1024 * 1024;

/// A failed exchange with a node. Every variant names what was being done
/// and the node's URL (which never holds credentials).
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The request did not complete: connection refused, DNS, TLS, reset.
    #[error("{action} at {url}: cannot reach Elasticsearch: {cause}")]
    Transport {
        /// What was being done.
        action: &'static str,
        /// Node URL.
        url: String,
        /// The HTTP client's error.
        cause: ureq::Error,
    },
    /// No complete answer within `[elasticsearch] timeout_seconds`.
    #[error("{action} at {url}: no answer within {seconds} s ([elasticsearch] timeout_seconds)")]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// Node URL.
        url: String,
        /// The configured timeout.
        seconds: u64,
    },
    /// 401/403 for the whole request.
    #[error(
        "{action} at {url}: authentication failed (HTTP {status}): {}; check [elasticsearch] user, password and api_key",
        shown(message)
    )]
    Auth {
        /// What was being done.
        action: &'static str,
        /// Node URL.
        url: String,
        /// 401 or 403.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// Any other status for the whole request.
    #[error("{action} at {url}: answered HTTP {status}: {}", shown(message))]
    Status {
        /// What was being done.
        action: &'static str,
        /// Node URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// An answer that could not be understood.
    #[error("{action} at {url}: unreadable answer: {detail}")]
    BadAnswer {
        /// What was being done.
        action: &'static str,
        /// Node URL.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// What a node answered to a `_bulk` request.
#[derive(Debug)]
pub enum BulkAnswer {
    /// 200: the per-item answer (to be read by [`super::bulk::read_answer`]).
    Items(Vec<u8>),
    /// 413, or 400 with Elasticsearch's error object: the request as a whole
    /// was refused (too large, or an item broke it); the message says why.
    Refused {
        /// HTTP status.
        status: u16,
        /// The server's reason.
        reason: String,
    },
}

/// A client of the nodes in `[elasticsearch] hosts`. Cheap to share.
#[derive(Debug)]
pub struct EsClient {
    agent: Agent,
    nodes: Vec<String>,
    current: AtomicUsize,
    auth: Option<Credentials>,
    timeout_seconds: u64,
    max_retries: usize,
}

impl EsClient {
    /// Builds a client from `[elasticsearch]`. It does not contact a node.
    pub fn new(config: &ElasticsearchSection) -> Result<EsClient, SetupError> {
        let scheme = if config.ssl { "https" } else { "http" };
        let nodes: Vec<String> = config
            .hosts
            .iter()
            .map(|h| format!("{scheme}://{h}"))
            .collect();
        let agent = crate::http_client::agent(&AgentSettings {
            section: "elasticsearch",
            ssl: config.ssl,
            verify_ssl: config.verify_ssl,
            ca_file: config.ca_file.as_deref(),
            timeout_seconds: config.timeout_seconds,
            server: &nodes.join(", "),
        })?;
        let (auth, how) = crate::http_client::credentials(
            "ApiKey",
            "API key",
            &config.api_key,
            &config.user,
            &config.password,
        );
        log::info!(
            "Elasticsearch at {}: {how}, timeout {} s",
            nodes.join(", "),
            config.timeout_seconds
        );
        Ok(EsClient {
            agent,
            nodes,
            current: AtomicUsize::new(0),
            auth,
            timeout_seconds: config.timeout_seconds,
            max_retries: config.max_retries as usize,
        })
    }

    /// The URL of the node requests go to now.
    pub fn url(&self) -> &str {
        &self.nodes[self.current.load(Ordering::Relaxed) % self.nodes.len()]
    }

    /// Posts NDJSON `body` to `/_bulk`.
    pub fn bulk(&self, body: &[u8]) -> Result<BulkAnswer, EsError> {
        const ACTION: &str = "writing events with _bulk";
        self.with_failover(|url| {
            let mut request = self
                .agent
                .post(format!("{url}/_bulk"))
                .header("Content-Type", "application/x-ndjson");
            if let Some(auth) = &self.auth {
                request = request.header("Authorization", auth.header_value());
            }
            let (status, answer) = self.answer(ACTION, url, request.send(body))?;
            match status {
                200 => Ok(BulkAnswer::Items(answer)),
                413 => Ok(BulkAnswer::Refused {
                    status,
                    reason: format!(
                        "request too large for the server (http.max_content_length): {}",
                        server_reason(&answer)
                    ),
                }),
                400 if is_error_object(&answer) => Ok(BulkAnswer::Refused {
                    status,
                    reason: server_reason(&answer),
                }),
                _ => Err(status_error(ACTION, url, status, &answer)),
            }
        })
    }

    /// `GET /`: the server's name and version when it answers.
    pub fn ping(&self) -> Result<String, EsError> {
        const ACTION: &str = "pinging Elasticsearch";
        self.with_failover(|url| {
            let mut request = self.agent.get(format!("{url}/"));
            if let Some(auth) = &self.auth {
                request = request.header("Authorization", auth.header_value());
            }
            let (status, answer) = self.answer(ACTION, url, request.call())?;
            if status != 200 {
                return Err(status_error(ACTION, url, status, &answer));
            }
            let info: serde_json::Value =
                serde_json::from_slice(&answer).map_err(|e| EsError::BadAnswer {
                    action: ACTION,
                    url: url.to_string(),
                    detail: e.to_string(),
                })?;
            let version = &info["version"];
            Ok(format!(
                "{} {}",
                version["distribution"].as_str().unwrap_or("elasticsearch"),
                version["number"].as_str().unwrap_or("(unknown version)")
            ))
        })
    }

    /// Runs `request` on the current node; when it cannot reach it (or the
    /// node is unavailable: 502-504), on the next ones, at most
    /// `max_retries` times and once per node.
    fn with_failover<T>(
        &self,
        mut request: impl FnMut(&str) -> Result<T, EsError>,
    ) -> Result<T, EsError> {
        let nodes = self.nodes.len();
        let extra = self.max_retries.min(nodes - 1);
        let first = self.current.load(Ordering::Relaxed);
        let mut attempt = 0;
        loop {
            let node = (first + attempt) % nodes;
            let result = request(&self.nodes[node]);
            let unreachable = match &result {
                Err(EsError::Transport { .. } | EsError::Timeout { .. }) => true,
                Err(EsError::Status { status, .. }) => matches!(status, 502..=504),
                _ => false,
            };
            if !unreachable || attempt >= extra {
                if attempt > 0 {
                    // Later requests start where this one ended.
                    self.current.store(node, Ordering::Relaxed);
                }
                return result;
            }
            if let Err(e) = &result {
                log::debug!("{e}; trying the next node");
            }
            attempt += 1;
        }
    }

    /// The status and body of a response.
    fn answer(
        &self,
        action: &'static str,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), EsError> {
        let mut response = response.map_err(|e| self.transport_error(action, url, e))?;
        let status = response.status().as_u16();
        let answer = crate::http_client::read_body(&mut response, MAX_ANSWER_BYTES)
            .map_err(|e| self.transport_error(action, url, e))?;
        Ok((status, answer))
    }

    fn transport_error(&self, action: &'static str, url: &str, error: ureq::Error) -> EsError {
        if crate::http_client::is_timeout(&error) {
            EsError::Timeout {
                action,
                url: url.to_string(),
                seconds: self.timeout_seconds,
            }
        } else {
            EsError::Transport {
                action,
                url: url.to_string(),
                cause: error,
            }
        }
    }
}

fn status_error(action: &'static str, url: &str, status: u16, answer: &[u8]) -> EsError {
    let message = server_reason(answer);
    let url = url.to_string();
    if status == 401 || status == 403 {
        EsError::Auth {
            action,
            url,
            status,
            message,
        }
    } else {
        EsError::Status {
            action,
            url,
            status,
            message,
        }
    }
}

/// Whether an answer is Elasticsearch's own error object
/// (`{"error": {...}, "status": N}`), not a proxy's page.
fn is_error_object(answer: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(answer)
        .is_ok_and(|v| v.get("error").is_some_and(|e| e.is_object()))
}

/// The reason in an error answer: `type: reason` of Elasticsearch's error
/// object (with its root cause), else the body as text.
fn server_reason(answer: &[u8]) -> String {
    match serde_json::from_slice::<serde_json::Value>(answer) {
        Ok(v) if v.get("error").is_some() => super::bulk::error_text(&v["error"]),
        _ => String::from_utf8_lossy(answer).trim().to_string(),
    }
}

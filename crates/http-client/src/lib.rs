//! The HTTP client set-up both sinks share (`monasca-http-client`, which
//! the daemon re-exports as `monasca_persister::http_client`; InfluxDB,
//! through `monasca-influx`, and Elasticsearch): a
//! blocking ureq agent with a whole-request timeout, connection reuse, TLS
//! from a section's `ssl`, `verify_ssl` and `ca_file`, IP-literal hosts used
//! as they are (`resolver.rs`), and credentials that only ever travel in the
//! `Authorization` header and never show in Debug output.

mod resolver;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use ureq::tls::{PemItem, RootCerts, TlsConfig};
use ureq::unversioned::transport::DefaultConnector;
use ureq::Agent;

use resolver::LiteralAddressResolver;

/// A client that cannot be set up from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `ca_file` could not be read.
    #[error("reading [{section}] ca_file {path}: {cause}")]
    CaFileUnreadable {
        /// The section that names it.
        section: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// `ca_file` holds no usable PEM certificate.
    #[error("reading [{section}] ca_file {path}: {detail}")]
    CaFileInvalid {
        /// The section that names it.
        section: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// How a section asks to talk to its server.
#[derive(Debug, Clone, Copy)]
pub struct AgentSettings<'a> {
    /// The configuration section, for messages (`influxdb`).
    pub section: &'static str,
    /// https.
    pub ssl: bool,
    /// Verify the server certificate (with `ssl`).
    pub verify_ssl: bool,
    /// PEM file of the CAs to trust instead of the bundled roots.
    pub ca_file: Option<&'a std::path::Path>,
    /// Limit of one whole request in seconds (0: none).
    pub timeout_seconds: u64,
    /// Where the agent connects, for the warning about unverified TLS.
    pub server: &'a str,
}

/// An agent for `settings`: status codes are answers, not errors.
pub fn agent(settings: &AgentSettings<'_>) -> Result<Agent, SetupError> {
    let timeout =
        (settings.timeout_seconds > 0).then(|| Duration::from_secs(settings.timeout_seconds));
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(timeout)
        .max_idle_connections_per_host(32)
        .user_agent(concat!("monasca-persister/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls_config(settings)?)
        .build();
    Ok(Agent::with_parts(
        config,
        DefaultConnector::default(),
        LiteralAddressResolver::default(),
    ))
}

/// Sections already warned about unverified TLS (once each per process).
static INSECURE_TLS_WARNED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

fn tls_config(settings: &AgentSettings<'_>) -> Result<TlsConfig, SetupError> {
    let builder = TlsConfig::builder();
    if !settings.ssl {
        return Ok(builder.build());
    }
    let section = settings.section;
    if !settings.verify_ssl {
        let first = INSECURE_TLS_WARNED.lock().map_or(true, |mut warned| {
            let first = !warned.contains(&section);
            if first {
                warned.push(section);
            }
            first
        });
        if first {
            log::warn!(
                "[{section}] verify_ssl = false: the certificate of {} is not verified, \
                 so anyone on the path can read and change what is sent{}",
                settings.server,
                if settings.ca_file.is_some() {
                    " (ca_file is ignored)"
                } else {
                    ""
                }
            );
        }
        return Ok(builder.disable_verification(true).build());
    }
    let Some(path) = settings.ca_file else {
        // Mozilla's roots, as bundled: a private CA needs ca_file.
        return Ok(builder.root_certs(RootCerts::WebPki).build());
    };
    let pem = std::fs::read(path).map_err(|cause| SetupError::CaFileUnreadable {
        section,
        path: path.to_path_buf(),
        cause,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(SetupError::CaFileInvalid {
                    section,
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                })
            }
        }
    }
    if certs.is_empty() {
        return Err(SetupError::CaFileInvalid {
            section,
            path: path.to_path_buf(),
            detail: "no PEM certificate in it".into(),
        });
    }
    Ok(builder
        .root_certs(RootCerts::new_with_certs(&certs))
        .build())
}

/// An `Authorization` header value; masked in Debug output.
#[derive(Clone)]
pub struct Credentials(String);

impl Credentials {
    /// `Basic base64(user:password)`.
    pub fn basic(user: &str, password: &str) -> Credentials {
        let pair = format!("{user}:{password}");
        Credentials(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ))
    }

    /// `<scheme> <secret>`, e.g. `Token …` or `ApiKey …`.
    pub fn scheme(scheme: &str, secret: &str) -> Credentials {
        Credentials(format!("{scheme} {secret}"))
    }

    /// The header value, for the one place that sends it.
    pub fn header_value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"****\"")
    }
}

/// The credentials a section configures, and how the start-up log says so:
/// `<scheme> <secret>` when `secret` is set (`label` names it in the log),
/// else basic authentication when `user` and `password` are set, else none.
pub fn credentials(
    scheme: &str,
    label: &str,
    secret: &monasca_config::Secret,
    user: &str,
    password: &monasca_config::Secret,
) -> (Option<Credentials>, String) {
    if !secret.is_empty() {
        (
            Some(Credentials::scheme(scheme, secret.expose())),
            format!("{label} authentication"),
        )
    } else if !user.is_empty() && !password.is_empty() {
        (
            Some(Credentials::basic(user, password.expose())),
            format!("user {user:?} with password"),
        )
    } else {
        (None, "no authentication".to_string())
    }
}

/// `host` as a URL authority part: IPv6 literals in brackets.
pub fn url_host(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Whether a ureq error means the request ran out of time.
pub fn is_timeout(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Timeout(_) => true,
        ureq::Error::Io(e) => matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ),
        _ => false,
    }
}

/// How much of a server's message an error's text shows (the full text
/// stays in the error's `message` field).
const MESSAGE_SHOWN: usize = 400;

/// A server's message for an error's text: cut at [`MESSAGE_SHOWN`] bytes,
/// saying how long it was.
pub fn shown(message: &str) -> String {
    if message.len() <= MESSAGE_SHOWN {
        return message.to_string();
    }
    let mut cut = MESSAGE_SHOWN;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..cut], message.len())
}

/// A response's body, at most `limit` bytes: a larger one is an error
/// (the caller's transport error), never an unbounded allocation.
pub fn read_body(
    response: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<Vec<u8>, ureq::Error> {
    response.body_mut().with_config().limit(limit).read_to_vec()
}

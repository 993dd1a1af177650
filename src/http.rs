//! A small HTTP/1.x server for the health endpoint's GET requests, built to
//! stay up under hostile or broken clients: one thread (a mio event loop),
//! at most [`Limits::max_connections`] connections open at a time (so it
//! never takes the file descriptors the WAL and Kafka need), every
//! connection closed after one response or at its deadline (idle and
//! slow clients included), and accepting goes on after any error.
//!
//! When the connection limit is reached, the oldest connection makes room
//! for the new one: a request it has already sent in full is answered
//! first, otherwise it is closed. So a flood of idle connections costs
//! descriptors up to the limit and nothing else, and a real client that
//! sends its request at once is always served.
//!
//! Why not a crate: tiny_http, used before, starts a thread per
//! connection — 1 500 idle connections made it spawn 519 threads and run the
//! process out of its 1 024 descriptors, after which it refused
//! connections for good. The servers that bound this (hyper and its kin)
//! need an async runtime, a large dependency for two GET routes in a
//! service that otherwise runs plain threads. mio (the event loop) and
//! httparse (the request parser) are the parts of those servers used here.
//! Measured with the test `health_survives_idle_floods_and_slow_clients`:
//! 1 500 idle connections and a slow client leave the process with one
//! server thread and at most `max_connections` + 3 descriptors for it, and
//! `/healthcheck` answers in milliseconds throughout.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

/// Bounds of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; beyond, the oldest makes room.
    pub max_connections: usize,
    /// A connection must deliver its request and take its response within this.
    pub connection_timeout: Duration,
    /// Largest request head (request line and headers) read.
    pub max_request_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            connection_timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
        }
    }
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

/// Answers a GET of a path (the request target without its query).
pub type Handler = Box<dyn Fn(&str) -> Response + Send>;

/// A running server; stops when dropped.
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONNECTION: usize = 2;

/// After an accept error (out of descriptors), accepting resumes this much later.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Most connections accepted in one turn of the loop, so that the others are served too.
const ACCEPTS_PER_TURN: usize = 256;

impl HttpServer {
    /// Binds `bind` and serves on a thread named `name` until dropped.
    pub fn start(
        bind: SocketAddr,
        name: &str,
        limits: Limits,
        handler: Handler,
    ) -> io::Result<HttpServer> {
        let mut listener = TcpListener::bind(bind)?;
        let local_addr = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let mut event_loop = EventLoop {
            poll,
            listener,
            limits,
            handler,
            connections: HashMap::new(),
            next_token: FIRST_CONNECTION,
            accept_paused_until: None,
            accept_errors: ErrorLog::default(),
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || event_loop.run())?;
        Ok(HttpServer {
            local_addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if self.waker.wake().is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Where a connection is.
enum Phase {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Writing the response; the bytes and how many are written.
    Writing(Vec<u8>, usize),
}

struct Connection {
    stream: TcpStream,
    phase: Phase,
    accepted: Instant,
}

/// What a turn of work on a connection came to.
enum Next {
    /// Waiting for the client.
    Wait,
    /// Done or broken: close it.
    Close,
}

/// Logs accept errors: the first of a run at WARN, then one line a minute.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn failed(&mut self, error: &io::Error) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            self.suppressed += 1;
            return;
        }
        let more = std::mem::take(&mut self.suppressed);
        log::warn!(
            "health endpoint: accepting a connection failed: {error}{}; retrying",
            if more > 0 {
                format!(" ({more} more failures since the last report)")
            } else {
                String::new()
            }
        );
        self.last = Some(Instant::now());
    }
}

struct EventLoop {
    poll: Poll,
    listener: TcpListener,
    limits: Limits,
    handler: Handler,
    connections: HashMap<Token, Connection>,
    next_token: usize,
    accept_paused_until: Option<Instant>,
    accept_errors: ErrorLog,
    stop: Arc<AtomicBool>,
}

impl EventLoop {
    fn run(&mut self) {
        let mut events = Events::with_capacity(256);
        while !self.stop.load(Ordering::Acquire) {
            let timeout = self.next_deadline().map(|t| {
                t.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("health endpoint: waiting for events failed: {e}");
                    std::thread::sleep(ACCEPT_RETRY);
                }
                continue;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    token => {
                        if matches!(self.work(token), Next::Close) {
                            self.close(token);
                        }
                    }
                }
            }
            if self
                .accept_paused_until
                .is_some_and(|t| Instant::now() >= t)
            {
                self.accept_paused_until = None;
                self.accept();
            }
            self.expire();
        }
    }

    /// The earliest moment something must happen without an event.
    fn next_deadline(&self) -> Option<Instant> {
        let oldest = self.connections.values().map(|c| c.accepted).min();
        let expiry = oldest.map(|t| t + self.limits.connection_timeout);
        match (expiry, self.accept_paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset
                    // before it was accepted: keep going, a little later.
                    self.accept_errors.failed(&e);
                    if let Some(oldest) = self.oldest() {
                        self.make_room(oldest);
                    }
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
        // More may be waiting: come back after the other events.
        self.accept_paused_until = Some(Instant::now());
    }

    fn admit(&mut self, mut stream: TcpStream) {
        while self.connections.len() >= self.limits.max_connections.max(1) {
            match self.oldest() {
                Some(oldest) => self.make_room(oldest),
                None => break,
            }
        }
        let token = Token(self.next_token);
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONNECTION);
        if self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
            .is_err()
        {
            return; // dropped: closed
        }
        self.connections.insert(
            token,
            Connection {
                stream,
                phase: Phase::Reading(Vec::new()),
                accepted: Instant::now(),
            },
        );
        // The request may already be there (edge-triggered: no event for data
        // that arrived before the registration).
        if matches!(self.work(token), Next::Close) {
            self.close(token);
        }
    }

    fn oldest(&self) -> Option<Token> {
        self.connections
            .iter()
            .min_by_key(|(_, c)| c.accepted)
            .map(|(t, _)| *t)
    }

    /// Answers the connection if its request is complete, then closes it.
    fn make_room(&mut self, token: Token) {
        let _ = self.work(token);
        self.close(token);
    }

    fn close(&mut self, token: Token) {
        if let Some(mut c) = self.connections.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let timeout = self.limits.connection_timeout;
        let expired: Vec<Token> = self
            .connections
            .iter()
            .filter(|(_, c)| now.duration_since(c.accepted) >= timeout)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            self.close(token);
        }
    }

    /// Reads what arrived, answers a complete request, writes what the
    /// socket takes.
    fn work(&mut self, token: Token) -> Next {
        let Some(c) = self.connections.get_mut(&token) else {
            return Next::Wait;
        };
        if let Phase::Reading(buf) = &mut c.phase {
            let mut chunk = [0u8; 2048];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => return Next::Close,
                    Ok(n) => {
                        let room = self.limits.max_request_bytes.saturating_sub(buf.len());
                        buf.extend_from_slice(&chunk[..n.min(room)]);
                        if n > room {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => return Next::Close,
                }
            }
            let response = match request_path(buf, self.limits.max_request_bytes) {
                Parsed::Incomplete => return Next::Wait,
                Parsed::Get(path) => (self.handler)(&path),
                Parsed::OtherMethod => Response::text(405, "only GET is served\n"),
                Parsed::TooLarge => Response::text(431, "request head too large\n"),
                Parsed::Invalid => Response::text(400, "not an HTTP request\n"),
            };
            c.phase = Phase::Writing(response.encode(), 0);
            if self
                .poll
                .registry()
                .reregister(&mut c.stream, token, Interest::WRITABLE)
                .is_err()
            {
                return Next::Close;
            }
        }
        let Phase::Writing(bytes, written) = &mut c.phase else {
            return Next::Wait;
        };
        while *written < bytes.len() {
            match c.stream.write(&bytes[*written..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Next::Close,
            }
        }
        let _ = c.stream.flush();
        Next::Close
    }
}

/// What a request head read so far comes to.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    /// Not all there yet.
    Incomplete,
    /// A GET of this path.
    Get(String),
    /// Another method.
    OtherMethod,
    /// Longer than allowed.
    TooLarge,
    /// Not HTTP.
    Invalid,
}

fn request_path(buf: &[u8], max: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            if request.method == Some("GET") {
                Parsed::Get(path.to_string())
            } else {
                Parsed::OtherMethod
            }
        }
        Ok(httparse::Status::Partial) if buf.len() >= max => Parsed::TooLarge,
        Ok(httparse::Status::Partial) => Parsed::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Parsed::TooLarge,
        Err(_) => Parsed::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads_are_read_as_they_arrive() {
        assert_eq!(request_path(b"GET /metr", 100), Parsed::Incomplete);
        assert_eq!(
            request_path(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", 100),
            Parsed::Get("/metrics".into())
        );
        assert_eq!(
            request_path(b"POST / HTTP/1.0\r\n\r\n", 100),
            Parsed::OtherMethod
        );
        assert_eq!(request_path(b"\x16\x03\x01 tls", 100), Parsed::Invalid);
        assert_eq!(
            request_path(b"GET / HTTP/1.1\r\nA: b\r\n", 20),
            Parsed::TooLarge
        );
    }

    #[test]
    fn responses_say_how_long_they_are_and_close() {
        let r = Response::text(503, "no\n").encode();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n"
        );
    }
}

//! A private `influxd` (Debian package `influxdb`, 1.6.x) per test: its own
//! temp dir, free ports, stopped on drop. It can be stopped and started again
//! on the same data and port to simulate an outage.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INSTALL_HINT: &str = "influxd not found: install InfluxDB 1.x with `apt-get install -y influxdb` (scripts/test does this)";

/// Options for a test influxd.
#[derive(Default, Clone)]
pub struct InfluxdOptions {
    /// Enable HTTP authentication and create an admin user `admin`/`admin-secret`.
    pub auth: bool,
}

/// `[http]` settings of a test influxd beyond [`InfluxdOptions`] (kept apart
/// so that struct literals of `InfluxdOptions` stay valid).
#[derive(Clone)]
pub struct HttpOptions {
    /// `max-body-size` in bytes: larger writes get 413 (default 25 MiB, influxd's own).
    pub max_body_size: usize,
    /// Serve https with a certificate for 127.0.0.1 issued by a private CA
    /// made for this instance (see [`Influxd::ca_file`]); needs `openssl`.
    pub tls: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_size: 26214400,
            tls: false,
        }
    }
}

/// A running (or stopped) private influxd.
pub struct Influxd {
    dir: tempfile::TempDir,
    /// HTTP port.
    pub port: u16,
    child: Option<Child>,
    opts: InfluxdOptions,
    http: HttpOptions,
}

fn influxd_binary() -> PathBuf {
    for p in ["/usr/bin/influxd", "/usr/local/bin/influxd"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    if let Ok(out) = Command::new("which").arg("influxd").output() {
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !s.is_empty() {
            return PathBuf::from(s);
        }
    }
    panic!("{INSTALL_HINT}");
}

impl Influxd {
    /// Starts an influxd without authentication.
    pub fn start() -> Influxd {
        Self::start_with(InfluxdOptions::default())
    }

    /// Starts an influxd with the given options and waits until it answers /ping.
    pub fn start_with(opts: InfluxdOptions) -> Influxd {
        Self::start_with_http(opts, HttpOptions::default())
    }

    /// Starts an influxd with the given options and `[http]` settings.
    pub fn start_with_http(opts: InfluxdOptions, http: HttpOptions) -> Influxd {
        let dir = tempfile::Builder::new()
            .prefix("influxd-test")
            .tempdir()
            .expect("create temp dir for influxd");
        let mut me = Influxd {
            dir,
            port: 0,
            child: None,
            opts,
            http,
        };
        if me.http.tls {
            me.make_certificates();
        }
        for _attempt in 0..5 {
            me.port = super::free_port();
            if me.try_spawn() {
                if me.opts.auth {
                    me.create_admin();
                }
                return me;
            }
        }
        panic!(
            "influxd did not start after 5 attempts; see {}/influxd.log",
            me.dir.path().display()
        );
    }

    /// Base URL, e.g. `http://127.0.0.1:40123` (`https://…` with TLS).
    pub fn url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            if self.http.tls { "https" } else { "http" },
            self.port
        )
    }

    /// The PEM file of the private CA that issued the server certificate
    /// (with `HttpOptions { tls: true, .. }`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The client for the helpers below: with TLS it trusts any certificate,
    /// so that the helpers test nothing about it.
    fn agent(&self) -> ureq::Agent {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(self.http.tls)
            .build();
        ureq::Agent::config_builder().tls_config(tls).build().into()
    }

    fn make_certificates(&self) {
        let d = self.dir.path();
        let run = |args: &str| {
            let out = Command::new("openssl")
                .args(args.split_whitespace())
                .current_dir(d)
                .output()
                .unwrap_or_else(|e| panic!("run openssl (needed for TLS tests): {e}"));
            assert!(
                out.status.success(),
                "openssl {args}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2";
        run(&format!(
            "req -x509 {ec} -keyout ca.key -out ca.pem -subj /CN=influxd-test-CA"
        ));
        run(&format!(
            "req {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"
        ));
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write certificate extensions");
        run("x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
    }

    /// The temp dir holding data, config and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn write_config(&self, rpc_port: u16) -> PathBuf {
        let d = self.dir.path();
        let conf = format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{d}/meta"
  logging-enabled = false
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "10s"
[coordinator]
  log-queries-after = "0s"
[retention]
  enabled = true
  check-interval = "30m"
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
  max-body-size = {max_body_size}
  https-enabled = {tls}
  https-certificate = "{d}/server.pem"
  https-private-key = "{d}/server.key"
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
"#,
            d = d.display(),
            port = self.port,
            auth = self.opts.auth,
            max_body_size = self.http.max_body_size,
            tls = self.http.tls,
        );
        let path = d.join("influxdb.conf");
        std::fs::write(&path, conf).expect("write influxd config");
        path
    }

    fn try_spawn(&mut self) -> bool {
        let conf = self.write_config(super::free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("influxd.log"))
            .expect("open influxd log");
        let child = Command::new(influxd_binary())
            .arg("-config")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn influxd: {e}; {INSTALL_HINT}"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_status)) = c.try_wait() {
                    self.child = None;
                    return false; // probably lost the port race; caller retries
                }
            }
            if self.ping() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill();
        false
    }

    /// True when /ping answers 204.
    pub fn ping(&self) -> bool {
        match self.agent().get(&format!("{}/ping", self.url())).call() {
            Ok(r) => r.status().as_u16() == 204,
            Err(_) => false,
        }
    }

    fn create_admin(&self) {
        let r = self.query_raw(
            None,
            "CREATE USER admin WITH PASSWORD 'admin-secret' WITH ALL PRIVILEGES",
            false,
        );
        assert!(r.contains("results"), "create admin user: {r}");
    }

    /// Stops influxd (SIGKILL when `hard`, else SIGTERM) keeping its data.
    pub fn stop(&mut self, hard: bool) {
        if let Some(mut c) = self.child.take() {
            if hard {
                let _ = c.kill();
            } else {
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
            let _ = c.wait();
        }
    }

    /// Freezes influxd (SIGSTOP): connections are accepted by the kernel but
    /// nothing is answered, like a server stalled on its disk.
    pub fn pause(&self) {
        self.send(libc::SIGSTOP);
    }

    /// Lets a paused influxd run again (SIGCONT).
    pub fn resume(&self) {
        self.send(libc::SIGCONT);
    }

    fn send(&self, signal: libc::c_int) {
        let child = self.child.as_ref().expect("influxd is running");
        let rc = unsafe { libc::kill(child.id() as i32, signal) };
        assert_eq!(rc, 0, "signal {signal} to influxd");
    }

    fn kill(&mut self) {
        self.stop(true);
    }

    /// Starts it again on the same port and data after `stop`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running influxd");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.try_spawn() {
            assert!(
                std::time::Instant::now() < deadline,
                "influxd did not restart on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn query_raw(&self, db: Option<&str>, q: &str, with_auth: bool) -> String {
        let mut req = self
            .agent()
            .post(&format!("{}/query", self.url()))
            .config()
            .http_status_as_error(false)
            .build();
        if with_auth && self.opts.auth {
            req = req.header("Authorization", "Basic YWRtaW46YWRtaW4tc2VjcmV0");
            // admin:admin-secret
        }
        let mut form: Vec<(&str, &str)> = vec![("q", q), ("epoch", "ms")];
        if let Some(db) = db {
            form.push(("db", db));
        }
        let mut resp = req
            .send_form(form)
            .unwrap_or_else(|e| panic!("query {q:?} on influxd {}: {e}", self.url()));
        let mut s = String::new();
        resp.body_mut()
            .as_reader()
            .read_to_string(&mut s)
            .expect("read query body");
        s
    }

    /// Runs an InfluxQL statement and returns the parsed JSON response (panics on HTTP failure).
    pub fn query(&self, db: Option<&str>, q: &str) -> serde_json::Value {
        let s = self.query_raw(db, q, true);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("query {q:?}: bad JSON {e}: {s}"))
    }

    /// Rows (`values`) of every series of the first statement.
    pub fn rows(&self, db: &str, q: &str) -> Vec<Vec<serde_json::Value>> {
        let v = self.query(Some(db), q);
        if let Some(err) = v["results"][0]["error"].as_str() {
            panic!("query {q:?} on {db}: {err}");
        }
        let mut out = Vec::new();
        if let Some(series) = v["results"][0]["series"].as_array() {
            for s in series {
                if let Some(vals) = s["values"].as_array() {
                    for row in vals {
                        out.push(row.as_array().cloned().unwrap_or_default());
                    }
                }
            }
        }
        out
    }

    /// `SELECT count(*)`-style helper: number of points in `measurement` (0 when absent).
    pub fn count(&self, db: &str, measurement: &str) -> u64 {
        let q = format!(
            "SELECT count(value) FROM \"{}\"",
            measurement.replace('\\', "\\\\").replace('"', "\\\"")
        );
        self.rows(db, &q)
            .first()
            .and_then(|r| r.get(1))
            .and_then(|v| v.as_u64())
            .unwrap_or(0)
    }

    /// Names of all databases.
    pub fn databases(&self) -> Vec<String> {
        self.rows("_internal", "SHOW DATABASES")
            .into_iter()
            .filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_string))
            .collect()
    }

    /// Posts line protocol directly (ms precision) and returns (status, body).
    pub fn write_lines(&self, db: &str, body: &str) -> (u16, String) {
        self.write_bytes(db, body.as_bytes())
    }

    /// [`Influxd::write_lines`] for a body that is bytes.
    pub fn write_bytes(&self, db: &str, body: &[u8]) -> (u16, String) {
        let mut req = self
            .agent()
            .post(&format!("{}/write?db={db}&precision=ms", self.url()))
            .config()
            .http_status_as_error(false)
            .build();
        if self.opts.auth {
            req = req.header("Authorization", "Basic YWRtaW46YWRtaW4tc2VjcmV0");
        }
        let mut resp = req
            .send(body)
            .unwrap_or_else(|e| panic!("write to influxd {}: {e}", self.url()));
        let status = resp.status().as_u16();
        let mut s = String::new();
        let _ = resp.body_mut().as_reader().read_to_string(&mut s);
        (status, s)
    }

    /// The influxd log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("influxd.log")).unwrap_or_default()
    }
}

impl Drop for Influxd {
    fn drop(&mut self) {
        self.kill();
    }
}

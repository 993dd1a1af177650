//! The real `monasca-persister` binary as a child process of a test: its
//! configuration written to a file, its log captured in a file, signals,
//! exit status, the health endpoint and the closing summary line read back.
//!
//! Children start with SIGTERM and SIGINT blocked, as a service manager
//! may hand them over: a stop signal that a test sends while the binary is
//! still being loaded (before any process could handle it) waits for the
//! handlers the binary installs first thing and then unblocks.

use std::fs::File;
use std::io::Read as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use monasca_persister::config::{Config, KafkaClientSection};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_monasca-persister");

/// A running (or exited) `monasca-persister`, killed with SIGKILL when the
/// test drops it still running (a failing assertion included).
pub struct Persister {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    log: PathBuf,
    health: SocketAddr,
    pub spawned: Instant,
}

impl Persister {
    /// Writes `config` as `<dir>/<name>.conf` and starts the binary on it, its
    /// stdout and stderr (where it logs) going to a fresh `<dir>/<name>.<n>.log`.
    /// The rendered configuration masks secrets, so the `[kafka_client]`
    /// secrets (a SASL password) go into a second file,
    /// `<dir>/<name>.secrets.conf`, given after it (the later file wins).
    pub fn start(config: &Config, dir: &Path, name: &str) -> Persister {
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, config.to_string()).expect("write persister config");
        let secrets: Vec<String> = config
            .kafka_client
            .properties
            .iter()
            .filter(|(k, _)| KafkaClientSection::is_secret(k))
            .map(|(k, v)| format!("{k} = {}\n", v.expose()))
            .collect();
        let mut files = vec![conf];
        if !secrets.is_empty() {
            let path = dir.join(format!("{name}.secrets.conf"));
            std::fs::write(&path, format!("[kafka_client]\n{}", secrets.concat()))
                .expect("write the persister's secrets");
            files.push(path);
        }
        Self::start_with_files(&files, config.health.bind, dir, name)
    }

    /// Starts the binary on the configuration file `conf`.
    pub fn start_with_file(conf: &Path, health: SocketAddr, dir: &Path, name: &str) -> Persister {
        let mut command = Command::new(BIN);
        command.arg("--config-file").arg(conf);
        Self::spawn(command, health, dir, name)
    }

    /// Starts the binary on the configuration files `confs` (a later one wins).
    fn start_with_files(
        confs: &[PathBuf],
        health: SocketAddr,
        dir: &Path,
        name: &str,
    ) -> Persister {
        let mut command = Command::new(BIN);
        for conf in confs {
            command.arg("--config-file").arg(conf);
        }
        Self::spawn(command, health, dir, name)
    }

    /// Starts `command` (the binary with its arguments), its stdout and
    /// stderr going to a fresh `<dir>/<name>.<n>.log`.
    pub fn spawn(mut command: Command, health: SocketAddr, dir: &Path, name: &str) -> Persister {
        let log = (0..)
            .map(|n| dir.join(format!("{name}.{n}.log")))
            .find(|p| !p.exists())
            .expect("a free log file name");
        let out = File::create(&log).expect("create persister log");
        let child = with_stop_signals_blocked(
            command
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("clone log handle"))
                .stderr(out),
        )
        .spawn()
        .expect("spawn monasca-persister");
        Persister {
            child: Some(child),
            exit: None,
            log,
            health,
            spawned: Instant::now(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("persister is running").id() as i32
    }

    pub fn signal(&self, sig: libc::c_int) {
        assert_eq!(
            unsafe { libc::kill(self.pid(), sig) },
            0,
            "kill({sig}){}",
            self.tail()
        );
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.exit = c.wait().ok();
        }
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.exit = Some(status);
                self.child = None;
            }
        }
        self.child.is_some()
    }

    /// Waits for the process to exit; returns its status and how long that took.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let started = Instant::now();
        while self.running() {
            if started.elapsed() > timeout {
                panic!(
                    "the persister did not exit within {timeout:?}{}",
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (self.exit.expect("exit status"), started.elapsed())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for assertion messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "\n--- last lines of {} ---\n{}\n---",
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// Waits until a log line contains `needle`; returns that line.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        wait_until(
            &format!("a log line with {needle:?}"),
            timeout,
            || self.tail(),
            || {
                self.log()
                    .lines()
                    .find(|l| l.contains(needle))
                    .map(str::to_string)
            },
        )
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut resp = ureq::get(&format!("http://{}{path}", self.health))
            .config()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .call()
            .ok()?;
        let mut body = String::new();
        resp.body_mut().as_reader().read_to_string(&mut body).ok()?;
        Some((resp.status().as_u16(), body))
    }

    /// One sample of the Prometheus endpoint (`name` with its labels, if any).
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
    }

    pub fn consumed(&self) -> u64 {
        self.metric("monasca_persister_messages_consumed_total{topic=\"metrics\"}")
            .unwrap_or(0.0) as u64
    }

    pub fn assigned(&self) -> i64 {
        self.metric("monasca_persister_assigned_partitions{topic=\"metrics\"}")
            .unwrap_or(0.0) as i64
    }

    /// The closing summary line, parsed.
    pub fn summary(&self) -> Summary {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.contains(" stopped: "))
            .unwrap_or_else(|| panic!("no summary line{}", self.tail()));
        let number = |what: &str| {
            number_before(line, what)
                .unwrap_or_else(|| panic!("no {what:?} in the summary line {line:?}"))
        };
        Summary {
            drained: number(" point(s) drained"),
            left: number(" record(s) left in the WAL"),
            dead_letters: number(" dead letter(s)"),
        }
    }
}

impl Drop for Persister {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The numbers of the closing log line.
#[derive(Debug)]
pub struct Summary {
    pub drained: u64,
    pub left: u64,
    pub dead_letters: u64,
}

/// The integer just before `what` in `line`.
pub fn number_before(line: &str, what: &str) -> Option<u64> {
    let end = line.find(what)?;
    let digits: String = line[..end]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().ok()
}

/// Polls `cond` every 20 ms; after `timeout` panics naming `what` with `context()`
/// (the child's log tail).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut cond: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `command` with SIGTERM and SIGINT blocked in the child across `exec`
/// (see the module documentation).
pub fn with_stop_signals_blocked(command: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe libc calls on a local signal set
    // between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            match libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) {
                0 => Ok(()),
                errno => Err(std::io::Error::from_raw_os_error(errno)),
            }
        })
    }
}

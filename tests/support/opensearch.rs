//! A real OpenSearch node for tests, started by the project's
//! `scripts/opensearch` (one node, no security, a free port).
//! [`OpenSearch::shared`] is one node per test process, started at the first
//! call and stopped when the process exits (also if it dies: the node
//! watches the test process). Tests sharing it use their own index names
//! ([`super::real_kafka::unique_name`]). A node that cannot start fails the
//! test with the script's message, which says how to install what is missing.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running OpenSearch node.
pub struct OpenSearch {
    dir: PathBuf,
    url: String,
    /// How long `scripts/opensearch start` took.
    pub start_time: Duration,
}

/// `scripts/opensearch` of this repository.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/opensearch")
}

impl OpenSearch {
    /// The node shared by the tests of this process.
    pub fn shared() -> &'static OpenSearch {
        static SHARED: OnceLock<OpenSearch> = OnceLock::new();
        static START: Mutex<()> = Mutex::new(());
        let _one_at_a_time = START.lock().unwrap_or_else(|e| e.into_inner());
        SHARED.get_or_init(|| {
            let node = OpenSearch::start();
            extern "C" fn stop_shared_at_exit() {
                if let Some(node) = SHARED.get() {
                    node.stop();
                }
            }
            // SAFETY: registers a plain function to run at process exit.
            unsafe { libc::atexit(stop_shared_at_exit) };
            node
        })
    }

    fn start() -> OpenSearch {
        let dir = std::env::temp_dir().join(format!(
            "opensearch-test-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let started = Instant::now();
        let out = Command::new(script())
            .arg("start")
            .arg("--dir")
            .arg(&dir)
            .arg("--owner")
            .arg(std::process::id().to_string())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "scripts/opensearch start failed ({}): a real OpenSearch is needed (a JDK 17 and Maven \
             with Maven Central, which scripts/test installs); its output:\n{stderr}{stdout}",
            out.status
        );
        let url = stdout
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("url="))
            .unwrap_or_else(|| panic!("scripts/opensearch printed no url= line first:\n{stdout}"))
            .to_string();
        let start_time = started.elapsed();
        eprintln!("OpenSearch node at {url} started in {start_time:.1?}");
        OpenSearch {
            dir,
            url,
            start_time,
        }
    }

    fn stop(&self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg("--dir")
            .arg(&self.dir)
            .output();
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`, as `[elasticsearch] hosts` takes it.
    pub fn host_port(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// A request; the status and the JSON answer (`Null` when none).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let url = format!("{}{path}", self.url);
        let result = match (method, body) {
            ("GET", _) => agent.get(&url).call(),
            ("DELETE", _) => agent.delete(&url).call(),
            (_, Some(b)) => agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(b.as_bytes()),
            (_, None) => agent.post(&url).send_empty(),
        };
        let mut response = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        let mut text = String::new();
        let _ = response.body_mut().as_reader().read_to_string(&mut text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Makes what was written to indices matching `pattern` searchable.
    pub fn refresh(&self, pattern: &str) {
        let (status, answer) = self.request(
            "POST",
            &format!("/{pattern}/_refresh?ignore_unavailable=true&allow_no_indices=true"),
            None,
        );
        assert!(
            status == 200 || status == 404,
            "refresh {pattern}: {status} {answer}"
        );
    }

    /// Documents in the indices matching `pattern` (0 when there is none,
    /// or while a new index is not ready to count yet).
    pub fn count(&self, pattern: &str) -> u64 {
        self.refresh(pattern);
        let (status, answer) = self.request(
            "GET",
            &format!("/{pattern}/_count?ignore_unavailable=true&allow_no_indices=true"),
            None,
        );
        match status {
            200 => answer["count"].as_u64().unwrap_or(0),
            503 => 0,
            _ => panic!("count {pattern}: {status} {answer}"),
        }
    }

    /// Every document of the indices matching `pattern`: `(index, id,
    /// version, source)`, sorted by index and id (none while a new index is
    /// not searchable yet).
    pub fn documents(&self, pattern: &str) -> Vec<(String, String, u64, Value)> {
        self.refresh(pattern);
        let query = r#"{"size": 10000, "version": true, "query": {"match_all": {}}}"#;
        let (status, answer) = self.request(
            "POST",
            &format!("/{pattern}/_search?ignore_unavailable=true&allow_no_indices=true"),
            Some(query),
        );
        if status == 503 {
            return Vec::new(); // a new index is not searchable yet
        }
        assert_eq!(status, 200, "search {pattern}: {answer}");
        let mut docs: Vec<_> = answer["hits"]["hits"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|h| {
                        (
                            h["_index"].as_str().unwrap_or_default().to_string(),
                            h["_id"].as_str().unwrap_or_default().to_string(),
                            h["_version"].as_u64().unwrap_or(0),
                            h["_source"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        docs.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        docs
    }

    /// The names of the indices matching `pattern`, sorted.
    pub fn indices(&self, pattern: &str) -> Vec<String> {
        let (status, answer) = self.request(
            "GET",
            &format!("/_cat/indices/{pattern}?format=json&h=index"),
            None,
        );
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "indices {pattern}: {answer}");
        let mut names: Vec<String> = answer
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["index"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

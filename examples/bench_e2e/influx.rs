//! Just enough of InfluxDB's HTTP API for measuring: queries with
//! millisecond epochs, point counts, raw writes.

use anyhow::{bail, Context as _};
use serde_json::Value;

/// An InfluxDB 1.x server on 127.0.0.1.
pub struct Influx {
    agent: ureq::Agent,
    base: String,
}

impl Influx {
    /// The server on `port` of 127.0.0.1.
    pub fn new(port: u16) -> Influx {
        Influx {
            agent: Influx::new_agent(),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Runs `q` (POST, times as epoch milliseconds) and returns the answer.
    pub fn query(&self, db: &str, q: &str) -> anyhow::Result<Value> {
        let mut response = self
            .agent
            .post(&format!("{}/query", self.base))
            .send_form([("q", q), ("db", db), ("epoch", "ms")])
            .with_context(|| format!("query {q:?}"))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(512 * 1024 * 1024)
            .read_to_string()
            .with_context(|| format!("read the answer to {q:?}"))?;
        if status != 200 {
            bail!("query {q:?}: HTTP {status}: {body}");
        }
        let value: Value = serde_json::from_str(&body).context("query answer is not JSON")?;
        if let Some(e) = value["results"][0]["error"].as_str() {
            bail!("query {q:?}: {e}");
        }
        Ok(value)
    }

    /// Points in `db`: metrics (`value` fields, all measurements) plus alarm
    /// transitions (`new_state` in alarm_state_history). 0 for a missing
    /// database (which InfluxDB 1.6 reports as "not executed" for a
    /// multi-statement query).
    pub fn count_points(&self, db: &str) -> anyhow::Result<u64> {
        let answer = match self.query(
            db,
            "SELECT count(value) FROM /.*/; SELECT count(new_state) FROM alarm_state_history",
        ) {
            Ok(a) => a,
            Err(e) if is_missing_database(&e) => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut total = 0;
        for result in answer["results"].as_array().into_iter().flatten() {
            for series in result["series"].as_array().into_iter().flatten() {
                for row in series["values"].as_array().into_iter().flatten() {
                    total += row[1].as_u64().unwrap_or(0);
                }
            }
        }
        Ok(total)
    }

    /// Every row of every series of the first statement, as (columns, row).
    pub fn rows(&self, db: &str, q: &str) -> anyhow::Result<Vec<Vec<Value>>> {
        let answer = self.query(db, q)?;
        let mut out = Vec::new();
        for series in answer["results"][0]["series"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for row in series["values"].as_array().into_iter().flatten() {
                out.push(row.as_array().cloned().unwrap_or_default());
            }
        }
        Ok(out)
    }

    /// Creates `db`.
    pub fn create_database(&self, db: &str) -> anyhow::Result<()> {
        self.query(db, &format!("CREATE DATABASE \"{db}\""))
            .map(|_| ())
    }

    /// Posts line protocol with millisecond precision; an error unless 204.
    pub fn write(&self, agent: &ureq::Agent, db: &str, body: &[u8]) -> anyhow::Result<()> {
        let mut response = agent
            .post(&format!("{}/write?db={db}&precision=ms", self.base))
            .send(body)
            .context("post a write")?;
        let status = response.status().as_u16();
        if status != 204 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            bail!("write: HTTP {status}: {text}");
        }
        Ok(())
    }

    /// A new HTTP agent with its own connection (one per writing thread, as
    /// separate clients would have).
    pub fn new_agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into()
    }
}

/// True when `error` says the database does not exist (yet).
pub fn is_missing_database(error: &anyhow::Error) -> bool {
    let text = error.to_string();
    text.contains("database not found") || text.ends_with(": not executed")
}

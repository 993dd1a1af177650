//! Writes one database's batch of lines in chunks of `[influxdb] batch_size`
//! points and says exactly what became of them: stored, refused (with
//! InfluxDB's reason, for the dead-letter file), dropped as older than the
//! retention policy, or still to be written because InfluxDB could not be
//! reached. It never drops data on a retriable error.
//!
//! Finding the refused lines. influxd names unparsable lines, but reports a
//! type conflict (and other storage refusals) only as a reason and a count,
//! and one storage error hides the others in the same request. When the
//! answer does not name every refused line, the writer writes the two halves
//! of the chunk again (InfluxDB overwrites identical points, so re-sending a
//! stored point is harmless) and recurses until each part is either stored,
//! fully explained, or a single line: the line InfluxDB refuses. A budget of
//! extra requests per chunk bounds the cost; past it the unexplained lines go
//! to the dead-letter file whole, marked as possibly stored.
//!
//! Retention drops are counted and not bisected: a replay of old data can
//! mix old and new points in every part, and they are dropped by design.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::client::{InfluxClient, InfluxError, SetupError};
use super::databases::{Creation, DatabaseRegistry};
use super::response::{Rejection, WriteResponse};
use crate::config::InfluxSection;
use crate::retry::Retry;
use crate::transform::lines::{span, split_lines, Line};

/// Extra requests allowed per chunk to find out which lines InfluxDB refused.
pub const DEFAULT_SPLIT_BUDGET: usize = 256;

/// How the writer cuts and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Points per HTTP write (`[influxdb] batch_size`).
    pub batch_size: usize,
    /// Default retention policy for databases the writer creates (0: none).
    pub default_retention_hours: u32,
    /// Extra requests per chunk to identify refused lines.
    pub split_budget: usize,
}

impl WriterOptions {
    /// The options from `[influxdb]`.
    pub fn from_config(config: &InfluxSection) -> Self {
        WriterOptions {
            batch_size: config.batch_size.max(1),
            default_retention_hours: config.default_retention_hours,
            split_budget: DEFAULT_SPLIT_BUDGET,
        }
    }
}

/// A line InfluxDB refused, for the dead-letter file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// The line as sent, without its newline.
    pub line: Vec<u8>,
    /// InfluxDB's reason.
    pub reason: String,
}

/// The part of a batch that must be written again later.
#[derive(Debug)]
pub struct RetryNeeded {
    /// Byte offset in the batch where the unwritten part starts; everything
    /// before it is settled (in the report), everything from it is not.
    pub offset: usize,
    /// Index of the first unsettled point in the batch.
    pub point: usize,
    /// Index of the `batch_size` chunk the write stopped in.
    pub chunk: usize,
    /// Why: InfluxDB unreachable, timing out, 5xx, 401/403…
    pub error: InfluxError,
}

/// What became of a batch.
#[derive(Debug, Default)]
pub struct WriteReport {
    /// Points InfluxDB stored.
    pub points_stored: usize,
    /// Lines InfluxDB refused, in batch order.
    pub rejected: Vec<RejectedLine>,
    /// Points dropped as older than the retention policy.
    pub beyond_retention: usize,
    /// HTTP write requests made.
    pub requests: usize,
    /// True when the writer created the database.
    pub database_created: bool,
    /// Set when part of the batch is still to be written.
    pub retry: Option<RetryNeeded>,
}

impl WriteReport {
    /// True when every point is settled (stored, refused or beyond retention):
    /// the batch can be acknowledged once the refused lines are dead-lettered.
    pub fn is_complete(&self) -> bool {
        self.retry.is_none()
    }

    fn absorb(&mut self, later: WriteReport) {
        self.points_stored += later.points_stored;
        self.rejected.extend(later.rejected);
        self.beyond_retention += later.beyond_retention;
        self.requests += later.requests;
        self.database_created |= later.database_created;
        self.retry = later.retry;
    }
}

/// Writes batches to InfluxDB. Share one (in an `Arc`) between writer
/// threads: it holds the connection pool and the database registry.
#[derive(Debug)]
pub struct InfluxWriter {
    client: InfluxClient,
    databases: Arc<DatabaseRegistry>,
    options: WriterOptions,
}

/// Where a write stopped on a retriable error.
struct Halt {
    offset: usize,
    point: usize,
    error: InfluxError,
}

/// `Err` when a retriable error stopped the write (boxed: it is large and rare).
type Settled = Result<(), Box<Halt>>;

/// One batch being written.
struct Pass<'a> {
    database: &'a str,
    buf: &'a [u8],
    report: WriteReport,
    split_budget: usize,
}

/// An answer once a missing database has been dealt with.
enum Answer {
    Response(WriteResponse),
    /// The database does not exist and InfluxDB refuses to create it
    /// (invalid name): no line of the batch can ever be stored.
    CannotCreate(InfluxError),
}

impl InfluxWriter {
    /// A writer on `client`.
    pub fn new(client: InfluxClient, options: WriterOptions) -> Self {
        InfluxWriter {
            client,
            databases: Arc::new(DatabaseRegistry::new()),
            options,
        }
    }

    /// A writer configured from `[influxdb]`.
    pub fn from_config(config: &InfluxSection) -> Result<Self, SetupError> {
        Ok(Self::new(
            InfluxClient::new(config)?,
            WriterOptions::from_config(config),
        ))
    }

    /// The HTTP client (for pings and queries).
    pub fn client(&self) -> &InfluxClient {
        &self.client
    }

    /// The options in force.
    pub fn options(&self) -> &WriterOptions {
        &self.options
    }

    /// Writes `lines` (line protocol, millisecond timestamps, each line
    /// newline-terminated) holding `points` points to `database`, in chunks
    /// of `batch_size` points. When `points <= batch_size` the batch goes
    /// out as it is, without being scanned.
    ///
    /// On a retriable error the report's `retry` says from where to write
    /// again; the report's other fields cover only the part before that.
    pub fn write_batch(&self, database: &str, lines: &[u8], points: usize) -> WriteReport {
        let mut pass = Pass {
            database,
            buf: lines,
            report: WriteReport::default(),
            split_budget: self.options.split_budget,
        };
        if lines.iter().all(u8::is_ascii_whitespace) {
            return pass.report;
        }
        let result = if points <= self.options.batch_size {
            self.write_unscanned(&mut pass, 0..lines.len(), points)
        } else {
            self.write_chunks(&mut pass)
        };
        if let Err(halt) = result {
            pass.report.retry = Some(RetryNeeded {
                offset: halt.offset,
                point: halt.point,
                chunk: halt.point / self.options.batch_size,
                error: halt.error,
            });
        }
        pass.report
    }

    /// [`InfluxWriter::write_batch`] until the whole batch is settled,
    /// backing off between attempts as `retry` says and resuming where the
    /// last attempt stopped. Returns early, with `retry` set, when `stop`
    /// receives a message or is disconnected (shutdown).
    pub fn write_batch_retrying(
        &self,
        database: &str,
        lines: &[u8],
        points: usize,
        retry: &mut Retry,
        stop: &crossbeam_channel::Receiver<()>,
    ) -> WriteReport {
        let mut total = WriteReport::default();
        let mut offset = 0;
        loop {
            let settled = total.points_stored + total.rejected.len() + total.beyond_retention;
            let report =
                self.write_batch(database, &lines[offset..], points.saturating_sub(settled));
            let halted = report.retry.as_ref().map(|r| (r.offset, r.point));
            total.absorb(report);
            let Some((rel_offset, rel_point)) = halted else {
                retry.succeeded();
                return total;
            };
            offset += rel_offset;
            if let Some(need) = total.retry.as_mut() {
                need.offset = offset;
                need.point = settled + rel_point;
                need.chunk = need.point / self.options.batch_size;
                if !retry.wait(&need.error, stop) {
                    return total;
                }
            }
        }
    }

    fn write_chunks(&self, pass: &mut Pass<'_>) -> Settled {
        let lines = split_lines(pass.buf);
        for (index, chunk) in lines.chunks(self.options.batch_size).enumerate() {
            pass.split_budget = self.options.split_budget;
            self.write_lines(pass, chunk, index * self.options.batch_size)?;
        }
        Ok(())
    }

    /// The fast path: one request for the whole range, scanned only when the
    /// answer needs lines.
    fn write_unscanned(
        &self,
        pass: &mut Pass<'_>,
        range: std::ops::Range<usize>,
        points: usize,
    ) -> Settled {
        match self.send(pass, range.clone()) {
            Answer::Response(WriteResponse::Stored) => {
                pass.report.points_stored += points;
                Ok(())
            }
            Answer::Response(WriteResponse::Retriable(error)) => Err(Box::new(Halt {
                offset: range.start,
                point: 0,
                error,
            })),
            answer => {
                let lines = split_lines(&pass.buf[..range.end]);
                self.settle(pass, &lines, 0, answer)
            }
        }
    }

    /// Writes `lines` (point index `first` in the batch) and settles them.
    fn write_lines(&self, pass: &mut Pass<'_>, lines: &[Line], first: usize) -> Settled {
        if lines.is_empty() {
            return Ok(());
        }
        let answer = self.send(pass, span(lines));
        self.settle(pass, lines, first, answer)
    }

    fn settle(&self, pass: &mut Pass<'_>, lines: &[Line], first: usize, answer: Answer) -> Settled {
        let n = lines.len();
        match answer {
            Answer::Response(WriteResponse::Stored) => pass.report.points_stored += n,
            Answer::Response(WriteResponse::Retriable(error)) => {
                return Err(Box::new(Halt {
                    offset: span(lines).start,
                    point: first,
                    error,
                }))
            }
            Answer::Response(WriteResponse::TooLarge { message }) => {
                if n == 1 {
                    let reason = format!(
                        "request too large: this line alone ({} bytes) is above InfluxDB's [http] max-body-size ({message})",
                        lines[0].next - lines[0].start
                    );
                    reject(pass, &lines[0], reason);
                } else {
                    let (left, right) = lines.split_at(n / 2);
                    self.write_lines(pass, left, first)?;
                    self.write_lines(pass, right, first + left.len())?;
                }
            }
            Answer::Response(WriteResponse::Rejected(rejection)) => {
                self.attribute(pass, lines, first, rejection)?
            }
            Answer::Response(WriteResponse::DatabaseNotFound { message }) => {
                // `send` already created the database and tried again.
                let error = InfluxError::Status {
                    action: super::response::write_action(pass.database),
                    url: self.client.url().to_string(),
                    status: 404,
                    message: format!("{message} (still, just after creating it)"),
                };
                return Err(Box::new(Halt {
                    offset: span(lines).start,
                    point: first,
                    error,
                }));
            }
            Answer::CannotCreate(error) => {
                let reason = format!("database cannot be created: {error}");
                for line in lines {
                    reject(pass, line, reason.clone());
                }
            }
        }
        Ok(())
    }

    /// Works out which of `lines` a 400 refused.
    fn attribute(
        &self,
        pass: &mut Pass<'_>,
        lines: &[Line],
        first: usize,
        rejection: Rejection,
    ) -> Settled {
        let n = lines.len();
        if rejection.only_unparsable() {
            let refused = rejection.unparsable.len().min(n);
            for (line, reason) in match_unparsable(pass.buf, lines, &rejection) {
                pass.report.rejected.push(RejectedLine { line, reason });
            }
            pass.report.points_stored += n - refused;
            return Ok(());
        }
        if rejection.only_beyond_retention() {
            let dropped = rejection.dropped.as_ref().map_or(0, |d| d.count).min(n);
            pass.report.beyond_retention += dropped;
            pass.report.points_stored += n - dropped;
            return Ok(());
        }
        let reason = match &rejection.dropped {
            Some(dropped) if rejection.unparsable.is_empty() => {
                if dropped.count >= n {
                    for line in lines {
                        reject(pass, line, dropped.reason.clone());
                    }
                    return Ok(());
                }
                dropped.reason.clone()
            }
            _ => rejection.message.clone(),
        };
        if n == 1 {
            reject(pass, &lines[0], reason);
            return Ok(());
        }
        if pass.split_budget >= 2 {
            pass.split_budget -= 2;
            let (left, right) = lines.split_at(n / 2);
            self.write_lines(pass, left, first)?;
            return self.write_lines(pass, right, first + left.len());
        }
        log::warn!(
            "InfluxDB refused some of {n} points for database {:?} without naming them, and the budget of {} extra requests \
             to find them is spent: all {n} go to the dead-letter file, marked as possibly stored",
            pass.database,
            self.options.split_budget
        );
        let reason = format!("{reason} (InfluxDB did not say which of {n} lines sent together it refused; this one may be stored)");
        for line in lines {
            reject(pass, line, reason.clone());
        }
        Ok(())
    }

    /// One write request, creating the database and trying once more when
    /// it is missing.
    fn send(&self, pass: &mut Pass<'_>, range: std::ops::Range<usize>) -> Answer {
        let body = &pass.buf[range];
        pass.report.requests += 1;
        let sent_at = Instant::now();
        let response = self.client.write(pass.database, body);
        if !matches!(response, WriteResponse::DatabaseNotFound { .. }) {
            return Answer::Response(response);
        }
        match self.databases.create(
            &self.client,
            pass.database,
            self.options.default_retention_hours,
            sent_at,
        ) {
            Ok(creation) => {
                pass.report.database_created |= creation == Creation::Created;
                pass.report.requests += 1;
                Answer::Response(self.client.write(pass.database, body))
            }
            Err(error) if error.is_retriable() => Answer::Response(WriteResponse::Retriable(error)),
            Err(error) => Answer::CannotCreate(error),
        }
    }
}

fn reject(pass: &mut Pass<'_>, line: &Line, reason: String) {
    pass.report.rejected.push(RejectedLine {
        line: line.text(pass.buf).to_vec(),
        reason,
    });
}

/// Pairs each line InfluxDB quoted as unparsable with the line sent (the
/// bytes as sent, which may not be valid UTF-8), with the reason.
fn match_unparsable(buf: &[u8], lines: &[Line], rejection: &Rejection) -> Vec<(Vec<u8>, String)> {
    let mut exact: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, line) in lines.iter().enumerate().rev() {
        exact.entry(line.text(buf)).or_default().push(i);
    }
    // influxd quotes invalid UTF-8 as U+FFFD; those lines match lossily.
    let mut lossy: Option<HashMap<String, Vec<usize>>> = None;
    let mut out = Vec::with_capacity(rejection.unparsable.len());
    for u in &rejection.unparsable {
        let mut found = exact.get_mut(u.line.as_bytes()).and_then(Vec::pop);
        if found.is_none() {
            let map = lossy.get_or_insert_with(|| {
                let mut m: HashMap<String, Vec<usize>> = HashMap::new();
                for (i, line) in lines.iter().enumerate().rev() {
                    let text = line.text(buf);
                    if std::str::from_utf8(text).is_err() {
                        m.entry(String::from_utf8_lossy(text).into_owned())
                            .or_default()
                            .push(i);
                    }
                }
                m
            });
            found = map.get_mut(&u.line).and_then(Vec::pop);
        }
        let line = match found {
            Some(i) => lines[i].text(buf).to_vec(),
            None => u.line.clone().into_bytes(),
        };
        out.push((line, format!("unable to parse: {}", u.reason)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::influx::response::parse_rejection;

    #[test]
    fn unparsable_lines_are_matched_to_the_bytes_sent() {
        let buf = b"ok v=1 1\nbad line\ncp\xffu x\nbad line\nok v=2 2\n";
        let lines = split_lines(buf);
        let rejection = parse_rejection(
            "partial write: unable to parse 'bad line': invalid field format\nunable to parse 'cp\u{fffd}u x': invalid field format\nunable to parse 'bad line': invalid field format\nunable to parse 'ghost': missing fields dropped=0"
                .to_string(),
        );
        let got = match_unparsable(buf, &lines, &rejection);
        assert_eq!(got.len(), 4);
        assert_eq!(
            got[0],
            (
                b"bad line".to_vec(),
                "unable to parse: invalid field format".to_string()
            )
        );
        assert_eq!(got[1].0, b"cp\xffu x".to_vec());
        assert_eq!(got[2].0, b"bad line".to_vec());
        assert_eq!(
            got[3],
            (
                b"ghost".to_vec(),
                "unable to parse: missing fields".to_string()
            )
        );
    }
}

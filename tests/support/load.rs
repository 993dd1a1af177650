//! A stream of messages produced from a background thread at a steady rate
//! while a test acts (kills, restarts, rebalances), every one acknowledged
//! by the broker before [`Load::finish`] or [`Load::stop`] return.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use super::kafka::{send, test_producer, TestKafka};

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Load {
    /// Produces messages `0..total` to `topic` of `kafka` at about `rate` per
    /// second; `message(i)` is message i's partition and payload.
    pub fn start(
        kafka: &impl TestKafka,
        topic: &str,
        total: u64,
        rate: u64,
        message: impl Fn(u64) -> (i32, String) + Send + 'static,
    ) -> Load {
        let producer = test_producer(kafka.client_config());
        let topic = topic.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), produced.clone());
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            for i in 0..total {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let (partition, body) = message(i);
                send(&producer, &topic, Some(partition), body.as_bytes());
                n.store(i + 1, Ordering::Relaxed);
                // Pacing, so that the stream is still flowing when the test acts.
                if i % 500 == 499 {
                    let due = Duration::from_secs_f64((i + 1) as f64 / rate as f64);
                    if let Some(ahead) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(ahead);
                    }
                }
            }
            producer
                .flush(Duration::from_secs(120))
                .expect("flush the load producer");
        });
        Load {
            stop,
            produced,
            thread: Some(thread),
        }
    }

    /// Messages handed to the producer so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Waits until every message is produced and acknowledged by the broker.
    pub fn finish(mut self) -> u64 {
        if let Some(t) = self.thread.take() {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
        self.produced()
    }

    /// Stops producing; returns how many messages were produced (all acknowledged).
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.finish()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

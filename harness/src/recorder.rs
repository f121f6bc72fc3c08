//! The history of a run: every client operation and every fault, in the order the harness saw
//! them, stamped by one monotonic clock.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use checker::{Event, EventType, JsonlWriter, Process};
use serde_json::Value;

struct Inner {
    writer: JsonlWriter<BufWriter<File>>,
    next_index: u64,
    counts: OutcomeCounts,
}

/// How many operations ended each way.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct OutcomeCounts {
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    pub faults: u64,
    /// Requests resent after their answer was lost (same session and sequence number).
    pub resent: u64,
    /// Operations that were resent at least once and then answered.
    pub resent_then_answered: u64,
}

/// Writes `history.jsonl`; cheap to clone and share between tasks.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Mutex<Inner>>,
    start: Instant,
}

impl Recorder {
    pub fn create(path: &Path, start: Instant) -> anyhow::Result<Recorder> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Recorder {
            inner: Arc::new(Mutex::new(Inner {
                writer: JsonlWriter::new(BufWriter::new(file)),
                next_index: 0,
                counts: OutcomeCounts::default(),
            })),
            start,
        })
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// Records one event now.
    pub fn record(
        &self,
        process: Process,
        kind: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
        error: Option<String>,
    ) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().unwrap();
        // The time is taken under the lock, so the file order is the time order.
        let time = self.now();
        let event = Event {
            index: inner.next_index,
            time: Some(time),
            process,
            kind,
            f: f.to_string(),
            key: key.map(|k| Value::String(k.to_string())),
            value,
            error: error.map(Value::String),
        };
        inner.next_index += 1;
        let c = &mut inner.counts;
        match (process, kind) {
            (Process::Nemesis, _) => c.faults += 1,
            (_, EventType::Invoke) => c.invoked += 1,
            (_, EventType::Ok) => c.ok += 1,
            (_, EventType::Fail) => c.fail += 1,
            (_, EventType::Info) => c.info += 1,
        }
        inner.writer.write(&event).context("writing the history")?;
        Ok(())
    }

    /// Counts a request resent after its answer was lost.
    pub fn resent(&self) {
        self.inner.lock().unwrap().counts.resent += 1;
    }

    /// Counts an operation that was resent and then answered.
    pub fn resent_then_answered(&self) {
        self.inner.lock().unwrap().counts.resent_then_answered += 1;
    }

    /// Records a nemesis event.
    pub fn nemesis(&self, f: &str, value: Value) -> anyhow::Result<()> {
        self.record(Process::Nemesis, EventType::Info, f, None, value, None)
    }

    pub fn counts(&self) -> OutcomeCounts {
        self.inner.lock().unwrap().counts
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        self.inner.lock().unwrap().writer.flush().context("flushing the history")
    }
}

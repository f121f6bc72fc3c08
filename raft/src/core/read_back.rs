//! Entries read back from storage: a leader's way to a follower that lags behind what it
//! still holds in memory.
//!
//! The log drops applied, durable entries from memory past
//! [`Config::max_log_memory_bytes`](super::Config::max_log_memory_bytes), keeping only their
//! terms. A follower that needs them (back from a partition, or restarted with an old log)
//! is sent them after a read: the core asks for a range in a [`Ready`](super::Ready), the
//! driver reads it from storage and hands it back with [`RawNode::entries_read`], and the
//! core sends from it as it would from memory. The core does no I/O itself, so storage stays
//! the driver's, as with every write.

use std::ops::Range;

use super::coverage::Decision;
use super::raw_node::RawNode;
use super::types::{Entry, Index, Role};

/// The one read of evicted entries that may be out at a time.
#[derive(Clone, Debug, Default)]
pub(crate) enum ReadBack {
    /// No read is out.
    #[default]
    Idle,
    /// The range to ask for in the next ready.
    ToAsk(Range<Index>),
    /// A range was handed out and not answered yet: no other is asked meanwhile.
    InFlight,
}

impl ReadBack {
    /// The range to ask for, if any, handed out once: the read is in flight from then on.
    pub(super) fn hand_out(&mut self) -> Option<Range<Index>> {
        match std::mem::take(self) {
            ReadBack::ToAsk(range) => {
                *self = ReadBack::InFlight;
                Some(range)
            }
            other => {
                *self = other;
                None
            }
        }
    }
}

impl RawNode {
    /// Asks the driver for the evicted entries from `from`, unless a read is out already: as
    /// many as a follower's pipeline takes at once (`max_inflight` full appends), up to the
    /// first entry held in memory.
    pub(super) fn ask_to_read(&mut self, from: Index) {
        if !matches!(self.read_back, ReadBack::Idle) {
            return;
        }
        let batch = (self.config.max_append_entries as u64)
            .saturating_mul(self.config.max_inflight as u64)
            .max(1);
        let to = from.saturating_add(batch).min(self.log.held_from());
        self.coverage.hit(Decision::EntriesReadAsked);
        self.read_back = ReadBack::ToAsk(from..to);
    }

    /// Hands the core the entries a ready's [`read_entries`](super::Ready::read_entries) asked
    /// for, read from storage (an empty list if storage no longer has them). The core keeps
    /// them as far as they still agree with its log, sends them to the followers waiting for
    /// them, and may ask for the next range.
    ///
    /// ```
    /// # use raft::{Config, RawNode, HardState};
    /// # let mut node = RawNode::new(Config::service(1, vec![1]), HardState::default(), vec![], 1).unwrap();
    /// let ready = node.ready();
    /// let read = ready.read_entries.clone();
    /// node.advance(ready);
    /// if let Some(range) = read {
    ///     let entries = Vec::new(); // storage.entries(range)
    ///     # let _ = range;
    ///     node.entries_read(entries);
    /// }
    /// ```
    pub fn entries_read(&mut self, entries: Vec<Entry>) {
        self.read_back = ReadBack::Idle;
        if self.role != Role::Leader {
            return;
        }
        let Some(first) = entries.first().map(|e| e.index) else { return };
        let kept = self.log.set_read_back(entries) as Index;
        if kept == 0 {
            return;
        }
        let waiting: Vec<_> = self
            .progress
            .iter()
            .filter(|(_, pr)| (first..first + kept).contains(&pr.next_index))
            .map(|(&peer, _)| peer)
            .collect();
        for peer in waiting {
            self.send_append(peer, false);
        }
    }
}

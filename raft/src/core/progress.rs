//! What a leader knows about each follower's log (Figure 2's `nextIndex` and `matchIndex`),
//! and how it paces appends to it.

use super::types::Index;
use std::collections::VecDeque;

/// How the leader sends entries to one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplicationState {
    /// The leader does not know where the follower's log matches: one append at a time, each
    /// answered before the next, walking `next_index` back on rejections.
    Probe,
    /// The follower's log matches up to `match_index`: appends are pipelined, up to
    /// `max_inflight` unacknowledged at once.
    Replicate,
    /// The follower needs entries this leader compacted away: it is sent the snapshot, one
    /// chunk at a time, each answered before the next; no appends until it holds it.
    Snapshot,
}

/// The leader's record of one follower.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// The highest index known to be replicated on the follower.
    pub match_index: Index,
    /// The index of the next entry to send.
    pub next_index: Index,
    pub state: ReplicationState,
    /// In `Probe`: an append was sent and is not answered yet. In `Snapshot`: a chunk was.
    pub probe_sent: bool,
    /// In `Snapshot`: the index of the snapshot being sent, and how many of its bytes the
    /// follower said it holds (where the next chunk starts).
    pub pending_snapshot: Index,
    pub snapshot_sent: u64,
    /// In `Replicate`: the last index of each unacknowledged append, oldest first.
    pub inflight: VecDeque<Index>,
    /// Whether the follower answered anything since the last check-quorum round.
    pub recent_active: bool,
    /// `match_index` at the previous heartbeat round, to detect a stalled pipeline.
    pub match_at_last_heartbeat: Index,
}

impl Progress {
    pub fn new(next_index: Index) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: ReplicationState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            snapshot_sent: 0,
            inflight: VecDeque::new(),
            recent_active: true,
            match_at_last_heartbeat: 0,
        }
    }

    /// Whether no append may be sent now.
    pub fn is_paused(&self, max_inflight: usize) -> bool {
        match self.state {
            ReplicationState::Probe | ReplicationState::Snapshot => self.probe_sent,
            ReplicationState::Replicate => self.inflight.len() >= max_inflight,
        }
    }

    pub fn become_probe(&mut self) {
        self.state = ReplicationState::Probe;
        self.probe_sent = false;
        self.inflight.clear();
        self.next_index = self.match_index + 1;
    }

    pub fn become_replicate(&mut self) {
        self.state = ReplicationState::Replicate;
        self.probe_sent = false;
        self.inflight.clear();
        self.next_index = self.match_index + 1;
    }

    /// Starts sending the snapshot at `index` from its first byte.
    pub fn become_snapshot(&mut self, index: Index) {
        self.state = ReplicationState::Snapshot;
        self.probe_sent = false;
        self.inflight.clear();
        self.pending_snapshot = index;
        self.snapshot_sent = 0;
    }

    /// An append carrying entries up to `last` (or a snapshot chunk) went out.
    pub fn sent(&mut self, last: Index) {
        match self.state {
            ReplicationState::Probe | ReplicationState::Snapshot => self.probe_sent = true,
            ReplicationState::Replicate => {
                self.next_index = last + 1;
                self.inflight.push_back(last);
            }
        }
    }

    /// The follower acknowledged everything up to `index`. Returns whether that is news.
    pub fn acknowledge(&mut self, index: Index) -> bool {
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        if index > self.match_index {
            self.match_index = index;
            self.next_index = self.next_index.max(index + 1);
            true
        } else {
            false
        }
    }
}

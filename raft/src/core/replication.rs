//! Log replication (§5.3): the leader's side (appends, heartbeats, progress, commit) and the
//! follower's (the AppendEntries consistency check and conflict handling).

use super::coverage::Decision;
use super::progress::ReplicationState;
use super::raw_node::RawNode;
use super::types::*;
use super::Bug;

impl RawNode {
    /// A leader's tick: heartbeats, announcing commits, and check-quorum.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_tick {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                // Thesis §6.2: a leader cut off from a majority steps down, so that clients
                // look for the leader that the majority may have elected meanwhile.
                self.coverage.hit(Decision::CheckQuorumStepDown);
                tracing::info!(id = self.id, term = self.term, "lost contact with a majority");
                self.become_follower(self.term, None);
                return;
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_tick || self.commit_to_announce {
            self.heartbeat_elapsed = 0;
            self.commit_to_announce = false;
            self.broadcast_heartbeat();
        }
    }

    /// Whether a majority (this leader included) answered since the last round; starts a new round.
    fn quorum_recently_active(&mut self) -> bool {
        let mut active = 1;
        for pr in self.progress.values_mut() {
            if pr.recent_active {
                active += 1;
            }
            pr.recent_active = false;
        }
        active >= self.quorum()
    }

    /// Appends an entry of the current term to the leader's own log.
    pub(super) fn append_to_own_log(&mut self, kind: EntryKind, data: Vec<u8>) -> Index {
        let index = self.log.last_index() + 1;
        let entry = Entry { index, term: self.term, kind, data };
        self.uncommitted_bytes += entry.payload_size();
        self.log.push(entry);
        index
    }

    pub(super) fn broadcast_append(&mut self) {
        for peer in self.other_peers() {
            self.send_append(peer, false);
        }
    }

    pub(super) fn broadcast_append_even_if_empty(&mut self) {
        for peer in self.other_peers() {
            self.send_append(peer, true);
        }
    }

    /// The heartbeat interval's round: a stalled pipeline falls back to probing, and every
    /// follower gets a heartbeat.
    fn broadcast_heartbeat(&mut self) {
        for peer in self.other_peers() {
            let Some(pr) = self.progress.get_mut(&peer) else { continue };
            // A pipeline that made no progress in a whole heartbeat interval lost a message:
            // fall back to probing from the last known match.
            if pr.state == ReplicationState::Replicate
                && !pr.inflight.is_empty()
                && pr.match_index == pr.match_at_last_heartbeat
            {
                self.coverage.hit(Decision::PipelineStalled);
                pr.become_probe();
            }
            pr.match_at_last_heartbeat = pr.match_index;
        }
        self.send_heartbeats();
    }

    /// A heartbeat to every follower, numbered with a new round (for reads, `read_only.rs`).
    pub(super) fn send_heartbeats(&mut self) {
        let round = self.start_round();
        for peer in self.other_peers() {
            let Some(pr) = self.progress.get(&peer) else { continue };
            // A heartbeat carries no log check, so it may only announce what the follower is
            // known to hold.
            let commit = self.log.committed.min(pr.match_index);
            self.send(peer, MessageBody::Heartbeat { commit, round });
        }
    }

    /// Sends the follower the entries it lacks, if its progress allows; with `even_if_empty`, an
    /// append without entries (a probe of where its log matches) when it lacks nothing.
    pub(super) fn send_append(&mut self, peer: NodeId, even_if_empty: bool) {
        let Some(pr) = self.progress.get(&peer) else { return };
        // §7: the follower's next entry is compacted away, or it is getting the snapshot.
        if pr.state == ReplicationState::Snapshot || pr.next_index <= self.log.snapshot().index {
            self.send_snapshot_chunk(peer);
            return;
        }
        if pr.is_paused(self.config.max_inflight) {
            self.coverage.hit(Decision::AppendPaused);
            return;
        }
        let prev_log_index = pr.next_index - 1;
        let Some(prev_log_term) = self.log.term_at(prev_log_index) else {
            // Cannot happen while next_index <= last_index + 1; recover by probing.
            tracing::warn!(id = self.id, peer, prev_log_index, "next index beyond the log");
            if let Some(pr) = self.progress.get_mut(&peer) {
                pr.become_probe();
            }
            return;
        };
        let next_index = pr.next_index;
        if next_index < self.log.held_from() {
            if self.log.entry(next_index).is_some() {
                self.coverage.hit(Decision::EntriesReadBack);
            } else {
                // Evicted from memory: read them back; meanwhile only a probe without entries.
                self.ask_to_read(next_index);
            }
        }
        let mut entries = Vec::new();
        let mut bytes = 0;
        for e in self.log.slice(next_index, self.log.last_index()) {
            if entries.len() >= self.config.max_append_entries {
                self.coverage.hit(Decision::BatchCutByCount);
                break;
            }
            if !entries.is_empty() && bytes + e.payload_size() > self.config.max_append_bytes {
                self.coverage.hit(Decision::BatchCutByBytes);
                break;
            }
            bytes += e.payload_size();
            entries.push(e.clone());
        }
        if entries.is_empty() && !even_if_empty {
            return;
        }
        let last = prev_log_index + entries.len() as Index;
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.sent(last);
        }
        let leader_commit = self.log.committed;
        self.send(
            peer,
            MessageBody::AppendEntries { prev_log_index, prev_log_term, entries, leader_commit },
        );
    }

    /// A leader's handling of the messages of its own term.
    pub(super) fn step_leader(&mut self, msg: Message) {
        let from = msg.from;
        match msg.body {
            MessageBody::AppendEntriesResponse {
                success,
                index,
                conflict_term,
                conflict_index,
            } => {
                let last_index = self.log.last_index();
                let first_index = self.log.first_index();
                let Some(pr) = self.progress.get_mut(&from) else { return };
                pr.recent_active = true;
                if success {
                    if index > last_index {
                        // Claims entries this leader never had: ignore it.
                        self.coverage.hit(Decision::AckBeyondLog);
                        return;
                    }
                    self.coverage.hit(Decision::AckAccepted);
                    let news = pr.acknowledge(index);
                    match pr.state {
                        ReplicationState::Probe => {
                            self.coverage.hit(Decision::ProbeToReplicate);
                            pr.become_replicate();
                        }
                        // The follower holds a snapshot (this one, or its own) reaching the
                        // entries this leader still has.
                        ReplicationState::Snapshot if pr.match_index + 1 >= first_index => {
                            self.coverage.hit(Decision::SnapshotToReplicate);
                            pr.become_replicate();
                        }
                        _ => {}
                    }
                    if news {
                        self.maybe_commit();
                    }
                    // Keep the pipeline full: send what the follower still lacks.
                    self.send_append(from, false);
                } else {
                    // A rejection of an append this leader no longer waits for is stale.
                    let stale = match pr.state {
                        ReplicationState::Probe => index.checked_add(1) != Some(pr.next_index),
                        ReplicationState::Replicate => index <= pr.match_index,
                        // No append is out while a snapshot is.
                        ReplicationState::Snapshot => true,
                    };
                    if stale || index == 0 {
                        self.coverage.hit(Decision::RejectionStale);
                        return;
                    }
                    // §5.3, fast backtracking: skip the follower's whole conflicting term. If the
                    // leader has entries of that term, the logs may match up to its last one.
                    let (next, decision) = match conflict_term {
                        Some(term) => match self.log.last_index_of_term(term) {
                            Some(last_of_term) => {
                                (last_of_term + 1, Decision::RejectionSkippedTerm)
                            }
                            None => (conflict_index, Decision::RejectionUnknownTerm),
                        },
                        None => (conflict_index, Decision::RejectionShortLog),
                    };
                    self.coverage.hit(decision);
                    pr.become_probe();
                    pr.next_index = next.clamp(pr.match_index + 1, index.max(pr.match_index + 1));
                    self.send_append(from, true);
                }
            }
            MessageBody::HeartbeatResponse { round } => {
                self.round_answered(from, round);
                let last_index = self.log.last_index();
                let max_inflight = self.config.max_inflight;
                let Some(pr) = self.progress.get_mut(&from) else { return };
                pr.recent_active = true;
                // A lost probe is retried once per heartbeat round; a full pipeline gives up its
                // oldest slot, so a lost append is noticed by the next one's rejection.
                pr.probe_sent = false;
                if pr.state == ReplicationState::Replicate && pr.inflight.len() >= max_inflight {
                    self.coverage.hit(Decision::HeartbeatFreedSlot);
                    pr.inflight.pop_front();
                }
                if pr.match_index < last_index {
                    self.coverage.hit(Decision::HeartbeatResumedAppend);
                    self.send_append(from, pr_is_probe(self, from));
                }
            }
            MessageBody::ReadIndex { request } => self.leader_read(Some(from), request),
            MessageBody::InstallSnapshotResponse { index, received } => {
                self.handle_snapshot_response(from, index, received)
            }
            _ => {}
        }
    }

    /// Advances the commit index to the highest index a majority holds, counting only entries of
    /// the current term.
    pub(super) fn maybe_commit(&mut self) {
        let mut matched: Vec<Index> = self.progress.values().map(|p| p.match_index).collect();
        matched.push(self.log.persisted);
        matched.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matched[self.quorum() - 1];
        if candidate <= self.log.committed {
            return;
        }
        // §5.4.2: never commit an earlier term's entry by counting replicas; it commits only
        // together with an entry of the current term (Figure 8).
        if self.log.term_at(candidate) != Some(self.term)
            && !self.config.has_bug(Bug::CommitOldTerm)
        {
            self.coverage.hit(Decision::CommitWithheldOldTerm);
            return;
        }
        self.coverage.hit(Decision::CommitAdvanced);
        let freed: usize =
            self.log.slice(self.log.committed + 1, candidate).iter().map(Entry::payload_size).sum();
        self.uncommitted_bytes = self.uncommitted_bytes.saturating_sub(freed);
        self.log.committed = candidate;
        self.commit_to_announce = true;
        self.reads_after_first_commit();
    }

    /// A follower's consistency check and append (Figure 2, AppendEntries receiver).
    pub(super) fn handle_append(
        &mut self,
        leader: NodeId,
        mut prev_log_index: Index,
        mut prev_log_term: Term,
        mut entries: Vec<Entry>,
        leader_commit: Index,
    ) {
        let snapshot = self.log.snapshot();
        if prev_log_index < snapshot.index {
            // The entries up to the snapshot are committed, so the leader's are the same: check
            // the log from the snapshot's last entry on.
            self.coverage.hit(Decision::AppendBelowSnapshot);
            let covered = (snapshot.index - prev_log_index) as usize;
            entries.drain(..covered.min(entries.len()));
            (prev_log_index, prev_log_term) = (snapshot.index, snapshot.term);
        }
        if self.log.term_at(prev_log_index) != Some(prev_log_term) {
            let conflict_term = self
                .log
                .term_at(prev_log_index)
                .filter(|_| prev_log_index <= self.log.last_index());
            let conflict_index = match conflict_term {
                Some(_) => self.log.first_index_of_term_at(prev_log_index),
                None => self.log.last_index() + 1,
            };
            self.coverage.hit(match conflict_term {
                Some(_) => Decision::AppendTermMismatch,
                None => Decision::AppendMissingPrev,
            });
            self.send(
                leader,
                MessageBody::AppendEntriesResponse {
                    success: false,
                    index: prev_log_index,
                    conflict_term,
                    conflict_index,
                },
            );
            return;
        }
        self.coverage.hit(Decision::AppendAccepted);
        let last_new = prev_log_index + entries.len() as Index;
        if self.config.has_bug(Bug::TruncateWithoutConflict) {
            self.log.truncate_from(prev_log_index + 1);
            entries.into_iter().for_each(|e| self.log.push(e));
        } else {
            // Only a real conflict truncates: a stale or duplicated append whose entries this
            // peer already holds must not cut off entries that came after it.
            let first_new = entries.iter().position(|e| self.log.term_at(e.index) != Some(e.term));
            if let Some(first_new) = first_new {
                let from = entries[first_new].index;
                if from <= self.log.committed {
                    // §5.4 (Leader Completeness): no leader of a later term lacks a committed
                    // entry, so only a broken or forged peer sends this. Refused, not obeyed
                    // (that would lose an acknowledged write) and not a panic (network input
                    // never panics a node).
                    tracing::error!(
                        id = self.id,
                        leader,
                        index = from,
                        committed = self.log.committed,
                        "refusing an AppendEntries that conflicts with a committed entry"
                    );
                    return;
                }
                if from <= self.log.last_index() {
                    self.coverage.hit(Decision::AppendTruncated);
                }
                self.log.truncate_from(from);
                entries.into_iter().skip(first_new).for_each(|e| self.log.push(e));
            } else if !entries.is_empty() {
                self.coverage.hit(Decision::AppendAlreadyHeld);
            }
        }
        // Figure 2: commit up to the leader's commit, but no further than what is known to match.
        self.commit_to(leader_commit.min(last_new));
        self.send(
            leader,
            MessageBody::AppendEntriesResponse {
                success: true,
                index: last_new,
                conflict_term: None,
                conflict_index: 0,
            },
        );
    }

    pub(super) fn handle_heartbeat(&mut self, leader: NodeId, commit: Index, round: u64) {
        self.commit_to(commit);
        self.send(leader, MessageBody::HeartbeatResponse { round });
    }

    fn commit_to(&mut self, index: Index) {
        let index = index.min(self.log.last_index());
        if index > self.log.committed {
            self.coverage.hit(Decision::FollowerCommitAdvanced);
            self.log.committed = index;
        }
    }
}

fn pr_is_probe(node: &RawNode, peer: NodeId) -> bool {
    node.progress.get(&peer).is_some_and(|p| p.state == ReplicationState::Probe)
}

//! Snapshots and log compaction (§7): the service's snapshot replacing the log's prefix, the
//! leader sending its snapshot in chunks to a follower that needs compacted entries, and the
//! follower installing it.

use std::sync::Arc;

use super::bugs::Bug;
use super::coverage::Decision;
use super::progress::ReplicationState;
use super::raw_node::RawNode;
use super::types::*;

/// Why [`RawNode::snapshot`] refused a snapshot. Either way nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The service has not applied `index` yet: a snapshot may only cover applied state.
    #[error("cannot snapshot at index {index}: only {applied} applied")]
    NotApplied { index: Index, applied: Index },
    /// The log is already compacted up to `snapshot_index`, at or past `index`.
    #[error("cannot snapshot at index {index}: already compacted up to {snapshot_index}")]
    Stale { index: Index, snapshot_index: Index },
}

/// A snapshot a follower is receiving, chunk by chunk.
#[derive(Clone, Debug, Default)]
pub(crate) struct IncomingSnapshot {
    pub index: Index,
    pub term: Term,
    pub total: u64,
    pub data: Vec<u8>,
}

impl RawNode {
    /// The service's state as of `index`, which it has applied, is `data` (the lab's
    /// `Snapshot(index, snapshot)`): the log up to `index` is replaced by the snapshot. The next
    /// [`Ready`](super::Ready) carries it to persist, and storage may then drop the entries it
    /// covers.
    pub fn snapshot(&mut self, index: Index, data: Vec<u8>) -> Result<(), SnapshotError> {
        let applied = self.log.applied;
        let snapshot_index = self.log.snapshot().index;
        if index <= snapshot_index {
            return Err(SnapshotError::Stale { index, snapshot_index });
        }
        if index > applied {
            return Err(SnapshotError::NotApplied { index, applied });
        }
        let term = self.log.term_at(index).expect("an applied index above the snapshot is held");
        self.coverage.hit(Decision::SnapshotTaken);
        self.log.compact_to(Snapshot { index, term, data: Arc::from(data) });
        self.snapshot_to_persist = true;
        Ok(())
    }

    /// The latest snapshot (index 0 and no data when the log was never compacted).
    pub fn latest_snapshot(&self) -> &Snapshot {
        self.log.snapshot()
    }

    /// Sends the follower the next chunk of this leader's snapshot, which it needs because its
    /// next entry is compacted away.
    pub(super) fn send_snapshot_chunk(&mut self, peer: NodeId) {
        let snapshot = self.log.snapshot().clone();
        let chunk = self.config.max_snapshot_chunk_bytes as u64;
        let Some(pr) = self.progress.get_mut(&peer) else { return };
        if pr.state != ReplicationState::Snapshot || pr.pending_snapshot != snapshot.index {
            // A newer snapshot replaces the one being sent: start over with it.
            self.coverage.hit(Decision::SnapshotSendStarted);
            pr.become_snapshot(snapshot.index);
        }
        if pr.probe_sent {
            return;
        }
        let total = snapshot.data.len() as u64;
        let offset = pr.snapshot_sent.min(total);
        let end = (offset + chunk).min(total);
        pr.sent(snapshot.index);
        let data = snapshot.data[offset as usize..end as usize].to_vec();
        self.send(
            peer,
            MessageBody::InstallSnapshot {
                index: snapshot.index,
                snapshot_term: snapshot.term,
                offset,
                total,
                data,
            },
        );
    }

    /// A leader's handling of a follower's answer to a chunk.
    pub(super) fn handle_snapshot_response(&mut self, from: NodeId, index: Index, received: u64) {
        let Some(pr) = self.progress.get_mut(&from) else { return };
        pr.recent_active = true;
        if pr.state != ReplicationState::Snapshot || pr.pending_snapshot != index {
            self.coverage.hit(Decision::SnapshotAnswerStale);
            return;
        }
        if received <= pr.snapshot_sent {
            // No progress: a duplicated or late answer, or a follower that lost what it held.
            // Only an answer that moves the transfer on sends the next chunk; were every answer
            // to send one, each duplicate would add a chunk in flight for good, and the
            // duplicates of those more (a message storm). The next heartbeat answer resends
            // from what the follower says it holds.
            self.coverage.hit(Decision::SnapshotAnswerNoProgress);
            pr.snapshot_sent = received;
            return;
        }
        pr.probe_sent = false;
        pr.snapshot_sent = received;
        if received < self.log.snapshot().data.len() as u64 {
            self.send_snapshot_chunk(from);
        }
        // Otherwise the follower has it all; its AppendEntriesResponse, once the snapshot is
        // durable, moves it back to replication.
    }

    /// A follower's handling of a chunk of the leader's snapshot (§7, Figure 13).
    pub(super) fn handle_snapshot_chunk(
        &mut self,
        leader: NodeId,
        index: Index,
        term: Term,
        offset: u64,
        total: u64,
        data: Vec<u8>,
    ) {
        // The catalogue's install-older-snapshot installs it all the same (a duplicate of the
        // one it installed too; never one older than its own snapshot, which its log cannot
        // even place).
        let older_installed =
            self.config.has_bug(Bug::InstallOlderSnapshot) && index >= self.log.snapshot().index;
        if index <= self.log.committed && !older_installed {
            // Everything it covers is committed here already: say how far this log matches
            // the leader's (committed entries are the leader's too), so it resumes appends.
            self.coverage.hit(Decision::SnapshotIgnoredCommitted);
            self.incoming = None;
            let committed = self.log.committed;
            self.send(leader, MessageBody::InstallSnapshotResponse { index, received: total });
            self.send(
                leader,
                MessageBody::AppendEntriesResponse {
                    success: true,
                    index: committed.min(self.log.persisted),
                    conflict_term: None,
                    conflict_index: 0,
                },
            );
            return;
        }
        let incoming = self.incoming.get_or_insert_with(IncomingSnapshot::default);
        if offset == 0 || (incoming.index, incoming.term, incoming.total) != (index, term, total) {
            *incoming = IncomingSnapshot { index, term, total, data: Vec::new() };
        }
        if offset != incoming.data.len() as u64 {
            // A lost or reordered chunk: ask for the one that follows what is held.
            self.coverage.hit(Decision::SnapshotChunkOutOfOrder);
            let received = incoming.data.len() as u64;
            self.send(leader, MessageBody::InstallSnapshotResponse { index, received });
            return;
        }
        incoming.data.extend_from_slice(&data);
        let received = incoming.data.len() as u64;
        self.send(leader, MessageBody::InstallSnapshotResponse { index, received });
        if received < total {
            self.coverage.hit(Decision::SnapshotChunkReceived);
            return;
        }
        let incoming = self.incoming.take().expect("a complete snapshot");
        let snapshot = Snapshot { index, term, data: Arc::from(incoming.data) };
        let kept = self.log.compact_to(snapshot);
        self.coverage.hit(if kept {
            Decision::SnapshotInstalledKeepingLog
        } else {
            Decision::SnapshotInstalled
        });
        tracing::info!(id = self.id, index, term, "installing the leader's snapshot");
        self.snapshot_to_persist = true;
        self.snapshot_to_restore = true;
        // Sent with the ready that persists the snapshot, so it is durable when it arrives. Only
        // the snapshot is known to match the leader's log: kept entries after it may be an
        // earlier term's that the leader's log does not hold.
        self.send(
            leader,
            MessageBody::AppendEntriesResponse {
                success: true,
                index,
                conflict_term: None,
                conflict_index: 0,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::flush_with_reads;
    use super::super::{Config, ProposeError, RawNode, Ready};
    use super::*;
    use std::collections::VecDeque;

    /// A cluster of three on a perfect network, each peer with a service that keeps the
    /// commands it applied and snapshots them (one byte each) every `every` applied entries;
    /// messages to or from a peer that is `down` are lost.
    struct Three {
        nodes: Vec<RawNode>,
        applied: Vec<Vec<u8>>,
        down: Option<usize>,
        every: Index,
        restored: Vec<usize>,
    }

    impl Three {
        fn new(every: Index, chunk: usize) -> Three {
            let config =
                |id| Config { max_snapshot_chunk_bytes: chunk, ..Config::lab(id, vec![1, 2, 3]) };
            let nodes = (1..=3)
                .map(|id| RawNode::new(config(id), HardState::default(), vec![], id * 7).unwrap())
                .collect();
            Three { nodes, applied: vec![vec![]; 3], down: None, every, restored: vec![0; 3] }
        }

        /// Handles every ready (as a driver that persists at once) and delivers every message,
        /// until nothing moves; `drop` may lose a message on the way.
        fn settle(&mut self, mut drop: impl FnMut(&Message) -> bool) {
            self.settle_copies(|m| usize::from(!drop(m)));
        }

        /// As [`Three::settle`], delivering as many copies of each message as `copies` says
        /// (0 loses it, 2 duplicates it).
        fn settle_copies(&mut self, mut copies: impl FnMut(&Message) -> usize) {
            let mut queue = VecDeque::new();
            for steps in 0.. {
                assert!(steps < 100_000, "the cluster never settles: a message storm");
                for i in 0..3 {
                    while self.nodes[i].has_ready() {
                        let mut rd: Ready = self.nodes[i].ready();
                        if rd.restore_snapshot {
                            let s = rd.snapshot.as_ref().expect("a snapshot to restore");
                            self.applied[i] = s.data.to_vec();
                            self.restored[i] += 1;
                        }
                        for e in &rd.committed_entries {
                            assert_eq!(e.index, self.applied[i].len() as Index + 1, "n{i}");
                            self.applied[i].push(e.data[0]);
                        }
                        queue.extend(rd.messages.drain(..));
                        self.nodes[i].advance(rd);
                        let applied = self.applied[i].len() as Index;
                        if applied.is_multiple_of(self.every)
                            && applied > self.nodes[i].latest_snapshot().index
                        {
                            let data = self.applied[i].clone();
                            self.nodes[i].snapshot(applied, data).unwrap();
                        }
                    }
                }
                let Some(m) = queue.pop_front() else { return };
                let cut = [m.from, m.to].iter().any(|&p| Some(p as usize - 1) == self.down);
                if !cut {
                    for _ in 0..copies(&m) {
                        self.nodes[(m.to - 1) as usize].step(m.clone());
                    }
                }
            }
        }

        fn tick(&mut self, ticks: usize) {
            for _ in 0..ticks {
                self.nodes.iter_mut().for_each(RawNode::tick);
                self.settle(|_| false);
            }
        }

        fn leader(&mut self) -> usize {
            for _ in 0..1_000 {
                if let Some(l) = self.nodes.iter().position(|n| n.status().role == Role::Leader) {
                    return l;
                }
                self.tick(1);
            }
            panic!("no leader in 1000 ticks");
        }

        fn propose(&mut self, commands: std::ops::Range<u8>) {
            let l = self.leader();
            for c in commands {
                match self.nodes[l].propose(vec![c]) {
                    Ok(_) => {}
                    Err(ProposeError::NotLeader { .. }) => panic!("n{l} stopped leading"),
                    Err(e) => panic!("{e}"),
                }
                self.settle(|_| false);
            }
        }
    }

    #[test]
    fn the_service_snapshot_replaces_the_log_prefix_and_goes_out_to_persist() {
        let mut c = Three::new(1_000, 1 << 20);
        c.propose(0..5);
        let l = c.leader();
        let node = &mut c.nodes[l];
        assert_eq!(
            node.snapshot(6, vec![]),
            Err(SnapshotError::NotApplied { index: 6, applied: 5 })
        );
        node.snapshot(3, b"abc".to_vec()).unwrap();
        assert_eq!(
            node.snapshot(3, vec![]),
            Err(SnapshotError::Stale { index: 3, snapshot_index: 3 })
        );
        let s = node.status();
        assert_eq!((s.snapshot_index, s.last_index, s.applied_index), (3, 5, 5));
        assert_eq!(node.entries().iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(node.entry(3), None);
        let rd = node.ready();
        let snapshot = rd.snapshot.clone().expect("the snapshot, to persist");
        assert_eq!((snapshot.index, &snapshot.data[..]), (3, &b"abc"[..]));
        assert!(!rd.restore_snapshot, "the service's own snapshot is not restored");
        node.advance(rd);
        assert!(node.ready().snapshot.is_none(), "handed out once");
    }

    #[test]
    fn a_follower_behind_the_compacted_log_gets_the_snapshot_in_chunks_and_catches_up() {
        let mut c = Three::new(10, 4);
        c.propose(0..3);
        let l = c.leader();
        let lagging = (l + 1) % 3;
        c.down = Some(lagging);
        c.propose(3..25);
        assert_eq!(c.nodes[l].latest_snapshot().index, 20);
        assert!(c.nodes[lagging].status().last_index < 20);
        c.down = None;
        c.tick(30);
        let f = &c.nodes[lagging];
        assert_eq!(c.restored[lagging], 1, "the follower installed the leader's snapshot once");
        assert_eq!(f.status().snapshot_index, 20);
        // 20 bytes in chunks of 4: four wait for the next, the fifth completes the snapshot.
        assert_eq!(f.coverage().count(Decision::SnapshotChunkReceived), 4);
        assert_eq!(c.applied[lagging], (0..25).collect::<Vec<u8>>());
        // Replication resumes after the snapshot.
        c.propose(25..27);
        c.tick(10);
        assert_eq!(c.applied[lagging], (0..27).collect::<Vec<u8>>());
        assert!(c.nodes[l].coverage().count(Decision::SnapshotToReplicate) >= 1);
    }

    #[test]
    fn a_lost_chunk_is_asked_for_again_and_resent() {
        let mut c = Three::new(10, 3);
        let l = c.leader();
        let lagging = (l + 1) % 3;
        c.down = Some(lagging);
        c.propose(0..12);
        c.down = None;
        // Lose the second chunk the first time it goes out.
        let mut lost = false;
        c.nodes.iter_mut().for_each(RawNode::tick);
        for _ in 0..30 {
            c.settle(|m| {
                let second = matches!(m.body, MessageBody::InstallSnapshot { offset: 3, .. });
                let lose = second && !lost;
                lost |= lose;
                lose
            });
            c.nodes.iter_mut().for_each(RawNode::tick);
        }
        c.settle(|_| false);
        assert!(lost, "a second chunk went out");
        assert_eq!(c.restored[lagging], 1);
        assert_eq!(c.applied[lagging], (0..12).collect::<Vec<u8>>());
    }

    #[test]
    fn duplicated_answers_move_the_transfer_on_once() {
        let mut c = Three::new(10, 1);
        let l = c.leader();
        let lagging = (l + 1) % 3;
        c.down = Some(lagging);
        c.propose(0..12);
        c.down = None;
        // Every answer arrives three times: only the first of each may send a chunk, or the
        // chunks in flight would triple at every answer.
        let mut chunks = 0;
        for _ in 0..20 {
            c.nodes.iter_mut().for_each(RawNode::tick);
            c.settle_copies(|m| match m.body {
                MessageBody::InstallSnapshotResponse { .. } => 3,
                MessageBody::InstallSnapshot { .. } => {
                    chunks += 1;
                    1
                }
                _ => 1,
            });
        }
        assert_eq!(c.restored[lagging], 1);
        assert_eq!(c.applied[lagging], (0..12).collect::<Vec<u8>>());
        assert!(c.nodes[l].coverage().count(Decision::SnapshotAnswerNoProgress) > 0);
        // Ten one-byte chunks, and a few resent at heartbeat answers.
        assert!((10..=14).contains(&chunks), "{chunks} chunks sent for a 10-byte snapshot");
    }

    #[test]
    fn a_snapshot_of_committed_entries_is_ignored_and_one_matching_the_log_keeps_its_tail() {
        let config = Config::lab(2, vec![1, 2, 3]);
        let log: Vec<Entry> = (1..=4)
            .map(|i| Entry { index: i, term: 1, kind: EntryKind::Normal, data: vec![i as u8] })
            .collect();
        let mut f = RawNode::new(config, HardState { term: 2, vote: None }, log, 2).unwrap();
        let chunk = |index, data: &[u8]| Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::InstallSnapshot {
                index,
                snapshot_term: 1,
                offset: 0,
                total: data.len() as u64,
                data: data.to_vec(),
            },
        };
        // Learn a commit of 2 from a heartbeat, then a snapshot at 2 changes nothing.
        f.step(Message {
            from: 1,
            to: 2,
            term: 2,
            body: MessageBody::Heartbeat { commit: 2, round: 1 },
        });
        flush_with_reads(&mut f);
        f.step(chunk(2, b"xy"));
        assert_eq!(f.coverage().count(Decision::SnapshotIgnoredCommitted), 1);
        assert_eq!(f.status().snapshot_index, 0);
        let (out, _) = flush_with_reads(&mut f);
        assert!(out.iter().any(|m| matches!(
            m.body,
            MessageBody::AppendEntriesResponse { success: true, index: 2, .. }
        )));
        // A snapshot at 3 whose last entry this log holds keeps entry 4.
        f.step(chunk(3, b"xyz"));
        let rd = f.ready();
        assert!(rd.restore_snapshot);
        assert_eq!(rd.snapshot.as_ref().map(|s| s.index), Some(3));
        assert!(rd.committed_entries.is_empty(), "the snapshot comes first: {rd:?}");
        f.advance(rd);
        let s = f.status();
        assert_eq!((s.snapshot_index, s.last_index, s.applied_index, s.commit_index), (3, 4, 3, 3));
        assert_eq!(f.coverage().count(Decision::SnapshotInstalledKeepingLog), 1);
    }

    #[test]
    fn a_peer_restored_from_a_snapshot_checks_appends_against_its_last_entry() {
        let snapshot = Snapshot { index: 10, term: 3, data: Arc::from(&b"state"[..]) };
        let config = Config::lab(2, vec![1, 2, 3]);
        let hs = HardState { term: 3, vote: None };
        assert!(RawNode::restore(config.clone(), hs, snapshot.clone(), log_from(5, 1), 1).is_err());
        let mut f = RawNode::restore(config, hs, snapshot, log_from(11, 1), 2).unwrap();
        let s = f.status();
        assert_eq!((s.applied_index, s.commit_index, s.last_index), (10, 10, 11));
        // An append from inside the snapshot is checked from its end; one after it as usual.
        let append = |prev: Index, entries| MessageBody::AppendEntries {
            prev_log_index: prev,
            prev_log_term: 3,
            entries,
            leader_commit: 12,
        };
        f.step(Message { from: 1, to: 2, term: 3, body: append(8, log_from(9, 4)) });
        let (out, _) = flush_with_reads(&mut f);
        assert!(
            out.iter().any(|m| matches!(
                m.body,
                MessageBody::AppendEntriesResponse { success: true, index: 12, .. }
            )),
            "{out:?}"
        );
        assert_eq!(f.status().commit_index, 12);
        assert_eq!(f.coverage().count(Decision::AppendBelowSnapshot), 1);
    }

    /// `n` entries of term 3 from `first`.
    fn log_from(first: Index, n: u64) -> Vec<Entry> {
        (first..first + n)
            .map(|index| Entry { index, term: 3, kind: EntryKind::Normal, data: vec![] })
            .collect()
    }
}

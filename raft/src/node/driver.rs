//! The driver task: feeds the protocol core with time, messages and proposals, and carries out
//! its readies (persist, send, apply, advance).
//!
//! One ready is in flight at a time. While its sync runs on the storage thread, the driver
//! keeps stepping inbound messages and ticking, so that a leader learns of its followers'
//! acknowledgements and commits while its own write is still going on; entries that become
//! committed meanwhile are handed to the service at once.
//!
//! Committed entries go to the service only as far as the apply channel has room: a service
//! that falls behind never stops the driver from ticking and answering its peers (the entries
//! wait, in the core's log or, once the core counted them applied and may evict them, in the
//! driver's `undelivered`, and go out as the service takes them).
//!
//! A ready may ask for evicted entries (`Ready::read_entries`): the storage thread reads them
//! after the ready's sync, and they go back to the core after `advance`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};

use super::io::{Persisting, StorageThread};
use super::trace::Tracer;
use super::{ApplyMsg, NodeError, Shared, StopMode};
use crate::core::{
    Entry, EntryKind, Index, Message, MessageBody, NodeId, RawNode, Ready, Role, Status, Term,
};
use crate::transport::Transport;

/// At most this many inbound messages are stepped in one go, so that the lock is released now
/// and then for proposals even under a flood of messages.
const MAX_STEPS_PER_ROUND: usize = 4096;

pub(super) struct Driver {
    pub(super) shared: Arc<Shared>,
    pub(super) inbox: mpsc::Receiver<Message>,
    pub(super) transport: Transport,
    pub(super) storage: StorageThread,
    pub(super) apply: mpsc::Sender<ApplyMsg>,
    pub(super) stop: watch::Receiver<StopMode>,
    pub(super) deliver_noops: bool,
    /// When the next tick is due.
    pub(super) next_tick: Instant,
    /// The highest index handed to the service (or skipped, for a no-op not delivered).
    pub(super) delivered: Index,
    /// The last index a ready handed out to apply: the commit index, but for the catalogue's
    /// `apply-uncommitted`, which must reach the service too.
    pub(super) applicable: Index,
    /// Committed entries wait beyond `delivered` for room in the apply channel.
    pub(super) backlog: bool,
    /// Entries of past readies the service has not taken yet: the core counts them applied
    /// once their ready is advanced, and may then evict them from memory.
    pub(super) undelivered: VecDeque<Entry>,
    /// The service dropped its receiver: nothing more is delivered.
    pub(super) apply_closed: bool,
    pub(super) tracer: Tracer,
    /// The catalogue's `ack-before-sync` or `vote-before-sync`: some answers go before the
    /// sync.
    pub(super) early_bug: Option<crate::Bug>,
}

/// A ready's write: nothing to write, or in progress on the storage thread.
enum Write {
    Done(Ready),
    InFlight(Persisting),
}

/// Why the loop ended.
enum Exit {
    Shutdown,
    Kill,
    Failed(NodeError),
}

impl Driver {
    /// Runs until shut down, killed or failed, then releases the transport and the storage.
    pub(super) async fn run(mut self) -> Result<(), NodeError> {
        let exit = self.run_loop().await;
        self.shared.mark_stopped();
        let last_index = self.shared.lock().raw.status().last_index;
        self.tracer.stopped(last_index);
        let Driver { transport, storage, .. } = self;
        match exit {
            Exit::Shutdown => {
                transport.shutdown().await;
                storage.close().await
            }
            Exit::Kill => {
                storage.abandon().await;
                transport.shutdown().await;
                Ok(())
            }
            Exit::Failed(e) => {
                tracing::error!(error = super::with_causes(&e), "the node stops");
                // Nothing that was not synced has been acknowledged; what the failed sync
                // may have written is left as a crash would leave it.
                storage.abandon().await;
                transport.shutdown().await;
                Err(e)
            }
        }
    }

    async fn run_loop(&mut self) -> Exit {
        loop {
            if let Some(exit) = self.stop_requested() {
                return exit;
            }
            // Under the lock: everything that arrived, the tick if due, and the next ready.
            let taken = {
                let mut core = self.shared.lock();
                let inbox = &mut self.inbox;
                if let Err(exit) = drain_inbox(inbox, &mut core.raw, &mut self.tracer, None) {
                    return exit;
                }
                tick_if_due(&mut self.next_tick, self.shared.tick(), &mut core.raw);
                self.tracer.observe(&core.raw);
                self.shared.publish_core(&mut core);
                let status = core.raw.status();
                core.raw.has_ready().then(|| (core.raw.ready(), leader_term(&status)))
            };
            if let Some((ready, _)) = &taken {
                self.restore_if_asked(ready);
            }
            self.deliver_committed();
            match taken {
                Some((ready, leader_term)) => {
                    if let Err(exit) = self.handle_ready(ready, leader_term).await {
                        return exit;
                    }
                }
                None => {
                    let wake = self.shared.wake.notified();
                    tokio::select! {
                        biased;
                        // The sender lives in `Shared`, which this task holds: never closed.
                        _ = self.stop.changed() => {}
                        msg = self.inbox.recv() => match msg {
                            Some(msg) => self.tracer.step(&mut self.shared.lock().raw, msg),
                            None => return Exit::Failed(NodeError::TransportClosed),
                        },
                        _ = wake => {}
                        _ = sleep_until(self.next_tick) => {}
                        // The service took an entry: room for the waiting ones.
                        // A slot is given back at once: the next delivery takes it.
                        room = self.apply.clone().reserve_owned(), if self.backlog => {
                            if room.is_err() {
                                self.closed_by_service();
                            }
                        }
                    }
                }
            }
        }
    }

    fn stop_requested(&self) -> Option<Exit> {
        match *self.stop.borrow() {
            StopMode::Run => None,
            StopMode::Shutdown => Some(Exit::Shutdown),
            StopMode::Kill => Some(Exit::Kill),
        }
    }

    /// Carries out one ready: persist with one sync, send, apply, advance.
    async fn handle_ready(
        &mut self,
        mut ready: Ready,
        leader_term: Option<Term>,
    ) -> Result<(), Exit> {
        let id = self.shared.id;
        // Confirmed reads depend on nothing this peer persists: they go at once.
        if !ready.read_states.is_empty() {
            let mut core = self.shared.lock();
            for read in std::mem::take(&mut ready.read_states) {
                // Absent: answered twice (a duplicated message), or failed meanwhile.
                if let Some(waiter) = core.reads.remove(&read.request) {
                    let _ = waiter.send(Ok(read.index));
                }
            }
        }
        // Thesis §10.2.1: a leader may send AppendEntries to its followers before its own log
        // write is durable, so that its fsync overlaps theirs. This is safe because the leader
        // counts itself towards a majority only for entries it has made durable
        // (`RawNode::advance`), and its term and vote were durable before it could win the
        // election. Every other message (vote grants, append and heartbeat acknowledgements)
        // states something about this peer's durable state and goes only after the sync.
        let (early, late): (Vec<Message>, Vec<Message>) =
            std::mem::take(&mut ready.messages).into_iter().partition(|m| {
                is_leader_append(m, id, leader_term)
                    || self.early_bug.is_some_and(|bug| bug.sends_before_sync(m))
            });
        for msg in early {
            // A vote grant is early only with the catalogue's `vote-before-sync`; traced all the
            // same, so that the checks see the promise it made.
            self.tracer.sending(&msg);
            self.transport.send(msg);
        }

        // The write goes to the storage thread now; the ready comes back with the result.
        let committed = std::mem::take(&mut ready.committed_entries);
        if let Some(last) = committed.last() {
            self.applicable = self.applicable.max(last.index);
        }
        let needs_sync = ready.hard_state.is_some()
            || ready.snapshot.is_some()
            || !ready.entries.is_empty()
            || ready.read_entries.is_some();
        let write = if needs_sync {
            Write::InFlight(self.storage.submit(ready).map_err(Exit::Failed)?)
        } else {
            Write::Done(ready)
        };

        // Committed entries are durable on a majority already (a leader counts itself only for
        // what it made durable; a follower learns of commits from the leader), so they are
        // handed to the service while this peer's own write is in progress, as etcd's raft
        // allows. In-order delivery holds because `delivered` only grows.
        self.deliver_committed();
        let mut stop = self.stop.clone();

        // While the sync runs, keep stepping messages and ticking: a leader learns of its
        // followers' acknowledgements, and what that commits goes to the service at once.
        let (mut ready, read) = match write {
            Write::Done(ready) => (ready, Vec::new()),
            Write::InFlight(mut sync) => loop {
                tokio::select! {
                    biased;
                    // A shutdown lets the sync finish; a kill does not wait for it.
                    _ = stop_signal(&mut stop, true) => return Err(Exit::Kill),
                    result = &mut sync => {
                        break StorageThread::outcome(result).map_err(Exit::Failed)?;
                    }
                    msg = self.inbox.recv() => {
                        let Some(msg) = msg else {
                            return Err(Exit::Failed(NodeError::TransportClosed));
                        };
                        self.step_during_sync(Some(msg))?;
                    }
                    _ = sleep_until(self.next_tick) => self.step_during_sync(None)?,
                    room = self.apply.clone().reserve_owned(), if self.backlog => {
                        if room.is_err() {
                            self.closed_by_service();
                        }
                        self.deliver_committed();
                    }
                }
            },
        };

        for msg in late {
            self.tracer.sending(&msg);
            self.transport.send(msg);
        }
        // Those the service has not taken yet are kept: the core may evict them once advanced.
        self.undelivered.extend(committed.iter().filter(|e| e.index > self.delivered).cloned());
        ready.committed_entries = committed;
        let mut core = self.shared.lock();
        let read_asked = ready.read_entries.is_some();
        core.raw.advance(ready);
        if read_asked {
            core.raw.entries_read(read);
        }
        take_pending_snapshot(&mut core);
        Ok(())
    }

    /// Steps `first` and whatever else arrived, ticks if due, and hands newly committed
    /// entries to the service, while a sync is in flight.
    fn step_during_sync(&mut self, first: Option<Message>) -> Result<(), Exit> {
        {
            let mut core = self.shared.lock();
            drain_inbox(&mut self.inbox, &mut core.raw, &mut self.tracer, first)?;
            tick_if_due(&mut self.next_tick, self.shared.tick(), &mut core.raw);
            self.tracer.observe(&core.raw);
            self.shared.publish_core(&mut core);
        }
        self.deliver_committed();
        Ok(())
    }

    /// Hands the service the committed entries beyond `delivered`, as many as the apply
    /// channel has room for; the rest wait (`backlog`) and never block the driver.
    fn deliver_committed(&mut self) {
        if self.apply_closed {
            return;
        }
        let (msgs, left) = {
            let core = self.shared.lock();
            let commit = core.raw.status().commit_index.max(self.applicable);
            let room = self.apply.capacity();
            let msgs = collect_committed(
                &core.raw,
                &mut self.undelivered,
                commit,
                &mut self.delivered,
                self.deliver_noops,
                room,
            );
            (msgs, self.delivered < commit)
        };
        for msg in msgs {
            // Cannot be full: no more were collected than the channel had room for.
            if let Err(mpsc::error::TrySendError::Closed(_)) = self.apply.try_send(msg) {
                self.closed_by_service();
                return;
            }
        }
        self.backlog = left;
    }

    /// A ready that asks the service to restore its snapshot has it delivered next, whatever
    /// was delivered before: the runtime carries out what the core decided rather than second
    /// guess it, so that a core that takes its service's state back (only a broken one asks
    /// for a snapshot below what was delivered) shows in the service. The entries after the
    /// snapshot follow it again.
    fn restore_if_asked(&mut self, ready: &Ready) {
        if let Some(snapshot) = ready.snapshot.as_ref().filter(|_| ready.restore_snapshot) {
            self.delivered = self.delivered.min(snapshot.index.saturating_sub(1));
        }
    }

    /// The service dropped its receiver: it no longer wants the entries.
    fn closed_by_service(&mut self) {
        self.apply_closed = true;
        self.backlog = false;
    }
}

/// Takes the snapshot the service handed over before the core counted its index applied, once
/// it has.
fn take_pending_snapshot(core: &mut super::Core) {
    let applied = core.raw.status().applied_index;
    if core.pending_snapshot.as_ref().is_some_and(|(index, _)| *index <= applied) {
        let (index, data) = core.pending_snapshot.take().expect("checked");
        if let Err(e) = core.raw.snapshot(index, data) {
            // A newer snapshot (the leader's) came in meanwhile.
            tracing::debug!(index, error = %e, "the service's snapshot is no longer needed");
        }
    }
}

/// What is committed beyond `delivered`, at most `room` messages (the room left in the apply
/// channel): the latest snapshot first when the next entry is compacted away (after a restart
/// from it, or when it came from the leader), then entries, from `undelivered` or the core's
/// log. Only committed entries are taken here: anything else waits for its ready.
fn collect_committed(
    raw: &RawNode,
    undelivered: &mut VecDeque<Entry>,
    commit: Index,
    delivered: &mut Index,
    deliver_noops: bool,
    mut room: usize,
) -> Vec<ApplyMsg> {
    let mut out = Vec::new();
    let snapshot = raw.latest_snapshot();
    if *delivered < snapshot.index && room > 0 {
        *delivered = snapshot.index;
        out.push(ApplyMsg::Snapshot(snapshot.clone()));
        room -= 1;
    }
    while undelivered.front().is_some_and(|e| e.index <= *delivered) {
        undelivered.pop_front();
    }
    while *delivered < commit && room > 0 {
        let next = *delivered + 1;
        let entry = if undelivered.front().is_some_and(|e| e.index == next) {
            undelivered.pop_front().expect("checked")
        } else {
            match raw.entry(next) {
                Some(entry) => entry.clone(),
                None => break,
            }
        };
        *delivered = entry.index;
        if entry.kind == EntryKind::Noop && !deliver_noops {
            continue;
        }
        out.push(ApplyMsg::Entry(entry));
        room -= 1;
    }
    out
}

/// Steps `first`, then every queued message (up to [`MAX_STEPS_PER_ROUND`]).
fn drain_inbox(
    inbox: &mut mpsc::Receiver<Message>,
    raw: &mut RawNode,
    tracer: &mut Tracer,
    first: Option<Message>,
) -> Result<(), Exit> {
    if let Some(msg) = first {
        tracer.step(raw, msg);
    }
    for _ in 0..MAX_STEPS_PER_ROUND {
        match inbox.try_recv() {
            Ok(msg) => tracer.step(raw, msg),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                return Err(Exit::Failed(NodeError::TransportClosed));
            }
        }
    }
    Ok(())
}

/// Ticks the core if a tick is due.
fn tick_if_due(next_tick: &mut Instant, tick: Duration, raw: &mut RawNode) {
    let now = Instant::now();
    if now >= *next_tick {
        raw.tick();
        *next_tick += tick;
        if *next_tick <= now {
            // Ticks missed while the runtime was stalled are skipped, not replayed in a burst
            // that would fire election timeouts at once.
            *next_tick = now + tick;
        }
    }
}

/// Resolves when the node is asked to stop (with `kill_only`, to stop at once).
async fn stop_signal(stop: &mut watch::Receiver<StopMode>, kill_only: bool) {
    // The sender lives in `Shared`, which the driver holds: the channel never closes.
    let _ = stop
        .wait_for(|m| if kill_only { *m == StopMode::Kill } else { *m != StopMode::Run })
        .await
        .map(|_| ());
}

/// The term in which this peer leads, if it does.
fn leader_term(status: &Status) -> Option<Term> {
    (status.role == Role::Leader).then_some(status.term)
}

/// Whether `msg` is an AppendEntries or heartbeat this peer sends as the leader of the current
/// term.
fn is_leader_append(msg: &Message, id: NodeId, leader_term: Option<Term>) -> bool {
    msg.from == id
        && Some(msg.term) == leader_term
        && matches!(msg.body, MessageBody::AppendEntries { .. } | MessageBody::Heartbeat { .. })
}

//! The storage thread: the one place where the runtime does blocking file I/O.
//!
//! The driver hands it a whole [`Ready`] to persist and gets the ready back with the result, so
//! no entry is copied on the way. A dedicated thread (rather than `spawn_blocking` per sync)
//! keeps the storage in one place, which lets [`Node::kill`](super::Node::kill) wait until the
//! storage is released, as a crashed process would release its files.

use std::sync::mpsc as std_mpsc;
use std::thread;

use tokio::sync::oneshot;

use super::NodeError;
use crate::core::{Entry, Index, Ready};
use crate::storage::{Storage, StorageError};

/// A request to the storage thread.
enum Job {
    /// Write the ready's hard state, snapshot and entries, then make them durable with one
    /// sync; then read the evicted entries it asks for, if any.
    Persist(Ready, oneshot::Sender<(Ready, Result<Vec<Entry>, StorageError>)>),
    /// Sync whatever was written and release the storage.
    Close(oneshot::Sender<Result<(), StorageError>>),
}

/// A write in progress on the storage thread.
pub(super) type Persisting = oneshot::Receiver<(Ready, Result<Vec<Entry>, StorageError>)>;

/// The driver's handle on the storage thread. Dropping it ends the thread once the job in
/// progress is done, without a final sync.
pub(super) struct StorageThread {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StorageThread {
    /// Moves `storage` into a new thread named after the node.
    pub(super) fn start(
        name: String,
        mut storage: Box<dyn Storage>,
    ) -> Result<StorageThread, NodeError> {
        let (jobs, queue) = std_mpsc::channel::<Job>();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || {
                while let Ok(job) = queue.recv() {
                    match job {
                        Job::Persist(ready, reply) => {
                            let result = storage
                                .persist(ready.hard_state, ready.snapshot.as_ref(), &ready.entries)
                                .and_then(|()| storage.sync())
                                .and_then(|()| read_back(&*storage, ready.read_entries.clone()));
                            // The driver may have gone (killed): the write stands, as after a
                            // crash right after it.
                            let _ = reply.send((ready, result));
                        }
                        Job::Close(reply) => {
                            let _ = reply.send(storage.sync());
                            return;
                        }
                    }
                }
            })
            .map_err(NodeError::StorageThread)?;
        Ok(StorageThread { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Hands `ready` to the storage thread, which writes its hard state and entries, makes
    /// them durable with one sync, and reads the entries it asks for. Await the receiver and
    /// pass the answer to [`StorageThread::outcome`].
    pub(super) fn submit(&self, ready: Ready) -> Result<Persisting, NodeError> {
        let (reply, answer) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or(NodeError::StorageThreadLost)?;
        jobs.send(Job::Persist(ready, reply)).map_err(|_| NodeError::StorageThreadLost)?;
        Ok(answer)
    }

    /// The ready back from the storage thread, once durable, with the entries it asked to
    /// read.
    pub(super) fn outcome(
        answer: Result<(Ready, Result<Vec<Entry>, StorageError>), oneshot::error::RecvError>,
    ) -> Result<(Ready, Vec<Entry>), NodeError> {
        match answer {
            Ok((ready, Ok(read))) => Ok((ready, read)),
            Ok((_, Err(e))) => Err(NodeError::Storage(e)),
            Err(_) => Err(NodeError::StorageThreadLost),
        }
    }

    /// A final sync, then releases the storage and waits for the thread to end.
    pub(super) async fn close(mut self) -> Result<(), NodeError> {
        let (reply, answer) = oneshot::channel();
        let result = match self.jobs.take() {
            Some(jobs) if jobs.send(Job::Close(reply)).is_ok() => match answer.await {
                Ok(result) => result.map_err(NodeError::Storage),
                Err(_) => Err(NodeError::StorageThreadLost),
            },
            _ => Err(NodeError::StorageThreadLost),
        };
        self.join().await;
        result
    }

    /// Releases the storage without a final sync (what was written but not synced may be
    /// lost, as in a crash) and waits for the thread to end.
    pub(super) async fn abandon(mut self) {
        self.jobs = None;
        self.join().await;
    }

    async fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            // The thread ends within one sync; wait for it off the async workers.
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("the storage thread panicked");
            }
        }
    }
}

/// The evicted entries a ready asks for: none when storage compacted them since (the leader
/// then sends its snapshot); any other error stops the node, as a failed write does.
fn read_back(
    storage: &dyn Storage,
    range: Option<std::ops::Range<Index>>,
) -> Result<Vec<Entry>, StorageError> {
    let Some(range) = range else { return Ok(Vec::new()) };
    match storage.entries(range) {
        Err(StorageError::OutOfRange { .. }) => Ok(Vec::new()),
        result => result,
    }
}

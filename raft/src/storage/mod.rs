//! Where a peer keeps its hard state and log.
//!
//! [`Storage`] is the contract between a driver of the protocol core and the place its durable
//! state lives. Two implementations:
//!
//! - [`MemStorage`]: in memory, for tests and simulated clusters; what was written is what
//!   "survives".
//! - [`FileStorage`]: durable, in a directory: an append-only log of checksummed records in
//!   segment files, and a hard state file and a snapshot file, each replaced atomically.
//!
//! # Group commit
//!
//! Writes ([`Storage::set_hard_state`], [`Storage::append`]) are cheap and not yet durable;
//! [`Storage::sync`] makes everything written so far durable at once. A driver therefore writes
//! the hard state and entries of every [`Ready`](crate::Ready) it has at hand, calls `sync` once,
//! and only then sends the messages of those readies:
//!
//! ```
//! use raft::storage::{MemStorage, Storage};
//! use raft::{Entry, EntryKind, HardState};
//!
//! # fn main() -> Result<(), raft::storage::StorageError> {
//! let mut storage = MemStorage::new();
//! let entry = |index, term| Entry { index, term, kind: EntryKind::Normal, data: vec![] };
//! // Two readies' worth of writes ...
//! storage.persist(Some(HardState { term: 1, vote: Some(2) }), None, &[entry(1, 1), entry(2, 1)])?;
//! storage.persist(None, None, &[entry(3, 1)])?;
//! // ... then one sync for both; now their messages may go out.
//! storage.sync()?;
//! // A conflicting entry at index 2 replaces the stored 2 and everything after it.
//! storage.persist(Some(HardState { term: 2, vote: None }), None, &[entry(2, 2)])?;
//! storage.sync()?;
//! assert_eq!(storage.last_index(), 2);
//! assert_eq!(storage.entries(1..3)?, vec![entry(1, 1), entry(2, 2)]);
//! // The service's snapshot at index 1 stands for the entries up to it from now on.
//! let snapshot = raft::Snapshot { index: 1, term: 1, data: b"state".to_vec().into() };
//! storage.persist(None, Some(&snapshot), &[])?;
//! storage.sync()?;
//! assert_eq!((storage.first_index(), storage.snapshot().index), (2, 1));
//! # Ok(())
//! # }
//! ```

mod disk;
mod error;
mod file;
mod memory;

use std::ops::Range;

pub use disk::{
    CrashDisk, CrashFamily, CrashReport, DirCrash, Disk, DiskError, DiskFile, FileCrash,
    InjectedError, OsDisk,
};
pub use error::{Corruption, StorageError};
pub use file::{
    inspect, FileStorage, FileStorageOptions, RecordKind, RecordSpan, Recovery, SegmentLayout,
    TornTail,
};
pub use memory::MemStorage;

use crate::core::{Entry, HardState, Index, Snapshot, Term};

/// What a peer restarts from: hand `hard_state`, `snapshot` and `entries` to
/// [`RawNode::restore`], and the snapshot's data to the service first.
///
/// [`RawNode::restore`]: crate::RawNode::restore
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The last hard state written.
    pub hard_state: HardState,
    /// The latest snapshot written (index 0 and no data when the log was never compacted).
    pub snapshot: Snapshot,
    /// The index of `entries[0]`: `snapshot.index + 1`. When `entries` is empty, the index the
    /// next entry will have.
    pub first_index: Index,
    /// The log after the snapshot, contiguous from `first_index`.
    pub entries: Vec<Entry>,
}

/// The storage contract of a Raft peer: a hard state, the latest snapshot, and a log of the
/// entries after it, contiguous from [`first_index`](Storage::first_index) to
/// [`last_index`](Storage::last_index).
///
/// Writes are visible to reads at once but durable only after [`sync`](Storage::sync) returns
/// `Ok`. Everything written before a successful `sync` survives a crash; what was written after
/// the last successful `sync` may survive whole, in part (a prefix of the log's writes, and
/// either the old or the new hard state, never a mix), or not at all.
///
/// An error from a write or from `sync` may leave an implementation unusable
/// ([`StorageError::Poisoned`]): the owner must then stop acknowledging anything and reopen.
pub trait Storage: Send {
    /// The hard state, the snapshot and the log after it, to restart the protocol core from.
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// The latest snapshot written (durable or not); index 0 and no data when none was.
    fn snapshot(&self) -> Snapshot;

    /// Replaces the log up to `snapshot.index` by `snapshot` (§7, Figure 13): when the log
    /// holds the snapshot's last entry with its term, the entries after it stay; otherwise the
    /// whole log goes, and the next entry is `snapshot.index + 1`. Either way
    /// [`first_index`](Storage::first_index) becomes `snapshot.index + 1`. Durable after the
    /// next [`sync`](Storage::sync), which makes the snapshot durable before it drops any
    /// entry it covers. A snapshot older than the one held is refused
    /// ([`StorageError::SnapshotOutOfDate`]); the one held again changes nothing.
    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError>;

    /// The last hard state written (durable or not).
    fn hard_state(&self) -> HardState;

    /// Replaces the hard state. Durable after the next [`sync`](Storage::sync).
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError>;

    /// Writes `entries`, which must have consecutive indexes. The first one replaces the stored
    /// entry at its index and everything after it (the suffix is truncated), so it must lie
    /// between [`first_index`](Storage::first_index) and
    /// [`last_index`](Storage::last_index)` + 1`. Empty `entries` do nothing. Durable after the
    /// next [`sync`](Storage::sync).
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;

    /// Removes the entries at `from` and after; `from` must lie between
    /// [`first_index`](Storage::first_index) and [`last_index`](Storage::last_index)` + 1`.
    /// ([`append`](Storage::append) does this itself when it overwrites.)
    fn truncate_suffix(&mut self, from: Index) -> Result<(), StorageError>;

    /// The entries with indexes in `range`, which must lie within
    /// `first_index..last_index + 1`.
    fn entries(&self, range: Range<Index>) -> Result<Vec<Entry>, StorageError>;

    /// The index of the first entry held, or of the next entry when the log is empty.
    fn first_index(&self) -> Index;

    /// The index of the last entry held; `first_index() - 1` when the log is empty.
    fn last_index(&self) -> Index;

    /// Makes everything written so far durable.
    fn sync(&mut self) -> Result<(), StorageError>;

    /// Writes what one [`Ready`](crate::Ready) asks to persist: `hard_state` when it changed,
    /// then `snapshot`, then `entries`. Not durable until [`sync`](Storage::sync).
    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        if let Some(hard_state) = hard_state {
            self.set_hard_state(hard_state)?;
        }
        if let Some(snapshot) = snapshot {
            self.apply_snapshot(snapshot)?;
        }
        self.append(entries)
    }
}

/// Checks that `snapshot` may replace `held`: it is not older. Returns whether it is new (the
/// one held again changes nothing).
pub(crate) fn check_snapshot(snapshot: &Snapshot, held: &Snapshot) -> Result<bool, StorageError> {
    if snapshot.index < held.index {
        return Err(StorageError::SnapshotOutOfDate {
            index: snapshot.index,
            snapshot_index: held.index,
        });
    }
    Ok(snapshot.index > held.index)
}

/// Whether a log whose term at `snapshot.index` is `term_there` keeps its entries after the
/// snapshot (Figure 13: it holds the snapshot's last entry with the snapshot's term).
pub(crate) fn keeps_tail(snapshot: &Snapshot, term_there: Option<Term>) -> bool {
    term_there == Some(snapshot.term)
}

/// Checks that `entries` can be appended to a log holding `first_index..=last_index`.
pub(crate) fn check_append(
    entries: &[Entry],
    first_index: Index,
    last_index: Index,
) -> Result<(), StorageError> {
    let Some(first) = entries.first() else {
        return Ok(());
    };
    if first.index < first_index || first.index > last_index + 1 {
        return Err(StorageError::AppendOutOfRange { index: first.index, first_index, last_index });
    }
    for pair in entries.windows(2) {
        if pair[1].index != pair[0].index + 1 {
            return Err(StorageError::NotConsecutive {
                previous: pair[0].index,
                found: pair[1].index,
            });
        }
    }
    Ok(())
}

/// Checks that `range` lies within a log holding `first_index..=last_index`.
pub(crate) fn check_range(
    range: &Range<Index>,
    first_index: Index,
    last_index: Index,
) -> Result<(), StorageError> {
    if range.start < first_index || range.start > range.end || range.end > last_index + 1 {
        return Err(StorageError::OutOfRange {
            lo: range.start,
            hi: range.end,
            first_index,
            last_index,
        });
    }
    Ok(())
}

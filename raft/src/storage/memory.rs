//! [`MemStorage`]: the log and hard state in memory.

use std::ops::Range;

use super::{
    check_append, check_range, check_snapshot, keeps_tail, InitialState, Storage, StorageError,
};
use crate::core::{Entry, HardState, Index, Snapshot};

/// A [`Storage`] in memory. Every write is "durable" at once: a simulated crash keeps exactly
/// what was written, so [`sync`](Storage::sync) does nothing. Clone it to keep a copy of a
/// peer's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// `snapshot.index + 1`.
    first_index: Index,
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty log (next index 1) and the default hard state (term 0, no vote).
    pub fn new() -> MemStorage {
        MemStorage {
            hard_state: HardState::default(),
            snapshot: Snapshot::default(),
            first_index: 1,
            entries: Vec::new(),
        }
    }
}

impl Default for MemStorage {
    fn default() -> MemStorage {
        MemStorage::new()
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            first_index: self.first_index,
            entries: self.entries.clone(),
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.clone()
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        if !check_snapshot(snapshot, &self.snapshot)? {
            return Ok(());
        }
        let term_there = match snapshot.index.checked_sub(self.first_index) {
            Some(k) => self.entries.get(k as usize).map(|e| e.term),
            None => None,
        };
        if keeps_tail(snapshot, term_there) {
            self.entries.drain(..=(snapshot.index - self.first_index) as usize);
        } else {
            self.entries.clear();
        }
        self.first_index = snapshot.index + 1;
        self.snapshot = snapshot.clone();
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.hard_state = hard_state;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        check_append(entries, self.first_index, self.last_index())?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        self.entries.truncate((first.index - self.first_index) as usize);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn truncate_suffix(&mut self, from: Index) -> Result<(), StorageError> {
        check_range(&(from..self.last_index() + 1), self.first_index, self.last_index())?;
        self.entries.truncate((from - self.first_index) as usize);
        Ok(())
    }

    fn entries(&self, range: Range<Index>) -> Result<Vec<Entry>, StorageError> {
        check_range(&range, self.first_index, self.last_index())?;
        let lo = (range.start - self.first_index) as usize;
        let hi = (range.end - self.first_index) as usize;
        Ok(self.entries[lo..hi].to_vec())
    }

    fn first_index(&self) -> Index {
        self.first_index
    }

    fn last_index(&self) -> Index {
        self.first_index + self.entries.len() as u64 - 1
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }
}

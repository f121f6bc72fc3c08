//! The peer's view of the replicated log: the entries it holds, how far they are durable,
//! committed and applied.

use std::mem::size_of;

use super::types::{Entry, Index, Snapshot, Term};

/// The log a peer holds in memory, with its three watermarks:
/// `applied <= committed` and `persisted <= last_index()`.
///
/// The entries up to the snapshot's index are compacted away (§7): of the compacted prefix the
/// log keeps only the snapshot's index and term, which the log check of the next entry needs.
/// Of the entries after it, those both applied and durable may be evicted from memory to keep
/// it within a budget ([`RaftLog::evict`]): they are in storage, and a leader that needs them
/// for a lagging follower reads them back from there ([`RaftLog::set_read_back`]). The terms of
/// every entry after the snapshot stay, as runs, so that every log check and conflict hint
/// still works without the entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    /// The latest snapshot, standing in for the entries up to its index; kept whole so that a
    /// leader can send it. Index 0 (the default) when nothing was compacted.
    snapshot: Snapshot,
    /// The terms of the entries after the snapshot, one `(first index, term)` per run of
    /// entries of one term, in index order: a handful of pairs however long the log.
    terms: Vec<(Index, Term)>,
    /// The entries held in memory: `entries[i]` has index `held_from + i`, and they run to the
    /// last index.
    entries: Vec<Entry>,
    /// The first index held in memory: `snapshot.index + 1` unless entries were evicted.
    held_from: Index,
    /// What `entries` take in memory, as [`entry_bytes`] counts it.
    held_bytes: usize,
    /// Evicted entries read back from storage for a lagging follower, contiguous; replaced by
    /// the next read.
    read_back: Vec<Entry>,
    /// The highest index known committed (§5.3).
    pub committed: Index,
    /// The highest index handed to the service to apply (a snapshot it restored included).
    pub applied: Index,
    /// The highest index the driver has made durable (or will have, with the ready that
    /// carries a snapshot covering it).
    pub persisted: Index,
}

/// What an entry takes in memory, for the eviction budget.
fn entry_bytes(entry: &Entry) -> usize {
    size_of::<Entry>() + entry.data.len()
}

impl RaftLog {
    /// A log restored from storage, everything in it durable: the snapshot the service restores
    /// from (applied and committed, then) and the entries after it.
    pub fn restore(snapshot: Snapshot, entries: Vec<Entry>) -> RaftLog {
        let base = snapshot.index;
        let mut log = RaftLog {
            held_from: base + 1,
            snapshot,
            committed: base,
            applied: base,
            persisted: base,
            ..RaftLog::default()
        };
        for entry in entries {
            log.push(entry);
        }
        log.persisted = log.last_index();
        log
    }

    /// The snapshot standing in for the compacted prefix.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The first index after the snapshot, held in memory or not.
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    /// The first index held in memory (`last_index() + 1` when none is).
    pub fn held_from(&self) -> Index {
        self.held_from
    }

    pub fn last_index(&self) -> Index {
        self.held_from - 1 + self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.terms.last().map_or(self.snapshot.term, |&(_, term)| term)
    }

    /// The term of the entry at `index`; index 0 has term 0 and the snapshot's index its term;
    /// None past the end or within the compacted prefix. Known for evicted entries too.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index < self.first_index() || index > self.last_index() {
            return None;
        }
        let run = self.terms.partition_point(|&(first, _)| first <= index);
        Some(self.terms[run - 1].1)
    }

    /// The entry at `index`, if it is held in memory or was read back.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index < self.first_index() {
            return None;
        }
        if index >= self.held_from {
            return self.entries.get((index - self.held_from) as usize);
        }
        let first = self.read_back.first()?.index;
        self.read_back.get(index.checked_sub(first)? as usize)
    }

    /// The entries held in memory, from [`held_from`](Self::held_from).
    pub fn held(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries from `lo` (inclusive) to `hi` (inclusive), clamped to the log; from `lo` only if
    /// the entry at `lo` is held or was read back, and then as far as that stretch goes (so
    /// empty when `lo` was evicted and not read back).
    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        let (lo, hi) = (lo.max(self.first_index()), hi.min(self.last_index()));
        if lo > hi {
            return &[];
        }
        let (from, stretch) = if lo >= self.held_from {
            (self.held_from, &self.entries[..])
        } else {
            match self.read_back.first() {
                Some(first) if first.index <= lo => (first.index, &self.read_back[..]),
                _ => return &[],
            }
        };
        let start = (lo - from) as usize;
        let end = ((hi - from + 1) as usize).min(stretch.len());
        stretch.get(start..end).unwrap_or(&[])
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at least as
    /// up-to-date as this log (§5.4.1): the later last term wins; with equal terms, the longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The first index of the term of the entry at `index` (for fast backtracking), no lower
    /// than the first index after the snapshot.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        if index == self.snapshot.index {
            // The snapshot's own entry (or index 0): the run of its term may go on after it,
            // not before.
            return index;
        }
        if self.term_at(index).is_none() {
            return self.last_index() + 1;
        }
        let run = self.terms.partition_point(|&(first, _)| first <= index);
        self.terms[run - 1].0.max(self.first_index())
    }

    /// The last index whose entry has `term`, if the log holds any entry of that term.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        // Terms only grow along the log: the run after the last one of `term` or below ends it.
        let run = self.terms.partition_point(|&(_, t)| t <= term);
        if run > 0 && self.terms[run - 1].1 == term {
            let end = self.terms.get(run).map_or(self.last_index(), |&(next, _)| next - 1);
            return Some(end);
        }
        (self.snapshot.index > 0 && self.snapshot.term == term).then_some(self.snapshot.index)
    }

    /// Appends one entry at the end.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        if self.terms.last().is_none_or(|&(_, term)| term != entry.term) {
            self.terms.push((entry.index, entry.term));
        }
        self.held_bytes += entry_bytes(&entry);
        self.entries.push(entry);
    }

    /// Removes every entry from `index` on (never the snapshot). What was durable beyond it no
    /// longer counts.
    pub fn truncate_from(&mut self, index: Index) {
        let keep = index.saturating_sub(1).max(self.snapshot.index);
        if keep < self.last_index() {
            if keep + 1 < self.held_from {
                // Only a broken leader overwrites entries this peer applied; the log stays
                // contiguous all the same.
                self.held_from = keep + 1;
                self.entries.clear();
                self.held_bytes = 0;
            }
            let removed = self.entries.drain((keep + 1 - self.held_from) as usize..);
            self.held_bytes -= removed.map(|e| entry_bytes(&e)).sum::<usize>();
            self.terms.truncate(self.terms.partition_point(|&(first, _)| first <= keep));
            self.read_back.retain(|e| e.index <= keep);
        }
        self.persisted = self.persisted.min(keep);
    }

    /// Replaces the prefix up to `snapshot.index` with `snapshot`. When the log holds the
    /// snapshot's last entry, the entries after it stay (they follow the same prefix, by Log
    /// Matching); otherwise the whole log goes (§7, Figure 13 steps 6 and 7). The snapshot is
    /// durable with the ready that carries it, so everything up to its index counts as
    /// persisted. Returns whether entries after it stayed.
    pub fn compact_to(&mut self, snapshot: Snapshot) -> bool {
        let index = snapshot.index;
        let kept = self.term_at(index) == Some(snapshot.term);
        if kept {
            if index >= self.held_from {
                let removed = self.entries.drain(..(index + 1 - self.held_from) as usize);
                self.held_bytes -= removed.map(|e| entry_bytes(&e)).sum::<usize>();
                self.held_from = index + 1;
            }
            if index >= self.last_index() {
                self.terms.clear();
            } else {
                // The run holding the first entry after the snapshot now starts there.
                let run = self.terms.partition_point(|&(first, _)| first <= index + 1) - 1;
                self.terms.drain(..run);
                self.terms[0].0 = index + 1;
            }
            self.read_back.retain(|e| e.index > index);
        } else {
            self.entries.clear();
            self.held_bytes = 0;
            self.held_from = index + 1;
            self.terms.clear();
            self.read_back.clear();
        }
        self.snapshot = snapshot;
        self.persisted = if kept { self.persisted.max(index) } else { index };
        self.committed = self.committed.max(index);
        kept
    }

    /// When the entries held take more than `budget` bytes, drops from memory the oldest of
    /// those both applied and durable (storage has them) until what is held fits in half the
    /// budget, so that eviction runs now and then rather than at every entry. Returns how
    /// many went.
    pub fn evict(&mut self, budget: usize) -> usize {
        if self.held_bytes <= budget {
            return 0;
        }
        let evictable = self.applied.min(self.persisted);
        let target = budget / 2;
        let mut bytes = self.held_bytes;
        let count = self
            .entries
            .iter()
            .take_while(|e| {
                let go = e.index <= evictable && bytes > target;
                if go {
                    bytes -= entry_bytes(e);
                }
                go
            })
            .count();
        self.entries.drain(..count);
        self.held_from += count as Index;
        self.held_bytes = bytes;
        count
    }

    /// Keeps `entries`, read back from storage, for sending: as far as they are contiguous,
    /// evicted, and of the terms this log has at their indexes (the log may have changed
    /// since the read was asked). Returns how many were kept.
    pub fn set_read_back(&mut self, mut entries: Vec<Entry>) -> usize {
        let start = entries.first().map_or(0, |e| e.index);
        let valid = entries
            .iter()
            .zip(start..)
            .take_while(|&(e, index)| {
                e.index == index
                    && index >= self.first_index()
                    && index < self.held_from
                    && self.term_at(index) == Some(e.term)
            })
            .count();
        entries.truncate(valid);
        self.read_back = entries;
        valid
    }

    /// The driver made everything up to (`index`, `term`) durable. If the log changed under the
    /// driver since (a truncation), the acknowledgement no longer says anything and is ignored.
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if index > self.persisted && self.term_at(index) == Some(term) {
            self.persisted = index;
        }
    }

    /// Entries not yet durable (always held: only durable entries are evicted).
    pub fn unpersisted(&self) -> &[Entry] {
        self.slice(self.persisted + 1, self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::EntryKind;

    fn entry(index: Index, term: Term) -> Entry {
        Entry { index, term, kind: EntryKind::Normal, data: vec![0; 10] }
    }

    fn log_of_terms(terms: &[Term]) -> RaftLog {
        RaftLog::restore(
            Snapshot::default(),
            terms.iter().enumerate().map(|(i, &term)| entry(i as Index + 1, term)).collect(),
        )
    }

    fn indexes(entries: &[Entry]) -> Vec<Index> {
        entries.iter().map(|e| e.index).collect()
    }

    #[test]
    fn term_lookups_and_backtracking_hints() {
        let log = log_of_terms(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(log.term_at(0), Some(0));
        assert_eq!(log.term_at(6), Some(4));
        assert_eq!(log.term_at(7), None);
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.first_index_of_term_at(2), 1);
        assert_eq!(log.first_index_of_term_at(9), 7);
        assert_eq!(log.first_index_of_term_at(0), 0, "index 0, before every run");
        assert_eq!(RaftLog::default().first_index_of_term_at(0), 0);
        assert_eq!(log.last_index_of_term(1), Some(2));
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.last_index_of_term(4), Some(6));
        assert_eq!(log.last_index_of_term(3), None);
        assert_eq!(log.last_index_of_term(5), None);
    }

    #[test]
    fn up_to_date_compares_last_term_then_length() {
        let log = log_of_terms(&[1, 2, 2]);
        assert!(log.is_up_to_date(1, 3));
        assert!(log.is_up_to_date(3, 2));
        assert!(!log.is_up_to_date(2, 2));
        assert!(!log.is_up_to_date(10, 1));
    }

    #[test]
    fn truncation_pulls_back_the_durable_watermark() {
        let mut log = log_of_terms(&[1, 1, 1, 1]);
        assert_eq!(log.persisted, 4);
        log.truncate_from(3);
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.persisted, 2);
        log.push(entry(3, 2));
        assert_eq!(log.unpersisted().len(), 1);
        assert_eq!(
            (log.term_at(3), log.last_term(), log.first_index_of_term_at(3)),
            (Some(2), 2, 3)
        );
        // An acknowledgement for an entry that was since replaced says nothing.
        log.persisted_to(3, 1);
        assert_eq!(log.persisted, 2);
        log.persisted_to(3, 2);
        assert_eq!(log.persisted, 3);
    }

    #[test]
    fn compaction_keeps_the_tail_after_a_matching_snapshot_and_drops_a_conflicting_log() {
        let snap = |index, term| Snapshot { index, term, data: std::sync::Arc::from(&b""[..]) };
        let mut log = log_of_terms(&[1, 1, 2, 2, 3]);
        assert!(log.compact_to(snap(4, 2)));
        assert_eq!((log.first_index(), log.last_index(), log.last_term()), (5, 5, 3));
        assert_eq!((log.term_at(4), log.term_at(3), log.entry(4)), (Some(2), None, None));
        assert_eq!(indexes(log.slice(1, 9)), vec![5]);
        assert_eq!(log.first_index_of_term_at(5), 5, "no lower than the first held");
        assert_eq!(log.last_index_of_term(2), Some(4), "the snapshot's term counts");
        log.truncate_from(2);
        assert_eq!(log.last_index(), 4, "truncation stops at the snapshot");
        // A snapshot at the last entry leaves no run of terms behind it.
        let mut log = log_of_terms(&[1, 2]);
        assert!(log.compact_to(snap(2, 2)));
        assert_eq!((log.last_index(), log.last_term(), log.last_index_of_term(2)), (2, 2, Some(2)));
        log.push(entry(3, 3));
        assert_eq!(
            (log.term_at(2), log.term_at(3), log.first_index_of_term_at(3)),
            (Some(2), Some(3), 3)
        );
        // A snapshot whose last entry this log lacks (or holds with another term) replaces it.
        let mut log = log_of_terms(&[1, 1, 2]);
        log.committed = 2;
        assert!(!log.compact_to(snap(3, 3)));
        assert_eq!((log.last_index(), log.last_term(), log.persisted, log.committed), (3, 3, 3, 3));
        assert!(log.held().is_empty());
    }

    #[test]
    fn slices_clamp_to_the_log() {
        let log = log_of_terms(&[1, 1, 2]);
        assert_eq!(log.slice(2, 10).len(), 2);
        assert!(log.slice(4, 10).is_empty());
        assert_eq!(log.slice(0, 2).len(), 2);
    }

    #[test]
    fn eviction_drops_only_applied_durable_entries_and_keeps_their_terms() {
        let per_entry = entry_bytes(&entry(1, 1));
        let mut log = log_of_terms(&[1, 1, 2, 2, 2, 3, 3, 3]);
        log.committed = 8;
        log.applied = 5;
        assert_eq!(log.evict(8 * per_entry), 0, "within the budget");
        // Over a budget of two entries: evict down to one, but only what was applied.
        assert_eq!(log.evict(2 * per_entry), 5);
        assert_eq!((log.held_from(), log.first_index(), log.last_index()), (6, 1, 8));
        assert_eq!(indexes(log.held()), vec![6, 7, 8]);
        assert_eq!((log.term_at(1), log.term_at(4), log.term_at(6)), (Some(1), Some(2), Some(3)));
        assert_eq!(log.first_index_of_term_at(5), 3);
        assert_eq!(log.last_index_of_term(2), Some(5));
        assert_eq!(log.entry(3), None);
        assert!(log.slice(2, 7).is_empty(), "the start was evicted");
        assert_eq!(indexes(log.slice(6, 7)), vec![6, 7]);
        // Read back: kept as far as it is contiguous, evicted and of the log's terms.
        let kept = log.set_read_back(vec![entry(2, 1), entry(3, 2), entry(4, 9), entry(5, 2)]);
        assert_eq!(kept, 2, "entry 4 has another term than the log's");
        assert_eq!(indexes(log.slice(2, 8)), vec![2, 3], "a slice stays within one stretch");
        assert_eq!(log.entry(3).map(|e| e.term), Some(2));
        assert_eq!(log.set_read_back(vec![entry(6, 3)]), 0, "held already");
        // Unpersisted entries are never evicted.
        let mut log = log_of_terms(&[1, 1, 1]);
        log.committed = 3;
        log.applied = 3;
        log.push(entry(4, 1));
        assert_eq!(log.evict(0), 3);
        assert_eq!(indexes(log.unpersisted()), vec![4]);
    }

    #[test]
    fn compaction_and_truncation_around_evicted_entries() {
        let snap = |index, term| Snapshot { index, term, data: std::sync::Arc::from(&b""[..]) };
        let mut log = log_of_terms(&[1, 1, 2, 2, 3, 3]);
        log.committed = 6;
        log.applied = 4;
        assert_eq!(log.evict(0), 4);
        log.set_read_back(vec![entry(2, 1), entry(3, 2), entry(4, 2)]);
        // A snapshot below the evicted stretch leaves what is held alone.
        assert!(log.compact_to(snap(2, 1)));
        assert_eq!((log.first_index(), log.held_from(), log.term_at(3)), (3, 5, Some(2)));
        assert_eq!(indexes(log.slice(3, 6)), vec![3, 4], "read back beyond the snapshot stays");
        // One within the held entries drops those it covers.
        assert!(log.compact_to(snap(5, 3)));
        assert_eq!((log.held_from(), indexes(log.held())), (6, vec![6]));
        assert!(log.slice(3, 4).is_empty());
        // A broken leader's truncation below the held entries leaves the log contiguous.
        let mut log = log_of_terms(&[1, 1, 1, 1]);
        log.committed = 4;
        log.applied = 4;
        log.evict(0);
        log.truncate_from(2);
        assert_eq!((log.last_index(), log.held_from(), log.persisted), (1, 2, 1));
        log.push(entry(2, 2));
        assert_eq!((log.term_at(2), log.term_at(1)), (Some(2), Some(1)));
    }
}

//! The peer's view of the replicated log: the entries it holds, how far they are durable,
//! committed and applied.

use super::types::{Entry, Index, Snapshot, Term};

/// The log a peer holds in memory, with its three watermarks:
/// `applied <= committed` and `persisted <= last_index()`.
///
/// The entries up to the snapshot's index are compacted away (§7): the log holds
/// `entries[i]` at index `snapshot.index + 1 + i`, and of the compacted prefix only the
/// snapshot's index and term, which the log check of the next entry needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    /// The latest snapshot, standing in for the entries up to its index; kept whole so that a
    /// leader can send it. Index 0 (the default) when nothing was compacted.
    snapshot: Snapshot,
    entries: Vec<Entry>,
    /// The highest index known committed (§5.3).
    pub committed: Index,
    /// The highest index handed to the service to apply (a snapshot it restored included).
    pub applied: Index,
    /// The highest index the driver has made durable (or will have, with the ready that
    /// carries a snapshot covering it).
    pub persisted: Index,
}

impl RaftLog {
    /// A log restored from storage, everything in it durable: the snapshot the service restores
    /// from (applied and committed, then) and the entries after it.
    pub fn restore(snapshot: Snapshot, entries: Vec<Entry>) -> RaftLog {
        let persisted = snapshot.index + entries.len() as Index;
        let base = snapshot.index;
        RaftLog { snapshot, entries, committed: base, applied: base, persisted }
    }

    /// The snapshot standing in for the compacted prefix.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The first index held as an entry.
    pub fn first_index(&self) -> Index {
        self.snapshot.index + 1
    }

    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot.term, |e| e.term)
    }

    /// The term of the entry at `index`; index 0 has term 0 and the snapshot's index its term;
    /// None past the end or within the compacted prefix.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index <= self.snapshot.index {
            return None;
        }
        self.entries.get((index - self.first_index()) as usize)
    }

    /// The entries held, from [`first_index`](Self::first_index).
    pub fn all(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries from `lo` (inclusive) to `hi` (inclusive), clamped to what is held.
    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        let (lo, hi) = (lo.max(self.first_index()), hi.min(self.last_index()));
        if lo > hi {
            return &[];
        }
        let base = self.first_index();
        &self.entries[(lo - base) as usize..=(hi - base) as usize]
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at least as
    /// up-to-date as this log (§5.4.1): the later last term wins; with equal terms, the longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The first index of the term of the entry at `index` (for fast backtracking), no lower
    /// than the first index held.
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term_at(index) else {
            return self.last_index() + 1;
        };
        let mut first = index;
        while first > self.first_index() && self.term_at(first - 1) == Some(term) {
            first -= 1;
        }
        first
    }

    /// The last index whose entry has `term`, if the log holds any entry of that term.
    pub fn last_index_of_term(&self, term: Term) -> Option<Index> {
        // Terms only grow along the log, so search from the end and stop below `term`.
        for e in self.entries.iter().rev() {
            if e.term == term {
                return Some(e.index);
            }
            if e.term < term {
                return None;
            }
        }
        (self.snapshot.index > 0 && self.snapshot.term == term).then_some(self.snapshot.index)
    }

    /// Appends one entry at the end.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Removes every entry from `index` on (never the snapshot). What was durable beyond it no
    /// longer counts.
    pub fn truncate_from(&mut self, index: Index) {
        let keep = index.saturating_sub(1).max(self.snapshot.index);
        if keep < self.last_index() {
            self.entries.truncate((keep - self.snapshot.index) as usize);
        }
        self.persisted = self.persisted.min(keep);
    }

    /// Replaces the prefix up to `snapshot.index` with `snapshot`. When the log holds the
    /// snapshot's last entry, the entries after it stay (they follow the same prefix, by Log
    /// Matching); otherwise the whole log goes (§7, Figure 13 steps 6 and 7). The snapshot is
    /// durable with the ready that carries it, so everything up to its index counts as
    /// persisted. Returns whether entries after it stayed.
    pub fn compact_to(&mut self, snapshot: Snapshot) -> bool {
        let kept = self.term_at(snapshot.index) == Some(snapshot.term);
        if kept {
            let drop = (snapshot.index - self.snapshot.index) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        let index = snapshot.index;
        self.snapshot = snapshot;
        self.persisted = if kept { self.persisted.max(index) } else { index };
        self.committed = self.committed.max(index);
        kept
    }

    /// The driver made everything up to (`index`, `term`) durable. If the log changed under the
    /// driver since (a truncation), the acknowledgement no longer says anything and is ignored.
    pub fn persisted_to(&mut self, index: Index, term: Term) {
        if index > self.persisted && self.term_at(index) == Some(term) {
            self.persisted = index;
        }
    }

    /// Entries not yet durable.
    pub fn unpersisted(&self) -> &[Entry] {
        self.slice(self.persisted + 1, self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::types::EntryKind;

    fn log_of_terms(terms: &[Term]) -> RaftLog {
        RaftLog::restore(
            Snapshot::default(),
            terms
                .iter()
                .enumerate()
                .map(|(i, &term)| Entry {
                    index: i as Index + 1,
                    term,
                    kind: EntryKind::Normal,
                    data: vec![],
                })
                .collect(),
        )
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
        assert_eq!(log.last_index_of_term(2), Some(5));
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
        log.push(Entry { index: 3, term: 2, kind: EntryKind::Normal, data: vec![] });
        assert_eq!(log.unpersisted().len(), 1);
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
        assert_eq!(log.slice(1, 9).iter().map(|e| e.index).collect::<Vec<_>>(), vec![5]);
        assert_eq!(log.first_index_of_term_at(5), 5, "no lower than the first held");
        assert_eq!(log.last_index_of_term(2), Some(4), "the snapshot's term counts");
        log.truncate_from(2);
        assert_eq!(log.last_index(), 4, "truncation stops at the snapshot");
        // A snapshot whose last entry this log lacks (or holds with another term) replaces it.
        let mut log = log_of_terms(&[1, 1, 2]);
        log.committed = 2;
        assert!(!log.compact_to(snap(3, 3)));
        assert_eq!((log.last_index(), log.last_term(), log.persisted, log.committed), (3, 3, 3, 3));
        assert!(log.all().is_empty());
    }

    #[test]
    fn slices_clamp_to_the_log() {
        let log = log_of_terms(&[1, 1, 2]);
        assert_eq!(log.slice(2, 10).len(), 2);
        assert!(log.slice(4, 10).is_empty());
        assert_eq!(log.slice(0, 2).len(), 2);
    }
}

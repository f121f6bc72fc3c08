//! The peer's view of the replicated log: the entries it holds, how far they are durable,
//! committed and applied.

use super::types::{Entry, Index, Term};

/// The log a peer holds in memory, with its three watermarks:
/// `applied <= committed` and `persisted <= last_index()`.
///
/// The first entry has index 1 and `entries[i]` has index `i + 1`. (Compaction will add an
/// offset here; everything outside this file already speaks in indexes.)
#[derive(Clone, Debug, Default)]
pub(crate) struct RaftLog {
    entries: Vec<Entry>,
    /// The highest index known committed (§5.3).
    pub committed: Index,
    /// The highest index handed to the service to apply.
    pub applied: Index,
    /// The highest index the driver has made durable.
    pub persisted: Index,
}

impl RaftLog {
    /// A log restored from storage: everything in it is durable, nothing known committed.
    pub fn restore(entries: Vec<Entry>) -> RaftLog {
        let persisted = entries.len() as Index;
        RaftLog { entries, committed: 0, applied: 0, persisted }
    }

    pub fn last_index(&self) -> Index {
        self.entries.len() as Index
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// The term of the entry at `index`; index 0 has term 0; None past the end.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index == 0 {
            return Some(0);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        if index == 0 {
            return None;
        }
        self.entries.get((index - 1) as usize)
    }

    pub fn all(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries from `lo` (inclusive) to `hi` (inclusive), clamped to what exists.
    pub fn slice(&self, lo: Index, hi: Index) -> &[Entry] {
        let hi = hi.min(self.last_index());
        if lo == 0 || lo > hi {
            return &[];
        }
        &self.entries[(lo - 1) as usize..hi as usize]
    }

    /// Whether a candidate whose log ends at (`last_index`, `last_term`) is at least as
    /// up-to-date as this log (§5.4.1): the later last term wins; with equal terms, the longer log.
    pub fn is_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The first index of the term of the entry at `index` (for fast backtracking).
    pub fn first_index_of_term_at(&self, index: Index) -> Index {
        let Some(term) = self.term_at(index) else {
            return self.last_index() + 1;
        };
        let mut first = index;
        while first > 1 && self.term_at(first - 1) == Some(term) {
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
        None
    }

    /// Appends one entry at the end.
    pub fn push(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index, self.last_index() + 1);
        self.entries.push(entry);
    }

    /// Removes every entry from `index` on. What was durable beyond it no longer counts.
    pub fn truncate_from(&mut self, index: Index) {
        let keep = index.saturating_sub(1);
        if keep < self.last_index() {
            self.entries.truncate(keep as usize);
        }
        self.persisted = self.persisted.min(keep);
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
    fn slices_clamp_to_the_log() {
        let log = log_of_terms(&[1, 1, 2]);
        assert_eq!(log.slice(2, 10).len(), 2);
        assert!(log.slice(4, 10).is_empty());
        assert!(log.slice(0, 2).is_empty());
    }
}

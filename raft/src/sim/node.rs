//! One simulated peer: its protocol core while it runs, the durable image its storage holds
//! across crashes, and where its applier stands.

use crate::core::{Config, Entry, HardState, Index, RawNode, Ready, Role, Term};

/// What a peer's storage holds: exactly what every [`Ready`] it processed wrote. Persistence is
/// instant in the simulator, so a crash keeps all of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableImage {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The log, from index 1: `entries[i]` has index `i + 1`.
    pub entries: Vec<Entry>,
}

impl DurableImage {
    /// Writes a ready's hard state and entries (an entry at index `i` replaces the stored entry
    /// at `i` and everything after it).
    pub fn write(&mut self, ready: &Ready) {
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
        if let Some(first) = ready.entries.first() {
            self.entries.truncate((first.index - 1) as usize);
            self.entries.extend_from_slice(&ready.entries);
        }
    }

    /// The index of the last durable entry.
    pub fn last_index(&self) -> Index {
        self.entries.len() as Index
    }
}

/// A simulated peer.
pub struct SimNode {
    /// The running core; `None` while crashed.
    pub(crate) raw: Option<RawNode>,
    pub(crate) config: Config,
    pub(crate) image: DurableImage,
    /// Bumped at every restart, so that ticks and messages meant for an earlier life are dropped.
    pub(crate) incarnation: u32,
    /// The next index this incarnation must apply.
    pub(crate) next_apply: Index,
    /// The highest index applied by any incarnation.
    pub(crate) applied_ever: Index,
    /// Role and term after the last step, to notice changes.
    pub(crate) last_role: Role,
    pub(crate) last_term: Term,
}

impl SimNode {
    /// A peer starting with empty storage.
    pub(crate) fn new(config: Config, seed: u64) -> SimNode {
        let raw = RawNode::new(config.clone(), HardState::default(), Vec::new(), seed)
            .unwrap_or_else(|e| panic!("the simulator's configuration is invalid: {e}"));
        let (last_role, last_term) = (raw.status().role, raw.status().term);
        SimNode {
            raw: Some(raw),
            config,
            image: DurableImage::default(),
            incarnation: 0,
            next_apply: 1,
            applied_ever: 0,
            last_role,
            last_term,
        }
    }

    /// Whether the peer is running.
    pub fn is_alive(&self) -> bool {
        self.raw.is_some()
    }

    /// Stops the peer; only its durable image survives.
    pub(crate) fn crash(&mut self) {
        self.raw = None;
    }

    /// A new incarnation from the durable image; it re-applies from index 1.
    pub(crate) fn restart(&mut self, seed: u64) {
        self.incarnation += 1;
        let raw = RawNode::new(
            self.config.clone(),
            self.image.hard_state,
            self.image.entries.clone(),
            seed,
        )
        .unwrap_or_else(|e| panic!("the simulator's configuration is invalid: {e}"));
        let s = raw.status();
        self.last_role = s.role;
        self.last_term = s.term;
        self.raw = Some(raw);
        self.next_apply = 1;
    }

    /// The durable image.
    pub fn image(&self) -> &DurableImage {
        &self.image
    }

    /// The running core, if any.
    pub fn raw(&self) -> Option<&RawNode> {
        self.raw.as_ref()
    }

    /// The highest index this peer applied, in this or an earlier incarnation.
    pub fn applied_ever(&self) -> Index {
        self.applied_ever
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::EntryKind;

    fn e(index: Index, term: Term) -> Entry {
        Entry { index, term, kind: EntryKind::Normal, data: vec![index as u8] }
    }

    #[test]
    fn a_write_replaces_everything_from_its_first_index() {
        let mut img = DurableImage::default();
        img.write(&Ready { entries: vec![e(1, 1), e(2, 1), e(3, 1)], ..Ready::default() });
        img.write(&Ready {
            hard_state: Some(HardState { term: 2, vote: Some(1) }),
            entries: vec![e(2, 2)],
            ..Ready::default()
        });
        assert_eq!(img.entries, vec![e(1, 1), e(2, 2)]);
        assert_eq!(img.hard_state, HardState { term: 2, vote: Some(1) });
        img.write(&Ready::default());
        assert_eq!(img.last_index(), 2);
    }
}

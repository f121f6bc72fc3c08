//! The simulated service: the state machine every simulated peer applies its committed entries
//! to, and snapshots.
//!
//! Its state is a chain of digests, one link per applied entry, so that two peers with the same
//! state applied the same entries, in the same order, up to the same index. That is what the
//! invariants need to check a snapshot against the committed entries it stands for, in 16 bytes
//! whatever the history's length.

use super::invariants::digest;
use crate::core::{Entry, Index};
use std::hash::{Hash, Hasher};

/// The service's state after applying every entry up to `index`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ServiceState {
    /// The last index applied (0: nothing yet).
    pub index: Index,
    /// The digest chain of the entries `1..=index`.
    pub chain: u64,
}

impl ServiceState {
    /// The state after also applying `e`, the entry at `self.index + 1`.
    pub fn apply(&mut self, e: &Entry) {
        self.index = e.index;
        self.chain = link(self.chain, digest(e.kind, &e.data));
    }

    /// The state as a snapshot's data: 16 bytes, little endian.
    pub fn encode(&self) -> Vec<u8> {
        [self.index.to_le_bytes(), self.chain.to_le_bytes()].concat()
    }

    /// The state a snapshot's data holds, or `None` when it is not 16 bytes.
    pub fn decode(data: &[u8]) -> Option<ServiceState> {
        let index = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
        let chain = u64::from_le_bytes(data.get(8..)?.try_into().ok()?);
        Some(ServiceState { index, chain })
    }
}

/// The chain's next link: the previous link and an entry's digest.
pub fn link(previous: u64, entry_digest: u64) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (previous, entry_digest).hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::EntryKind;

    fn e(index: Index, v: u8) -> Entry {
        Entry { index, term: 1, kind: EntryKind::Normal, data: vec![v] }
    }

    #[test]
    fn the_state_names_the_entries_and_their_order_and_survives_encoding() {
        let (mut a, mut b) = (ServiceState::default(), ServiceState::default());
        a.apply(&e(1, 1));
        a.apply(&e(2, 2));
        b.apply(&e(1, 2));
        b.apply(&e(2, 1));
        assert_eq!((a.index, b.index), (2, 2));
        assert_ne!(a.chain, b.chain, "the same entries in another order");
        assert_eq!(ServiceState::decode(&a.encode()), Some(a));
        assert_eq!(ServiceState::decode(&[1, 2, 3]), None);
    }
}

//! One simulated peer: its protocol core while it runs, the durable image its storage holds
//! across crashes, and where its applier stands.

use rand::Rng;

use super::invariants::LogView;
use super::service::ServiceState;
use crate::core::{
    Config, Coverage, Entry, HardState, Index, RawNode, Ready, Role, Snapshot, Term,
};
use crate::storage::CrashFamily;

/// What a peer's storage holds: exactly what every [`Ready`] it processed wrote. Persistence is
/// instant in the simulator, so a crash keeps all of it; a power failure
/// ([`Sim::power_fail`](super::Sim::power_fail)) strikes during a sync and keeps part of one
/// ready ([`DurableImage::write_partially`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurableImage {
    /// The durable term and vote.
    pub hard_state: HardState,
    /// The latest durable snapshot (index 0: none).
    pub snapshot: Snapshot,
    /// The log after the snapshot: `entries[i]` has index `snapshot.index + 1 + i`.
    pub entries: Vec<Entry>,
}

impl DurableImage {
    /// Writes a ready's hard state, snapshot and entries, in that order. A snapshot replaces
    /// the log up to its index, keeping the entries after it only when the log holds its last
    /// entry with its term (Figure 13); an entry at index `i` replaces the stored entry at `i`
    /// and everything after it.
    pub fn write(&mut self, ready: &Ready) {
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
        if let Some(snapshot) = &ready.snapshot {
            self.install(snapshot);
        }
        if let Some(first) = ready.entries.first() {
            self.truncate_from(first.index);
            self.entries.extend_from_slice(&ready.entries);
        }
    }

    /// The log as the invariants read it.
    pub fn view(&self) -> LogView<'_> {
        LogView {
            snapshot_index: self.snapshot.index,
            snapshot_term: self.snapshot.term,
            entries: &self.entries,
        }
    }

    /// The durable entries in `range`, as far as the log holds them from its start (none when
    /// the start was compacted).
    pub fn read(&self, range: std::ops::Range<Index>) -> Vec<Entry> {
        let view = self.view();
        range.map_while(|index| view.entry(index).cloned()).collect()
    }

    /// The index of the last durable entry (the snapshot's when no entry follows it).
    pub fn last_index(&self) -> Index {
        self.snapshot.index + self.entries.len() as Index
    }

    /// The size of the durable Raft state without the snapshot's data, as the labs measure it
    /// (`persister.RaftStateSize()`): the encoded hard state, the snapshot's index and term, and
    /// the encoded entries.
    pub fn raft_state_bytes(&self) -> usize {
        use postcard::experimental::serialized_size;
        let size = |r: Result<usize, postcard::Error>| r.expect("the durable state encodes");
        size(serialized_size(&self.hard_state))
            + size(serialized_size(&(self.snapshot.index, self.snapshot.term)))
            + self.entries.iter().map(|e| size(serialized_size(e))).sum::<usize>()
    }

    /// Replaces the log up to `snapshot.index` with the snapshot (Figure 13).
    fn install(&mut self, snapshot: &Snapshot) {
        let kept = self.view().after_install(snapshot.index, snapshot.term).entries.len();
        self.entries.drain(..self.entries.len() - kept);
        self.snapshot = snapshot.clone();
    }

    /// Drops the entries from `index` on (none of the snapshot's).
    fn truncate_from(&mut self, index: Index) {
        let keep = index.saturating_sub(self.snapshot.index + 1);
        self.entries.truncate(keep as usize);
    }

    /// Writes part of a ready, as a power failure during its sync leaves it, in `family`'s
    /// crash states. The sync's steps are those of
    /// [`FileStorage`](crate::storage::FileStorage), in its order: the hard state (replaced
    /// atomically), the snapshot (replaced atomically, then the log it covers dropped), the cut
    /// of a replaced suffix, the appended entries. The crash comes at one step, drawn from
    /// `rng`: the steps before it are durable; of the step it hits, `lose-unsynced` keeps
    /// nothing, `torn-prefix` keeps a snapshot or not, a cut or not and a prefix of the entries
    /// (a torn last record is cut off on recovery), `metadata-without-data` keeps a cut (a size
    /// change) but no entry nor snapshot. A hard state is never half written. Returns what was
    /// kept, or `None` when the ready writes nothing (the crash then waits for one that does).
    pub fn write_partially(
        &mut self,
        ready: &Ready,
        family: CrashFamily,
        rng: &mut impl Rng,
    ) -> Option<PartialWrite> {
        let mut after_snapshot = self.view();
        if let Some(s) = &ready.snapshot {
            after_snapshot = after_snapshot.after_install(s.index, s.term);
        }
        let cuts = ready.entries.first().is_some_and(|e| e.index <= after_snapshot.last_index());
        let mut steps = Vec::new();
        if ready.hard_state.is_some_and(|hs| hs != self.hard_state) {
            steps.push(Step::HardState);
        }
        if ready.snapshot.is_some() {
            steps.push(Step::Snapshot);
        }
        if cuts {
            steps.push(Step::Cut);
        }
        if !ready.entries.is_empty() {
            steps.push(Step::Append);
        }
        let crash_at = *steps.get(rng.gen_range(0..steps.len().max(1)))?;
        let mut kept = PartialWrite {
            crashed_at: crash_at,
            hard_state: false,
            snapshot: false,
            cut: false,
            entries: 0,
        };
        for &step in steps.iter().filter(|&&step| step <= crash_at) {
            let done = step < crash_at;
            match step {
                Step::HardState if done => {
                    self.hard_state = ready.hard_state.expect("a hard state step");
                    kept.hard_state = true;
                }
                Step::HardState => {}
                Step::Snapshot => {
                    let keep = done
                        || match family {
                            CrashFamily::TornPrefix => rng.gen_bool(0.5),
                            CrashFamily::LoseUnsynced | CrashFamily::MetadataWithoutData => false,
                        };
                    if keep {
                        self.install(ready.snapshot.as_ref().expect("a snapshot step"));
                        kept.snapshot = true;
                    }
                }
                Step::Cut => {
                    let keep = done
                        || match family {
                            CrashFamily::LoseUnsynced => false,
                            CrashFamily::TornPrefix => rng.gen_bool(0.5),
                            CrashFamily::MetadataWithoutData => true,
                        };
                    if keep {
                        self.truncate_from(ready.entries[0].index);
                        kept.cut = true;
                    }
                }
                Step::Append => {
                    let n = match family {
                        CrashFamily::TornPrefix => rng.gen_range(0..=ready.entries.len()),
                        _ => 0,
                    };
                    // The cut was durable before the append's sync began.
                    self.truncate_from(ready.entries[0].index);
                    self.entries.extend_from_slice(&ready.entries[..n]);
                    kept.entries = n;
                }
            }
        }
        Some(kept)
    }
}

/// A step of a sync, in [`FileStorage`](crate::storage::FileStorage)'s order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    HardState,
    Snapshot,
    Cut,
    Append,
}

/// What a power failure during a sync left of a ready's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialWrite {
    /// The step whose sync the power failure hit.
    pub crashed_at: Step,
    /// Whether the new hard state, the snapshot, the cut of a replaced suffix, and how many of
    /// the appended entries reached the disk.
    pub hard_state: bool,
    pub snapshot: bool,
    pub cut: bool,
    pub entries: usize,
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
    /// The service's state in this incarnation: what it applied, or restored from a snapshot.
    pub(crate) service: ServiceState,
    /// The service snapshots once it applied this many entries past the latest snapshot
    /// (`None`: never).
    pub(crate) snapshot_every: Option<Index>,
    /// A power failure to happen at this incarnation's next sync (its crash family, the seed
    /// of its choices), or when the virtual clock passes the deadline (µs) without one.
    pub(crate) power_failure: Option<(CrashFamily, u64, u64)>,
    /// Role and term after the last step, to notice changes.
    pub(crate) last_role: Role,
    pub(crate) last_term: Term,
    /// The protocol decisions of the earlier incarnations.
    pub(crate) coverage_before: Coverage,
}

impl SimNode {
    /// A peer starting with empty storage, whose service snapshots every `snapshot_every`
    /// applied entries (`None`: never).
    pub(crate) fn new(config: Config, seed: u64, snapshot_every: Option<Index>) -> SimNode {
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
            service: ServiceState::default(),
            snapshot_every,
            power_failure: None,
            last_role,
            last_term,
            coverage_before: Coverage::default(),
        }
    }

    /// Whether the peer is running.
    pub fn is_alive(&self) -> bool {
        self.raw.is_some()
    }

    /// Stops the peer; only its durable image survives.
    pub(crate) fn crash(&mut self) {
        if let Some(raw) = self.raw.take() {
            self.coverage_before.merge(raw.coverage());
        }
        self.power_failure = None;
    }

    /// A new incarnation from the durable image: its service restores the durable snapshot,
    /// and it re-applies the entries after it as the commit index becomes known.
    pub(crate) fn restart(&mut self, seed: u64) {
        self.incarnation += 1;
        let image = &self.image;
        let raw = RawNode::restore(
            self.config.clone(),
            image.hard_state,
            image.snapshot.clone(),
            image.entries.clone(),
            seed,
        )
        .unwrap_or_else(|e| panic!("the durable image cannot restart a peer: {e}"));
        let s = raw.status();
        self.last_role = s.role;
        self.last_term = s.term;
        self.raw = Some(raw);
        self.service = ServiceState::decode(&image.snapshot.data).unwrap_or_default();
        self.next_apply = image.snapshot.index + 1;
    }

    /// Whether the service is due to snapshot its state.
    pub(crate) fn snapshot_due(&self) -> bool {
        let latest = self.raw.as_ref().map_or(0, |raw| raw.latest_snapshot().index);
        self.snapshot_every.is_some_and(|every| self.service.index >= latest + every)
    }

    /// The durable image.
    pub fn image(&self) -> &DurableImage {
        &self.image
    }

    /// The running core, if any.
    pub fn raw(&self) -> Option<&RawNode> {
        self.raw.as_ref()
    }

    /// The protocol decisions this peer took, over all its incarnations.
    pub fn coverage(&self) -> Coverage {
        let mut all = self.coverage_before.clone();
        if let Some(raw) = &self.raw {
            all.merge(raw.coverage());
        }
        all
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

    /// An image holding 1..=3 of term 1, and a ready that votes in term 2 and replaces 3 with
    /// 3..=5 of term 2.
    fn image_and_ready() -> (DurableImage, Ready) {
        let mut img = DurableImage::default();
        img.write(&Ready { entries: vec![e(1, 1), e(2, 1), e(3, 1)], ..Ready::default() });
        let ready = Ready {
            hard_state: Some(HardState { term: 2, vote: Some(1) }),
            entries: vec![e(3, 2), e(4, 2), e(5, 2)],
            ..Ready::default()
        };
        (img, ready)
    }

    #[test]
    fn a_power_failure_keeps_the_steps_before_it_and_its_family_of_the_one_it_hits() {
        use rand::SeedableRng;
        let mut seen = std::collections::BTreeSet::new();
        for family in CrashFamily::ALL {
            for seed in 0..200 {
                let (mut img, ready) = image_and_ready();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let kept = img.write_partially(&ready, family, &mut rng).expect("a write");
                // The hard state is whole, old or new, and new once a later step began.
                assert_eq!(kept.hard_state, kept.crashed_at > Step::HardState);
                let term = if kept.hard_state { 2 } else { 0 };
                assert_eq!(img.hard_state.term, term);
                // The log is the old one, or cut at 3 followed by a prefix of the new entries.
                let expected: Vec<Entry> = match (kept.cut, kept.entries) {
                    (false, 0) => vec![e(1, 1), e(2, 1), e(3, 1)],
                    (true, n) => [vec![e(1, 1), e(2, 1)], ready.entries[..n].to_vec()].concat(),
                    (false, n) => panic!("{n} entries appended without the cut before them"),
                };
                assert_eq!(img.entries, expected, "{family} {kept:?}");
                match family {
                    CrashFamily::LoseUnsynced => assert_eq!(kept.entries, 0),
                    CrashFamily::MetadataWithoutData => {
                        assert_eq!(kept.entries, 0);
                        assert_eq!(kept.cut, kept.crashed_at >= Step::Cut);
                    }
                    CrashFamily::TornPrefix => {}
                }
                seen.insert((family, kept.crashed_at, kept.cut, kept.entries));
            }
        }
        // Every step gets hit, and torn prefixes of every length are kept.
        for step in [Step::HardState, Step::Cut, Step::Append] {
            assert!(seen.iter().any(|s| s.1 == step), "{step:?}");
        }
        for n in 0..=3 {
            assert!(seen.contains(&(CrashFamily::TornPrefix, Step::Append, true, n)), "{n}");
        }
    }

    #[test]
    fn a_ready_that_writes_nothing_is_no_place_for_a_power_failure() {
        use rand::SeedableRng;
        let (mut img, _) = image_and_ready();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let unchanged = Ready { hard_state: Some(img.hard_state), ..Ready::default() };
        assert_eq!(img.write_partially(&unchanged, CrashFamily::TornPrefix, &mut rng), None);
        assert_eq!(img.last_index(), 3);
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

    #[test]
    fn a_snapshot_replaces_the_log_it_covers_before_the_entries_are_written() {
        let (mut img, _) = image_and_ready();
        let snapshot = Snapshot { index: 2, term: 1, data: vec![9].into() };
        img.write(&Ready { snapshot: Some(snapshot.clone()), ..Ready::default() });
        assert_eq!(
            (img.snapshot.index, img.entries.clone(), img.last_index()),
            (2, vec![e(3, 1)], 3)
        );
        img.write(&Ready { entries: vec![e(3, 2), e(4, 2)], ..Ready::default() });
        assert_eq!(img.entries, vec![e(3, 2), e(4, 2)]);
        // Another term at the snapshot's index: the whole log goes.
        let other = Snapshot { index: 3, term: 1, data: vec![8].into() };
        img.write(&Ready { snapshot: Some(other), entries: vec![e(4, 3)], ..Ready::default() });
        assert_eq!((img.snapshot.index, img.entries.clone()), (3, vec![e(4, 3)]));
        assert!(img.raft_state_bytes() < 30, "{} bytes", img.raft_state_bytes());
    }

    #[test]
    fn a_power_failure_at_the_snapshot_keeps_it_whole_or_not_at_all() {
        use rand::SeedableRng;
        let mut outcomes = std::collections::BTreeSet::new();
        for family in CrashFamily::ALL {
            for seed in 0..100 {
                let (mut img, _) = image_and_ready();
                let snapshot = Snapshot { index: 3, term: 1, data: vec![9].into() };
                let ready = Ready {
                    snapshot: Some(snapshot),
                    entries: vec![e(4, 1), e(5, 1)],
                    ..Ready::default()
                };
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let kept = img.write_partially(&ready, family, &mut rng).expect("a write");
                assert_eq!(img.snapshot.index == 3, kept.snapshot, "{family} {kept:?}");
                if kept.snapshot {
                    assert_eq!(img.entries, ready.entries[..kept.entries].to_vec());
                } else {
                    assert_eq!((img.last_index(), kept.entries), (3, 0), "{family} {kept:?}");
                }
                outcomes.insert((kept.crashed_at, kept.snapshot));
            }
        }
        for outcome in [(Step::Snapshot, false), (Step::Snapshot, true), (Step::Append, true)] {
            assert!(outcomes.contains(&outcome), "{outcome:?} in {outcomes:?}");
        }
    }
}

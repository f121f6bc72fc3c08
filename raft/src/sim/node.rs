//! One simulated peer: its protocol core while it runs, the durable image its storage holds
//! across crashes, and where its applier stands.

use rand::Rng;

use crate::core::{Config, Coverage, Entry, HardState, Index, RawNode, Ready, Role, Term};
use crate::storage::CrashFamily;

/// What a peer's storage holds: exactly what every [`Ready`] it processed wrote. Persistence is
/// instant in the simulator, so a crash keeps all of it; a power failure
/// ([`Sim::power_fail`](super::Sim::power_fail)) strikes during a sync and keeps part of one
/// ready ([`DurableImage::write_partially`]).
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

    /// Writes part of a ready, as a power failure during its sync leaves it, in `family`'s
    /// crash states. The sync's steps are those of
    /// [`FileStorage`](crate::storage::FileStorage), in its order: the hard state (replaced
    /// atomically), the cut of a replaced suffix, the appended entries. The crash comes at one
    /// step, drawn from `rng`: the steps before it are durable; of the step it hits,
    /// `lose-unsynced` keeps nothing, `torn-prefix` keeps a cut or not and a prefix of the
    /// entries (a torn last record is cut off on recovery), `metadata-without-data` keeps a
    /// cut (a size change) but no entry. A hard state is never half written. Returns what
    /// was kept, or `None` when the ready writes nothing (the crash then waits for one that
    /// does).
    pub fn write_partially(
        &mut self,
        ready: &Ready,
        family: CrashFamily,
        rng: &mut impl Rng,
    ) -> Option<PartialWrite> {
        let cuts = ready.entries.first().is_some_and(|e| e.index <= self.last_index());
        let mut steps = Vec::new();
        if ready.hard_state.is_some_and(|hs| hs != self.hard_state) {
            steps.push(Step::HardState);
        }
        if cuts {
            steps.push(Step::Cut);
        }
        if !ready.entries.is_empty() {
            steps.push(Step::Append);
        }
        let crash_at = *steps.get(rng.gen_range(0..steps.len().max(1)))?;
        let mut kept =
            PartialWrite { crashed_at: crash_at, hard_state: false, cut: false, entries: 0 };
        for &step in steps.iter().filter(|&&step| step <= crash_at) {
            let done = step < crash_at;
            match step {
                Step::HardState if done => {
                    self.hard_state = ready.hard_state.expect("a hard state step");
                    kept.hard_state = true;
                }
                Step::HardState => {}
                Step::Cut => {
                    let keep = done
                        || match family {
                            CrashFamily::LoseUnsynced => false,
                            CrashFamily::TornPrefix => rng.gen_bool(0.5),
                            CrashFamily::MetadataWithoutData => true,
                        };
                    if keep {
                        self.entries.truncate((ready.entries[0].index - 1) as usize);
                        kept.cut = true;
                    }
                }
                Step::Append => {
                    let n = match family {
                        CrashFamily::TornPrefix => rng.gen_range(0..=ready.entries.len()),
                        _ => 0,
                    };
                    // The cut was durable before the append's sync began.
                    self.entries.truncate((ready.entries[0].index - 1) as usize);
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
    Cut,
    Append,
}

/// What a power failure during a sync left of a ready's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartialWrite {
    /// The step whose sync the power failure hit.
    pub crashed_at: Step,
    /// Whether the new hard state, the cut of a replaced suffix, and how many of the appended
    /// entries reached the disk.
    pub hard_state: bool,
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
}

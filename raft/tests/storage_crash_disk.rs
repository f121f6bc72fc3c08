//! `FileStorage` on a `CrashDisk`: random appends, overwrites, hard state changes and snapshots
//! (compacting the log, or replacing it as a leader's does) in small segments, a crash at a
//! random sync in every crash family, and a reopen on the real disk. Every crash must be
//! recovered from, with everything synced kept.

use std::sync::Arc;

use raft::storage::{CrashDisk, CrashFamily, FileStorage, FileStorageOptions, Storage};
use raft::{Entry, EntryKind, HardState, Index, Snapshot};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeds per family; each seed is one crash.
const SEEDS: u64 = 150;

/// What the storage holds, as written by the test.
#[derive(Clone, Debug, PartialEq)]
struct Image {
    hard_state: HardState,
    snapshot: Snapshot,
    /// The whole log from index 1: `log[k]` is entry `k + 1`; `None` where a leader's
    /// snapshot stands for entries this storage never held.
    log: Vec<Option<Entry>>,
}

impl Image {
    /// The entries after index `after`, as far as they are known.
    fn after(&self, after: Index) -> Vec<Entry> {
        self.log.iter().skip(after as usize).map_while(|e| e.clone()).collect()
    }
}

fn options() -> FileStorageOptions {
    FileStorageOptions { segment_bytes: 400 }
}

/// Writes at random until the armed crash happens (or crashes at the end); returns the last
/// synced image, the image as written, and the first index changed since the last sync.
fn crash_run(
    family: CrashFamily,
    seed: u64,
    dir: &std::path::Path,
) -> (Image, Image, Index, String) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // The snapshots' choices come from a stream of their own.
    let mut snapshots = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_5a45);
    let disk = CrashDisk::new(dir.join("trash")).unwrap();
    let empty =
        Image { hard_state: HardState::default(), snapshot: Snapshot::default(), log: Vec::new() };
    // One crash in five while the storage is being created (its directory, hard state and
    // first segment), the others at a later sync.
    let while_creating = rng.gen_bool(0.2);
    if while_creating {
        disk.crash_at_sync(family, seed, rng.gen_range(0..5)).unwrap();
    }
    let opened = FileStorage::open_on(Arc::new(disk.clone()), dir.join("raft"), options());
    let mut storage = match opened {
        Ok(storage) => storage,
        Err(_) if disk.has_crashed() => {
            let report = disk.report().expect("a crashed disk has a report");
            return (empty.clone(), empty, 1, format!("while creating: {report:?}"));
        }
        Err(e) => panic!("seed {seed}: a new storage fails to open: {e}"),
    };
    if !while_creating {
        disk.crash_at_sync(family, seed, rng.gen_range(0..60)).unwrap();
    }
    let mut written = Image { log: Vec::new(), ..empty.clone() };
    let mut synced = written.clone();
    let mut changed_from = Index::MAX;
    for _ in 0..80 {
        if rng.gen_bool(0.3) {
            let term = written.hard_state.term + rng.gen_range(0..2);
            let vote = rng.gen_bool(0.5).then(|| rng.gen_range(1..4));
            written.hard_state = HardState { term, vote };
            storage.set_hard_state(written.hard_state).unwrap();
        }
        let last = written.log.len() as Index;
        let snapshot_index = written.snapshot.index;
        if snapshots.gen_bool(0.15) && last > snapshot_index {
            let index = snapshots.gen_range(snapshot_index + 1..=last);
            let held = written.log[index as usize - 1].as_ref().expect("held").term;
            let replace = snapshots.gen_bool(0.3);
            // Compacting keeps the log; a leader's snapshot of another term, maybe past the
            // log's end, replaces it.
            let (index, term) = match replace {
                true => (index + snapshots.gen_range(0..3), held + 1),
                false => (index, held),
            };
            let data = format!("state up to {index} of term {term}").into_bytes().into();
            written.snapshot = Snapshot { index, term, data };
            storage.apply_snapshot(&written.snapshot).unwrap();
            if replace {
                written.log = vec![None; index as usize];
                changed_from = changed_from.min(index + 1);
            }
        }
        let last = written.log.len() as Index;
        let lowest = last.saturating_sub(3).max(written.snapshot.index + 1);
        let from = rng.gen_range(lowest..=last + 1);
        let count = rng.gen_range(0..5);
        let term = written.hard_state.term.max(1);
        let entries: Vec<Entry> = (from..from + count)
            .map(|index| {
                // Now and then an entry of a few pages, so that torn writes tear by pages too.
                let len = if rng.gen_bool(0.1) {
                    rng.gen_range(0..10_000)
                } else {
                    rng.gen_range(0..120)
                };
                let data = (0..len).map(|_| rng.gen()).collect();
                Entry { index, term, kind: EntryKind::Normal, data }
            })
            .collect();
        if count > 0 {
            storage.append(&entries).unwrap();
            written.log.truncate(from as usize - 1);
            written.log.extend(entries.into_iter().map(Some));
            changed_from = changed_from.min(from);
        }
        if storage.sync().is_err() {
            assert!(disk.has_crashed(), "seed {seed}: a sync failed without a crash");
            let report = disk.report().expect("a crashed disk has a report");
            return (synced, written, changed_from, format!("{report:?}"));
        }
        synced = written.clone();
        changed_from = Index::MAX;
    }
    let report = disk.crash(family, seed).unwrap();
    (synced, written, changed_from, format!("{report:?}"))
}

fn check_family(family: CrashFamily) {
    let (mut recovered_unsynced, mut torn_by_pages) = (0, 0);
    for seed in 0..SEEDS {
        let root = tempfile::tempdir().unwrap();
        let (synced, written, changed_from, report) = crash_run(family, seed, root.path());
        let context = format!("{family} seed {seed}: {report}");
        let storage = FileStorage::open_with(root.path().join("raft"), options())
            .unwrap_or_else(|e| panic!("{context}: a crash alone must never stop a node: {e}"));
        let state = storage.initial_state().unwrap();
        assert!(
            state.hard_state == synced.hard_state || state.hard_state == written.hard_state,
            "{context}: hard state {:?}, synced {:?}, written {:?}",
            state.hard_state,
            synced.hard_state,
            written.hard_state
        );
        let snapshot = &state.snapshot;
        assert!(
            *snapshot == synced.snapshot || *snapshot == written.snapshot,
            "{context}: snapshot at {} of term {}, synced at {}, written at {}",
            snapshot.index,
            snapshot.term,
            synced.snapshot.index,
            written.snapshot.index
        );
        assert_eq!(state.first_index, snapshot.index + 1, "{context}");
        let log = &state.entries;
        let prefix_of = |image: &Image| {
            let known = image.after(snapshot.index);
            known.len() >= log.len() && known[..log.len()] == log[..]
        };
        assert!(
            prefix_of(&synced) || prefix_of(&written),
            "{context}: a log that was never written"
        );
        // Everything synced and not rewritten since must be there, in the log or under the
        // snapshot.
        let floor = changed_from.min(synced.log.len() as Index + 1) - 1;
        let kept = snapshot.index + log.len() as Index;
        assert!(kept >= floor, "{context}: entries up to {kept} recovered, {floor} were synced");
        let synced_after = synced.after(snapshot.index);
        let n = floor.saturating_sub(snapshot.index) as usize;
        assert_eq!(log[..n], synced_after[..n], "{context}");
        if kept > synced.log.len() as Index {
            recovered_unsynced += 1;
        }
        if report.contains("torn_pages: Some([") {
            torn_by_pages += 1;
        }
    }
    if family == CrashFamily::TornPrefix {
        assert!(recovered_unsynced > 0, "some crash kept unsynced entries");
        assert!(torn_by_pages > 0, "some crash kept only some pages of a write");
    }
}

#[test]
fn lose_unsynced_crashes_keep_every_synced_entry() {
    check_family(CrashFamily::LoseUnsynced);
}

#[test]
fn torn_prefix_crashes_keep_every_synced_entry() {
    check_family(CrashFamily::TornPrefix);
}

#[test]
fn metadata_without_data_crashes_keep_every_synced_entry() {
    check_family(CrashFamily::MetadataWithoutData);
}

/// A failed fsync poisons the storage: nothing more is written or acknowledged, and a reopen
/// finds every entry synced before it, and none of the batch whose sync failed.
#[test]
fn a_failed_fsync_poisons_the_storage_and_a_reopen_keeps_what_was_synced() {
    for error in raft::storage::DiskError::ALL {
        let root = tempfile::tempdir().unwrap();
        let disk = CrashDisk::new(root.path().join("trash")).unwrap();
        let dir = root.path().join("raft");
        let mut storage = FileStorage::open_on(Arc::new(disk.clone()), &dir, options()).unwrap();
        let entry = |index| Entry { index, term: 1, kind: EntryKind::Normal, data: vec![7; 30] };
        storage.append(&[entry(1), entry(2)]).unwrap();
        storage.sync().unwrap();
        storage.append(&[entry(3)]).unwrap();
        disk.fail_next(Some(error)).unwrap();
        let err = storage.sync().unwrap_err();
        assert!(disk.injected().is_some(), "{error}: {err}");
        let again = storage.sync().unwrap_err();
        assert!(matches!(again, raft::storage::StorageError::Poisoned(_)), "{error}: {again}");
        drop(storage);
        let storage = FileStorage::open_with(&dir, options()).unwrap();
        assert_eq!(storage.initial_state().unwrap().entries, vec![entry(1), entry(2)], "{error}");
    }
}

/// A crash during the sync of a write several pages long may keep its later pages and lose
/// earlier ones: the recovered log is the synced one, never a refusal to open (the sync marker
/// that would otherwise follow the damaged bytes is written only after they are durable).
#[test]
fn a_write_torn_out_of_page_order_is_a_torn_tail() {
    let mut out_of_order = 0;
    for seed in 0..100 {
        let root = tempfile::tempdir().unwrap();
        let disk = CrashDisk::new(root.path().join("trash")).unwrap();
        let dir = root.path().join("raft");
        // One segment: no roll comes between the syncs.
        let options = FileStorageOptions { segment_bytes: 1 << 20 };
        let mut storage = FileStorage::open_on(Arc::new(disk.clone()), &dir, options).unwrap();
        let entry = |index| Entry { index, term: 1, kind: EntryKind::Normal, data: vec![9; 3000] };
        storage.append(&[entry(1), entry(2)]).unwrap();
        storage.sync().unwrap();
        storage.append(&[entry(3), entry(4), entry(5)]).unwrap();
        disk.crash_at_sync(CrashFamily::TornPrefix, seed, 0).unwrap();
        assert!(storage.sync().is_err(), "seed {seed}: the armed crash");
        let report = format!("{:?}", disk.report().unwrap());
        drop(storage);
        let storage = FileStorage::open_with(&dir, options)
            .unwrap_or_else(|e| panic!("seed {seed}: {report}: a crash stopped the node: {e}"));
        let log = storage.initial_state().unwrap().entries;
        assert!(log.len() >= 2 && log[..2] == [entry(1), entry(2)], "seed {seed}: {report}");
        out_of_order += usize::from(report.contains("torn_pages: Some(["));
    }
    assert!(out_of_order > 0, "no crash kept the pages of a write out of order");
}

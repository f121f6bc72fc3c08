//! `FileStorage` on a `CrashDisk`: random appends, overwrites and hard state changes in small
//! segments, a crash at a random sync in every crash family, and a reopen on the real disk.
//! Every crash must be recovered from, with everything synced kept.

use std::sync::Arc;

use raft::storage::{CrashDisk, CrashFamily, FileStorage, FileStorageOptions, Storage};
use raft::{Entry, EntryKind, HardState, Index};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seeds per family; each seed is one crash.
const SEEDS: u64 = 150;

/// What the storage holds, as written by the test.
#[derive(Clone, Debug, PartialEq)]
struct Image {
    hard_state: HardState,
    log: Vec<Entry>,
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
    let disk = CrashDisk::new(dir.join("trash")).unwrap();
    let empty = Image { hard_state: HardState::default(), log: Vec::new() };
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
    let mut written = Image { hard_state: storage.hard_state(), log: Vec::new() };
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
        let from = rng.gen_range(last.saturating_sub(3).max(1)..=last + 1);
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
            written.log.extend(entries);
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
        let log = &state.entries;
        let prefix_of =
            |image: &Image| image.log.len() >= log.len() && image.log[..log.len()] == log[..];
        assert!(
            prefix_of(&synced) || prefix_of(&written),
            "{context}: a log that was never written"
        );
        // Everything synced and not rewritten since must be there.
        let floor = (changed_from.min(synced.log.len() as Index + 1) - 1) as usize;
        assert!(
            log.len() >= floor,
            "{context}: {} entries recovered, {floor} were synced",
            log.len()
        );
        assert_eq!(log[..floor], synced.log[..floor], "{context}");
        if log.len() > synced.log.len() {
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

//! One conformance suite for every `Storage` implementation: each check is a generic function,
//! and `conformance!` instantiates all of them for one implementation.

use std::path::Path;

use raft::storage::{FileStorage, FileStorageOptions, MemStorage, Storage, StorageError};
use raft::{Entry, EntryKind, HardState, Index, Snapshot, Term};

/// How to make and restart one implementation.
trait Subject {
    type S: Storage;
    /// A new, empty storage (in `dir` if it uses files).
    fn create(dir: &Path) -> Self::S;
    /// The storage after a restart: at least what was synced, and nothing else for durable
    /// implementations.
    fn restart(storage: Self::S, dir: &Path) -> Self::S;
}

struct Mem;
impl Subject for Mem {
    type S = MemStorage;
    fn create(_: &Path) -> MemStorage {
        MemStorage::new()
    }
    fn restart(storage: MemStorage, _: &Path) -> MemStorage {
        storage
    }
}

struct File;
impl Subject for File {
    type S = FileStorage;
    fn create(dir: &Path) -> FileStorage {
        FileStorage::open(dir).expect("open a new file storage")
    }
    fn restart(storage: FileStorage, dir: &Path) -> FileStorage {
        drop(storage);
        FileStorage::open(dir).expect("reopen the file storage")
    }
}

/// File storage with tiny segments, so that every check also crosses segment boundaries.
struct FileSmallSegments;
impl Subject for FileSmallSegments {
    type S = FileStorage;
    fn create(dir: &Path) -> FileStorage {
        FileStorage::open_with(dir, FileStorageOptions { segment_bytes: 100 })
            .expect("open a new file storage")
    }
    fn restart(storage: FileStorage, dir: &Path) -> FileStorage {
        drop(storage);
        let reopened = FileStorage::open_with(dir, FileStorageOptions { segment_bytes: 100 })
            .expect("reopen the file storage");
        assert_eq!(reopened.recovery().torn_tail, None, "a clean restart has no torn tail");
        reopened
    }
}

/// An entry whose payload depends on its index and term, so that a replaced entry is told
/// apart from the one it replaced.
fn entry(index: Index, term: Term) -> Entry {
    Entry {
        index,
        term,
        kind: EntryKind::Normal,
        data: format!("entry {index} of term {term}").into_bytes(),
    }
}

fn entries(range: std::ops::RangeInclusive<Index>, term: Term) -> Vec<Entry> {
    range.map(|i| entry(i, term)).collect()
}

fn all<S: Storage>(storage: &S) -> Vec<Entry> {
    storage.entries(storage.first_index()..storage.last_index() + 1).expect("read the whole log")
}

fn with_subject<T: Subject>(check: impl FnOnce(&Path, T::S) -> T::S) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("storage");
    let storage = T::create(&path);
    let mut storage = check(&path, storage);
    // Whatever a check leaves, once synced, survives a restart unchanged.
    let before = (storage.hard_state(), storage.snapshot(), storage.first_index(), all(&storage));
    storage.sync().expect("sync");
    let storage = T::restart(storage, &path);
    assert_eq!(
        (storage.hard_state(), storage.snapshot(), storage.first_index(), all(&storage)),
        before
    );
}

fn starts_empty<T: Subject>() {
    with_subject::<T>(|_, storage| {
        assert_eq!(storage.first_index(), 1);
        assert_eq!(storage.last_index(), 0);
        assert_eq!(storage.hard_state(), HardState::default());
        assert_eq!(storage.entries(1..1).unwrap(), vec![]);
        let state = storage.initial_state().unwrap();
        assert_eq!(state.hard_state, HardState::default());
        assert_eq!(state.first_index, 1);
        assert_eq!(state.entries, vec![]);
        storage
    });
}

fn appends_and_reads<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=3, 1)).unwrap();
        storage.append(&entries(4..=5, 2)).unwrap();
        assert_eq!(storage.last_index(), 5);
        let mut expected = entries(1..=3, 1);
        expected.extend(entries(4..=5, 2));
        assert_eq!(all(&storage), expected);
        assert_eq!(storage.entries(2..4).unwrap(), expected[1..3].to_vec());
        assert_eq!(storage.entries(5..6).unwrap(), expected[4..5].to_vec());
        assert_eq!(storage.entries(3..3).unwrap(), vec![]);
        // Reads see writes before and after a sync alike.
        storage.sync().unwrap();
        assert_eq!(all(&storage), expected);
        storage.append(&entries(6..=6, 2)).unwrap();
        assert_eq!(storage.entries(5..7).unwrap(), vec![entry(5, 2), entry(6, 2)]);
        storage
    });
}

fn empty_append_does_nothing<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=2, 1)).unwrap();
        storage.append(&[]).unwrap();
        assert_eq!(all(&storage), entries(1..=2, 1));
        storage
    });
}

fn reads_outside_the_log_fail<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=5, 1)).unwrap();
        for (lo, hi) in [(0, 1), (1, 7), (6, 7), (4, 3)] {
            let err = storage.entries(lo..hi).unwrap_err();
            assert!(
                matches!(err, StorageError::OutOfRange { first_index: 1, last_index: 5, .. }),
                "{lo}..{hi}: {err}"
            );
        }
        storage
    });
}

fn bad_appends_are_refused_and_change_nothing<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=5, 1)).unwrap();
        let err = storage.append(&entries(7..=8, 1)).unwrap_err();
        assert!(matches!(err, StorageError::AppendOutOfRange { index: 7, last_index: 5, .. }));
        let err = storage.append(&[entry(0, 1)]).unwrap_err();
        assert!(matches!(err, StorageError::AppendOutOfRange { index: 0, first_index: 1, .. }));
        let err = storage.append(&[entry(3, 2), entry(5, 2)]).unwrap_err();
        assert!(matches!(err, StorageError::NotConsecutive { previous: 3, found: 5 }));
        let err = storage.append(&[entry(6, 2), entry(6, 2)]).unwrap_err();
        assert!(matches!(err, StorageError::NotConsecutive { previous: 6, found: 6 }));
        assert_eq!(all(&storage), entries(1..=5, 1));
        storage
    });
}

fn an_append_replaces_the_suffix_from_its_first_index<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=5, 1)).unwrap();
        // In the middle: 4 and 5 go, even though the new batch is shorter.
        storage.append(&[entry(3, 2)]).unwrap();
        assert_eq!(storage.last_index(), 3);
        assert_eq!(all(&storage), vec![entry(1, 1), entry(2, 1), entry(3, 2)]);
        // Longer than what it replaces.
        storage.append(&entries(2..=6, 3)).unwrap();
        let mut expected = vec![entry(1, 1)];
        expected.extend(entries(2..=6, 3));
        assert_eq!(all(&storage), expected);
        // At the first index: everything goes.
        storage.append(&[entry(1, 4)]).unwrap();
        assert_eq!(all(&storage), vec![entry(1, 4)]);
        storage
    });
}

fn overwrites_across_syncs_survive_restart<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        storage.append(&entries(1..=5, 1)).unwrap();
        storage.sync().unwrap();
        storage.append(&entries(6..=8, 1)).unwrap();
        // Replaces synced entries (3..=5) and unsynced ones (6..=8) at once.
        storage.append(&entries(3..=4, 2)).unwrap();
        let mut expected = entries(1..=2, 1);
        expected.extend(entries(3..=4, 2));
        assert_eq!(all(&storage), expected);
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!(all(&storage), expected);
        // And the log goes on from there.
        storage.append(&entries(5..=6, 2)).unwrap();
        storage.sync().unwrap();
        let storage = T::restart(storage, dir);
        expected.extend(entries(5..=6, 2));
        assert_eq!(all(&storage), expected);
        storage
    });
}

fn truncate_suffix_removes_the_tail<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        storage.append(&entries(1..=5, 1)).unwrap();
        storage.sync().unwrap();
        storage.truncate_suffix(6).unwrap();
        assert_eq!(storage.last_index(), 5);
        storage.truncate_suffix(4).unwrap();
        assert_eq!(all(&storage), entries(1..=3, 1));
        for from in [0, 5] {
            let err = storage.truncate_suffix(from).unwrap_err();
            assert!(matches!(err, StorageError::OutOfRange { .. }), "{from}: {err}");
        }
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!(all(&storage), entries(1..=3, 1));
        storage.truncate_suffix(1).unwrap();
        assert_eq!(storage.last_index(), 0);
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!(storage.last_index(), 0);
        storage.append(&entries(1..=2, 7)).unwrap();
        storage
    });
}

fn hard_state_round_trips<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        storage.set_hard_state(HardState { term: 1, vote: Some(3) }).unwrap();
        assert_eq!(storage.hard_state(), HardState { term: 1, vote: Some(3) });
        // The last one set before a sync is the one kept.
        storage.set_hard_state(HardState { term: 2, vote: None }).unwrap();
        storage.set_hard_state(HardState { term: 2, vote: Some(0) }).unwrap();
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!(storage.hard_state(), HardState { term: 2, vote: Some(0) });
        storage.set_hard_state(HardState { term: u64::MAX, vote: Some(u64::MAX) }).unwrap();
        storage.sync().unwrap();
        let storage = T::restart(storage, dir);
        assert_eq!(storage.hard_state(), HardState { term: u64::MAX, vote: Some(u64::MAX) });
        assert_eq!(storage.initial_state().unwrap().hard_state, storage.hard_state());
        storage
    });
}

fn group_commit_of_several_readies_survives_restart<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        let hs = |term, vote| Some(HardState { term, vote });
        storage.persist(hs(1, Some(1)), None, &entries(1..=3, 1)).unwrap();
        storage.persist(None, None, &entries(4..=4, 1)).unwrap();
        storage.persist(hs(2, None), None, &entries(3..=6, 2)).unwrap();
        storage.sync().unwrap();
        let storage = T::restart(storage, dir);
        let state = storage.initial_state().unwrap();
        assert_eq!(state.hard_state, HardState { term: 2, vote: None });
        assert_eq!(state.first_index, 1);
        let mut expected = entries(1..=2, 1);
        expected.extend(entries(3..=6, 2));
        assert_eq!(state.entries, expected);
        storage
    });
}

fn odd_entries_round_trip<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        let odd = vec![
            Entry { index: 1, term: 0, kind: EntryKind::Noop, data: vec![] },
            Entry { index: 2, term: u64::MAX, kind: EntryKind::Normal, data: vec![0; 100_000] },
            Entry { index: 3, term: u64::MAX, kind: EntryKind::Normal, data: (0..=255).collect() },
        ];
        storage.append(&odd).unwrap();
        storage.sync().unwrap();
        let storage = T::restart(storage, dir);
        assert_eq!(all(&storage), odd);
        storage
    });
}

fn a_long_log_with_many_overwrites<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        // The expected log.
        let mut model: Vec<Entry> = Vec::new();
        let mut term = 1;
        for round in 0..60u64 {
            // Every fifth round goes back a few entries in a new term.
            let from = if round % 5 == 4 && model.len() > 3 {
                term += 1;
                model.len() as u64 - 2
            } else {
                model.len() as u64 + 1
            };
            let batch = entries(from..=from + round % 4, term);
            model.truncate(from as usize - 1);
            model.extend(batch.iter().cloned());
            storage.append(&batch).unwrap();
            if round % 3 == 0 {
                storage.sync().unwrap();
            }
            if round % 10 == 9 {
                storage.sync().unwrap();
                storage = T::restart(storage, dir);
            }
            assert_eq!(all(&storage), model, "round {round}");
        }
        storage
    });
}

fn snapshot(index: Index, term: Term) -> Snapshot {
    Snapshot { index, term, data: format!("state up to {index}").into_bytes().into() }
}

fn a_snapshot_matching_the_log_keeps_the_entries_after_it<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        storage.append(&entries(1..=4, 1)).unwrap();
        storage.append(&entries(5..=8, 2)).unwrap();
        storage.sync().unwrap();
        storage.persist(None, Some(&snapshot(5, 2)), &[]).unwrap();
        assert_eq!((storage.first_index(), storage.last_index()), (6, 8));
        assert_eq!(all(&storage), entries(6..=8, 2));
        assert!(storage.entries(5..6).is_err(), "compacted");
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        let state = storage.initial_state().unwrap();
        assert_eq!((state.snapshot, state.first_index), (snapshot(5, 2), 6));
        assert_eq!(state.entries, entries(6..=8, 2));
        // Appending and replacing go on after the snapshot, and never reach into it.
        storage.append(&entries(8..=9, 3)).unwrap();
        assert!(matches!(
            storage.append(&entries(5..=5, 3)),
            Err(StorageError::AppendOutOfRange { first_index: 6, .. })
        ));
        storage
    });
}

fn a_snapshot_the_log_does_not_match_replaces_the_whole_log<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        storage.append(&entries(1..=6, 1)).unwrap();
        storage.sync().unwrap();
        // The leader's snapshot: another term at its index, and one past the log's end.
        storage.persist(None, Some(&snapshot(4, 2)), &entries(5..=5, 2)).unwrap();
        assert_eq!((storage.first_index(), all(&storage)), (5, entries(5..=5, 2)));
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!((storage.first_index(), all(&storage)), (5, entries(5..=5, 2)));
        storage.persist(None, Some(&snapshot(10, 3)), &[]).unwrap();
        assert_eq!((storage.first_index(), storage.last_index()), (11, 10));
        storage.sync().unwrap();
        let mut storage = T::restart(storage, dir);
        assert_eq!((storage.first_index(), storage.last_index()), (11, 10));
        storage.append(&entries(11..=12, 3)).unwrap();
        storage
    });
}

fn an_older_snapshot_is_refused_and_the_same_one_changes_nothing<T: Subject>() {
    with_subject::<T>(|_, mut storage| {
        storage.append(&entries(1..=6, 1)).unwrap();
        storage.apply_snapshot(&snapshot(4, 1)).unwrap();
        assert!(matches!(
            storage.apply_snapshot(&snapshot(3, 1)),
            Err(StorageError::SnapshotOutOfDate { index: 3, snapshot_index: 4 })
        ));
        storage.apply_snapshot(&snapshot(4, 1)).unwrap();
        assert_eq!((storage.snapshot(), all(&storage)), (snapshot(4, 1), entries(5..=6, 1)));
        storage
    });
}

fn unsynced_entries_and_a_snapshot_in_one_sync<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        // A snapshot over entries that are not on disk yet, and a cut inside it.
        storage.append(&entries(1..=5, 1)).unwrap();
        storage.append(&entries(3..=7, 2)).unwrap();
        storage.apply_snapshot(&snapshot(4, 2)).unwrap();
        assert_eq!(all(&storage), entries(5..=7, 2));
        storage.sync().unwrap();
        let storage = T::restart(storage, dir);
        assert_eq!((storage.first_index(), all(&storage)), (5, entries(5..=7, 2)));
        storage
    });
}

fn compaction_over_many_snapshots_keeps_the_tail<T: Subject>() {
    with_subject::<T>(|dir, mut storage| {
        let mut next = 1;
        for round in 0..40u64 {
            storage.append(&entries(next..=next + 4, 1)).unwrap();
            next += 5;
            storage.sync().unwrap();
            storage.apply_snapshot(&snapshot(next - 3, 1)).unwrap();
            if round % 7 == 6 {
                storage.sync().unwrap();
                storage = T::restart(storage, dir);
            }
            assert_eq!(all(&storage), entries(next - 2..=next - 1, 1), "round {round}");
        }
        storage
    });
}

macro_rules! conformance {
    ($module:ident, $subject:ty, [$($check:ident),* $(,)?]) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    super::$check::<$subject>();
                }
            )*
        }
    };
}

macro_rules! suite {
    ($module:ident, $subject:ty) => {
        conformance!(
            $module,
            $subject,
            [
                starts_empty,
                appends_and_reads,
                empty_append_does_nothing,
                reads_outside_the_log_fail,
                bad_appends_are_refused_and_change_nothing,
                an_append_replaces_the_suffix_from_its_first_index,
                overwrites_across_syncs_survive_restart,
                truncate_suffix_removes_the_tail,
                hard_state_round_trips,
                group_commit_of_several_readies_survives_restart,
                odd_entries_round_trip,
                a_long_log_with_many_overwrites,
                a_snapshot_matching_the_log_keeps_the_entries_after_it,
                a_snapshot_the_log_does_not_match_replaces_the_whole_log,
                an_older_snapshot_is_refused_and_the_same_one_changes_nothing,
                unsynced_entries_and_a_snapshot_in_one_sync,
                compaction_over_many_snapshots_keeps_the_tail,
            ]
        );
    };
}

suite!(mem, super::Mem);
suite!(file, super::File);
suite!(file_small_segments, super::FileSmallSegments);

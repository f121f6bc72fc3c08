//! One conformance suite for every `Storage` implementation: each check is a generic function,
//! and `conformance!` instantiates all of them for one implementation.

use std::path::Path;

use raft::storage::{FileStorage, FileStorageOptions, MemStorage, Storage, StorageError};
use raft::{Entry, EntryKind, HardState, Index, Term};

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
    let before = (storage.hard_state(), all(&storage));
    storage.sync().expect("sync");
    let storage = T::restart(storage, &path);
    assert_eq!((storage.hard_state(), all(&storage)), before);
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
        storage.persist(Some(HardState { term: 1, vote: Some(1) }), &entries(1..=3, 1)).unwrap();
        storage.persist(None, &entries(4..=4, 1)).unwrap();
        storage.persist(Some(HardState { term: 2, vote: None }), &entries(3..=6, 2)).unwrap();
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
            ]
        );
    };
}

suite!(mem, super::Mem);
suite!(file, super::File);
suite!(file_small_segments, super::FileSmallSegments);

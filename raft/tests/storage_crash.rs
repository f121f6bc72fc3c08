//! Crash and corruption tests for `FileStorage`: cut the log at every byte offset of its last
//! records, flip bytes in its middle and at its end, damage headers, segments and the hard
//! state file, and check what opening makes of it.
//!
//! The tests walk the documented on-disk format: a segment is a 20-byte header followed by
//! records, each `len` (u32 LE) + 8 bytes of checksums + `len` bytes of payload; every sync
//! writes one sync marker record after the entries it made durable.

use std::fs;
use std::path::{Path, PathBuf};

use raft::storage::{Corruption, FileStorage, FileStorageOptions, Storage, StorageError};
use raft::{Entry, EntryKind, HardState, Index};

const SEGMENT_HEADER: u64 = 20;

fn entry(index: Index, term: u64) -> Entry {
    // Payload lengths vary so that record boundaries do not fall on a regular grid.
    let data = (0..(10 + index * 7 % 23)).map(|b| (b as u8) ^ (index as u8)).collect();
    Entry { index, term, kind: EntryKind::Normal, data }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with("wal-") && name.ends_with(".log")
        })
        .collect();
    found.sort();
    found
}

/// The `[start, end)` byte ranges of the records of a segment file.
fn records(segment: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER as usize;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push((pos as u64, (pos + 12 + len) as u64));
        pos += 12 + len;
    }
    assert_eq!(pos, bytes.len(), "the segment ends on a record boundary");
    out
}

/// A storage directory holding entries 1..=n, each appended and synced on its own, so that the
/// log is `entry 1, marker, entry 2, marker, ...`.
fn synced_one_by_one(dir: &Path, n: Index) -> Vec<Entry> {
    let mut storage = FileStorage::open(dir).unwrap();
    storage.set_hard_state(HardState { term: 1, vote: Some(1) }).unwrap();
    let log: Vec<Entry> = (1..=n).map(|i| entry(i, 1)).collect();
    for e in &log {
        storage.append(std::slice::from_ref(e)).unwrap();
        storage.sync().unwrap();
    }
    log
}

/// A copy of the storage directory `from`, to damage without touching the original.
fn copy_of(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for item in fs::read_dir(from).unwrap() {
        let path = item.unwrap().path();
        fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
    }
    to
}

fn cut(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0xFF;
    fs::write(path, bytes).unwrap();
}

fn all(storage: &FileStorage) -> Vec<Entry> {
    storage.entries(storage.first_index()..storage.last_index() + 1).unwrap()
}

fn expect_corrupt(dir: &Path, path: &Path, offset: u64) -> Corruption {
    match FileStorage::open(dir) {
        Err(err @ StorageError::Corrupt { .. }) => {
            let message = err.to_string();
            let StorageError::Corrupt { path: p, offset: o, kind } = err else { unreachable!() };
            assert_eq!((p.as_path(), o), (path, offset), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(&format!("offset {offset}")), "{message}");
            kind
        }
        Err(other) => panic!("expected corruption at {offset}, got {other}"),
        Ok(storage) => {
            panic!("expected corruption at {offset}, opened with {} entries", storage.last_index())
        }
    }
}

#[test]
fn cutting_the_log_anywhere_in_its_last_records_keeps_exactly_the_whole_entries() {
    let original = tempfile::tempdir().unwrap();
    let log = synced_one_by_one(original.path(), 12);
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    let records = records(&segments(original.path())[0]);
    assert_eq!(records.len(), 24, "an entry and a sync marker per sync");
    let file_len = records.last().unwrap().1;
    // The last four entries and their markers, every byte offset.
    let from = records[records.len() - 8].0;
    for at in from..file_len {
        let dir = copy_of(original.path());
        let segment = dir.path().join(&segment_name);
        cut(&segment, at);
        let storage = FileStorage::open(dir.path())
            .unwrap_or_else(|e| panic!("cut at {at}: open failed: {e}"));
        // Entry k (1-based) is record 2k - 2.
        let whole = records.iter().step_by(2).filter(|(_, end)| *end <= at).count();
        assert_eq!(storage.last_index(), whole as u64, "cut at {at}");
        assert_eq!(all(&storage), log[..whole], "cut at {at}");
        assert_eq!(storage.hard_state(), HardState { term: 1, vote: Some(1) });
        let boundary = records.iter().map(|r| r.1).filter(|&end| end <= at).max().unwrap();
        match &storage.recovery().torn_tail {
            None => assert_eq!(at, boundary, "cut at {at} is a record boundary"),
            Some(torn) => {
                assert_eq!((torn.offset, torn.dropped_bytes), (boundary, at - boundary));
                assert_eq!(torn.path, segment);
            }
        }
        assert_eq!(fs::metadata(&segment).unwrap().len(), boundary, "cut at {at}");
        // The log goes on from the cut, and reopens clean.
        let mut storage = storage;
        storage.append(&[entry(whole as u64 + 1, 2)]).unwrap();
        storage.sync().unwrap();
        drop(storage);
        let storage = FileStorage::open(dir.path()).unwrap();
        assert_eq!(storage.recovery().torn_tail, None);
        assert_eq!(storage.entries(whole as u64 + 1..whole as u64 + 2).unwrap()[0].term, 2);
    }
}

#[test]
fn a_flipped_byte_in_a_middle_record_is_refused_with_file_and_offset() {
    let original = tempfile::tempdir().unwrap();
    synced_one_by_one(original.path(), 12);
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    let records = records(&segments(original.path())[0]);
    // Entries 4..=6 and their markers: every byte of every record.
    for &(start, end) in &records[6..12] {
        for at in start..end {
            let dir = copy_of(original.path());
            let segment = dir.path().join(&segment_name);
            flip(&segment, at);
            let kind = expect_corrupt(dir.path(), &segment, start);
            assert!(
                matches!(
                    kind,
                    Corruption::HeaderChecksum { .. } | Corruption::PayloadChecksum { .. }
                ),
                "flip at {at}: {kind}"
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_the_last_record_is_a_torn_tail() {
    let original = tempfile::tempdir().unwrap();
    let log = synced_one_by_one(original.path(), 6);
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    let records = records(&segments(original.path())[0]);
    // The last record is the last sync marker: cutting it keeps every entry.
    let (start, end) = *records.last().unwrap();
    for at in start..end {
        let dir = copy_of(original.path());
        let segment = dir.path().join(&segment_name);
        flip(&segment, at);
        let storage = FileStorage::open(dir.path()).unwrap();
        assert_eq!(all(&storage), log, "flip at {at}");
        let torn = storage.recovery().torn_tail.as_ref().expect("a torn tail");
        assert_eq!((torn.offset, torn.dropped_bytes), (start, end - start));
    }
    // With the last marker gone, the last record is an entry never acknowledged: damage there
    // is a torn tail too, and only that entry goes.
    let (entry_start, entry_end) = records[records.len() - 2];
    for at in entry_start..entry_end {
        let dir = copy_of(original.path());
        let segment = dir.path().join(&segment_name);
        cut(&segment, start);
        flip(&segment, at);
        let storage = FileStorage::open(dir.path()).unwrap();
        assert_eq!(all(&storage), log[..5], "flip at {at}");
        assert_eq!(storage.recovery().torn_tail.as_ref().unwrap().offset, entry_start);
    }
}

#[test]
fn damage_in_an_unsynced_batch_is_torn_but_in_a_synced_one_corrupt() {
    let original = tempfile::tempdir().unwrap();
    let mut log = synced_one_by_one(original.path(), 4);
    {
        let mut storage = FileStorage::open(original.path()).unwrap();
        let batch: Vec<Entry> = (5..=12).map(|i| entry(i, 1)).collect();
        storage.append(&batch).unwrap();
        storage.sync().unwrap();
        log.extend(batch);
    }
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    let records = records(&segments(original.path())[0]);
    // entries 1..=4 with markers (8 records), entries 5..=12 (8 records), one marker.
    assert_eq!(records.len(), 17);
    let (marker_start, _) = records[16];
    let (damaged_start, _) = records[10]; // entry 7, with whole entries 8..=12 after it
                                          // As synced: the marker proves entry 7 durable.
    let dir = copy_of(original.path());
    let segment = dir.path().join(&segment_name);
    flip(&segment, damaged_start + 15);
    let kind = expect_corrupt(dir.path(), &segment, damaged_start);
    assert_eq!(kind, Corruption::PayloadChecksum { sync_marker_at: marker_start });
    // As a crash before the sync returned could leave it (pages persisted out of order, the
    // marker not at all): nothing after the damage was acknowledged, so it is cut.
    let dir = copy_of(original.path());
    let segment = dir.path().join(&segment_name);
    cut(&segment, marker_start);
    flip(&segment, damaged_start + 15);
    let storage = FileStorage::open(dir.path()).unwrap();
    assert_eq!(all(&storage), log[..6]);
    let torn = storage.recovery().torn_tail.as_ref().unwrap();
    assert_eq!((torn.offset, torn.dropped_bytes), (damaged_start, marker_start - damaged_start));
}

#[test]
fn a_damaged_segment_header_is_refused() {
    let original = tempfile::tempdir().unwrap();
    synced_one_by_one(original.path(), 2);
    let segment_name = segments(original.path())[0].file_name().unwrap().to_owned();
    for at in 0..SEGMENT_HEADER {
        let dir = copy_of(original.path());
        let segment = dir.path().join(&segment_name);
        flip(&segment, at);
        let kind = expect_corrupt(dir.path(), &segment, 0);
        assert!(matches!(kind, Corruption::SegmentHeader(_)), "flip at {at}: {kind}");
    }
    let dir = copy_of(original.path());
    let segment = dir.path().join(&segment_name);
    cut(&segment, SEGMENT_HEADER - 1);
    expect_corrupt(dir.path(), &segment, 0);
}

fn small_segments() -> FileStorageOptions {
    FileStorageOptions { segment_bytes: 150 }
}

/// Entries 1..=n in segments of about 150 bytes, synced one by one.
fn segmented(dir: &Path, n: Index) -> Vec<Entry> {
    let mut storage = FileStorage::open_with(dir, small_segments()).unwrap();
    let log: Vec<Entry> = (1..=n).map(|i| entry(i, 1)).collect();
    for e in &log {
        storage.append(std::slice::from_ref(e)).unwrap();
        storage.sync().unwrap();
    }
    log
}

#[test]
fn only_the_last_segment_may_have_a_torn_tail() {
    let original = tempfile::tempdir().unwrap();
    let log = segmented(original.path(), 20);
    let names: Vec<_> =
        segments(original.path()).iter().map(|p| p.file_name().unwrap().to_owned()).collect();
    assert!(names.len() >= 4, "{} segments", names.len());

    // A cut in the last segment: torn, the earlier segments intact.
    let dir = copy_of(original.path());
    let last = dir.path().join(names.last().unwrap());
    let last_records = records(&last);
    cut(&last, last_records[0].1 - 3);
    let storage = FileStorage::open_with(dir.path(), small_segments()).unwrap();
    let first_of_last = storage.last_index() + 1;
    assert_eq!(all(&storage), log[..first_of_last as usize - 1]);

    // The same cut in an earlier segment: refused, naming that segment.
    let dir = copy_of(original.path());
    let second = dir.path().join(&names[1]);
    let second_records = records(&second);
    let (start, end) = *second_records.last().unwrap();
    cut(&second, end - 1);
    let kind = expect_corrupt(dir.path(), &second, start);
    assert_eq!(kind, Corruption::UnsealedSegment);

    // A segment that goes missing leaves a gap in the indexes.
    let dir = copy_of(original.path());
    fs::remove_file(dir.path().join(&names[1])).unwrap();
    let third = dir.path().join(&names[2]);
    let kind = expect_corrupt(dir.path(), &third, 0);
    assert!(matches!(kind, Corruption::IndexGap { .. }), "{kind}");
}

#[test]
fn overwrites_across_segments_survive_reopening_and_crashes_before_sync_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = segmented(dir.path(), 20);
    let before = segments(dir.path()).len();
    let mut storage = FileStorage::open_with(dir.path(), small_segments()).unwrap();
    // Replace from entry 3 (in the first segment) without syncing, then "crash".
    storage.append(&[entry(3, 2), entry(4, 2)]).unwrap();
    drop(storage);
    let mut storage = FileStorage::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(all(&storage), log, "an unsynced overwrite leaves the log as it was");
    assert_eq!(segments(dir.path()).len(), before);
    // Now with a sync.
    storage.append(&[entry(3, 2), entry(4, 2)]).unwrap();
    storage.sync().unwrap();
    let mut expected = log[..2].to_vec();
    expected.extend([entry(3, 2), entry(4, 2)]);
    assert_eq!(all(&storage), expected);
    drop(storage);
    let storage = FileStorage::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!(all(&storage), expected);
    assert_eq!(storage.recovery().torn_tail, None);
    assert!(segments(dir.path()).len() < before, "later segments were deleted");
}

#[test]
fn unsynced_writes_are_lost_and_synced_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FileStorage::open(dir.path()).unwrap();
    storage.set_hard_state(HardState { term: 3, vote: Some(2) }).unwrap();
    storage.append(&[entry(1, 3), entry(2, 3)]).unwrap();
    storage.sync().unwrap();
    storage.set_hard_state(HardState { term: 4, vote: None }).unwrap();
    storage.append(&[entry(3, 4)]).unwrap();
    drop(storage);
    let storage = FileStorage::open(dir.path()).unwrap();
    assert_eq!(storage.hard_state(), HardState { term: 3, vote: Some(2) });
    assert_eq!(all(&storage), vec![entry(1, 3), entry(2, 3)]);
}

#[test]
fn a_leftover_temporary_hard_state_is_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FileStorage::open(dir.path()).unwrap();
    storage.set_hard_state(HardState { term: 5, vote: Some(1) }).unwrap();
    storage.sync().unwrap();
    drop(storage);
    // A crash between writing the temporary file and renaming it: a half-written file.
    let hard_state = dir.path().join("hardstate");
    let temp = dir.path().join("hardstate.tmp");
    let whole = fs::read(&hard_state).unwrap();
    fs::write(&temp, &whole[..whole.len() - 1]).unwrap();
    // And one for a segment being created.
    let segment_temp = dir.path().join("wal-00000000000000000009.log.tmp");
    fs::write(&segment_temp, b"RAFT").unwrap();
    let storage = FileStorage::open(dir.path()).unwrap();
    assert_eq!(storage.hard_state(), HardState { term: 5, vote: Some(1) });
    let mut removed = storage.recovery().removed_temp_files.clone();
    removed.sort();
    assert_eq!(removed, vec![temp.clone(), segment_temp.clone()]);
    assert!(!temp.exists() && !segment_temp.exists());
    assert_eq!(fs::read(&hard_state).unwrap(), whole);
}

#[test]
fn a_damaged_hard_state_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FileStorage::open(dir.path()).unwrap();
    storage.set_hard_state(HardState { term: 5, vote: Some(1) }).unwrap();
    storage.sync().unwrap();
    drop(storage);
    let path = dir.path().join("hardstate");
    let whole = fs::read(&path).unwrap();
    for at in 0..whole.len() {
        let mut bytes = whole.clone();
        bytes[at] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        match FileStorage::open(dir.path()) {
            Err(StorageError::Corrupt { path: p, kind: Corruption::HardState(_), .. }) => {
                assert_eq!(p, path)
            }
            other => panic!("flip at {at}: {other:?}"),
        }
    }
}

#[test]
fn a_log_without_its_hard_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    synced_one_by_one(dir.path(), 2);
    fs::remove_file(dir.path().join("hardstate")).unwrap();
    match FileStorage::open(dir.path()) {
        Err(StorageError::MissingHardState { path }) => {
            assert_eq!(path, dir.path().join("hardstate"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hard_state_without_its_log_is_refused() {
    // A deleted log must not come back as an empty one: the entries this peer held (and had
    // promised its leader to keep) would be lost without a word.
    let dir = tempfile::tempdir().unwrap();
    synced_one_by_one(dir.path(), 2);
    for segment in segments(dir.path()) {
        fs::remove_file(segment).unwrap();
    }
    match FileStorage::open(dir.path()) {
        Err(e @ StorageError::MissingLog { .. }) => {
            assert!(e.to_string().contains("no log segment is left"), "{e}");
            assert!(e.to_string().contains(&dir.path().display().to_string()), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A crash between creating a new directory's hard state and its first segment leaves the
    // default hard state alone: that is still a new storage.
    let fresh = tempfile::tempdir().unwrap();
    drop(FileStorage::open(fresh.path()).unwrap());
    for segment in segments(fresh.path()) {
        fs::remove_file(segment).unwrap();
    }
    let storage = FileStorage::open(fresh.path()).unwrap();
    assert_eq!((storage.last_index(), storage.hard_state()), (0, HardState::default()));
}

#[test]
fn a_new_directory_is_created_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b");
    let storage = FileStorage::open(&path).unwrap();
    assert!(storage.recovery().created);
    assert_eq!(storage.dir(), path);
    drop(storage);
    assert!(!FileStorage::open(&path).unwrap().recovery().created);
}

#[test]
fn a_directory_is_opened_by_one_storage_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let storage = FileStorage::open(dir.path()).unwrap();
    match FileStorage::open(dir.path()) {
        Err(StorageError::Locked { path }) => assert_eq!(path, dir.path().join("LOCK")),
        other => panic!("{other:?}"),
    }
    drop(storage);
    FileStorage::open(dir.path()).unwrap();
}

#[test]
fn a_failed_sync_poisons_the_storage_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = FileStorage::open(dir.path()).unwrap();
    storage.set_hard_state(HardState { term: 1, vote: None }).unwrap();
    storage.append(&[entry(1, 1)]).unwrap();
    storage.sync().unwrap();
    // A directory where the temporary hard state file goes makes the next sync fail.
    let blocker = dir.path().join("hardstate.tmp");
    fs::create_dir(&blocker).unwrap();
    storage.set_hard_state(HardState { term: 2, vote: Some(1) }).unwrap();
    storage.append(&[entry(2, 2)]).unwrap();
    assert!(matches!(storage.sync(), Err(StorageError::Io { .. })));
    for result in [
        storage.sync(),
        storage.append(&[entry(3, 2)]),
        storage.set_hard_state(HardState { term: 3, vote: None }),
        storage.entries(1..2).map(|_| ()),
    ] {
        assert!(matches!(result, Err(StorageError::Poisoned(_))), "{result:?}");
    }
    drop(storage);
    fs::remove_dir(&blocker).unwrap();
    let storage = FileStorage::open(dir.path()).unwrap();
    assert_eq!(storage.hard_state(), HardState { term: 1, vote: None });
    assert_eq!(all(&storage), vec![entry(1, 1)]);
}

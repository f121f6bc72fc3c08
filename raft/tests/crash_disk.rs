//! `CrashDisk` on plain files: what each crash family keeps and loses, per file and per
//! directory.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use raft::storage::{CrashDisk, CrashFamily, Disk, DiskError};

/// A directory with synced files `a` = "aaaa", `b` = "bbbb", `h` = "old" and `r` = "rrrr",
/// and a crash disk whose trash lies beside it.
fn synced_dir() -> (tempfile::TempDir, PathBuf, CrashDisk) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data");
    fs::create_dir(&dir).unwrap();
    for (name, bytes) in [("a", "aaaa"), ("b", "bbbb"), ("h", "old"), ("r", "rrrr")] {
        fs::write(dir.join(name), bytes).unwrap();
    }
    let disk = CrashDisk::new(root.path().join("trash")).unwrap();
    (root, dir, disk)
}

/// Unsynced work on every kind of operation: `a` overwritten at 2 ("XY") and appended to
/// ("ZZ"); `b` cut to 1 byte; `c` created with "c" whose bytes are synced but not its name;
/// `h` replaced by a synced `h.tmp` holding "new"; `r` removed.
fn unsynced_work(dir: &Path, disk: &CrashDisk) {
    let a = disk.open(&dir.join("a")).unwrap();
    a.write_all_at(b"XY", 2).unwrap();
    a.write_all_at(b"ZZ", 4).unwrap();
    disk.open(&dir.join("b")).unwrap().set_len(1).unwrap();
    let c = disk.create(&dir.join("c")).unwrap();
    c.write_all_at(b"c", 0).unwrap();
    c.sync_data().unwrap();
    let tmp = disk.create(&dir.join("h.tmp")).unwrap();
    tmp.write_all_at(b"new", 0).unwrap();
    tmp.sync_all().unwrap();
    disk.rename(&dir.join("h.tmp"), &dir.join("h")).unwrap();
    disk.remove_file(&dir.join("r")).unwrap();
}

fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().into_string().unwrap(), fs::read(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn files(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    list.iter().map(|(n, b)| (n.to_string(), b.to_vec())).collect()
}

#[test]
fn lose_unsynced_puts_every_file_and_directory_back_as_last_synced() {
    let (root, dir, disk) = synced_dir();
    unsynced_work(&dir, &disk);
    let report = disk.crash(CrashFamily::LoseUnsynced, 1).unwrap();
    assert_eq!(
        contents(&dir),
        files(&[("a", b"aaaa"), ("b", b"bbbb"), ("h", b"old"), ("r", b"rrrr")])
    );
    assert_eq!(report.unsynced_bytes(), 4);
    assert_eq!(report.kept_bytes(), 0);
    let (ops, kept) = report.ops();
    // a: 2 writes, b: 1 cut; the directory: create c, create h.tmp, rename, remove.
    assert_eq!((ops, kept), (7, 0));
    let dir_report = &report.dirs[0];
    assert_eq!(dir_report.lost, ["create c", "create h.tmp", "rename h.tmp -> h", "remove r"]);
    assert_eq!(fs::read_dir(root.path().join("trash")).unwrap().count(), 0, "trash emptied");
}

#[test]
fn metadata_without_data_keeps_lengths_and_names_but_no_unsynced_byte() {
    let (_root, dir, disk) = synced_dir();
    unsynced_work(&dir, &disk);
    let report = disk.crash(CrashFamily::MetadataWithoutData, 1).unwrap();
    // a keeps its new length with its old bytes, then zeros; c and the new h were synced.
    assert_eq!(
        contents(&dir),
        files(&[("a", b"aaaa\0\0"), ("b", b"b"), ("c", b"c"), ("h", b"new")])
    );
    assert_eq!(report.kept_bytes(), 0);
    let a = report.files.iter().find(|f| f.path.ends_with("a")).unwrap();
    assert_eq!((a.len_before, a.len_after, a.kept_ops), (6, 6, 0));
}

/// Every state a file with durable bytes `base` may be left in by a torn prefix of `writes`.
fn torn_states(base: &[u8], writes: &[(usize, &[u8])]) -> BTreeSet<Vec<u8>> {
    let apply = |file: &mut Vec<u8>, at: usize, bytes: &[u8]| {
        if file.len() < at + bytes.len() {
            file.resize(at + bytes.len(), 0);
        }
        file[at..at + bytes.len()].copy_from_slice(bytes);
    };
    let mut states = BTreeSet::from([base.to_vec()]);
    let mut file = base.to_vec();
    for &(at, bytes) in writes {
        for cut in 0..bytes.len() {
            let mut torn = file.clone();
            apply(&mut torn, at, &bytes[..cut]);
            states.insert(torn);
        }
        apply(&mut file, at, bytes);
        states.insert(file.clone());
    }
    states
}

#[test]
fn torn_prefix_keeps_a_prefix_of_each_files_writes_independently_and_tears_the_last() {
    let writes_x: [(usize, &[u8]); 3] = [(0, b"x1x1"), (4, b"x2x2"), (8, b"x3x3")];
    let writes_y: [(usize, &[u8]); 2] = [(0, b"y1y1"), (4, b"y2y2")];
    let allowed_x = torn_states(b"", &writes_x);
    let allowed_y = torn_states(b"", &writes_y);
    let (mut torn, mut later_kept_earlier_lost, mut names_lost, mut names_kept) = (0, 0, 0, 0);
    for seed in 0..200 {
        let root = tempfile::tempdir().unwrap();
        let disk = CrashDisk::new(root.path().join("trash")).unwrap();
        let (x, y) = (root.path().join("x"), root.path().join("y"));
        let fx = disk.create(&x).unwrap();
        let fy = disk.create(&y).unwrap();
        disk.sync_dir(root.path()).unwrap();
        // Interleaved: x's first write, y's two, x's other two.
        fx.write_all_at(writes_x[0].1, writes_x[0].0 as u64).unwrap();
        for (at, bytes) in writes_y {
            fy.write_all_at(bytes, at as u64).unwrap();
        }
        for (at, bytes) in &writes_x[1..] {
            fx.write_all_at(bytes, *at as u64).unwrap();
        }
        let z = root.path().join("z");
        disk.create(&z).unwrap();
        let report = disk.crash(CrashFamily::TornPrefix, seed).unwrap();
        let (bx, by) = (fs::read(&x).unwrap(), fs::read(&y).unwrap());
        assert!(allowed_x.contains(&bx), "seed {seed}: x = {bx:?}");
        assert!(allowed_y.contains(&by), "seed {seed}: y = {by:?}");
        torn += report.files.iter().filter(|f| f.torn_at.is_some()).count();
        // y's writes came after x's first: y kept whole while x lost everything.
        if bx.is_empty() && by.len() == 8 {
            later_kept_earlier_lost += 1;
        }
        if z.exists() {
            names_kept += 1;
        } else {
            names_lost += 1;
        }
    }
    assert!(torn > 20, "torn writes: {torn}");
    assert!(later_kept_earlier_lost > 0);
    assert!(names_kept > 0 && names_lost > 0, "kept {names_kept}, lost {names_lost}");
}

#[test]
fn the_same_seed_chooses_the_same_state() {
    let run = |seed| {
        let (_root, dir, disk) = synced_dir();
        unsynced_work(&dir, &disk);
        let report = disk.crash(CrashFamily::TornPrefix, seed).unwrap();
        (contents(&dir), report.files.len(), report.ops())
    };
    for seed in 0..10 {
        assert_eq!(run(seed), run(seed), "seed {seed}");
    }
}

#[test]
fn synced_work_survives_every_family() {
    for family in CrashFamily::ALL {
        let (root, dir, disk) = synced_dir();
        unsynced_work(&dir, &disk);
        let a = disk.open(&dir.join("a")).unwrap();
        a.sync_data().unwrap();
        disk.open(&dir.join("b")).unwrap().sync_all().unwrap();
        disk.sync_dir(&dir).unwrap();
        let report = disk.crash(family, 3).unwrap();
        assert_eq!(report.ops(), (0, 0), "{family}: nothing unsynced");
        assert_eq!(
            contents(&dir),
            files(&[("a", b"aaXYZZ"), ("b", b"b"), ("c", b"c"), ("h", b"new")]),
            "{family}"
        );
        assert_eq!(fs::read_dir(root.path().join("trash")).unwrap().count(), 0);
    }
}

#[test]
fn an_armed_crash_happens_at_the_chosen_sync_instead_of_it() {
    let (_root, dir, disk) = synced_dir();
    let a = disk.open(&dir.join("a")).unwrap();
    disk.crash_at_sync(CrashFamily::LoseUnsynced, 5, 1).unwrap();
    a.write_all_at(b"1", 0).unwrap();
    a.sync_data().unwrap(); // let through
    a.write_all_at(b"2", 1).unwrap();
    let err = a.sync_data().unwrap_err();
    assert!(err.to_string().contains("crashed"), "{err}");
    assert!(disk.has_crashed());
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"1aaa");
    let report = disk.report().expect("a report once crashed");
    assert_eq!((report.seed, report.unsynced_bytes()), (5, 1));
}

#[test]
fn a_crashed_disk_refuses_every_operation() {
    let (_root, dir, disk) = synced_dir();
    let a = disk.open(&dir.join("a")).unwrap();
    disk.crash(CrashFamily::LoseUnsynced, 0).unwrap();
    assert!(a.write_all_at(b"x", 0).is_err());
    assert!(a.sync_data().is_err());
    assert!(disk.read(&dir.join("a")).is_err());
    assert!(disk.create(&dir.join("n")).is_err());
    assert!(disk.crash(CrashFamily::LoseUnsynced, 0).is_err());
    assert!(!dir.join("n").exists());
}

#[test]
fn an_injected_eio_fails_the_sync_and_loses_the_files_unsynced_writes() {
    let (_root, dir, disk) = synced_dir();
    let a = disk.open(&dir.join("a")).unwrap();
    a.write_all_at(b"12", 4).unwrap();
    disk.fail_next(Some(DiskError::EioOnSync)).unwrap();
    let err = a.sync_data().unwrap_err();
    assert_eq!(err.raw_os_error(), Some(5), "{err}");
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"aaaa", "the dirty pages were dropped");
    let injected = disk.injected().unwrap();
    assert_eq!((injected.error, injected.lost_bytes), (DiskError::EioOnSync, 2));
    assert!(injected.path.ends_with("a"));
    // One error only: the retry succeeds, on data that is gone.
    a.sync_data().unwrap();
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"aaaa");
}

#[test]
fn an_injected_enospc_fails_the_write_and_writes_nothing() {
    let (_root, dir, disk) = synced_dir();
    let a = disk.open(&dir.join("a")).unwrap();
    disk.fail_next(Some(DiskError::EnospcOnWrite)).unwrap();
    let err = a.write_all_at(b"12", 4).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"aaaa");
    a.write_all_at(b"12", 4).unwrap();
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"aaaa12");
    // Disarmed before it fired: nothing happens.
    disk.fail_next(Some(DiskError::EioOnSync)).unwrap();
    disk.fail_next(None).unwrap();
    a.sync_data().unwrap();
}

#[test]
fn a_removed_file_with_unsynced_writes_is_gone_for_good_once_its_directory_is_synced() {
    let (root, dir, disk) = synced_dir();
    let a = disk.open(&dir.join("a")).unwrap();
    a.write_all_at(b"unsynced", 4).unwrap();
    disk.remove_file(&dir.join("a")).unwrap();
    disk.sync_dir(&dir).unwrap();
    let report = disk.crash(CrashFamily::LoseUnsynced, 1).unwrap();
    assert!(!dir.join("a").exists());
    assert_eq!(report.ops(), (0, 0), "{report:?}");
    assert_eq!(fs::read_dir(root.path().join("trash")).unwrap().count(), 0);
}

#[test]
fn torn_prefix_can_keep_any_pages_of_a_write_with_the_files_new_length() {
    let data: Vec<u8> = (0..3 * 4096).map(|i| 1 + (i / 4096) as u8).collect();
    let mut later_page_without_earlier = false;
    for seed in 0..300 {
        let root = tempfile::tempdir().unwrap();
        let disk = CrashDisk::new(root.path().join("trash")).unwrap();
        let path = root.path().join("f");
        let file = disk.create(&path).unwrap();
        file.sync_all().unwrap();
        disk.sync_dir(root.path()).unwrap();
        file.write_all_at(&data, 0).unwrap();
        let report = disk.crash(CrashFamily::TornPrefix, seed).unwrap();
        let Some(pages) = &report.files[0].torn_pages else { continue };
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), data.len(), "seed {seed}: the new length reached the disk");
        for (i, page) in bytes.chunks(4096).enumerate() {
            let kept = pages.contains(&(i as u64 * 4096));
            let expected = if kept { 1 + i as u8 } else { 0 };
            assert!(page.iter().all(|&b| b == expected), "seed {seed}: page {i}, {pages:?}");
        }
        later_page_without_earlier |= pages.contains(&8192) && !pages.contains(&0);
    }
    assert!(later_page_without_earlier, "a later page survives an earlier one's loss");
}

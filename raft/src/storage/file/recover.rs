//! Opening a storage directory: clearing interrupted temporary files, loading the hard state,
//! and checking every segment (cutting a torn tail off the last one).

use std::path::{Path, PathBuf};

use super::fsutil::{sync_dir, TEMP_SUFFIX};
use super::{hard_state, segment, snapshot_file, Recovery, Segment, TornTail};
use crate::core::{HardState, Index, Snapshot};
use crate::storage::{Corruption, Disk, StorageError};

/// What a storage directory holds once recovered.
pub(super) struct Recovered {
    pub hard_state: HardState,
    /// Index 0 when there is no snapshot file.
    pub snapshot: Snapshot,
    /// Never empty.
    pub segments: Vec<Segment>,
    /// Whether the last segment ends with a sync marker.
    pub sealed: bool,
    pub recovery: Recovery,
}

/// Recovers the storage in `dir` on `disk`, creating an empty one when there is none. The rules
/// are those of [`FileStorage`](super::FileStorage).
pub(super) fn recover(disk: &dyn Disk, dir: &Path) -> Result<Recovered, StorageError> {
    let mut recovery = Recovery::default();
    let segment_names = list(disk, dir, &mut recovery)?;

    let snapshot = snapshot_file::load(disk, &dir.join(snapshot_file::FILE_NAME))?;
    let hard_state_path = dir.join(hard_state::FILE_NAME);
    let hard_state = match hard_state::load(disk, &hard_state_path)? {
        // A crash between creating the hard state and the first segment leaves the default;
        // one in the middle of replacing the whole log by a snapshot leaves the snapshot.
        Some(hard_state)
            if segment_names.is_empty()
                && snapshot.is_none()
                && hard_state != HardState::default() =>
        {
            return Err(StorageError::MissingLog { dir: dir.to_path_buf(), term: hard_state.term });
        }
        Some(hard_state) => hard_state,
        None if segment_names.is_empty() && snapshot.is_none() => {
            // The hard state is created before the first segment, so this is a new directory.
            recovery.created = true;
            let hard_state = HardState::default();
            hard_state::store(disk, dir, &hard_state_path, &hard_state, true)?;
            hard_state
        }
        None => return Err(StorageError::MissingHardState { path: hard_state_path }),
    };

    let mut segments: Vec<Segment> = Vec::with_capacity(segment_names.len().max(1));
    let mut sealed = false;
    let count = segment_names.len();
    for (i, (first_index, path)) in segment_names.into_iter().enumerate() {
        let expected = segments.last().map(|previous| previous.last_index() + 1);
        let (segment, segment_sealed) =
            recover_segment(disk, path, first_index, expected, i + 1 == count, &mut recovery)?;
        segments.push(segment);
        sealed = segment_sealed;
    }
    let snapshot = snapshot.unwrap_or_default();
    if segments.is_empty() {
        let first_index = snapshot.index + 1;
        let (path, file) = segment::create(disk, dir, first_index)?;
        let len = segment::HEADER_LEN;
        segments.push(Segment { first_index, path, file, offsets: Vec::new(), len });
    }
    Ok(Recovered { hard_state, snapshot, segments, sealed, recovery })
}

/// Removes the temporary files an interrupted atomic replacement left, and lists the segments
/// in index order.
fn list(
    disk: &dyn Disk,
    dir: &Path,
    recovery: &mut Recovery,
) -> Result<Vec<(Index, PathBuf)>, StorageError> {
    let mut segments = Vec::new();
    let listing = disk.list(dir).map_err(|e| StorageError::io("list", dir, e))?;
    for name in listing {
        let Some(name) = name.to_str() else { continue };
        if let Some(target) = name.strip_suffix(TEMP_SUFFIX) {
            let ours = target == hard_state::FILE_NAME || target == snapshot_file::FILE_NAME;
            if ours || segment::parse_file_name(target).is_some() {
                let path = dir.join(name);
                disk.remove_file(&path).map_err(|e| StorageError::io("remove", &path, e))?;
                tracing::info!(path = %path.display(), "removed an interrupted temporary file");
                recovery.removed_temp_files.push(path);
            }
        } else if let Some(first_index) = segment::parse_file_name(name) {
            segments.push((first_index, dir.join(name)));
        }
    }
    if !recovery.removed_temp_files.is_empty() {
        sync_dir(disk, dir)?;
    }
    segments.sort();
    Ok(segments)
}

/// Checks one segment, which must start at `expected` when given, and cuts its torn tail if it
/// is the `last` one. Returns it with whether it ends with a sync marker.
fn recover_segment(
    disk: &dyn Disk,
    path: PathBuf,
    first_index: Index,
    expected: Option<Index>,
    last: bool,
    recovery: &mut Recovery,
) -> Result<(Segment, bool), StorageError> {
    if first_index == 0 {
        let kind = Corruption::SegmentHeader("first index 0 (indexes start at 1)".into());
        return Err(StorageError::corrupt(&path, 0, kind));
    }
    if let Some(expected) = expected.filter(|&expected| expected != first_index) {
        let kind = Corruption::IndexGap { expected, found: first_index };
        return Err(StorageError::corrupt(&path, 0, kind));
    }
    let bytes = disk.read(&path).map_err(|e| StorageError::io("read", &path, e))?;
    let scan = segment::scan(&path, &bytes, first_index, last)?;
    let file = segment::open(disk, &path)?;
    if let Some(reason) = scan.torn {
        let dropped_bytes = bytes.len() as u64 - scan.valid_len;
        tracing::warn!(
            path = %path.display(),
            offset = scan.valid_len,
            dropped_bytes,
            reason,
            "cutting a torn tail off the log"
        );
        file.set_len(scan.valid_len).map_err(|e| StorageError::io("truncate", &path, e))?;
        file.sync_all().map_err(|e| StorageError::io("fsync", &path, e))?;
        recovery.torn_tail =
            Some(TornTail { path: path.clone(), offset: scan.valid_len, dropped_bytes, reason });
    }
    let segment = Segment { first_index, path, file, offsets: scan.offsets, len: scan.valid_len };
    Ok((segment, scan.sealed))
}

//! File system steps that durability rests on.

use std::path::{Path, PathBuf};

use crate::storage::{Disk, StorageError};

/// The suffix of a file being written before it is renamed into place.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// `path` with [`TEMP_SUFFIX`] appended.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// The bytes of the file at `path`, or `None` when there is no such file.
pub(crate) fn read_if_exists(
    disk: &dyn Disk,
    path: &Path,
) -> Result<Option<Vec<u8>>, StorageError> {
    match disk.read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

/// Makes the directory's entries (created, renamed, removed files) durable.
pub(crate) fn sync_dir(disk: &dyn Disk, path: &Path) -> Result<(), StorageError> {
    disk.sync_dir(path).map_err(|e| StorageError::io("fsync directory", path, e))
}

/// Replaces `path` with `contents` so that a crash leaves either the old file or the new one,
/// whole: write a temporary file, fsync it, rename it over `path`, fsync the directory (unless
/// not `then_sync_dir`: then a crash may still leave the old file).
pub(crate) fn write_atomically(
    disk: &dyn Disk,
    dir: &Path,
    path: &Path,
    contents: &[u8],
    then_sync_dir: bool,
) -> Result<(), StorageError> {
    let temp = temp_path(path);
    let file = disk.create(&temp).map_err(|e| StorageError::io("create", &temp, e))?;
    file.write_all_at(contents, 0).map_err(|e| StorageError::io("write", &temp, e))?;
    file.sync_all().map_err(|e| StorageError::io("fsync", &temp, e))?;
    drop(file);
    disk.rename(&temp, path).map_err(|e| StorageError::io("rename into place", path, e))?;
    match then_sync_dir {
        true => sync_dir(disk, dir),
        false => Ok(()),
    }
}

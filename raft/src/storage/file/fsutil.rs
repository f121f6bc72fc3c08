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

/// A small file replaced whole (the hard state, the snapshot): `magic | crc32 of the payload
/// (u32 LE) | payload`.
pub(crate) fn checksummed(magic: &[u8; 8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(magic.len() + 4 + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// The offset of a [`checksummed`] file's payload.
pub(crate) const PAYLOAD_AT: usize = 12;

/// The payload of a [`checksummed`] file with `magic`; on damage, the offset and what is wrong.
pub(crate) fn verify_checksummed<'a>(
    magic: &[u8; 8],
    bytes: &'a [u8],
) -> Result<&'a [u8], (usize, &'static str)> {
    if bytes.len() < PAYLOAD_AT {
        return Err((0, "shorter than its header"));
    }
    if &bytes[..magic.len()] != magic {
        return Err((0, "wrong magic"));
    }
    let crc = u32::from_le_bytes(bytes[magic.len()..PAYLOAD_AT].try_into().expect("4 bytes"));
    let payload = &bytes[PAYLOAD_AT..];
    if crc32fast::hash(payload) != crc {
        return Err((PAYLOAD_AT, "checksum mismatch"));
    }
    Ok(payload)
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

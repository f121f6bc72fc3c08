//! The snapshot file: `magic (8 bytes) | crc32 (u32 LE) of what follows | index (u64 LE) |
//! term (u64 LE) | the service's data`.
//!
//! Like the hard state file it is only ever replaced whole ([`write_atomically`]): a crash
//! leaves the previous snapshot or the new one, and the checksum catches damage at rest.

use std::path::Path;
use std::sync::Arc;

use super::fsutil::{read_if_exists, write_atomically};
use crate::core::Snapshot;
use crate::storage::{Corruption, Disk, StorageError};

/// The snapshot file's name within the storage directory.
pub(crate) const FILE_NAME: &str = "snapshot";

const MAGIC: &[u8; 8] = b"RAFTSN01";
const CRC_AT: usize = MAGIC.len();
const INDEX_AT: usize = CRC_AT + 4;
const DATA_AT: usize = INDEX_AT + 16;

/// The file's bytes for `snapshot`.
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_AT + snapshot.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&snapshot.index.to_le_bytes());
    out.extend_from_slice(&snapshot.term.to_le_bytes());
    out.extend_from_slice(&snapshot.data);
    let crc = crc32fast::hash(&out[INDEX_AT..]);
    out[CRC_AT..INDEX_AT].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the file's bytes; on damage, the offset and what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, (u64, Corruption)> {
    let bad = |offset: usize, why: &str| (offset as u64, Corruption::Snapshot(why.to_string()));
    if bytes.len() < DATA_AT {
        return Err(bad(0, "shorter than its header"));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(bad(0, "wrong magic"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if crc32fast::hash(&bytes[INDEX_AT..]) != u32_at(CRC_AT) {
        return Err(bad(INDEX_AT, "checksum mismatch"));
    }
    let (index, term) = (u64_at(INDEX_AT), u64_at(INDEX_AT + 8));
    if index == 0 || index == u64::MAX {
        return Err(bad(INDEX_AT, &format!("impossible last included index {index}")));
    }
    Ok(Snapshot { index, term, data: Arc::from(&bytes[DATA_AT..]) })
}

/// Reads the snapshot file at `path`; `None` when it does not exist.
pub(crate) fn load(disk: &dyn Disk, path: &Path) -> Result<Option<Snapshot>, StorageError> {
    let Some(bytes) = read_if_exists(disk, path)? else { return Ok(None) };
    decode(&bytes).map(Some).map_err(|(offset, kind)| StorageError::corrupt(path, offset, kind))
}

/// Replaces the snapshot file at `path` atomically and durably.
pub(crate) fn store(
    disk: &dyn Disk,
    dir: &Path,
    path: &Path,
    snapshot: &Snapshot,
) -> Result<(), StorageError> {
    write_atomically(disk, dir, path, &encode(snapshot), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot { index: 42, term: 7, data: Arc::from(&b"state"[..]) }
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(&snapshot())), Ok(snapshot()));
        let empty = Snapshot { data: Arc::from(&[][..]), ..snapshot() };
        assert_eq!(decode(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(&snapshot());
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(decode(&flipped).is_err(), "flip at {at}");
            assert!(decode(&bytes[..at]).is_err(), "cut at {at}");
        }
    }
}

//! The snapshot file: `magic (8 bytes) | crc32 (u32 LE) of what follows | index (u64 LE) |
//! term (u64 LE) | the service's data`.
//!
//! Like the hard state file it is only ever replaced whole ([`write_atomically`]): a crash
//! leaves the previous snapshot or the new one, and the checksum catches damage at rest.

use std::path::Path;
use std::sync::Arc;

use super::fsutil::{
    checksummed, read_if_exists, verify_checksummed, write_atomically, PAYLOAD_AT,
};
use crate::core::Snapshot;
use crate::storage::{Corruption, Disk, StorageError};

/// The snapshot file's name within the storage directory.
pub(crate) const FILE_NAME: &str = "snapshot";

const MAGIC: &[u8; 8] = b"RAFTSN01";

/// The file's bytes for `snapshot`.
pub(crate) fn encode(snapshot: &Snapshot) -> Vec<u8> {
    let mut payload = Vec::with_capacity(16 + snapshot.data.len());
    payload.extend_from_slice(&snapshot.index.to_le_bytes());
    payload.extend_from_slice(&snapshot.term.to_le_bytes());
    payload.extend_from_slice(&snapshot.data);
    checksummed(MAGIC, &payload)
}

/// Decodes the file's bytes; on damage, the offset and what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<Snapshot, (u64, Corruption)> {
    let bad = |offset: usize, why: &str| (offset as u64, Corruption::Snapshot(why.to_string()));
    let payload = verify_checksummed(MAGIC, bytes).map_err(|(at, why)| bad(at, why))?;
    if payload.len() < 16 {
        return Err(bad(PAYLOAD_AT, "shorter than its index and term"));
    }
    let u64_at = |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
    let (index, term) = (u64_at(0), u64_at(8));
    if index == 0 || index == u64::MAX {
        return Err(bad(PAYLOAD_AT, &format!("impossible last included index {index}")));
    }
    Ok(Snapshot { index, term, data: Arc::from(&payload[16..]) })
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

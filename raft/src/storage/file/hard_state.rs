//! The hard state file: `magic (8 bytes) | crc32 of payload (u32 LE) | postcard(HardState)`.
//!
//! It is only ever replaced whole ([`write_atomically`]), so it is never seen half-written; the
//! checksum catches damage at rest.

use std::path::Path;

use super::fsutil::{
    checksummed, read_if_exists, verify_checksummed, write_atomically, PAYLOAD_AT,
};
use crate::core::HardState;
use crate::storage::{Corruption, Disk, StorageError};

/// The hard state file's name within the storage directory.
pub(crate) const FILE_NAME: &str = "hardstate";

const MAGIC: &[u8; 8] = b"RAFTHS01";

/// The file's bytes for `hard_state`.
pub(crate) fn encode(hard_state: &HardState) -> Vec<u8> {
    let payload = postcard::to_allocvec(hard_state).expect("postcard encodes a hard state");
    checksummed(MAGIC, &payload)
}

/// Decodes the file's bytes; on damage, the offset and what is wrong.
pub(crate) fn decode(bytes: &[u8]) -> Result<HardState, (u64, Corruption)> {
    let bad = |offset: usize, why: &str| (offset as u64, Corruption::HardState(why.to_string()));
    let payload = verify_checksummed(MAGIC, bytes).map_err(|(at, why)| bad(at, why))?;
    match postcard::take_from_bytes::<HardState>(payload) {
        Ok((hard_state, [])) => Ok(hard_state),
        Ok(_) => Err(bad(PAYLOAD_AT, "trailing bytes after the payload")),
        Err(e) => Err(bad(PAYLOAD_AT, &format!("undecodable payload: {e}"))),
    }
}

/// Reads the hard state file at `path`; `None` when it does not exist.
pub(crate) fn load(disk: &dyn Disk, path: &Path) -> Result<Option<HardState>, StorageError> {
    let Some(bytes) = read_if_exists(disk, path)? else { return Ok(None) };
    decode(&bytes).map(Some).map_err(|(offset, kind)| StorageError::corrupt(path, offset, kind))
}

/// Replaces the hard state file at `path` atomically, and durably when `sync_dir` (only the
/// catalogue's `hard-state-without-dir-sync` leaves the directory unsynced).
pub(crate) fn store(
    disk: &dyn Disk,
    dir: &Path,
    path: &Path,
    hard_state: &HardState,
    sync_dir: bool,
) -> Result<(), StorageError> {
    write_atomically(disk, dir, path, &encode(hard_state), sync_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for hs in [HardState::default(), HardState { term: u64::MAX, vote: Some(0) }] {
            assert_eq!(decode(&encode(&hs)), Ok(hs));
        }
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_refused() {
        let bytes = encode(&HardState { term: 9, vote: Some(3) });
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(decode(&flipped).is_err(), "flip at {at}");
            assert!(decode(&bytes[..at]).is_err(), "cut at {at}");
        }
    }
}

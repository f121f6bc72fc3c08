//! Log segment files: naming, the segment header, creation, and the recovery scan.
//!
//! A segment is `wal-<first index, 20 digits>.log`:
//!
//! ```text
//! offset  size  field
//! 0       8     magic        b"RAFTWAL1"
//! 8       8     first_index  u64 LE: the index of the segment's first entry
//! 16      4     crc          CRC32 of bytes 0..16
//! 20      ...   records      (see `record`)
//! ```

use std::path::{Path, PathBuf};

use super::fsutil::write_atomically;
use super::record::{self, Frame, Record};
use crate::core::Index;
use crate::storage::{Corruption, Disk, DiskFile, StorageError};

/// Bytes before a segment's first record.
pub(crate) const HEADER_LEN: u64 = 20;

const MAGIC: &[u8; 8] = b"RAFTWAL1";
const PREFIX: &str = "wal-";
const SUFFIX: &str = ".log";

/// The file name of the segment whose first entry has index `first_index`.
pub(crate) fn file_name(first_index: Index) -> String {
    format!("{PREFIX}{first_index:020}{SUFFIX}")
}

/// The first index named by a segment file name, if `name` is one.
pub(crate) fn parse_file_name(name: &str) -> Option<Index> {
    let digits = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn header(first_index: Index) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Creates the empty segment for `first_index` in `dir` atomically and durably (so a segment
/// file always has a whole header), and opens it for reading and writing.
pub(crate) fn create(
    disk: &dyn Disk,
    dir: &Path,
    first_index: Index,
) -> Result<(PathBuf, Box<dyn DiskFile>), StorageError> {
    let path = dir.join(file_name(first_index));
    write_atomically(disk, dir, &path, &header(first_index), true)?;
    let file = open(disk, &path)?;
    Ok((path, file))
}

/// Opens an existing segment for reading and writing.
pub(crate) fn open(disk: &dyn Disk, path: &Path) -> Result<Box<dyn DiskFile>, StorageError> {
    disk.open(path).map_err(|e| StorageError::io("open", path, e))
}

/// What the recovery scan found in one segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// The byte offset of each entry's record, in index order from the segment's first index.
    pub offsets: Vec<u64>,
    /// The length of the segment's whole records; the file is cut here when `torn` is set.
    pub valid_len: u64,
    /// Set when the segment ends in a torn tail starting at `valid_len`: what was wrong there.
    pub torn: Option<&'static str>,
    /// Whether the last whole record is a sync marker.
    pub sealed: bool,
}

/// Checks the segment `bytes` read from `path`, named for `first_index`.
///
/// Records are read in order. The first record that is not whole ends the scan:
///
/// - a record whose header verifies but whose payload runs past the end of the file, or fewer
///   than 12 bytes left: a torn tail;
/// - a header or payload checksum mismatch: a torn tail unless a whole sync marker starts at
///   some later byte offset (searched at every offset after the damaged record, or after its
///   header when the length is unverifiable), which proves the damaged bytes had been made
///   durable: then corruption;
/// - a verified length that is zero or above the limit, an undecodable payload, an entry
///   index out of sequence or a sync marker naming the wrong index: corruption wherever it is,
///   since a checksum that matches means a writer put those bytes there.
///
/// `last` says whether this is the last segment; in any other segment a torn tail is
/// corruption ([`Corruption::UnsealedSegment`]), since a segment is synced before the next one
/// is created.
pub(crate) fn scan(
    path: &Path,
    bytes: &[u8],
    first_index: Index,
    last: bool,
) -> Result<Scan, StorageError> {
    let corrupt = |offset: usize, kind| StorageError::corrupt(path, offset as u64, kind);
    if first_index == 0 {
        let why = "first index 0 (indexes start at 1)".to_string();
        return Err(corrupt(0, Corruption::SegmentHeader(why)));
    }
    check_header(bytes, first_index).map_err(|why| corrupt(0, Corruption::SegmentHeader(why)))?;
    let mut offsets = Vec::new();
    let mut pos = HEADER_LEN as usize;
    let mut sealed = false;
    let mut torn = None;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let (why, damage_end) = match record::frame(rest) {
            Frame::Whole { payload, len } => {
                // The index this record's entry must have; an entry at `Index::MAX` would leave
                // the log no room for another, so none is ever written there.
                let after = first_index - 1 + offsets.len() as u64;
                let Some(next) = after.checked_add(1).filter(|&next| next < Index::MAX) else {
                    return Err(corrupt(pos, Corruption::IndexOutOfRange { after }));
                };
                match record::decode(payload) {
                    Ok(Record::Entry(entry)) if entry.index == next => {
                        offsets.push(pos as u64);
                        sealed = false;
                    }
                    Ok(Record::Entry(entry)) => {
                        let kind = Corruption::IndexGap { expected: next, found: entry.index };
                        return Err(corrupt(pos, kind));
                    }
                    Ok(Record::Sync { last_index }) if last_index == after => sealed = true,
                    Ok(Record::Sync { last_index }) => {
                        let kind =
                            Corruption::SyncMarkerMismatch { expected: after, found: last_index };
                        return Err(corrupt(pos, kind));
                    }
                    Err(why) => return Err(corrupt(pos, Corruption::Undecodable(why))),
                }
                pos += len;
                continue;
            }
            Frame::ImpossibleLength(len) => {
                return Err(corrupt(pos, Corruption::ImpossibleLength(len)));
            }
            Frame::Incomplete => ("incomplete record", bytes.len()),
            Frame::BadHeader => ("record length checksum mismatch", pos + record::HEADER_LEN),
            Frame::BadPayload { len } => ("record payload checksum mismatch", pos + len),
        };
        let search_from = damage_end.min(bytes.len());
        if let Some(at) = record::find_sync_marker(&bytes[search_from..]) {
            let sync_marker_at = (search_from + at) as u64;
            let kind = match record::frame(rest) {
                Frame::BadHeader => Corruption::HeaderChecksum { sync_marker_at },
                _ => Corruption::PayloadChecksum { sync_marker_at },
            };
            return Err(corrupt(pos, kind));
        }
        torn = Some(why);
        break;
    }
    if !last && (torn.is_some() || !sealed) {
        return Err(corrupt(pos, Corruption::UnsealedSegment));
    }
    Ok(Scan { offsets, valid_len: pos as u64, torn, sealed })
}

fn check_header(bytes: &[u8], first_index: Index) -> Result<(), String> {
    let Some(head) = bytes.get(..HEADER_LEN as usize) else {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    };
    if &head[..8] != MAGIC {
        return Err("wrong magic".into());
    }
    let crc = u32::from_le_bytes(head[16..20].try_into().expect("4 bytes"));
    if crc32fast::hash(&head[..16]) != crc {
        return Err("checksum mismatch".into());
    }
    let named = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if named != first_index {
        return Err(format!("first index {named} but the file name says {first_index}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Entry, EntryKind};

    #[test]
    fn file_names_round_trip_and_reject_strangers() {
        assert_eq!(file_name(1), "wal-00000000000000000001.log");
        assert_eq!(parse_file_name(&file_name(u64::MAX)), Some(u64::MAX));
        for name in ["wal-1.log", "wal-00000000000000000001.log.tmp", "hardstate", "wal-x.log"] {
            assert_eq!(parse_file_name(name), None, "{name}");
        }
    }

    fn segment(first: Index, entries: usize, sync_every: usize) -> Vec<u8> {
        let mut bytes = header(first);
        let indexes: Vec<Index> = (first..first + entries as u64).collect();
        for batch in indexes.chunks(sync_every) {
            for &index in batch {
                let entry = Entry { index, term: 1, kind: EntryKind::Normal, data: vec![7; 30] };
                record::encode_entry(&entry, &mut bytes);
            }
            if batch.len() == sync_every {
                record::encode_sync(*batch.last().expect("a batch is not empty"), &mut bytes);
            }
        }
        bytes
    }

    #[test]
    fn whole_segment_scans_clean() {
        let bytes = segment(5, 10, 3);
        let scan = scan(Path::new("s"), &bytes, 5, false);
        // 10 entries synced every 3: ends with an unsynced entry, so not sealed.
        assert!(matches!(
            scan,
            Err(StorageError::Corrupt { kind: Corruption::UnsealedSegment, .. })
        ));
        let bytes = segment(5, 9, 3);
        let scan = super::scan(Path::new("s"), &bytes, 5, false).unwrap();
        assert_eq!(scan.offsets.len(), 9);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert!(scan.sealed);
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn indexes_that_would_overflow_are_corrupt() {
        // Entries up to Index::MAX - 1 are fine; one at Index::MAX leaves no room for the next.
        let mut bytes = header(Index::MAX - 1);
        for index in [Index::MAX - 1, Index::MAX] {
            let entry = Entry { index, term: 1, kind: EntryKind::Normal, data: vec![] };
            record::encode_entry(&entry, &mut bytes);
        }
        let err = scan(Path::new("s"), &bytes, Index::MAX - 1, true).unwrap_err();
        let StorageError::Corrupt { kind, offset, .. } = err else { panic!("{err:?}") };
        assert_eq!(kind, Corruption::IndexOutOfRange { after: Index::MAX - 1 });
        assert!(offset > HEADER_LEN, "the second record is named");
        // A segment named for index 0 is refused before anything is read.
        assert!(matches!(
            scan(Path::new("s"), &header(0), 0, true),
            Err(StorageError::Corrupt { offset: 0, kind: Corruption::SegmentHeader(_), .. })
        ));
    }

    #[test]
    fn header_naming_another_index_is_corrupt() {
        let bytes = segment(5, 1, 1);
        let err = scan(Path::new("s"), &bytes, 6, true).unwrap_err();
        assert!(matches!(
            err,
            StorageError::Corrupt { offset: 0, kind: Corruption::SegmentHeader(_), .. }
        ));
    }

    #[test]
    fn damage_after_the_last_sync_marker_is_torn_even_with_whole_records_after_it() {
        // Entries 1..=3 synced, then 4..=6 written but not synced; entry 4 damaged (as a
        // crash that lost one page of an unsynced write would leave it).
        let mut bytes = segment(1, 3, 3);
        let at = bytes.len();
        for index in 4..=6 {
            let entry = Entry { index, term: 1, kind: EntryKind::Normal, data: vec![1; 30] };
            record::encode_entry(&entry, &mut bytes);
        }
        bytes[at + 20] ^= 0xFF;
        let scan = scan(Path::new("s"), &bytes, 1, true).unwrap();
        assert_eq!(scan.offsets.len(), 3);
        assert_eq!(scan.valid_len, at as u64);
        assert_eq!(scan.torn, Some("record payload checksum mismatch"));
    }
}

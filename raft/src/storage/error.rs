//! The errors of [`Storage`](super::Storage) implementations.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::core::Index;

/// Why a storage operation failed.
///
/// Corruption always names the file and the byte offset of the first bad byte range, so that an
/// operator can look at it (`xxd -s OFFSET FILE`) before deciding what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("write", "fdatasync", "rename", ...).
        op: &'static str,
        /// The file or directory it was done on.
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file holds bytes that a correct writer cannot have left there, or that a crash cannot
    /// explain (see the rules in [`FileStorage`](super::FileStorage)). The storage refuses to
    /// open rather than guess.
    #[error("{}: corrupt at byte offset {offset}: {kind}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// The byte offset, from the start of the file, of the damaged record or header.
        offset: u64,
        /// What is wrong there.
        kind: Corruption,
    },

    /// The directory holds log segments but no hard state file: the hard state was lost, and
    /// starting with an empty one could make this peer vote twice in one term.
    #[error("{}: the log exists but the hard state file is missing", path.display())]
    MissingHardState {
        /// Where the hard state file should be.
        path: PathBuf,
    },

    /// The hard state records a term or a vote, but neither a log segment nor a snapshot is
    /// left. The first segment is created right after the hard state when the directory is
    /// new, and segments are only removed once a snapshot covers them, so the log was lost:
    /// starting with an empty one could lose entries this peer had promised to keep.
    #[error(
        "{}: the hard state records term {term} but no log segment is left (the log was lost)",
        dir.display()
    )]
    MissingLog {
        /// The storage directory.
        dir: PathBuf,
        /// The term the hard state records.
        term: u64,
    },

    /// Another [`FileStorage`](super::FileStorage), in this process or another, has the
    /// directory open.
    #[error("{} is locked: the storage is open elsewhere", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// An append that does not start within the log or right after its last entry.
    #[error(
        "cannot append at index {index}: the log has first index {first_index} and last index \
         {last_index}; an append must start between the first index and the last index + 1"
    )]
    AppendOutOfRange {
        /// The index of the first entry to append.
        index: Index,
        first_index: Index,
        last_index: Index,
    },

    /// Entries given to one append whose indexes do not follow each other.
    #[error("entries to append are not consecutive: index {found} follows index {previous}")]
    NotConsecutive { previous: Index, found: Index },

    /// A read or truncation outside the log.
    #[error(
        "range {lo}..{hi} is outside the log (first index {first_index}, last index {last_index})"
    )]
    OutOfRange { lo: Index, hi: Index, first_index: Index, last_index: Index },

    /// A snapshot older than the one the storage holds: storing it would take the service's
    /// state back.
    #[error("cannot store a snapshot at index {index}: the storage holds one at {snapshot_index}")]
    SnapshotOutOfDate { index: Index, snapshot_index: Index },

    /// An entry whose encoding exceeds the largest record the log accepts.
    #[error("entry {index} encodes to {size} bytes, more than the limit of {limit}")]
    EntryTooLarge { index: Index, size: usize, limit: usize },

    /// An earlier write or sync failed, so what is on disk is unknown (after a failed fsync the
    /// kernel may have dropped the dirty pages). Every later call fails with this error; the
    /// owner must drop the storage and open it again, which recovers from what is on disk.
    #[error("storage is unusable after an earlier failure ({0}); reopen it")]
    Poisoned(String),
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io { op, path: path.into(), source }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, offset: u64, kind: Corruption) -> Self {
        StorageError::Corrupt { path: path.into(), offset, kind }
    }
}

/// What is wrong at the offset named by [`StorageError::Corrupt`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// The checksum of a record's length field does not match, and a whole sync marker follows
    /// it (at byte offset `sync_marker_at`), so the damage is in data that was made durable.
    HeaderChecksum { sync_marker_at: u64 },
    /// A record's length field is valid (its checksum matches) but no writer produces it: zero,
    /// or above the limit.
    ImpossibleLength(u32),
    /// The checksum of a record's payload does not match, and a whole sync marker follows it
    /// (at byte offset `sync_marker_at`).
    PayloadChecksum { sync_marker_at: u64 },
    /// A record's checksum matches but its payload is not a record this format knows.
    Undecodable(String),
    /// An entry whose index is not the one after the previous entry.
    IndexGap { expected: Index, found: Index },
    /// An entry at `Index::MAX`, or past it: the log's indexes must leave room for the next
    /// entry, so no writer puts one there.
    IndexOutOfRange { after: Index },
    /// A sync marker that does not name the last entry before it.
    SyncMarkerMismatch { expected: Index, found: Index },
    /// A segment that is not the last ends in an incomplete record or without the sync marker
    /// that closes every segment before the next one is created.
    UnsealedSegment,
    /// A record that was whole when the log was opened or written no longer is (the file was
    /// changed underneath the storage); what the framing found instead.
    DamagedSinceOpen(String),
    /// A segment's header is missing, has the wrong magic or a bad checksum, or names a first
    /// index other than its file name.
    SegmentHeader(String),
    /// The hard state file is too short, has the wrong magic, a bad checksum or an undecodable
    /// payload.
    HardState(String),
    /// The snapshot file is too short, has the wrong magic, a bad checksum or an impossible
    /// index.
    Snapshot(String),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::HeaderChecksum { sync_marker_at } => write!(
                f,
                "record length checksum mismatch, before a sync marker at offset \
                 {sync_marker_at} that proves it was durable"
            ),
            Corruption::ImpossibleLength(len) => write!(f, "impossible record length {len}"),
            Corruption::PayloadChecksum { sync_marker_at } => write!(
                f,
                "record payload checksum mismatch, before a sync marker at offset \
                 {sync_marker_at} that proves it was durable"
            ),
            Corruption::Undecodable(why) => write!(f, "undecodable record payload: {why}"),
            Corruption::IndexGap { expected, found } => {
                write!(f, "entry index {found} where {expected} was expected")
            }
            Corruption::IndexOutOfRange { after } => {
                write!(f, "an entry after index {after}, where no index is left")
            }
            Corruption::SyncMarkerMismatch { expected, found } => {
                write!(f, "sync marker names last index {found} but the last entry is {expected}")
            }
            Corruption::UnsealedSegment => write!(
                f,
                "segment is followed by another but does not end with a whole sync marker"
            ),
            Corruption::DamagedSinceOpen(what) => {
                write!(f, "record damaged since the log was opened ({what})")
            }
            Corruption::SegmentHeader(why) => write!(f, "bad segment header: {why}"),
            Corruption::HardState(why) => write!(f, "bad hard state file: {why}"),
            Corruption::Snapshot(why) => write!(f, "bad snapshot file: {why}"),
        }
    }
}

//! [`FileStorage`]: the log and hard state, durable in a directory.

mod fsutil;
mod hard_state;
mod inspect;
mod record;
mod recover;
mod segment;
mod snapshot_file;

use std::fs::{File, OpenOptions, TryLockError};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use self::inspect::{inspect, RecordKind, RecordSpan, SegmentLayout};

use self::fsutil::sync_dir;
use self::record::{Frame, Record};
use self::recover::Recovered;
use super::{
    check_append, check_range, check_snapshot, keeps_tail, Corruption, Disk, DiskFile,
    InitialState, OsDisk, Storage, StorageError,
};
use crate::core::{Entry, HardState, Index, Snapshot, Term};

/// How a [`FileStorage`] lays out its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStorageOptions {
    /// A new segment file is started when a sync finds the current one at least this long
    /// (and holding at least one entry). One sync's records always go to one segment, so a
    /// segment may exceed this by one batch. Default: 64 MiB.
    pub segment_bytes: u64,
}

impl Default for FileStorageOptions {
    fn default() -> Self {
        FileStorageOptions { segment_bytes: 64 << 20 }
    }
}

/// What [`FileStorage::open`] found and repaired.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Whether the directory held no storage and a new one was made.
    pub created: bool,
    /// The torn tail that was cut off the last segment, if any.
    pub torn_tail: Option<TornTail>,
    /// Temporary files left by a crash in the middle of an atomic replacement, now removed.
    pub removed_temp_files: Vec<PathBuf>,
}

/// A torn tail cut off the log on open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment it was in.
    pub path: PathBuf,
    /// Where the last whole record ended and the file now ends.
    pub offset: u64,
    /// How many bytes were cut off.
    pub dropped_bytes: u64,
    /// What was found at `offset`.
    pub reason: &'static str,
}

/// One segment file as written: the offset of each entry's record, and the length.
#[derive(Debug)]
struct Segment {
    first_index: Index,
    path: PathBuf,
    file: Box<dyn DiskFile>,
    offsets: Vec<u64>,
    len: u64,
}

impl Segment {
    /// `first_index` is at least 1 and recovery refuses an entry at `Index::MAX`, so neither
    /// this nor the index after it overflows.
    fn last_index(&self) -> Index {
        self.first_index - 1 + self.offsets.len() as u64
    }
}

/// A durable [`Storage`] in a directory.
///
/// # On disk
///
/// - `hardstate`: `b"RAFTHS01"`, a CRC32 (u32 LE) of the payload, and the payload, the postcard
///   encoding of the [`HardState`]. Replaced atomically: written to `hardstate.tmp`, fsynced,
///   renamed over `hardstate`, and the directory fsynced; so it is either the old or the new
///   one, whole.
/// - `snapshot`: the latest snapshot, `b"RAFTSN01"`, a CRC32 (u32 LE) of the rest, the last
///   included index and term (u64 LE each), and the service's data. Replaced atomically like
///   the hard state. Absent until the first snapshot.
/// - `wal-<first index, 20 digits>.log`: log segments. A 20-byte header (`b"RAFTWAL1"`, the
///   first index as u64 LE, a CRC32 of those 16 bytes), then records. A record is `len` (u32 LE,
///   payload length), `len_crc` (CRC32 of those 4 bytes), `payload_crc` (CRC32 of the payload),
///   then the payload: the postcard encoding of either an entry or a *sync marker* naming the
///   last entry before it. Segments are created atomically like the hard state, so a header is
///   always whole.
/// - `LOCK`: empty; locked while the storage is open.
/// - Files ending in `.tmp` are leftovers of an interrupted replacement and are removed on open.
///
/// # Writing and durability
///
/// [`append`](Storage::append), [`truncate_suffix`](Storage::truncate_suffix) and
/// [`set_hard_state`](Storage::set_hard_state) only change memory; reads see them at once.
/// [`sync`](Storage::sync) then, in this order:
///
/// 1. replaces the hard state file, if the hard state changed;
/// 2. if a snapshot was applied ([`apply_snapshot`](Storage::apply_snapshot)): replaces the
///    snapshot file, and only once it is durable drops the log it covers: when the log held
///    the snapshot's last entry with its term, deletes the segments that hold nothing after
///    the snapshot (oldest first; never the last one), and otherwise deletes every segment
///    (last first) and creates an empty one starting right after the snapshot; the directory
///    is fsynced after each deletion, so a crash leaves a suffix or a prefix of the segments,
///    never a hole;
/// 3. if entries that were on disk were replaced or removed: deletes whole segments after the
///    cut (last first), fsyncs the directory, `ftruncate`s the segment holding the cut at the
///    offset of the first removed record (kept in memory for every entry) and fsyncs it, so no
///    old record can reappear behind new ones;
/// 4. writes all new entries with a single write and `fdatasync`s, then writes a sync marker
///    (made durable by the next sync's `fdatasync`): a marker on disk proves that the bytes
///    before it had been synced.
///
/// So one sync costs one `fdatasync` in the common case, however many readies it covers. The
/// hard state goes first so that on disk the hard state's term is never below the term of a
/// logged entry. When a sync finds the last segment at least
/// [`segment_bytes`](FileStorageOptions::segment_bytes) long it seals it (sync marker,
/// `fdatasync`) and creates the next one before writing.
///
/// An I/O error in `sync` leaves the storage [poisoned](StorageError::Poisoned): on Linux a
/// failed fsync may have dropped the dirty pages, so retrying could report success for data that
/// is gone. Reopening recovers from what is on disk.
///
/// # Recovery: torn tail or corruption
///
/// On open every segment is read and checked record by record. At the first record that is not
/// whole (a sync marker is "whole" when its header and payload checksums match and it decodes):
///
/// - **Torn tail** (cut off, logged with `tracing` at warn level, reported in [`recovery`]),
///   only in the last segment: fewer than 12 bytes left; or a verified length whose payload runs
///   past the end of the file; or a checksum mismatch (of the length or of the payload) with no
///   whole sync marker at any byte offset after the damaged record. A marker is only written
///   once the bytes before it are durable, and a crash cannot damage durable bytes: damage with
///   no marker after it is a write the crash interrupted, so cutting it loses nothing that was
///   acknowledged, even when whole records follow the damage (a crash can persist the pages of
///   an unsynced write out of order).
/// - **Corruption** (open fails with [`StorageError::Corrupt`] naming the file and the byte
///   offset of the damaged record or header): a checksum mismatch followed by a whole sync marker
///   (those bytes were made durable and then damaged); a verified length of zero or above 64 MiB;
///   a payload that does not decode; an entry index other than the previous one + 1 (also across
///   segments); a sync marker naming another last index; a bad segment header; a segment other
///   than the last that does not end with a whole sync marker (segments are sealed before the
///   next one is made); a damaged hard state file; segments without a hard state file
///   ([`StorageError::MissingHardState`]); a hard state with a term or a vote but no segment
///   ([`StorageError::MissingLog`]).
///
/// Then the snapshot, when there is one (a damaged snapshot file is corruption too): the first
/// segment must start at or before the entry after it (else [`Corruption::IndexGap`]);
/// entries it covers are ignored; and when the log does not hold the snapshot's last entry
/// with its term (a crash in the middle of step 2 replacing the whole log), the log is dropped
/// as step 2 would have, which loses nothing: the snapshot was durable first.
///
/// Damage to the last sync marker itself is indistinguishable from a torn write and is cut,
/// which keeps every entry. The entries of the last sync are the one place where damage at
/// rest would pass for a torn write: their marker is durable only with the next sync. Earlier
/// ones are covered by durable markers.
///
/// Dropping a `FileStorage` without [`sync`](Storage::sync) loses what was written since the
/// last sync, as a crash would. A `FileStorage` holds an exclusive lock (`flock`) on the file
/// `LOCK` in its directory, so a second one on the same directory, in this process or another,
/// fails to open with [`StorageError::Locked`].
///
/// [`recovery`]: FileStorage::recovery
///
/// # Example
///
/// ```
/// use raft::storage::{FileStorage, Storage};
/// use raft::{Entry, EntryKind, HardState};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut storage = FileStorage::open(dir.path())?;
/// let entry = Entry { index: 1, term: 1, kind: EntryKind::Normal, data: b"x".to_vec() };
/// storage.persist(Some(HardState { term: 1, vote: Some(1) }), None, &[entry.clone()])?;
/// storage.sync()?;
/// drop(storage);
///
/// let storage = FileStorage::open(dir.path())?;
/// let state = storage.initial_state()?;
/// assert_eq!(state.hard_state, HardState { term: 1, vote: Some(1) });
/// assert_eq!(state.entries, vec![entry]);
/// assert_eq!(state.snapshot.index, 0, "never compacted");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct FileStorage {
    dir: PathBuf,
    /// What every read, write and sync goes through.
    disk: Arc<dyn Disk>,
    /// Holds the directory's lock (released when closed).
    _lock: File,
    hard_state_path: PathBuf,
    snapshot_path: PathBuf,
    options: FileStorageOptions,
    /// The last hard state set, and the one on disk.
    hard_state: HardState,
    durable_hard_state: HardState,
    /// The last snapshot applied, and the index of the one on disk. Entries up to
    /// `snapshot.index` may still be in the first segment, but are no longer the log's.
    snapshot: Snapshot,
    durable_snapshot_index: Index,
    /// The snapshot applied replaces the whole log: the next sync deletes every segment and
    /// starts a new one at `snapshot.index + 1` (meanwhile nothing on disk is read).
    replace_log: bool,
    /// The segments as written; never empty. Only the last may hold no entry.
    segments: Vec<Segment>,
    /// Whether the last segment ends with a sync marker, and whether that marker is durable
    /// (it is written after the entries it follows are synced, and synced with the next batch).
    sealed: bool,
    marker_durable: bool,
    /// Entries on disk at `cut` and after are replaced or removed (applied by the next sync).
    cut: Index,
    /// The records of the entries appended since the last sync, from index `cut`, and the
    /// offset of each within `pending`.
    pending: Vec<u8>,
    pending_offsets: Vec<usize>,
    /// Why the storage is unusable, after a failed write or sync.
    poisoned: Option<String>,
    recovery: Recovery,
    /// A durability bug of the catalogue, switched on by [`FileStorage::with_bug`].
    #[cfg(feature = "bugs")]
    bug: Option<crate::Bug>,
}

impl FileStorage {
    /// Opens the storage in `dir` with default options, creating the directory and an empty
    /// storage when there is none. Recovers from a crash as the type's documentation says.
    pub fn open(dir: impl AsRef<Path>) -> Result<FileStorage, StorageError> {
        FileStorage::open_with(dir, FileStorageOptions::default())
    }

    /// Opens the storage in `dir` with `options`.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: FileStorageOptions,
    ) -> Result<FileStorage, StorageError> {
        FileStorage::open_on(Arc::new(OsDisk), dir, options)
    }

    /// Opens the storage in `dir` on `disk` (for example a [`CrashDisk`](super::CrashDisk))
    /// with `options`.
    pub fn open_on(
        disk: Arc<dyn Disk>,
        dir: impl AsRef<Path>,
        options: FileStorageOptions,
    ) -> Result<FileStorage, StorageError> {
        let dir = dir.as_ref().to_path_buf();
        if !disk.is_dir(&dir) {
            create_dir_durably(&*disk, &dir)?;
        }
        let lock = lock(&dir)?;
        let Recovered { hard_state, snapshot, segments, sealed, recovery } =
            recover::recover(&*disk, &dir)?;
        let cut = segments.last().expect("at least one segment").last_index() + 1;
        let mut storage = FileStorage {
            hard_state_path: dir.join(hard_state::FILE_NAME),
            snapshot_path: dir.join(snapshot_file::FILE_NAME),
            dir,
            disk,
            _lock: lock,
            options,
            hard_state,
            durable_hard_state: hard_state,
            durable_snapshot_index: snapshot.index,
            snapshot,
            replace_log: false,
            segments,
            sealed,
            marker_durable: sealed,
            cut,
            pending: Vec::new(),
            pending_offsets: Vec::new(),
            poisoned: None,
            recovery,
            #[cfg(feature = "bugs")]
            bug: None,
        };
        storage.recover_snapshot()?;
        Ok(storage)
    }

    /// The snapshot's part of recovery: the first segment must start at or before the entry
    /// after the snapshot, and a log that does not hold the snapshot's last entry with its term
    /// is dropped, as the interrupted sync that installed the snapshot would have.
    fn recover_snapshot(&mut self) -> Result<(), StorageError> {
        let first = &self.segments[0];
        let after = self.snapshot.index + 1;
        if first.first_index > after {
            let kind = Corruption::IndexGap { expected: after, found: first.first_index };
            return Err(StorageError::corrupt(&first.path, 0, kind));
        }
        if self.snapshot.index == 0 {
            return Ok(());
        }
        let term_there = if first.first_index == after {
            // The entry is gone, and the log starts right after it: the snapshot's own log.
            Some(self.snapshot.term)
        } else {
            self.disk_term_at(self.snapshot.index)?
        };
        if !keeps_tail(&self.snapshot, term_there) {
            tracing::warn!(
                dir = %self.dir.display(),
                snapshot_index = self.snapshot.index,
                "dropping a log that does not hold the snapshot's last entry (an interrupted install)"
            );
            self.replace_log_on_disk()?;
        }
        Ok(())
    }

    /// The term of entry `index` on disk, if the segments hold it.
    fn disk_term_at(&self, index: Index) -> Result<Option<Term>, StorageError> {
        if index < self.segments[0].first_index || index > self.disk_last_index() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(1);
        self.read_disk(index..index + 1, &mut out)?;
        Ok(out.first().map(|e| e.term))
    }

    /// Deletes every segment and starts an empty one right after the snapshot. The segments go
    /// last first, each removal made durable before the next, so that a crash leaves a prefix
    /// of the old log (which recovery drops in turn), never one with a hole.
    fn replace_log_on_disk(&mut self) -> Result<(), StorageError> {
        while let Some(seg) = self.segments.pop() {
            let removed = self.disk.remove_file(&seg.path);
            removed.map_err(|e| StorageError::io("remove", &seg.path, e))?;
            sync_dir(&*self.disk, &self.dir)?;
        }
        let first_index = self.snapshot.index + 1;
        let (path, file) = segment::create(&*self.disk, &self.dir, first_index)?;
        let len = segment::HEADER_LEN;
        self.segments.push(Segment { first_index, path, file, offsets: Vec::new(), len });
        self.sealed = false;
        // Nothing is on disk after the snapshot now (pending entries start right after it).
        self.cut = first_index;
        self.replace_log = false;
        Ok(())
    }

    /// Step 2 of a sync: the snapshot file, then the log it covers dropped.
    fn sync_snapshot(&mut self) -> Result<(), StorageError> {
        if self.snapshot.index == self.durable_snapshot_index {
            return Ok(());
        }
        snapshot_file::store(&*self.disk, &self.dir, &self.snapshot_path, &self.snapshot)?;
        self.durable_snapshot_index = self.snapshot.index;
        if self.replace_log {
            return self.replace_log_on_disk();
        }
        // Segments that hold nothing after the snapshot and nothing a pending cut replaces,
        // oldest first, each removal durable before the next: a crash leaves a suffix of the
        // segments, which still starts at or before the entry after the snapshot.
        while self.segments.len() > 1
            && self.segments[0].last_index() <= self.snapshot.index
            && self.segments[0].last_index() < self.cut
        {
            let seg = self.segments.remove(0);
            let result = self.disk.remove_file(&seg.path);
            result.map_err(|e| StorageError::io("remove", &seg.path, e))?;
            sync_dir(&*self.disk, &self.dir)?;
        }
        Ok(())
    }

    /// Switches on a durability bug of the catalogue: `skip-log-sync`,
    /// `hard-state-without-dir-sync` or `ignore-failed-fsync` (any other bug changes nothing
    /// here).
    #[cfg(feature = "bugs")]
    pub fn with_bug(mut self, bug: Option<crate::Bug>) -> FileStorage {
        self.bug = bug;
        self
    }

    #[allow(unused_variables)]
    fn has_bug(&self, bug: crate::Bug) -> bool {
        #[cfg(feature = "bugs")]
        {
            self.bug == Some(bug)
        }
        #[cfg(not(feature = "bugs"))]
        {
            false
        }
    }

    /// The storage's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What opening found and repaired.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The last index of the log on disk (before pending truncations).
    fn disk_last_index(&self) -> Index {
        self.segments.last().expect("at least one segment").last_index()
    }

    /// The segment holding entry `index`, which must be on disk.
    fn segment_of(&self, index: Index) -> usize {
        self.segments.partition_point(|s| s.first_index <= index) - 1
    }

    fn check_usable(&self) -> Result<(), StorageError> {
        match &self.poisoned {
            Some(why) => Err(StorageError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Marks the storage unusable when `result` is an error.
    fn poison_on_error<T>(&mut self, result: Result<T, StorageError>) -> Result<T, StorageError> {
        if let Err(e) = &result {
            self.poisoned = Some(e.to_string());
        }
        result
    }

    /// Reads entries `range` (all before `cut`) from the segments.
    fn read_disk(&self, range: Range<Index>, out: &mut Vec<Entry>) -> Result<(), StorageError> {
        if self.replace_log {
            // Nothing on disk is the log's any more (and `cut` is past it).
            return Ok(());
        }
        let mut index = range.start;
        while index < range.end {
            let seg = &self.segments[self.segment_of(index)];
            let upto = (range.end - 1).min(seg.last_index());
            let start = seg.offsets[(index - seg.first_index) as usize];
            let end = if upto < seg.last_index() {
                seg.offsets[(upto + 1 - seg.first_index) as usize]
            } else {
                seg.len
            };
            let mut buf = vec![0; (end - start) as usize];
            seg.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| StorageError::io("read", &seg.path, e))?;
            decode_entries(&buf, index..upto + 1, out)
                .map_err(|(at, kind)| StorageError::corrupt(&seg.path, start + at as u64, kind))?;
            index = upto + 1;
        }
        Ok(())
    }

    /// Applies a pending cut of entries that are on disk: whole segments after it are deleted
    /// (last first), then the segment holding it is truncated and fsynced.
    fn truncate_disk(&mut self) -> Result<(), StorageError> {
        if self.cut > self.disk_last_index() {
            return Ok(());
        }
        let at = self.segment_of(self.cut);
        // One directory fsync per deletion, so that a crash leaves a prefix of the segments.
        while self.segments.len() > at + 1 {
            let seg = self.segments.pop().expect("a later segment");
            let removed = self.disk.remove_file(&seg.path);
            removed.map_err(|e| StorageError::io("remove", &seg.path, e))?;
            sync_dir(&*self.disk, &self.dir)?;
        }
        let seg = &mut self.segments[at];
        let keep = (self.cut - seg.first_index) as usize;
        let offset = seg.offsets[keep];
        seg.file.set_len(offset).map_err(|e| StorageError::io("truncate", &seg.path, e))?;
        seg.file.sync_all().map_err(|e| StorageError::io("fsync", &seg.path, e))?;
        seg.offsets.truncate(keep);
        seg.len = offset;
        self.sealed = false;
        Ok(())
    }

    /// Writes `bytes` at the end of the last segment.
    fn write_tail(&mut self, bytes: &[u8]) -> Result<u64, StorageError> {
        let seg = self.segments.last_mut().expect("at least one segment");
        let at = seg.len;
        seg.file.write_all_at(bytes, at).map_err(|e| StorageError::io("write", &seg.path, e))?;
        seg.len += bytes.len() as u64;
        Ok(at)
    }

    fn fdatasync_tail(&self) -> Result<(), StorageError> {
        if self.has_bug(crate::Bug::SkipLogSync) {
            return Ok(());
        }
        let seg = self.segments.last().expect("at least one segment");
        match seg.file.sync_data() {
            Err(e) if self.has_bug(crate::Bug::IgnoreFailedFsync) => {
                tracing::warn!(path = %seg.path.display(), error = %e, "fdatasync failed; carrying on");
                Ok(())
            }
            result => result.map_err(|e| StorageError::io("fdatasync", &seg.path, e)),
        }
    }

    /// Seals the last segment (sync marker, fdatasync) and starts the next one, when the last
    /// is full.
    fn roll_if_full(&mut self) -> Result<(), StorageError> {
        let seg = self.segments.last().expect("at least one segment");
        if seg.len < self.options.segment_bytes || seg.offsets.is_empty() {
            return Ok(());
        }
        let next = seg.last_index() + 1;
        if !self.sealed {
            let mut marker = Vec::new();
            record::encode_sync(next - 1, &mut marker);
            self.write_tail(&marker)?;
        }
        if !self.sealed || !self.marker_durable {
            self.fdatasync_tail()?;
        }
        let (path, file) = segment::create(&*self.disk, &self.dir, next)?;
        self.segments.push(Segment {
            first_index: next,
            path,
            file,
            offsets: Vec::new(),
            len: segment::HEADER_LEN,
        });
        self.sealed = false;
        Ok(())
    }

    /// Steps 3 and 4 of a sync: the pending cut, then the pending entries, and a sync marker.
    fn sync_log(&mut self) -> Result<(), StorageError> {
        self.truncate_disk()?;
        if self.pending_offsets.is_empty() {
            return Ok(());
        }
        self.roll_if_full()?;
        let last_index = self.cut + self.pending_offsets.len() as u64 - 1;
        let mut bytes = std::mem::take(&mut self.pending);
        let at = self.write_tail(&bytes)?;
        self.fdatasync_tail()?;
        let seg = self.segments.last_mut().expect("at least one segment");
        seg.offsets.extend(self.pending_offsets.drain(..).map(|o| at + o as u64));
        self.cut = last_index + 1;
        // The marker is written only once the entries before it are durable, so that a marker
        // on disk proves the bytes before it were synced: damage before one is corruption,
        // while a crash during this sync (whose pages may reach the disk in any order) leaves
        // damage with no marker after it, a torn tail. The next sync makes it durable.
        bytes.clear();
        record::encode_sync(last_index, &mut bytes);
        self.write_tail(&bytes)?;
        self.sealed = true;
        self.marker_durable = false;
        bytes.clear();
        self.pending = bytes;
        Ok(())
    }
}

/// The name of the lock file within the storage directory.
const LOCK_FILE: &str = "LOCK";

/// Creates `dir` and any missing parents, syncing each parent after its new entry, so that a
/// crash cannot lose the directory (with the files about to be synced into it) once `open`
/// has returned.
fn create_dir_durably(disk: &dyn Disk, dir: &Path) -> Result<(), StorageError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty() && !disk.is_dir(p)) {
        create_dir_durably(disk, parent)?;
    }
    match disk.create_dir(dir) {
        Ok(()) => {}
        // Made meanwhile by someone else: theirs to sync.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(StorageError::io("create directory", dir, e)),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(disk, parent)
}

/// Takes the exclusive lock on the storage directory `dir`, held as long as the returned file
/// is open.
fn lock(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StorageError::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StorageError::Locked { path }),
        Err(TryLockError::Error(e)) => Err(StorageError::io("lock", &path, e)),
    }
}

/// Decodes the entries `range` from `buf`, which starts at the record of `range.start` and may
/// hold sync markers; on damage, the offset in `buf` and what is wrong.
fn decode_entries(
    buf: &[u8],
    range: Range<Index>,
    out: &mut Vec<Entry>,
) -> Result<(), (usize, Corruption)> {
    let mut pos = 0;
    let mut next = range.start;
    while next < range.end {
        let (payload, len) = match record::frame(&buf[pos..]) {
            Frame::Whole { payload, len } => (payload, len),
            // Checked on open or written by this process: damaged since.
            other => return Err((pos, Corruption::DamagedSinceOpen(format!("{other:?}")))),
        };
        match record::decode(payload).map_err(|why| (pos, Corruption::Undecodable(why)))? {
            Record::Entry(entry) if entry.index == next => {
                out.push(entry);
                next += 1;
            }
            Record::Entry(entry) => {
                return Err((pos, Corruption::IndexGap { expected: next, found: entry.index }));
            }
            Record::Sync { .. } => {}
        }
        pos += len;
    }
    Ok(())
}

impl Storage for FileStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            first_index: self.first_index(),
            entries: self.entries(self.first_index()..self.last_index() + 1)?,
        })
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot.clone()
    }

    fn apply_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.check_usable()?;
        if !check_snapshot(snapshot, &self.snapshot)? {
            return Ok(());
        }
        let index = snapshot.index;
        let term_there = if (self.first_index()..=self.last_index()).contains(&index) {
            self.entries(index..index + 1)?.first().map(|e| e.term)
        } else {
            None
        };
        if !keeps_tail(snapshot, term_there) {
            // The whole log goes: nothing on disk is read from now on, and the next entry is
            // the one after the snapshot.
            self.replace_log = true;
            self.cut = index + 1;
            self.pending.clear();
            self.pending_offsets.clear();
        }
        self.snapshot = snapshot.clone();
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.check_usable()?;
        self.hard_state = hard_state;
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.check_usable()?;
        check_append(entries, self.first_index(), self.last_index())?;
        let Some(first) = entries.first() else {
            return Ok(());
        };
        // Encode first, so that an entry too large leaves the storage as it was.
        let mut bytes = Vec::new();
        let mut offsets = Vec::with_capacity(entries.len());
        for entry in entries {
            offsets.push(bytes.len());
            let size = record::encode_entry(entry, &mut bytes);
            if size > record::MAX_PAYLOAD_LEN {
                let limit = record::MAX_PAYLOAD_LEN;
                return Err(StorageError::EntryTooLarge { index: entry.index, size, limit });
            }
        }
        self.truncate_suffix(first.index)?;
        let base = self.pending.len();
        self.pending.extend_from_slice(&bytes);
        self.pending_offsets.extend(offsets.into_iter().map(|o| base + o));
        Ok(())
    }

    fn truncate_suffix(&mut self, from: Index) -> Result<(), StorageError> {
        self.check_usable()?;
        check_range(&(from..self.last_index() + 1), self.first_index(), self.last_index())?;
        if from >= self.cut {
            let keep = (from - self.cut) as usize;
            if keep < self.pending_offsets.len() {
                self.pending.truncate(self.pending_offsets[keep]);
                self.pending_offsets.truncate(keep);
            }
        } else {
            self.cut = from;
            self.pending.clear();
            self.pending_offsets.clear();
        }
        Ok(())
    }

    fn entries(&self, range: Range<Index>) -> Result<Vec<Entry>, StorageError> {
        self.check_usable()?;
        check_range(&range, self.first_index(), self.last_index())?;
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        self.read_disk(range.start..range.end.min(self.cut), &mut out)?;
        let from = range.start.max(self.cut);
        if from < range.end {
            let at = self.pending_offsets[(from - self.cut) as usize];
            // Encoded by this process: damage here is a bug, reported as corruption in memory.
            decode_entries(&self.pending[at..], from..range.end, &mut out).map_err(
                |(offset, kind)| {
                    StorageError::corrupt("<unsynced entries in memory>", offset as u64, kind)
                },
            )?;
        }
        Ok(out)
    }

    fn first_index(&self) -> Index {
        self.segments[0].first_index.max(self.snapshot.index + 1)
    }

    fn last_index(&self) -> Index {
        self.cut + self.pending_offsets.len() as u64 - 1
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.check_usable()?;
        if self.hard_state != self.durable_hard_state {
            let hard_state = self.hard_state;
            let sync_dir = !self.has_bug(crate::Bug::HardStateWithoutDirSync);
            let result = hard_state::store(
                &*self.disk,
                &self.dir,
                &self.hard_state_path,
                &hard_state,
                sync_dir,
            );
            self.poison_on_error(result)?;
            self.durable_hard_state = hard_state;
        }
        let result = self.sync_snapshot();
        self.poison_on_error(result)?;
        let result = self.sync_log();
        self.poison_on_error(result)
    }
}

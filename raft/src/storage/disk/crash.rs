//! [`CrashDisk`]: the operating system's file system, with what a power failure may undo.
//!
//! Writes go through to the real files at once (so a SIGKILL keeps them, as the kernel's page
//! cache would), and every operation since the last sync of its file or directory is kept with
//! what it overwrote. [`CrashDisk::crash`] then rewrites the real files into one crash state
//! and refuses every later operation: a prefix of each file's unsynced writes (possibly none,
//! the last one possibly torn), and a prefix of each directory's unsynced changes.
//!
//! Removed and replaced files are moved into a trash directory of the disk's own instead of
//! being unlinked, until their directory is synced, so that a crash can bring them back.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Disk, DiskFile};

/// Which kind of crash state [`CrashDisk::crash`] picks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashFamily {
    /// Everything unsynced is lost: every file as of its last sync, every directory as of its
    /// last sync.
    LoseUnsynced,
    /// For each file independently, a prefix of its unsynced writes reached the disk, the last
    /// of them possibly torn: at any byte, or by pages (any subset of its 4 KiB pages, the
    /// file with its new length); for each directory, a prefix of its unsynced changes. So a
    /// later write to one file may survive while an earlier write to another is lost.
    TornPrefix,
    /// Metadata without data: every file has the length its unsynced writes and truncations
    /// gave it, but none of their bytes (it holds zeros, or its old bytes, there); every
    /// unsynced directory change (create, rename, removal) reached the disk.
    MetadataWithoutData,
}

impl CrashFamily {
    /// Every family.
    pub const ALL: [CrashFamily; 3] =
        [CrashFamily::LoseUnsynced, CrashFamily::TornPrefix, CrashFamily::MetadataWithoutData];

    /// The family's name, as in command lines and crash records.
    pub fn name(self) -> &'static str {
        match self {
            CrashFamily::LoseUnsynced => "lose-unsynced",
            CrashFamily::TornPrefix => "torn-prefix",
            CrashFamily::MetadataWithoutData => "metadata-without-data",
        }
    }
}

impl fmt::Display for CrashFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CrashFamily {
    type Err = String;
    fn from_str(s: &str) -> Result<CrashFamily, String> {
        CrashFamily::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| {
            format!("unknown crash family {s:?}: expected lose-unsynced, torn-prefix or metadata-without-data")
        })
    }
}

/// An I/O error [`CrashDisk::fail_next`] injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskError {
    /// The next file sync fails with EIO, and the file's unsynced writes are lost (the
    /// kernel drops the dirty pages of a failed writeback), so a retried sync would succeed
    /// on data that is gone.
    EioOnSync,
    /// The next write fails with ENOSPC and writes nothing.
    EnospcOnWrite,
}

impl DiskError {
    /// Every error.
    pub const ALL: [DiskError; 2] = [DiskError::EioOnSync, DiskError::EnospcOnWrite];

    /// The error's name, as in command lines and records.
    pub fn name(self) -> &'static str {
        match self {
            DiskError::EioOnSync => "eio-on-sync",
            DiskError::EnospcOnWrite => "enospc-on-write",
        }
    }

    fn to_io(self) -> io::Error {
        // Linux's errno values.
        const EIO: i32 = 5;
        const ENOSPC: i32 = 28;
        match self {
            DiskError::EioOnSync => io::Error::from_raw_os_error(EIO),
            DiskError::EnospcOnWrite => io::Error::from_raw_os_error(ENOSPC),
        }
    }
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error [`CrashDisk`] injected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedError {
    pub error: DiskError,
    /// The file whose write or sync failed.
    pub path: PathBuf,
    /// Unsynced bytes the failure lost.
    pub lost_bytes: u64,
}

/// The crash state [`CrashDisk::crash`] chose, and what it destroyed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    pub family: CrashFamily,
    /// The seed the choices were drawn from.
    pub seed: u64,
    /// Every file that had unsynced writes or truncations.
    pub files: Vec<FileCrash>,
    /// Every directory that had unsynced changes.
    pub dirs: Vec<DirCrash>,
}

impl CrashReport {
    /// Unsynced bytes written, over all files.
    pub fn unsynced_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.unsynced_bytes).sum()
    }

    /// Unsynced bytes that reached the disk, over all files.
    pub fn kept_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.kept_bytes).sum()
    }

    /// Unsynced operations (file writes and truncations, directory changes), and how many of
    /// them reached the disk.
    pub fn ops(&self) -> (usize, usize) {
        let files = self.files.iter().map(|f| (f.unsynced_ops, f.kept_ops));
        let dirs = self.dirs.iter().map(|d| (d.unsynced_ops, d.kept_ops));
        files.chain(dirs).fold((0, 0), |(u, k), (fu, fk)| (u + fu, k + fk))
    }
}

/// What a crash did to one file's unsynced writes and truncations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCrash {
    /// Where the file was at the crash (a trash path for a removed file).
    pub path: PathBuf,
    pub unsynced_ops: usize,
    /// How many of them reached the disk (a prefix).
    pub kept_ops: usize,
    /// When the last kept operation is a write torn at a byte: how many of its bytes reached
    /// the disk.
    pub torn_at: Option<u64>,
    /// When the last kept operation is a write torn by pages: the file offsets of its 4 KiB
    /// pages that reached the disk (any subset, in any order, as a disk may write them; the
    /// others hold their old bytes or zeros, the file its new length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torn_pages: Option<Vec<u64>>,
    /// Bytes the unsynced writes carried, and how many of them reached the disk.
    pub unsynced_bytes: u64,
    pub kept_bytes: u64,
    /// The file's length before the crash, and after it.
    pub len_before: u64,
    pub len_after: u64,
}

/// What a crash did to one directory's unsynced changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirCrash {
    pub path: PathBuf,
    pub unsynced_ops: usize,
    /// How many of them reached the disk (a prefix).
    pub kept_ops: usize,
    /// The changes that did not, as "create NAME", "rename FROM -> TO", "remove NAME" or
    /// "mkdir NAME".
    pub lost: Vec<String>,
}

/// A [`Disk`] on the operating system's file system that can [crash](CrashDisk::crash) into
/// any state a POSIX file system may leave after a power failure.
///
/// Clones share one disk. Meant for tests and torture runs: every unsynced write is kept in
/// memory until its file is synced.
///
/// # Example
///
/// ```
/// use std::path::Path;
/// use raft::storage::{CrashDisk, CrashFamily, Disk, DiskFile};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let disk = CrashDisk::new(dir.path().join("trash"))?;
/// let path = dir.path().join("f");
/// let file = disk.create(&path)?;
/// disk.sync_dir(dir.path())?;
/// file.write_all_at(b"synced", 0)?;
/// file.sync_data()?;
/// file.write_all_at(b" and not", 6)?;
///
/// let report = disk.crash(CrashFamily::LoseUnsynced, 7)?;
/// assert_eq!(std::fs::read(&path)?, b"synced");
/// assert_eq!((report.unsynced_bytes(), report.kept_bytes()), (8, 0));
/// assert!(file.write_all_at(b"x", 0).is_err(), "a crashed disk refuses everything");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CrashDisk {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    trash: PathBuf,
}

#[derive(Debug, Default)]
struct State {
    inodes: Vec<Inode>,
    /// The inode of each file name the disk has seen.
    names: HashMap<PathBuf, usize>,
    /// Each directory's unsynced changes, with a sequence number across directories.
    dir_ops: BTreeMap<PathBuf, Vec<(u64, DirOp)>>,
    next_seq: u64,
    next_trash: u64,
    /// A crash to happen at a coming sync, instead of it.
    armed: Option<Armed>,
    /// The crash, once it happened.
    report: Option<CrashReport>,
    /// An error to inject at the next operation it applies to, and the last one injected.
    fail: Option<DiskError>,
    injected: Option<InjectedError>,
    crashed: bool,
}

#[derive(Debug)]
struct Armed {
    family: CrashFamily,
    seed: u64,
    /// Syncs (of a file or a directory) to let through before the one that crashes.
    syncs_before: u64,
}

/// A file, whatever its name.
#[derive(Debug)]
struct Inode {
    /// Where its bytes are now: its name, or a trash file once removed or replaced.
    path: PathBuf,
    len: u64,
    /// Writes and truncations since its last sync.
    ops: Vec<FileOp>,
}

#[derive(Debug)]
enum FileOp {
    Write { offset: u64, data: Vec<u8>, undo: Undo },
    SetLen { len: u64, undo: Undo },
}

/// What an operation changed: the length before it, and the bytes it overwrote or cut off.
#[derive(Debug)]
struct Undo {
    old_len: u64,
    at: u64,
    old: Vec<u8>,
}

#[derive(Debug)]
enum DirOp {
    Create { path: PathBuf },
    CreateDir { path: PathBuf },
    Rename { from: PathBuf, to: PathBuf, replaced: Option<PathBuf> },
    Remove { path: PathBuf, trash: PathBuf },
}

impl DirOp {
    fn describe(&self) -> String {
        let name = |p: &Path| p.file_name().unwrap_or(p.as_os_str()).to_string_lossy().into_owned();
        match self {
            DirOp::Create { path } => format!("create {}", name(path)),
            DirOp::CreateDir { path } => format!("mkdir {}", name(path)),
            DirOp::Rename { from, to, .. } => format!("rename {} -> {}", name(from), name(to)),
            DirOp::Remove { path, .. } => format!("remove {}", name(path)),
        }
    }

    /// The trash file to delete once the change is durable.
    fn trash(&self) -> Option<&Path> {
        match self {
            DirOp::Rename { replaced, .. } => replaced.as_deref(),
            DirOp::Remove { trash, .. } => Some(trash),
            _ => None,
        }
    }
}

fn crashed() -> io::Error {
    io::Error::other("the disk crashed (a simulated power failure)")
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

impl CrashDisk {
    /// A disk whose removed and replaced files wait in `trash` (made empty now, and on the same
    /// file system as the files) until their directory is synced.
    pub fn new(trash: impl Into<PathBuf>) -> io::Result<CrashDisk> {
        let trash = trash.into();
        if trash.exists() {
            fs::remove_dir_all(&trash)?;
        }
        fs::create_dir_all(&trash)?;
        let shared = Shared { state: Mutex::new(State::default()), trash };
        Ok(CrashDisk { shared: Arc::new(shared) })
    }

    /// The state, crashed or not.
    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, for an operation: an error once the disk crashed.
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state();
        if state.crashed {
            return Err(crashed());
        }
        Ok(state)
    }

    /// Whether [`crash`](CrashDisk::crash) was called.
    pub fn has_crashed(&self) -> bool {
        self.state().crashed
    }

    /// Rewrites the real files into one crash state of `family`, drawn from `seed`, and makes
    /// every later operation fail. Returns what was chosen.
    ///
    /// Files are put back first (each to its last synced bytes, then the kept prefix of its
    /// writes redone), then directory changes that did not reach the disk are undone, latest
    /// first. An error leaves the files in between; the disk is crashed all the same.
    pub fn crash(&self, family: CrashFamily, seed: u64) -> io::Result<CrashReport> {
        let mut state = self.lock()?;
        crash_now(&mut state, family, seed)
    }

    /// Arms a crash for a coming sync: the sync after `syncs_before` more syncs (of files or
    /// directories; 0 means the next one) crashes the disk as [`crash`](CrashDisk::crash) would,
    /// instead of syncing, and fails. A crash then finds the writes that sync was to make
    /// durable. Replaces an armed crash that has not happened yet.
    pub fn crash_at_sync(
        &self,
        family: CrashFamily,
        seed: u64,
        syncs_before: u64,
    ) -> io::Result<()> {
        let mut state = self.lock()?;
        state.armed = Some(Armed { family, seed, syncs_before });
        Ok(())
    }

    /// Makes the next file sync (for [`DiskError::EioOnSync`]) or the next write (for
    /// [`DiskError::EnospcOnWrite`]) fail; `None` disarms an error not injected yet.
    pub fn fail_next(&self, error: Option<DiskError>) -> io::Result<()> {
        self.lock()?.fail = error;
        Ok(())
    }

    /// The last error injected.
    pub fn injected(&self) -> Option<InjectedError> {
        self.state().injected.clone()
    }

    /// The crash's report, once the disk crashed.
    pub fn report(&self) -> Option<CrashReport> {
        self.state().report.clone()
    }

    /// The inode of the file `path`, which exists: one the disk made or saw before, or a new
    /// one for a file that was there before the disk (durable as it is).
    fn inode_of(state: &mut State, path: &Path) -> io::Result<usize> {
        if let Some(&inode) = state.names.get(path) {
            return Ok(inode);
        }
        let len = fs::metadata(path)?.len();
        Ok(CrashDisk::new_inode(state, path, len))
    }

    /// A new inode named `path`, `len` bytes long and durable as it is.
    fn new_inode(state: &mut State, path: &Path, len: u64) -> usize {
        state.inodes.push(Inode { path: path.to_path_buf(), len, ops: Vec::new() });
        let inode = state.inodes.len() - 1;
        state.names.insert(path.to_path_buf(), inode);
        inode
    }

    fn push_dir_op(state: &mut State, dir: PathBuf, op: DirOp) {
        let seq = state.next_seq;
        state.next_seq += 1;
        state.dir_ops.entry(dir).or_default().push((seq, op));
    }

    fn trash_path(&self, state: &mut State) -> PathBuf {
        state.next_trash += 1;
        self.shared.trash.join(format!("{:08}", state.next_trash))
    }

    fn handle(&self, inode: usize, file: File) -> Box<dyn DiskFile> {
        Box::new(CrashFile { disk: self.clone(), inode, file })
    }
}

/// Lets a sync through, or crashes the disk instead when an armed crash is due.
fn before_sync(state: &mut State) -> io::Result<()> {
    match &mut state.armed {
        Some(armed) if armed.syncs_before > 0 => {
            armed.syncs_before -= 1;
            Ok(())
        }
        Some(armed) => {
            let (family, seed) = (armed.family, armed.seed);
            crash_now(state, family, seed)?;
            Err(crashed())
        }
        None => Ok(()),
    }
}

/// Crashes the disk: see [`CrashDisk::crash`].
fn crash_now(state: &mut State, family: CrashFamily, seed: u64) -> io::Result<CrashReport> {
    state.crashed = true;
    state.armed = None;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut report = CrashReport { family, seed, files: Vec::new(), dirs: Vec::new() };
    for inode in state.inodes.iter().filter(|i| !i.ops.is_empty()) {
        report.files.push(crash_file(inode, family, &mut rng)?);
    }
    let mut undo: Vec<&(u64, DirOp)> = Vec::new();
    let mut forget: Vec<&Path> = Vec::new();
    for (dir, ops) in &state.dir_ops {
        let kept = match family {
            CrashFamily::LoseUnsynced => 0,
            CrashFamily::TornPrefix => rng.gen_range(0..=ops.len()),
            CrashFamily::MetadataWithoutData => ops.len(),
        };
        report.dirs.push(DirCrash {
            path: dir.clone(),
            unsynced_ops: ops.len(),
            kept_ops: kept,
            lost: ops[kept..].iter().map(|(_, op)| op.describe()).collect(),
        });
        forget.extend(ops[..kept].iter().filter_map(|(_, op)| op.trash()));
        undo.extend(&ops[kept..]);
    }
    undo.sort_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    for (_, op) in undo {
        undo_dir_op(op)?;
    }
    for trash in forget {
        fs::remove_file(trash)?;
    }
    state.report = Some(report.clone());
    Ok(report)
}

/// The page size of the disk model.
const PAGE: u64 = 4096;

/// The file offsets of the pages that a write of `len` bytes at `offset` touches.
fn pages(offset: u64, len: usize) -> Vec<u64> {
    let end = offset + len as u64;
    (offset / PAGE * PAGE..end).step_by(PAGE as usize).collect()
}

/// How the last kept write of a file was torn.
enum Tear {
    /// Its first bytes reached the disk.
    Prefix(usize),
    /// These of its pages (file offsets) reached the disk.
    Pages(Vec<u64>),
}

/// Puts the file of `inode` back as it was at its last sync, and returns it open.
fn revert(inode: &Inode) -> io::Result<File> {
    let file = open_rw(&inode.path)?;
    for op in inode.ops.iter().rev() {
        let undo = match op {
            FileOp::Write { undo, .. } | FileOp::SetLen { undo, .. } => undo,
        };
        file.set_len(undo.old_len)?;
        file.write_all_at(&undo.old, undo.at)?;
    }
    Ok(file)
}

/// The bytes the unsynced writes of `inode` carried.
fn unsynced_bytes(inode: &Inode) -> u64 {
    let written = |op: &FileOp| match op {
        FileOp::Write { data, .. } => data.len() as u64,
        FileOp::SetLen { .. } => 0,
    };
    inode.ops.iter().map(written).sum()
}

/// Puts one file into its crash state; `inode.ops` is not empty.
fn crash_file(inode: &Inode, family: CrashFamily, rng: &mut ChaCha8Rng) -> io::Result<FileCrash> {
    let ops = &inode.ops;
    let (kept, tear) = match family {
        CrashFamily::LoseUnsynced | CrashFamily::MetadataWithoutData => (0, None),
        CrashFamily::TornPrefix => {
            let kept = rng.gen_range(0..=ops.len());
            let tear = match ops[..kept].last() {
                Some(FileOp::Write { offset, data, .. })
                    if !data.is_empty() && rng.gen_bool(0.5) =>
                {
                    let pages = pages(*offset, data.len());
                    Some(match pages.len() > 1 && rng.gen_bool(0.5) {
                        true => {
                            Tear::Pages(pages.into_iter().filter(|_| rng.gen_bool(0.5)).collect())
                        }
                        false => Tear::Prefix(rng.gen_range(0..data.len())),
                    })
                }
                _ => None,
            };
            (kept, tear)
        }
    };
    let file = revert(inode)?;
    let mut kept_bytes = 0;
    for (i, op) in ops[..kept].iter().enumerate() {
        let tear = if i + 1 == kept { tear.as_ref() } else { None };
        match (op, tear) {
            (FileOp::Write { offset, data, .. }, None) => {
                file.write_all_at(data, *offset)?;
                kept_bytes += data.len() as u64;
            }
            (FileOp::Write { offset, data, .. }, Some(Tear::Prefix(cut))) => {
                file.write_all_at(&data[..*cut], *offset)?;
                kept_bytes += *cut as u64;
            }
            (FileOp::Write { offset, data, .. }, Some(Tear::Pages(kept_pages))) => {
                // The new length reached the disk; of the data, only the kept pages.
                let end = offset + data.len() as u64;
                if file.metadata()?.len() < end {
                    file.set_len(end)?;
                }
                for &page in kept_pages {
                    let from = page.max(*offset);
                    let to = (page + PAGE).min(end);
                    let slice = &data[(from - offset) as usize..(to - offset) as usize];
                    file.write_all_at(slice, from)?;
                    kept_bytes += slice.len() as u64;
                }
            }
            (FileOp::SetLen { len, .. }, _) => file.set_len(*len)?,
        }
    }
    if family == CrashFamily::MetadataWithoutData {
        file.set_len(inode.len)?;
    }
    Ok(FileCrash {
        path: inode.path.clone(),
        unsynced_ops: ops.len(),
        kept_ops: kept,
        torn_at: match &tear {
            Some(Tear::Prefix(cut)) => Some(*cut as u64),
            _ => None,
        },
        torn_pages: match tear {
            Some(Tear::Pages(pages)) => Some(pages),
            _ => None,
        },
        unsynced_bytes: unsynced_bytes(inode),
        kept_bytes,
        len_before: inode.len,
        len_after: file.metadata()?.len(),
    })
}

/// Undoes a directory change that did not reach the disk.
fn undo_dir_op(op: &DirOp) -> io::Result<()> {
    match op {
        DirOp::Create { path } => fs::remove_file(path),
        DirOp::CreateDir { path } => fs::remove_dir_all(path),
        DirOp::Rename { from, to, replaced } => {
            fs::rename(to, from)?;
            match replaced {
                Some(trash) => fs::rename(trash, to),
                None => Ok(()),
            }
        }
        DirOp::Remove { path, trash } => fs::rename(trash, path),
    }
}

impl Disk for CrashDisk {
    fn is_dir(&self, path: &Path) -> bool {
        self.lock().is_ok() && path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        fs::create_dir(path)?;
        CrashDisk::push_dir_op(&mut state, parent(path), DirOp::CreateDir { path: path.into() });
        Ok(())
    }

    fn list(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let _state = self.lock()?;
        fs::read_dir(path)?.map(|item| item.map(|item| item.file_name())).collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let _state = self.lock()?;
        fs::read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.lock()?;
        let file = open_rw(path)?;
        let inode = CrashDisk::inode_of(&mut state, path)?;
        Ok(self.handle(inode, file))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.lock()?;
        if path.exists() {
            // An existing file is emptied: an unsynced truncation to 0.
            let file = open_rw(path)?;
            let inode = CrashDisk::inode_of(&mut state, path)?;
            set_len_tracked(&mut state.inodes[inode], &file, 0)?;
            return Ok(self.handle(inode, file));
        }
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        let inode = CrashDisk::new_inode(&mut state, path, 0);
        CrashDisk::push_dir_op(&mut state, parent(path), DirOp::Create { path: path.into() });
        Ok(self.handle(inode, file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        if parent(from) != parent(to) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a crash disk renames within one directory only",
            ));
        }
        let inode = CrashDisk::inode_of(&mut state, from)?;
        let replaced = if to.exists() {
            // Keep the replaced file's bytes under a second name, for a crash to bring back.
            let old = CrashDisk::inode_of(&mut state, to)?;
            let trash = self.trash_path(&mut state);
            fs::hard_link(to, &trash)?;
            state.names.remove(to);
            state.inodes[old].path = trash.clone();
            Some(trash)
        } else {
            None
        };
        fs::rename(from, to)?;
        state.names.remove(from);
        state.names.insert(to.into(), inode);
        state.inodes[inode].path = to.into();
        let op = DirOp::Rename { from: from.into(), to: to.into(), replaced };
        CrashDisk::push_dir_op(&mut state, parent(to), op);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        let inode = CrashDisk::inode_of(&mut state, path)?;
        let trash = self.trash_path(&mut state);
        fs::rename(path, &trash)?;
        state.names.remove(path);
        state.inodes[inode].path = trash.clone();
        CrashDisk::push_dir_op(
            &mut state,
            parent(path),
            DirOp::Remove { path: path.into(), trash },
        );
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock()?;
        before_sync(&mut state)?;
        File::open(path)?.sync_all()?;
        for (_, op) in state.dir_ops.remove(path).unwrap_or_default() {
            if let Some(trash) = op.trash() {
                fs::remove_file(trash)?;
                // Gone for good: nothing of it is left for a crash to put back.
                for inode in state.inodes.iter_mut().filter(|i| i.path == trash) {
                    inode.ops.clear();
                }
            }
        }
        Ok(())
    }
}

/// A file of a [`CrashDisk`].
#[derive(Debug)]
struct CrashFile {
    disk: CrashDisk,
    inode: usize,
    file: File,
}

/// Truncates or extends `file` (the file of `inode`) to `len`, keeping what it cuts off.
fn set_len_tracked(inode: &mut Inode, file: &File, len: u64) -> io::Result<()> {
    let old_len = inode.len;
    let mut old = vec![0; old_len.saturating_sub(len) as usize];
    file.read_exact_at(&mut old, len)?;
    file.set_len(len)?;
    inode.len = len;
    inode.ops.push(FileOp::SetLen { len, undo: Undo { old_len, at: len, old } });
    Ok(())
}

impl CrashFile {
    /// Syncs the file with `sync` (after which nothing of it is unsynced), unless an armed
    /// crash or an injected EIO happens instead.
    fn sync(&self, sync: fn(&File) -> io::Result<()>) -> io::Result<()> {
        let mut state = self.disk.lock()?;
        self.before_file_sync(&mut state)?;
        sync(&self.file)?;
        state.inodes[self.inode].ops.clear();
        Ok(())
    }

    /// An armed crash or an injected EIO happens here, instead of the sync.
    fn before_file_sync(&self, state: &mut State) -> io::Result<()> {
        before_sync(state)?;
        if state.fail != Some(DiskError::EioOnSync) {
            return Ok(());
        }
        state.fail = None;
        // The failed writeback's pages are dropped: the file is as last synced.
        let inode = &mut state.inodes[self.inode];
        let lost_bytes = unsynced_bytes(inode);
        inode.len = revert(inode)?.metadata()?.len();
        inode.ops.clear();
        let error = DiskError::EioOnSync;
        state.injected = Some(InjectedError { error, path: inode.path.clone(), lost_bytes });
        Err(error.to_io())
    }
}

impl DiskFile for CrashFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let _state = self.disk.lock()?;
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.disk.lock()?;
        if state.fail == Some(DiskError::EnospcOnWrite) {
            state.fail = None;
            let path = state.inodes[self.inode].path.clone();
            let error = DiskError::EnospcOnWrite;
            state.injected = Some(InjectedError { error, path, lost_bytes: 0 });
            return Err(error.to_io());
        }
        let inode = &mut state.inodes[self.inode];
        let old_len = inode.len;
        let end = offset + buf.len() as u64;
        let overlap = old_len.min(end).saturating_sub(offset);
        let mut old = vec![0; overlap as usize];
        self.file.read_exact_at(&mut old, offset)?;
        self.file.write_all_at(buf, offset)?;
        inode.len = old_len.max(end);
        let undo = Undo { old_len, at: offset, old };
        inode.ops.push(FileOp::Write { offset, data: buf.to_vec(), undo });
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.disk.lock()?;
        set_len_tracked(&mut state.inodes[self.inode], &self.file, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync(File::sync_data)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync(File::sync_all)
    }
}

//! The file system under a [`FileStorage`](super::FileStorage): [`Disk`] and [`DiskFile`].
//!
//! [`FileStorage`](super::FileStorage) does every read, write, sync and directory change
//! through a [`Disk`], so that a test or a torture run can put a disk of its own under it.
//! Two implementations:
//!
//! - [`OsDisk`]: the operating system's file system, what a service runs on.
//! - [`CrashDisk`]: the operating system's file system, with every operation since each file's
//!   and each directory's last sync tracked, so that [`CrashDisk::crash`] can leave any of the
//!   states a POSIX file system may leave after a power failure (see [`CrashFamily`]).

mod crash;

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use crash::{
    CrashDisk, CrashFamily, CrashReport, DirCrash, DiskError, FileCrash, InjectedError,
};

/// A file system, as far as a [`FileStorage`](super::FileStorage) uses one.
///
/// What is durable follows POSIX: a file's bytes and length after
/// [`DiskFile::sync_data`] (or `sync_all`); a directory's entries (files created, renamed or
/// removed in it, and directories created in it) after [`Disk::sync_dir`] on it.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Creates the directory `path`, whose parent exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of the directory `path`.
    fn list(&self, path: &Path) -> io::Result<Vec<OsString>>;
    /// The whole contents of the file `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens the existing file `path` for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Creates the file `path` for reading and writing, emptying it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>>;
    /// Renames `from` to `to` (in the same directory), replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the entries of the directory `path` durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
}

/// An open file of a [`Disk`].
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Fills `buf` from `offset`; an error if the file ends first.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, growing the file if it ends before.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's bytes and length durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Makes the file's bytes, length and other metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsDisk;

impl Disk for OsDisk {
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn list(&self, path: &Path) -> io::Result<Vec<OsString>> {
        fs::read_dir(path)?.map(|item| item.map(|item| item.file_name())).collect()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        Ok(Box::new(OsFile(OpenOptions::new().read(true).write(true).open(path)?)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn DiskFile>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        Ok(Box::new(OsFile(file)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
}

/// A file of [`OsDisk`].
#[derive(Debug)]
struct OsFile(File);

impl DiskFile for OsFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

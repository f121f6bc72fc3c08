//! [`inspect`]: where each record of a storage directory's log lies, for tools and tests that
//! look at (or damage) the files on purpose.

use std::fs;
use std::path::{Path, PathBuf};

use super::record::{self, Frame, Record};
use super::segment;
use crate::core::{Index, Term};
use crate::storage::StorageError;

/// One log segment file, as [`inspect`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentLayout {
    pub path: PathBuf,
    /// The index the segment's name gives its first entry.
    pub first_index: Index,
    /// The file's length.
    pub len: u64,
    /// Its whole records in order, up to the first that is not whole.
    pub records: Vec<RecordSpan>,
}

/// Where one record lies in its segment, and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    /// The offset of its header, and its length with the header.
    pub offset: u64,
    pub len: u64,
    pub kind: RecordKind,
}

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Entry {
        index: Index,
        term: Term,
    },
    /// A sync marker: the records before it were made durable.
    SyncMarker {
        last_index: Index,
    },
}

impl RecordKind {
    /// The last index a sync marker names; `None` for an entry.
    pub fn synced_up_to(self) -> Option<Index> {
        match self {
            RecordKind::SyncMarker { last_index } => Some(last_index),
            RecordKind::Entry { .. } => None,
        }
    }
}

/// The segments of the storage in `dir`, in index order, without changing anything (no lock is
/// taken: inspect a directory no storage has open).
pub fn inspect(dir: impl AsRef<Path>) -> Result<Vec<SegmentLayout>, StorageError> {
    let dir = dir.as_ref();
    let mut names = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let item = item.map_err(|e| StorageError::io("list", dir, e))?;
        if let Some(first_index) = item.file_name().to_str().and_then(segment::parse_file_name) {
            names.push((first_index, item.path()));
        }
    }
    names.sort();
    let mut layouts = Vec::with_capacity(names.len());
    for (first_index, path) in names {
        let bytes = fs::read(&path).map_err(|e| StorageError::io("read", &path, e))?;
        let mut records = Vec::new();
        let mut pos = segment::HEADER_LEN as usize;
        while pos < bytes.len() {
            let Frame::Whole { payload, len } = record::frame(&bytes[pos..]) else { break };
            let kind = match record::decode(payload) {
                Ok(Record::Entry(entry)) => {
                    RecordKind::Entry { index: entry.index, term: entry.term }
                }
                Ok(Record::Sync { last_index }) => RecordKind::SyncMarker { last_index },
                Err(_) => break,
            };
            records.push(RecordSpan { offset: pos as u64, len: len as u64, kind });
            pos += len;
        }
        layouts.push(SegmentLayout { path, first_index, len: bytes.len() as u64, records });
    }
    Ok(layouts)
}

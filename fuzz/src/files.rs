//! A data directory packed into one fuzz input, and unpacked into a scratch directory.
//!
//! An input is a sequence of files, each:
//!
//! ```text
//! tag    u8         what the file is (taken modulo 4):
//!                   0 the hard state file
//!                   1 a segment, named by the first index in its own header (bytes 8..16)
//!                   2 a segment, named by the u64 LE that follows the tag
//!                   3 a temporary file left by an interrupted replacement of the hard state
//! [index u64 LE]    tag 2 only
//! len    u16 LE
//! bytes  len bytes  (fewer when the input ends first)
//! ```
//!
//! The names are the storage's own (`docs/storage.md`); a later file of the same name replaces
//! an earlier one.

use std::path::Path;

const HARD_STATE: &str = "hardstate";
const HARD_STATE_TEMP: &str = "hardstate.tmp";

fn segment_name(first_index: u64) -> String {
    format!("wal-{first_index:020}.log")
}

/// Writes the files packed in `data` into `dir`.
pub fn write_dir(mut data: &[u8], dir: &Path) {
    while let Some((&tag, rest)) = data.split_first() {
        data = rest;
        let mut named = None;
        if tag % 4 == 2 {
            let Some((index, rest)) = data.split_first_chunk::<8>() else { return };
            named = Some(u64::from_le_bytes(*index));
            data = rest;
        }
        let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
        let len = usize::from(u16::from_le_bytes(*len)).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        data = rest;
        let name = match tag % 4 {
            0 => HARD_STATE.to_string(),
            1 => {
                let own = bytes.get(8..16).map_or(1, |b| u64::from_le_bytes(b.try_into().unwrap()));
                segment_name(own)
            }
            2 => segment_name(named.unwrap_or(1)),
            _ => HARD_STATE_TEMP.to_string(),
        };
        std::fs::write(dir.join(name), bytes).expect("the scratch directory is writable");
    }
}

/// Packs the storage files of `dir` (the hard state, its temporary file, and the segments)
/// into one input; the inverse of [`write_dir`] for files under 64 KiB.
pub fn pack_dir(dir: &Path) -> Vec<u8> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("a readable directory")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let index = name
            .strip_prefix("wal-")
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u64>().ok());
        match (name.as_str(), index) {
            (HARD_STATE, _) => out.push(0),
            (HARD_STATE_TEMP, _) => out.push(3),
            (_, Some(index)) => {
                out.push(2);
                out.extend_from_slice(&index.to_le_bytes());
            }
            _ => continue,
        }
        let bytes = std::fs::read(dir.join(&name)).expect("a readable file");
        let len = bytes.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(len as u16).to_le_bytes());
        out.extend_from_slice(&bytes[..len]);
    }
    out
}

/// A fresh directory for one input: in memory (`/dev/shm`) where there is one, so that
/// millions of inputs neither wear a disk nor wait for its syncs.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new().prefix("fuzz-storage-").tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::Builder::new().prefix("fuzz-storage-").tempdir().expect("a scratch directory")
}

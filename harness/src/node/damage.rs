//! Damage to a stopped node's log files, and its record (`disk-damage.jsonl`, written by the
//! harness into the node's data directory).
//!
//! Tail damage hits the log's last record, the sync marker its last sync wrote: a torn write
//! that a correct node cuts off on restart, keeping every entry. Synced damage hits an entry
//! that a sync marker after it proves durable: a correct node refuses to start on it, naming
//! the file and offset.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use checker::safety::NodeRecord;
use raft::storage::{inspect, RecordSpan, SegmentLayout};
use raft::Index;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::events::{now_ms, EventKind};

/// The records of damage done to a node's files.
pub const RECORD_FILE: &str = "disk-damage.jsonl";

/// A kind of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Damage {
    /// The last record cut short at a random byte.
    TornTail,
    /// A random byte of the last record flipped.
    FlipTail,
    /// A random byte of a synced entry's record flipped.
    FlipSynced,
    /// Up to 512 bytes zeroed from the start of a synced entry's record.
    ZeroBlock,
}

impl Damage {
    /// Damage a correct node recovers from.
    pub const TAIL: [Damage; 2] = [Damage::TornTail, Damage::FlipTail];
    /// Damage a correct node refuses to start on.
    pub const SYNCED: [Damage; 2] = [Damage::FlipSynced, Damage::ZeroBlock];

    pub fn name(self) -> &'static str {
        match self {
            Damage::TornTail => "torn-tail",
            Damage::FlipTail => "flip-tail",
            Damage::FlipSynced => "flip-synced",
            Damage::ZeroBlock => "zero-block",
        }
    }

    /// Whether a correct node must refuse to start on it.
    pub fn expects_refusal(self) -> bool {
        Damage::SYNCED.contains(&self)
    }
}

/// Damage done, as the harness recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamageRecord {
    /// When, in ms since the Unix epoch (as `events.jsonl`).
    pub time_ms: u64,
    pub damage: Damage,
    pub file: PathBuf,
    /// Where the damage starts, and how many bytes it cut, flipped or zeroed.
    pub offset: u64,
    pub bytes: u64,
    /// The last entry a sync marker proved durable before the damage: after tail damage the
    /// node must recover at least this far.
    pub last_index: Index,
}

/// Damages the log of the stopped node in `dir` (its storage in `dir/raft`) and records it.
/// `None` when the log has no record the damage applies to.
pub fn damage(
    dir: &Path,
    damage: Damage,
    rng: &mut impl Rng,
) -> anyhow::Result<Option<DamageRecord>> {
    let storage = dir.join("raft");
    let segments =
        inspect(&storage).with_context(|| format!("inspecting {}", storage.display()))?;
    let last_index = segments
        .iter()
        .rev()
        .find_map(|s| s.records.iter().rev().find_map(|r| r.kind.synced_up_to()))
        .unwrap_or(0);
    let done = match damage.expects_refusal() {
        true => damage_synced(&segments, damage, rng)?,
        false => damage_tail(&segments, damage, rng)?,
    };
    let Some((file, offset, bytes)) = done else { return Ok(None) };
    let record = DamageRecord { time_ms: now_ms(), damage, file, offset, bytes, last_index };
    super::crash::append_record(&dir.join(RECORD_FILE), &record)?;
    Ok(Some(record))
}

/// Damages a synced entry, one a sync marker follows in its segment: its file, the offset and
/// the bytes damaged; `None` when there is none.
fn damage_synced(
    segments: &[SegmentLayout],
    damage: Damage,
    rng: &mut impl Rng,
) -> anyhow::Result<Option<(PathBuf, u64, u64)>> {
    let mut synced: Vec<(&Path, RecordSpan, u64)> = Vec::new();
    for s in segments {
        let Some(marker) = s.records.iter().rposition(|r| r.kind.synced_up_to().is_some()) else {
            continue;
        };
        let marker_at = s.records[marker].offset;
        for r in s.records[..marker].iter().filter(|r| r.kind.synced_up_to().is_none()) {
            synced.push((&s.path, *r, marker_at));
        }
    }
    if synced.is_empty() {
        return Ok(None);
    }
    let (path, record, marker_at) = synced[rng.gen_range(0..synced.len())];
    if damage == Damage::FlipSynced {
        let at = record.offset + rng.gen_range(0..record.len);
        flip(path, at, rng)?;
        return Ok(Some((path.to_path_buf(), at, 1)));
    }
    // A zeroed block that stops short of the marker, which must stay whole.
    let len = (marker_at - record.offset).min(512);
    write_at(path, &vec![0; len as usize], record.offset)?;
    Ok(Some((path.to_path_buf(), record.offset, len)))
}

/// Tears or flips the log's last record, if it is a sync marker (after a kill during a sync
/// it may be an entry no sync proved durable yet): its file, the offset and the bytes damaged.
fn damage_tail(
    segments: &[SegmentLayout],
    damage: Damage,
    rng: &mut impl Rng,
) -> anyhow::Result<Option<(PathBuf, u64, u64)>> {
    let Some(last) = segments.last() else { return Ok(None) };
    let Some(record) = last.records.last().filter(|r| r.kind.synced_up_to().is_some()) else {
        return Ok(None);
    };
    if damage == Damage::TornTail {
        let cut = record.offset + rng.gen_range(1..record.len);
        let file = OpenOptions::new().write(true).open(&last.path)?;
        file.set_len(cut).with_context(|| format!("cutting {}", last.path.display()))?;
        return Ok(Some((last.path.clone(), cut, last.len - cut)));
    }
    let at = record.offset + rng.gen_range(0..record.len);
    flip(&last.path, at, rng)?;
    Ok(Some((last.path.clone(), at, 1)))
}

/// Every damage recorded for the node in `dir`, oldest first.
pub fn records(dir: &Path) -> anyhow::Result<Vec<DamageRecord>> {
    super::crash::read_records(&dir.join(RECORD_FILE))
}

fn write_at(path: &Path, bytes: &[u8], at: u64) -> anyhow::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.write_all_at(bytes, at).with_context(|| format!("damaging {}", path.display()))
}

fn flip(path: &Path, at: u64, rng: &mut impl Rng) -> anyhow::Result<()> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0];
    file.read_exact_at(&mut byte, at)?;
    byte[0] ^= rng.gen_range(1..=255u8);
    file.write_all_at(&byte, at).with_context(|| format!("damaging {}", path.display()))
}

/// For each damage to synced data in the node's records: the refusal that followed it, in
/// words ("node 2 refused to start after flip-synced of wal-...log at byte 9448: ...").
pub fn refusals(record: &NodeRecord, dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for damage in records(dir)?.into_iter().filter(|d| d.damage.expects_refusal()) {
        let refusal = record.events.iter().find_map(|e| match &e.kind {
            EventKind::Refused { reason, .. } if e.time_ms.is_some_and(|t| t >= damage.time_ms) => {
                Some(reason)
            }
            _ => None,
        });
        if let Some(reason) = refusal {
            let file = damage.file.file_name().unwrap_or(damage.file.as_os_str());
            out.push(format!(
                "node {} refused to start after {} of {} at byte {}: {}",
                record.node,
                damage.damage.name(),
                file.to_string_lossy(),
                damage.offset,
                reason
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::storage::{FileStorage, FileStorageOptions, Storage, StorageError};
    use raft::{Entry, EntryKind};
    use rand::SeedableRng;

    /// A node directory whose log holds 30 entries in small segments, synced in batches of 1
    /// to 3.
    fn node_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let options = FileStorageOptions { segment_bytes: 600 };
        let mut storage = FileStorage::open_with(dir.path().join("raft"), options).unwrap();
        let mut index = 1;
        while index <= 30 {
            let batch: Vec<Entry> = (index..index + 1 + index % 3)
                .map(|i| Entry {
                    index: i,
                    term: 1,
                    kind: EntryKind::Normal,
                    data: vec![i as u8; 40],
                })
                .collect();
            index += batch.len() as u64;
            storage.append(&batch).unwrap();
            storage.sync().unwrap();
        }
        dir
    }

    #[test]
    fn tail_damage_is_recovered_from_with_every_entry_and_synced_damage_is_refused() {
        for seed in 0..40 {
            for damage in Damage::TAIL.into_iter().chain(Damage::SYNCED) {
                let dir = node_dir();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
                let done = super::damage(dir.path(), damage, &mut rng).unwrap().expect("damaged");
                assert_eq!(records(dir.path()).unwrap(), vec![done.clone()]);
                let opened = FileStorage::open_with(
                    dir.path().join("raft"),
                    FileStorageOptions { segment_bytes: 600 },
                );
                match (damage.expects_refusal(), opened) {
                    (false, Ok(storage)) => {
                        assert!(storage.last_index() >= done.last_index, "{done:?}");
                        assert!(storage.recovery().torn_tail.is_some(), "{done:?}");
                    }
                    (true, Err(StorageError::Corrupt { path, .. })) => assert_eq!(path, done.file),
                    (_, other) => panic!("seed {seed}, {done:?}: {other:?}"),
                }
            }
        }
    }
}

//! The log's record format: framing, checksums and payload encoding, on byte slices only.
//!
//! ```text
//! offset  size  field
//! 0       4     len          payload length in bytes, u32 little endian
//! 4       4     len_crc      CRC32 of the 4 bytes of `len`
//! 8       4     payload_crc  CRC32 of the payload
//! 12      len   payload      postcard encoding of a `Record`
//! ```
//!
//! `len` has a checksum of its own so that a damaged length is recognised as damage and never
//! followed to a wrong place; a record whose header verifies can be skipped even when its
//! payload does not.

use serde::{Deserialize, Serialize};

use crate::core::{Entry, Index};

/// Bytes before a record's payload.
pub(crate) const HEADER_LEN: usize = 12;

/// The largest payload a record may carry (64 MiB). A verified length above it is corruption.
pub(crate) const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// What a record carries.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) enum Record {
    /// One log entry.
    Entry(Entry),
    /// Written by every sync just before its fdatasync: the records before it are durable.
    /// `last_index` is the index of the last entry before it.
    Sync { last_index: Index },
}

/// The encoding side of [`Record`]: the same serde shape, borrowing the entry.
#[derive(Serialize)]
enum RecordRef<'a> {
    Entry(&'a Entry),
    Sync { last_index: Index },
}

/// Appends the record of `entry` to `out`; returns its payload length, which the caller checks
/// against [`MAX_PAYLOAD_LEN`] (the record is appended even when it is too large).
pub(crate) fn encode_entry(entry: &Entry, out: &mut Vec<u8>) -> usize {
    encode(&RecordRef::Entry(entry), out)
}

/// Appends a sync marker record to `out`.
pub(crate) fn encode_sync(last_index: Index, out: &mut Vec<u8>) {
    encode(&RecordRef::Sync { last_index }, out);
}

fn encode(record: &RecordRef<'_>, out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    // Encoding into a Vec only fails for values postcard cannot represent (sequences of
    // unknown length); a record has none.
    *out = postcard::to_extend(record, std::mem::take(out)).expect("postcard encodes a record");
    let payload_len = out.len() - start - HEADER_LEN;
    let len = (payload_len as u32).to_le_bytes();
    let payload_crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&len);
    out[start + 4..start + 8].copy_from_slice(&crc32fast::hash(&len).to_le_bytes());
    out[start + 8..start + 12].copy_from_slice(&payload_crc.to_le_bytes());
    payload_len
}

/// What the bytes at the start of a slice hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A record whose header and payload verify; `len` is its full length, header included.
    Whole { payload: &'a [u8], len: usize },
    /// A header that verifies and a payload that runs past the end of the slice, or fewer
    /// than [`HEADER_LEN`] bytes.
    Incomplete,
    /// The length's checksum does not match: where the record ends is unknown.
    BadHeader,
    /// The length verifies but is zero or above [`MAX_PAYLOAD_LEN`].
    ImpossibleLength(u32),
    /// The header verifies, the payload is all there but its checksum does not match; `len`
    /// is the record's full length.
    BadPayload { len: usize },
}

/// Reads the record framed at the start of `buf`.
pub(crate) fn frame(buf: &[u8]) -> Frame<'_> {
    if buf.len() < HEADER_LEN {
        return Frame::Incomplete;
    }
    let word = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let (len, len_crc, payload_crc) = (word(0), word(4), word(8));
    if crc32fast::hash(&buf[0..4]) != len_crc {
        return Frame::BadHeader;
    }
    if len == 0 || len as usize > MAX_PAYLOAD_LEN {
        return Frame::ImpossibleLength(len);
    }
    let total = HEADER_LEN + len as usize;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    let payload = &buf[HEADER_LEN..total];
    if crc32fast::hash(payload) != payload_crc {
        return Frame::BadPayload { len: total };
    }
    Frame::Whole { payload, len: total }
}

/// Decodes a verified payload; the error says why it is not a record.
pub(crate) fn decode(payload: &[u8]) -> Result<Record, String> {
    match postcard::take_from_bytes::<Record>(payload) {
        Ok((record, [])) => Ok(record),
        Ok((_, rest)) => Err(format!("{} trailing bytes after the record", rest.len())),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a whole sync marker starts at some offset of `buf` (every offset is tried). Used
/// after damage to tell a torn tail (nothing durable after it) from corruption.
pub(crate) fn find_sync_marker(buf: &[u8]) -> Option<usize> {
    (0..buf.len().saturating_sub(HEADER_LEN)).find(|&at| match frame(&buf[at..]) {
        Frame::Whole { payload, .. } => matches!(decode(payload), Ok(Record::Sync { .. })),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::EntryKind;

    fn entry(index: Index, data: &[u8]) -> Entry {
        Entry { index, term: 3, kind: EntryKind::Normal, data: data.to_vec() }
    }

    #[test]
    fn entry_round_trips() {
        let mut buf = Vec::new();
        let len = encode_entry(&entry(7, b"hello"), &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + len);
        let Frame::Whole { payload, len: total } = frame(&buf) else { panic!("not whole") };
        assert_eq!(total, buf.len());
        assert_eq!(decode(payload), Ok(Record::Entry(entry(7, b"hello"))));
    }

    #[test]
    fn sync_marker_round_trips_and_is_found_after_garbage() {
        let mut buf = vec![0xAB; 37];
        encode_sync(42, &mut buf);
        assert_eq!(find_sync_marker(&buf), Some(37));
        let Frame::Whole { payload, .. } = frame(&buf[37..]) else { panic!("not whole") };
        assert_eq!(decode(payload), Ok(Record::Sync { last_index: 42 }));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let mut buf = Vec::new();
        encode_entry(&entry(1, b"abcdef"), &mut buf);
        for cut in 0..buf.len() {
            assert_eq!(frame(&buf[..cut]), Frame::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn damaged_fields_are_told_apart() {
        let mut buf = Vec::new();
        encode_entry(&entry(1, b"abcdef"), &mut buf);
        let total = buf.len();
        let mut bad_len = buf.clone();
        bad_len[1] ^= 1;
        assert_eq!(frame(&bad_len), Frame::BadHeader);
        let mut bad_len_crc = buf.clone();
        bad_len_crc[5] ^= 1;
        assert_eq!(frame(&bad_len_crc), Frame::BadHeader);
        let mut bad_payload = buf.clone();
        bad_payload[total - 1] ^= 1;
        assert_eq!(frame(&bad_payload), Frame::BadPayload { len: total });
        let mut bad_payload_crc = buf;
        bad_payload_crc[9] ^= 1;
        assert_eq!(frame(&bad_payload_crc), Frame::BadPayload { len: total });
    }

    #[test]
    fn verified_zero_or_huge_length_is_impossible() {
        for len in [0u32, MAX_PAYLOAD_LEN as u32 + 1] {
            let mut buf = len.to_le_bytes().to_vec();
            buf.extend_from_slice(&crc32fast::hash(&len.to_le_bytes()).to_le_bytes());
            buf.extend_from_slice(&[0; 8]);
            assert_eq!(frame(&buf), Frame::ImpossibleLength(len));
        }
    }

    #[test]
    fn trailing_bytes_in_a_payload_are_undecodable() {
        let mut payload = Vec::new();
        encode_sync(1, &mut payload);
        let mut payload = payload[HEADER_LEN..].to_vec();
        payload.push(0);
        assert!(decode(&payload).is_err());
    }
}

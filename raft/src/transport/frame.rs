//! The wire format: a `u32` big-endian payload length, then the payload (postcard).
//!
//! The codec is public so that anything on the path between peers (a fault-injecting proxy, a
//! capture tool) can cut a byte stream into whole messages, look inside them, and write them on
//! unchanged.

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes of the length prefix in front of every payload.
pub const HEADER_LEN: usize = 4;

/// The default largest payload accepted, in bytes: 16 MiB. AppendEntries batches are far
/// smaller (see [`Config::max_append_bytes`](crate::Config::max_append_bytes)), but a single
/// entry may exceed the batch limit.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 << 20;

/// Why a frame could not be read, written or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announces more bytes than the reader accepts.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// The announced payload length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("truncated frame: stream ended after {got} of {expected} bytes")]
    Truncated {
        /// Bytes the frame should have had (header, then header plus payload once known).
        expected: u64,
        /// Bytes of the frame actually received.
        got: u64,
    },
    /// The payload is not a valid encoding of the expected type.
    #[error("undecodable payload of {len} bytes: {source}")]
    Decode {
        /// The payload length.
        len: usize,
        /// What postcard objected to.
        source: postcard::Error,
    },
    /// The payload decoded, but bytes were left over after the value.
    #[error("undecodable payload: {extra} trailing bytes after the value in {len} bytes")]
    TrailingBytes {
        /// The payload length.
        len: usize,
        /// Bytes left after the decoded value.
        extra: usize,
    },
    /// A value could not be encoded.
    #[error("cannot encode the value: {0}")]
    Encode(postcard::Error),
    /// An I/O error from the underlying stream.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `value` as one complete frame (length prefix and payload).
///
/// Fails only if serde cannot encode the value or its encoding exceeds `u32::MAX` bytes.
pub fn encode_frame<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, FrameError> {
    let mut buf = Vec::new();
    encode_frame_into(value, &mut buf)?;
    Ok(buf)
}

/// Appends one complete frame for `value` to `buf`, returning the frame's length in bytes. On
/// error `buf` is left as it was.
pub fn encode_frame_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<usize, FrameError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(e) = postcard::to_io(value, &mut *buf) {
        buf.truncate(start);
        return Err(FrameError::Encode(e));
    }
    let payload_len = buf.len() - start - HEADER_LEN;
    let Ok(len) = u32::try_from(payload_len) else {
        buf.truncate(start);
        return Err(FrameError::TooLong { len: payload_len as u64, max: u32::MAX as usize });
    };
    buf[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(buf.len() - start)
}

/// Wraps an already-encoded payload in a frame, e.g. to forward a payload read by
/// [`read_frame`] unchanged.
pub fn frame_payload(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| FrameError::TooLong { len: payload.len() as u64, max: u32::MAX as usize })?;
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(payload);
    Ok(buf)
}

/// Reads one frame from `reader` and returns its payload.
///
/// Returns `Ok(None)` when the stream ends cleanly at a frame boundary. A length over
/// `max_len` is refused before any of the payload is read or allocated, and memory grows only
/// with the bytes that actually arrive, so a peer cannot make the reader allocate by lying
/// about the length.
///
/// Not cancel-safe: if the future is dropped part way (say, another branch of a
/// `tokio::select!` wins), the bytes already read are lost and the stream is no longer at a
/// frame boundary. Use a [`FrameReader`](super::FrameReader) there; it also buffers, which
/// saves system calls when reading many small frames from a socket.
pub async fn read_frame<R>(reader: &mut R, max_len: usize) -> Result<Option<Vec<u8>>, FrameError>
where
    R: AsyncRead + Unpin + ?Sized,
{
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = reader.read(&mut header[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated { expected: HEADER_LEN as u64, got: got as u64 });
        }
        got += n;
    }
    let len = u32::from_be_bytes(header);
    if len as u64 > max_len as u64 {
        return Err(FrameError::TooLong { len: len as u64, max: max_len });
    }
    let len = len as usize;
    let mut payload = Vec::with_capacity(len.min(64 << 10));
    let read = (&mut *reader).take(len as u64).read_to_end(&mut payload).await?;
    if read < len {
        return Err(FrameError::Truncated {
            expected: (HEADER_LEN + len) as u64,
            got: (HEADER_LEN + read) as u64,
        });
    }
    Ok(Some(payload))
}

/// Decodes a payload read by [`read_frame`]. The payload must hold exactly one value: trailing
/// bytes are an error.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(payload)
        .map_err(|source| FrameError::Decode { len: payload.len(), source })?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes { len: payload.len(), extra: rest.len() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, MessageBody};

    fn msg(n: u64) -> Message {
        Message {
            from: 1,
            to: 2,
            term: n,
            body: MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: n.is_multiple_of(2),
            },
        }
    }

    #[test]
    fn frame_starts_with_big_endian_payload_length() {
        let frame = encode_frame(&msg(300)).unwrap();
        let payload = postcard::to_allocvec(&msg(300)).unwrap();
        assert_eq!(&frame[..4], &(payload.len() as u32).to_be_bytes());
        assert_eq!(&frame[4..], &payload[..]);
        assert_eq!(frame_payload(&payload).unwrap(), frame);
    }

    #[test]
    fn encode_into_appends_after_existing_bytes() {
        let mut buf = b"xy".to_vec();
        let a = encode_frame_into(&msg(1), &mut buf).unwrap();
        let b = encode_frame_into(&msg(2), &mut buf).unwrap();
        assert_eq!(buf.len(), 2 + a + b);
        assert_eq!(&buf[..2], b"xy");
        assert_eq!(&buf[2..2 + a], &encode_frame(&msg(1)).unwrap()[..]);
        assert_eq!(&buf[2 + a..], &encode_frame(&msg(2)).unwrap()[..]);
    }

    #[test]
    fn decode_rejects_trailing_bytes() {
        let mut payload = postcard::to_allocvec(&msg(7)).unwrap();
        assert_eq!(decode::<Message>(&payload).unwrap(), msg(7));
        payload.push(0);
        let err = decode::<Message>(&payload).unwrap_err();
        assert!(matches!(err, FrameError::TrailingBytes { extra: 1, .. }), "{err}");
    }
}

//! A buffered, cancel-safe frame reader.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::frame::{FrameError, HEADER_LEN};

/// Bytes asked of the stream at a time, at least.
const READ_CHUNK: usize = 64 << 10;

/// Cuts a byte stream into frames, buffering what it reads.
///
/// Unlike [`read_frame`](super::read_frame), [`FrameReader::next_frame`] is cancel-safe: it
/// keeps a partly received frame in its buffer, so it can be one branch of a
/// `tokio::select!` (say, next to a timer that releases delayed frames) without losing bytes
/// when another branch wins.
///
/// ```
/// use raft::transport::{encode_frame, FrameReader, DEFAULT_MAX_FRAME_LEN};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut bytes = encode_frame(&1u32).unwrap();
/// bytes.extend(encode_frame(&2u32).unwrap());
/// let mut frames = FrameReader::new(&bytes[..], DEFAULT_MAX_FRAME_LEN);
/// assert_eq!(frames.next_frame().await.unwrap(), Some(vec![1]));
/// assert_eq!(frames.next_frame().await.unwrap(), Some(vec![2]));
/// assert_eq!(frames.next_frame().await.unwrap(), None);
/// # });
/// ```
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    max_len: usize,
    buf: Vec<u8>,
    /// Where the unconsumed bytes of `buf` start.
    start: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads frames from `inner`, refusing payloads longer than `max_len`.
    pub fn new(inner: R, max_len: usize) -> Self {
        FrameReader { inner, max_len, buf: Vec::new(), start: 0 }
    }

    /// The next frame's payload, or `None` when the stream ends cleanly at a frame boundary.
    ///
    /// Errors as [`read_frame`](super::read_frame): a length over the limit is refused as soon
    /// as the prefix is in, before the payload is buffered; an end of stream inside a frame
    /// is a truncated frame. After an error the stream is no longer usable.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no bytes are lost.
    pub async fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(payload) = self.take_frame()? {
                return Ok(Some(payload));
            }
            self.make_room();
            // `read_buf` is cancel-safe: when it does not complete, nothing was read.
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                let got = self.buf.len() - self.start;
                if got == 0 {
                    return Ok(None);
                }
                return Err(FrameError::Truncated {
                    expected: self.wanted() as u64,
                    got: got as u64,
                });
            }
        }
    }

    /// Bytes read from the stream but not yet returned as frames.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The underlying stream, to write to it (bytes read from it belong to this reader).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The underlying stream; buffered bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes the frame at the front of the buffer needs in total: the header's length until
    /// the header is in, then header plus payload.
    fn wanted(&self) -> usize {
        let pending = &self.buf[self.start..];
        match pending.get(..HEADER_LEN) {
            Some(header) => {
                let len = u32::from_be_bytes(header.try_into().unwrap_or([0; HEADER_LEN]));
                HEADER_LEN + len as usize
            }
            None => HEADER_LEN,
        }
    }

    /// Removes and returns the first frame if it is complete.
    fn take_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let pending = &self.buf[self.start..];
        let Some(header) = pending.get(..HEADER_LEN) else { return Ok(None) };
        let len = u32::from_be_bytes(header.try_into().unwrap_or([0; HEADER_LEN]));
        if len as u64 > self.max_len as u64 {
            return Err(FrameError::TooLong { len: len as u64, max: self.max_len });
        }
        let end = HEADER_LEN + len as usize;
        let Some(payload) = pending.get(HEADER_LEN..end) else { return Ok(None) };
        let payload = payload.to_vec();
        self.start += end;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(payload))
    }

    /// Moves unconsumed bytes to the front and reserves space for the next read, growing with
    /// what has arrived rather than with what the header promises.
    fn make_room(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let missing = self.wanted().saturating_sub(self.buf.len());
        self.buf.reserve(missing.clamp(HEADER_LEN, READ_CHUNK));
    }
}

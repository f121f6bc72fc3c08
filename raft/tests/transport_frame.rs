//! The frame codec: length prefix, limits, truncation and decoding, over in-memory streams.

use raft::transport::{
    decode, encode_frame, frame_payload, read_frame, FrameError, FrameReader, DEFAULT_MAX_FRAME_LEN,
};
use raft::{Entry, EntryKind, Message, MessageBody};
use tokio::io::AsyncWriteExt;

fn append(term: u64, data_len: usize) -> Message {
    Message {
        from: 1,
        to: 2,
        term,
        body: MessageBody::AppendEntries {
            prev_log_index: 4,
            prev_log_term: term - 1,
            entries: vec![Entry {
                index: 5,
                term,
                kind: EntryKind::Normal,
                data: (0..data_len).map(|i| i as u8).collect(),
            }],
            leader_commit: 3,
        },
    }
}

fn vote(term: u64) -> Message {
    Message {
        from: 3,
        to: 1,
        term,
        body: MessageBody::RequestVote { pre_vote: true, last_log_index: 9, last_log_term: 2 },
    }
}

#[tokio::test]
async fn frames_read_back_in_order_then_clean_eof() {
    let sent = vec![vote(1), append(2, 0), append(3, 70_000), vote(u64::MAX)];
    let mut bytes = Vec::new();
    for m in &sent {
        bytes.extend(encode_frame(m).unwrap());
    }
    let mut reader = &bytes[..];
    let mut got = Vec::new();
    while let Some(payload) = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).await.unwrap() {
        got.push(decode::<Message>(&payload).unwrap());
    }
    assert_eq!(got, sent);
    assert!(reader.is_empty());
}

#[tokio::test]
async fn empty_stream_is_a_clean_eof() {
    let mut reader: &[u8] = &[];
    assert!(read_frame(&mut reader, 16).await.unwrap().is_none());
}

#[tokio::test]
async fn frames_arriving_a_byte_at_a_time_are_reassembled() {
    let sent = vec![append(7, 300), vote(8)];
    let mut bytes = Vec::new();
    for m in &sent {
        bytes.extend(encode_frame(m).unwrap());
    }
    let (mut writer, mut reader) = tokio::io::duplex(1);
    let writing = tokio::spawn(async move {
        for b in bytes {
            writer.write_all(&[b]).await.unwrap();
        }
    });
    let mut got = Vec::new();
    while let Some(payload) = read_frame(&mut reader, 1 << 20).await.unwrap() {
        got.push(decode::<Message>(&payload).unwrap());
    }
    writing.await.unwrap();
    assert_eq!(got, sent);
}

#[tokio::test]
async fn eof_inside_the_length_prefix_is_a_truncated_frame() {
    let mut reader: &[u8] = &[0, 0];
    let err = read_frame(&mut reader, 16).await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated { expected: 4, got: 2 }), "{err:?}");
}

#[tokio::test]
async fn eof_inside_the_payload_is_a_truncated_frame() {
    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend([7; 10]);
    let mut reader = &bytes[..];
    let err = read_frame(&mut reader, 1000).await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated { expected: 104, got: 14 }), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_naming_length_and_limit() {
    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend([1, 2, 3]);
    let mut reader = &bytes[..];
    let err = read_frame(&mut reader, DEFAULT_MAX_FRAME_LEN).await.unwrap_err();
    assert!(
        matches!(err, FrameError::TooLong { len, max }
            if len == u32::MAX as u64 && max == DEFAULT_MAX_FRAME_LEN),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&u32::MAX.to_string()), "{text}");
    assert!(text.contains(&DEFAULT_MAX_FRAME_LEN.to_string()), "{text}");
}

#[tokio::test]
async fn the_limit_itself_is_accepted_and_one_more_byte_is_not() {
    let at_limit = frame_payload(&[5; 8]).unwrap();
    let mut reader = &at_limit[..];
    assert_eq!(read_frame(&mut reader, 8).await.unwrap(), Some(vec![5; 8]));

    let over = frame_payload(&[5; 9]).unwrap();
    let mut reader = &over[..];
    let err = read_frame(&mut reader, 8).await.unwrap_err();
    assert!(matches!(err, FrameError::TooLong { len: 9, max: 8 }), "{err:?}");
}

#[tokio::test]
async fn an_empty_payload_is_a_frame_but_not_a_message() {
    let mut reader: &[u8] = &[0, 0, 0, 0];
    let payload = read_frame(&mut reader, 16).await.unwrap().unwrap();
    assert!(payload.is_empty());
    let err = decode::<Message>(&payload).unwrap_err();
    assert!(matches!(err, FrameError::Decode { len: 0, .. }), "{err:?}");
}

#[test]
fn an_unknown_message_kind_is_undecodable() {
    // from 1, to 2, term 3, then a body variant that does not exist.
    let err = decode::<Message>(&[1, 2, 3, 200]).unwrap_err();
    assert!(matches!(err, FrameError::Decode { len: 4, .. }), "{err:?}");
    assert!(err.to_string().contains("undecodable"), "{err}");
}

#[test]
fn a_payload_with_bytes_after_the_message_is_undecodable() {
    let frame = encode_frame(&vote(4)).unwrap();
    let mut payload = frame[4..].to_vec();
    payload.extend([0, 0]);
    let err = decode::<Message>(&payload).unwrap_err();
    assert!(matches!(err, FrameError::TrailingBytes { extra: 2, .. }), "{err:?}");
}

#[test]
fn frame_payload_wraps_what_encode_frame_produces() {
    let frame = encode_frame(&append(2, 5)).unwrap();
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4);
    assert_eq!(frame_payload(&frame[4..]).unwrap(), frame);
    assert_eq!(decode::<Message>(&frame[4..]).unwrap(), append(2, 5));
}

#[tokio::test]
async fn frame_reader_reads_frames_in_order_then_clean_eof() {
    let sent = vec![vote(1), append(2, 0), append(3, 200_000), vote(4)];
    let mut bytes = Vec::new();
    for m in &sent {
        bytes.extend(encode_frame(m).unwrap());
    }
    let mut frames = FrameReader::new(&bytes[..], DEFAULT_MAX_FRAME_LEN);
    let mut got = Vec::new();
    while let Some(payload) = frames.next_frame().await.unwrap() {
        got.push(decode::<Message>(&payload).unwrap());
    }
    assert_eq!(got, sent);
    assert!(frames.buffered().is_empty());
}

#[tokio::test]
async fn frame_reader_loses_nothing_when_cancelled_mid_frame() {
    let sent = vec![append(2, 1000), vote(3), vote(4), append(5, 10)];
    let mut bytes = Vec::new();
    for m in &sent {
        bytes.extend(encode_frame(m).unwrap());
    }
    let (mut writer, reader) = tokio::io::duplex(64);
    let mut frames = FrameReader::new(reader, DEFAULT_MAX_FRAME_LEN);
    let mut got = Vec::new();
    let mut cancelled = 0;
    for chunk in bytes.chunks(3) {
        writer.write_all(chunk).await.unwrap();
        // Take every frame that is complete; the first poll that has to wait is abandoned.
        loop {
            tokio::select! {
                biased;
                frame = frames.next_frame() => {
                    got.push(decode::<Message>(&frame.unwrap().unwrap()).unwrap());
                }
                _ = std::future::ready(()) => {
                    cancelled += 1;
                    break;
                }
            }
        }
    }
    assert!(cancelled > sent.len(), "reads were abandoned mid-frame");
    assert_eq!(got, sent);
    drop(writer);
    assert_eq!(frames.next_frame().await.unwrap(), None);
}

#[tokio::test]
async fn frame_reader_reports_truncation_and_oversize_like_read_frame() {
    let mut frames = FrameReader::new(&[0u8, 0, 0][..], 16);
    let err = frames.next_frame().await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated { expected: 4, got: 3 }), "{err:?}");

    let mut bytes = 100u32.to_be_bytes().to_vec();
    bytes.extend([7; 10]);
    let mut frames = FrameReader::new(&bytes[..], 1000);
    let err = frames.next_frame().await.unwrap_err();
    assert!(matches!(err, FrameError::Truncated { expected: 104, got: 14 }), "{err:?}");

    let mut bytes = u32::MAX.to_be_bytes().to_vec();
    bytes.extend([1, 2, 3]);
    let mut frames = FrameReader::new(&bytes[..], DEFAULT_MAX_FRAME_LEN);
    let err = frames.next_frame().await.unwrap_err();
    assert!(
        matches!(err, FrameError::TooLong { len, max }
            if len == u32::MAX as u64 && max == DEFAULT_MAX_FRAME_LEN),
        "{err:?}"
    );

    let mut bytes = frame_payload(&[5; 8]).unwrap();
    bytes.extend(frame_payload(&[5; 9]).unwrap());
    let mut frames = FrameReader::new(&bytes[..], 8);
    assert_eq!(frames.next_frame().await.unwrap(), Some(vec![5; 8]));
    let err = frames.next_frame().await.unwrap_err();
    assert!(matches!(err, FrameError::TooLong { len: 9, max: 8 }), "{err:?}");
}

//! Reading a history into a [`CompactHistory`], in blocks read on both cores: no block
//! outlives its pairing, and no event is built as `serde_json` values unless its line
//! needs it.
//!
//! The reader cuts the input into blocks of whole lines (about [`BLOCK_BYTES`] each);
//! a batch of blocks, one per core, is read line by line in parallel, then paired in
//! order on the calling thread. Each format has a quick reading (the fields found, key and
//! value kept as their text: `json_line`, `edn::op_map_spans`) and a whole one
//! (`serde_json`, the EDN reader, the Jepsen log line reader), which reads what the quick
//! one declines and whose errors name the problem.

use std::io::{self, Read};

use serde_json::Value;

use crate::compact::{CompactHistory, LineEvent, Pairing, Spelled};
use crate::error::Error;
use crate::history::{Event, Format, RawEvent, MAX_LINE_BYTES};
use crate::{edn, import, json_line};

/// About how much of the input one block holds (it ends at a line's end).
const BLOCK_BYTES: usize = 4 << 20;

static NULL: Value = Value::Null;

/// Why the whole reading refused a line: its message, and whether the line ended before
/// it was whole (for a torn last line).
struct Refused {
    message: String,
    cut_short: bool,
}

/// A block of whole lines (the last block's last line may lack its newline).
struct Block {
    bytes: Vec<u8>,
    /// A line longer than [`MAX_LINE_BYTES`] starts at the end of `bytes`.
    too_long: bool,
}

/// Cuts a reader into [`Block`]s.
struct Blocks<R> {
    reader: R,
    carry: Vec<u8>,
    done: bool,
}

impl<R: Read> Blocks<R> {
    fn next(&mut self) -> io::Result<Option<Block>> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = std::mem::take(&mut self.carry);
        let mut filled = bytes.len();
        bytes.resize(BLOCK_BYTES.max(filled + (1 << 16)), 0);
        while filled < BLOCK_BYTES {
            match self.reader.read(&mut bytes[filled..]) {
                Ok(0) => {
                    self.done = true;
                    bytes.truncate(filled);
                    return Ok((!bytes.is_empty()).then_some(Block { bytes, too_long: false }));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        bytes.truncate(filled);
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            // no line ends within a block, which is longer than any line may be
            self.done = true;
            return Ok(Some(Block { bytes: Vec::new(), too_long: true }));
        };
        self.carry = bytes[end + 1..].to_vec();
        bytes.truncate(end + 1);
        Ok(Some(Block { bytes, too_long: false }))
    }
}

/// A non-blank line of a block, as read by a worker.
struct Parsed<'b> {
    /// Its 1-based line number within the block.
    line: u32,
    text: &'b str,
    read: Reading<'b>,
}

enum Reading<'b> {
    Quick(LineEvent<'b>),
    Whole(Event, Option<u64>),
    Refused(Refused),
    TooLong,
    NotUtf8,
}

/// A block's lines as read, and how many lines it has.
struct ReadBlock<'b> {
    lines: Vec<Parsed<'b>>,
    count: usize,
}

pub(crate) fn read(name: &str, reader: impl Read, format: Format) -> Result<CompactHistory, Error> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let io = |error| Error::Io { name: name.to_string(), error };
    let mut blocks = Blocks { reader, carry: Vec::new(), done: false };
    let mut format = (format != Format::Auto).then_some(format);
    let mut pairing: Option<Pairing> = None;
    let mut lines_before = 0usize;
    let mut torn = None;
    loop {
        let mut batch = Vec::with_capacity(workers);
        while batch.len() < workers {
            match blocks.next().map_err(io)? {
                Some(b) => {
                    let too_long = b.too_long;
                    batch.push(b);
                    if too_long {
                        break;
                    }
                }
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        if format.is_none() {
            format = detect(name, &batch, lines_before)?;
        }
        let read = match format {
            Some(f) => read_blocks(&batch, f, workers),
            None => Vec::new(), // every line so far is blank
        };
        for (k, block) in batch.iter().enumerate() {
            if block.too_long {
                return Err(too_long(name, lines_before + 1));
            }
            let (Some(format), Some(read)) = (format, read.get(k)) else {
                lines_before += count_lines(&block.bytes);
                continue;
            };
            let pairing = pairing.get_or_insert_with(|| Pairing::new(name, format));
            for p in &read.lines {
                // only the input's last line can lack its newline: every other block ends
                // with one
                let terminated = p.line as usize != read.count || block.bytes.ends_with(b"\n");
                let line = lines_before + p.line as usize;
                torn = take(pairing, format, name, line, p, terminated)?.or(torn);
            }
            lines_before += read.count;
        }
    }
    match pairing {
        Some(p) => p.finish(torn),
        None => Err(Error::input(name, "empty history: no events")),
    }
}

fn too_long(name: &str, line: usize) -> Error {
    Error::line(
        name,
        line,
        format!("a line longer than {} MiB: not a history", MAX_LINE_BYTES >> 20),
    )
}

/// The lines in `bytes`, the last counted even without its newline.
fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
        + usize::from(!bytes.ends_with(b"\n") && !bytes.is_empty())
}

/// The format of the first non-blank line of the batch, if it has one.
fn detect(name: &str, batch: &[Block], lines_before: usize) -> Result<Option<Format>, Error> {
    let mut line = lines_before;
    for b in batch {
        for l in b.bytes.split(|&c| c == b'\n') {
            line += 1;
            let Ok(text) = std::str::from_utf8(l) else {
                return Err(Error::line(name, line, "not valid UTF-8"));
            };
            if !text.trim().is_empty() {
                return import::detect_line(text).map(Some).map_err(|m| Error::line(name, line, m));
            }
        }
        line -= 1; // the split's last piece is after the block's last newline
    }
    Ok(None)
}

/// Reads the lines of every block of the batch, a block per thread.
fn read_blocks(batch: &[Block], format: Format, workers: usize) -> Vec<ReadBlock<'_>> {
    if workers <= 1 || batch.len() <= 1 {
        return batch.iter().map(|b| read_block(b, format)).collect();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> =
            batch[1..].iter().map(|b| s.spawn(move || read_block(b, format))).collect();
        let mut out = vec![read_block(&batch[0], format)];
        for h in handles {
            match h.join() {
                Ok(r) => out.push(r),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

fn read_block(block: &Block, format: Format) -> ReadBlock<'_> {
    let bytes = &block.bytes[..];
    // One check of the whole block (lines one at a time cost a call each); a block that
    // fails it is checked line by line, to name the line.
    let utf8 = std::str::from_utf8(bytes).ok();
    let mut lines = Vec::with_capacity(bytes.len() / 96);
    let mut count = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let (mut raw, next) = match find_newline(rest) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        count += 1;
        let line = count as u32;
        raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            lines.push(Parsed { line, text: "", read: Reading::TooLong });
            continue;
        }
        let text = match utf8 {
            // lines start and end at ASCII bytes, so these are char boundaries
            Some(whole) => {
                let start = raw.as_ptr() as usize - bytes.as_ptr() as usize;
                whole.get(start..start + raw.len()).unwrap_or_default()
            }
            None => match std::str::from_utf8(raw) {
                Ok(text) => text,
                Err(_) => {
                    lines.push(Parsed { line, text: "", read: Reading::NotUtf8 });
                    continue;
                }
            },
        };
        if text.trim().is_empty() {
            continue;
        }
        let read = match quick(format, text) {
            Some(e) => Reading::Quick(e),
            None => match whole(format, text) {
                Ok(Some((e, index))) => Reading::Whole(e, index),
                Ok(None) => continue,
                Err(r) => Reading::Refused(r),
            },
        };
        lines.push(Parsed { line, text, read });
    }
    ReadBlock { lines, count }
}

/// The position of the first newline in `s`, eight bytes at a time (a byte loop with an
/// early exit is not vectorised, and lines are short).
fn find_newline(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let x = w ^ (ONES * u64::from(b'\n'));
        let zero = x.wrapping_sub(ONES) & !x & HIGHS;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    chunks.remainder().iter().position(|&b| b == b'\n').map(|i| at + i)
}

/// Pairs one line read by a worker: the line's number if it is a torn tail (left out).
fn take(
    pairing: &mut Pairing,
    format: Format,
    name: &str,
    line: usize,
    p: &Parsed<'_>,
    terminated: bool,
) -> Result<Option<usize>, Error> {
    let refused = |r: &Refused| {
        if r.cut_short && !terminated && format != Format::JepsenLog {
            return Ok(Some(line));
        }
        let message = match format {
            Format::JepsenLog => r.message.clone(),
            _ => format!("invalid event: {}", r.message),
        };
        Err(Error::line(name, line, message))
    };
    match &p.read {
        Reading::Quick(e) => match pairing.key_of(e) {
            Ok(key) => pairing.take(line, e, key).map(|()| None),
            // the whole reading says exactly what is wrong with the key
            Err(_) => match whole(format, p.text) {
                Ok(Some((e, index))) => pairing.event(line, e.as_line_event(index)).map(|()| None),
                Ok(None) => Ok(None),
                Err(r) => refused(&r),
            },
        },
        Reading::Whole(e, index) => pairing.event(line, e.as_line_event(*index)).map(|()| None),
        Reading::Refused(r) => refused(r),
        Reading::TooLong => Err(too_long(name, line)),
        Reading::NotUtf8 => Err(Error::line(name, line, "not valid UTF-8")),
    }
}

/// The quick reading of a line, or `None` when it needs the whole one.
fn quick(format: Format, line: &str) -> Option<LineEvent<'_>> {
    match format {
        Format::Jsonl => json_line::parse(line).map(|e| LineEvent {
            index: e.index,
            time: e.time,
            process: e.process,
            kind: e.kind,
            f: e.f,
            key: e.key.map(Spelled::Text),
            value: e.value.map_or(Spelled::Value(&NULL), Spelled::Text),
        }),
        Format::Edn => {
            let e = edn::op_map_spans(line)?;
            let std::borrow::Cow::Borrowed(f) = e.f else { return None };
            Some(LineEvent {
                index: e.index,
                time: e.time,
                process: e.process,
                kind: e.kind,
                f,
                key: e.key.map(|k| Spelled::Text(k.as_bytes())),
                value: e.value.map_or(Spelled::Value(&NULL), |v| Spelled::Text(v.as_bytes())),
            })
        }
        Format::JepsenLog | Format::Auto => None,
    }
}

/// A line read the whole way, as an event and the `index` it gave, if any (`None`: a
/// line that holds no event).
fn whole(format: Format, line: &str) -> Result<Option<(Event, Option<u64>)>, Refused> {
    let with_index = |raw: RawEvent| {
        let index = raw.index;
        Some((raw.into_event(0), index))
    };
    match format {
        Format::Jsonl => match serde_json::from_str::<RawEvent>(line) {
            Ok(raw) => Ok(with_index(raw)),
            Err(e) => Err(Refused { message: e.to_string(), cut_short: e.is_eof() }),
        },
        Format::Edn => match edn::parse_event(line) {
            Ok(raw) => Ok(with_index(raw)),
            Err(m) => {
                Err(Refused { cut_short: m.starts_with("unexpected end of line"), message: m })
            }
        },
        Format::JepsenLog | Format::Auto => match import::jepsen_log_line(line) {
            Ok(event) => Ok(event.map(|e| (e, None))),
            Err(message) => Err(Refused { message, cut_short: false }),
        },
    }
}

impl Event {
    /// The event as the pairing takes it, its values already parsed, with the `index` its
    /// line gave (`None`: the event's position in the history).
    fn as_line_event(&self, index: Option<u64>) -> LineEvent<'_> {
        LineEvent {
            index,
            time: self.time,
            process: self.process,
            kind: self.kind,
            f: &self.f,
            key: self.key.as_ref().map(Spelled::Value),
            value: Spelled::Value(&self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_newline_at_every_position() {
        for len in 0..40 {
            for at in 0..=len {
                let mut s = vec![b'x'; len];
                // bytes that differ from a newline by one bit, around it
                for (i, b) in s.iter_mut().enumerate() {
                    *b = [b'x', 0x0b, 0x8a, 0x0e, 0][i % 5];
                }
                if at < len {
                    s[at] = b'\n';
                    if at + 3 < len {
                        s[at + 3] = b'\n';
                    }
                }
                let expected = s.iter().position(|&b| b == b'\n');
                assert_eq!(find_newline(&s), expected, "{s:?}");
            }
        }
    }

    #[test]
    fn blocks_end_at_line_ends_and_a_line_longer_than_a_block_is_refused() {
        let line = b"{:process 0, :type :invoke, :f :read, :value nil}\n";
        let text: Vec<u8> = line.iter().copied().cycle().take(line.len() * 200_000).collect();
        let mut blocks = Blocks { reader: &text[..], carry: Vec::new(), done: false };
        let mut total = 0;
        while let Some(b) = blocks.next().unwrap() {
            assert!(b.bytes.ends_with(b"\n") && !b.too_long);
            assert!(b.bytes.len() <= BLOCK_BYTES + line.len());
            total += b.bytes.len();
        }
        assert_eq!(total, text.len());
        let endless = std::io::Read::take(std::io::repeat(b'x'), 2 * BLOCK_BYTES as u64);
        let mut blocks = Blocks { reader: endless, carry: Vec::new(), done: false };
        assert!(blocks.next().unwrap().unwrap().too_long);
        assert!(blocks.next().unwrap().is_none());
    }
}

//! Reading a history into a [`CompactHistory`], in blocks read on every core while the
//! calling thread pairs the blocks before them: no block outlives its pairing, and no
//! event is built as `serde_json` values unless its line needs it.
//!
//! The reader cuts the input into blocks of whole lines (about [`BLOCK_BYTES`] each). A
//! batch of blocks, one per core, is read line by line on threads of its own while the
//! calling thread pairs the batch before it, in order. Each format has a quick reading (the
//! fields found, key and value kept as their text: `json_line`, `edn::op_map_spans`) and a
//! whole one (`serde_json`, the EDN reader, the Jepsen log line reader), which reads what
//! the quick one declines and whose errors name the problem. A block's threads give its
//! keys and functions numbers of their own (a block holds few distinct ones), so that the
//! pairing looks each up once per block, not once per line.

use std::io::{self, Read};
use std::thread::JoinHandle;

use crate::compact::{CompactHistory, LineEvent, Pairing, Spelled, NO_KEY, NULL};
use crate::error::Error;
use crate::fasthash::FastMap;
use crate::history::{Event, EventType, Format, Process, RawEvent, MAX_LINE_BYTES};
use crate::{edn, import, json_line};

/// About how much of the input one block holds (it ends at a line's end).
const BLOCK_BYTES: usize = 4 << 20;

/// Why the whole reading refused a line: its message, and whether the line ended before
/// it was whole (for a torn last line).
struct Refused {
    message: String,
    cut_short: bool,
}

/// A block of whole lines (the last block's last line may lack its newline).
struct Block {
    /// Its bytes are `buf[..len]`; the rest is room kept for the next use of the buffer.
    buf: Vec<u8>,
    len: usize,
    /// Room for its lines as read, kept from an earlier block.
    lines: Vec<Line>,
    /// A line longer than [`MAX_LINE_BYTES`] starts here (and the block holds nothing).
    too_long: bool,
}

impl Block {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Cuts a reader into [`Block`]s, in buffers used again once their blocks are paired (a new
/// buffer costs its pages' faults and zeroing).
struct Blocks<R> {
    reader: R,
    carry: Vec<u8>,
    spare: Vec<(Vec<u8>, Vec<Line>)>,
    done: bool,
}

impl<R: Read> Blocks<R> {
    fn new(reader: R) -> Self {
        Blocks { reader, carry: Vec::new(), spare: Vec::new(), done: false }
    }

    fn next(&mut self) -> io::Result<Option<Block>> {
        if self.done {
            return Ok(None);
        }
        let (mut buf, lines) = self.spare.pop().unwrap_or_default();
        let room = BLOCK_BYTES + (1 << 16);
        if buf.len() < room {
            buf.resize(room, 0);
        }
        buf[..self.carry.len()].copy_from_slice(&self.carry);
        let mut filled = self.carry.len();
        self.carry.clear();
        while filled < BLOCK_BYTES {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.done = true;
                    let block = Block { buf, len: filled, lines, too_long: false };
                    return Ok((filled > 0).then_some(block));
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let Some(end) = buf[..filled].iter().rposition(|&b| b == b'\n') else {
            // no line ends within a block, which is longer than any line may be
            self.done = true;
            return Ok(Some(Block { buf: Vec::new(), len: 0, lines, too_long: true }));
        };
        self.carry.extend_from_slice(&buf[end + 1..filled]);
        Ok(Some(Block { buf, len: end + 1, lines, too_long: false }))
    }

    /// Takes back a paired block's buffers.
    fn recycle(&mut self, block: Block, mut lines: Vec<Line>) {
        if block.buf.len() > BLOCK_BYTES {
            lines.clear();
            self.spare.push((block.buf, lines));
        }
    }
}

/// Bytes of a block: (start, length).
type Span = (u32, u32);

/// No key, in a [`Quick`] event.
const NO_LOCAL_KEY: u32 = u32::MAX;

/// An event as the quick reading found it, its key and function numbered within its block.
struct Quick {
    index: Option<u64>,
    time: Option<u64>,
    process: Process,
    kind: EventType,
    f: u32,
    key: u32,
    /// `None`: no value (null).
    value: Option<Span>,
}

/// A non-blank line of a block, as read by a worker.
struct Line {
    /// Its 1-based number within the block.
    line: u32,
    text: Span,
    read: Reading,
}

enum Reading {
    Quick(Quick),
    Whole(Box<(Event, Option<u64>)>),
    Refused(Refused),
    TooLong,
    NotUtf8,
}

/// A block's lines as read, how many lines it has, and the spellings of its keys and
/// functions, by their numbers in its [`Quick`] events.
struct ReadBlock {
    lines: Vec<Line>,
    count: usize,
    keys: Vec<Span>,
    functions: Vec<Span>,
}

pub(crate) fn read(name: &str, reader: impl Read, format: Format) -> Result<CompactHistory, Error> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let io = |error| Error::Io { name: name.to_string(), error };
    let mut blocks = Blocks::new(reader);
    let mut format = (format != Format::Auto).then_some(format);
    let mut pairing: Option<Pairing> = None;
    let mut lines_before = 0usize;
    let mut torn = None;
    // the batch being read on other threads while the one before it is paired
    let mut in_flight: Vec<JoinHandle<(Block, ReadBlock)>> = Vec::new();
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
        if format.is_none() && !batch.is_empty() {
            format = detect(name, &batch, lines_before)?;
        }
        let Some(format) = format else {
            // every line so far is blank
            for b in &batch {
                if b.too_long {
                    return Err(too_long(name, lines_before + 1));
                }
                lines_before += count_lines(b.bytes());
            }
            if batch.is_empty() {
                break;
            }
            continue;
        };
        let pairing = pairing.get_or_insert_with(|| Pairing::new(name, format));
        let last = batch.is_empty();
        if in_flight.is_empty() && blocks.done && batch.len() == 1 {
            // the whole input is one block: no thread
            let (block, read) = read_block(batch.remove(0), format);
            torn = pair_block(pairing, format, name, &mut lines_before, &block, &read)?.or(torn);
            break;
        }
        let next: Vec<_> =
            batch.into_iter().map(|b| std::thread::spawn(move || read_block(b, format))).collect();
        for handle in std::mem::replace(&mut in_flight, next) {
            let (block, read) = handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            torn = pair_block(pairing, format, name, &mut lines_before, &block, &read)?.or(torn);
            blocks.recycle(block, read.lines);
        }
        if last {
            break;
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
    let ends = bytes.iter().filter(|&&b| b == b'\n').count();
    ends + usize::from(!bytes.is_empty() && !bytes.ends_with(b"\n"))
}

/// The format of the first non-blank line of the batch, if it has one.
fn detect(name: &str, batch: &[Block], lines_before: usize) -> Result<Option<Format>, Error> {
    let mut line = lines_before;
    for b in batch {
        if b.too_long {
            return Ok(None);
        }
        for l in b.bytes().split(|&c| c == b'\n') {
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

/// Numbers the distinct spellings of a block's keys or functions.
#[derive(Default)]
struct Local<'b> {
    /// Spellings of up to 15 bytes, packed with their length into one number (most are:
    /// hashing and comparing a number is a fraction of hashing and comparing a slice).
    short: FastMap<u128, u32>,
    long: FastMap<&'b [u8], u32>,
    spans: Vec<Span>,
}

impl<'b> Local<'b> {
    fn id(&mut self, block: &'b [u8], text: &'b [u8]) -> u32 {
        let next = self.spans.len() as u32;
        let id = match text.len() {
            0..16 => {
                let mut packed = [0u8; 16];
                packed[..text.len()].copy_from_slice(text);
                packed[15] = text.len() as u8;
                *self.short.entry(u128::from_le_bytes(packed)).or_insert(next)
            }
            _ => *self.long.entry(text).or_insert(next),
        };
        if id == next {
            self.spans.push(span(block, text));
        }
        id
    }
}

/// Where `part` lies in `block`.
fn span(block: &[u8], part: &[u8]) -> Span {
    ((part.as_ptr() as usize - block.as_ptr() as usize) as u32, part.len() as u32)
}

fn read_block(mut block: Block, format: Format) -> (Block, ReadBlock) {
    let lines = std::mem::take(&mut block.lines);
    let read = read_lines(&block, lines, format);
    (block, read)
}

fn read_lines(block: &Block, mut lines: Vec<Line>, format: Format) -> ReadBlock {
    if block.too_long {
        lines.push(Line { line: 1, text: (0, 0), read: Reading::TooLong });
        return ReadBlock { lines, count: 1, keys: Vec::new(), functions: Vec::new() };
    }
    let bytes = block.bytes();
    // One check of the whole block (lines one at a time cost a call each); a block that
    // fails it is checked line by line, to name the line.
    let utf8 = std::str::from_utf8(bytes).ok();
    lines.reserve(bytes.len() / 64);
    let (mut keys, mut functions) = (Local::default(), Local::default());
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
        let at = span(bytes, raw);
        if raw.len() > MAX_LINE_BYTES {
            lines.push(Line { line, text: at, read: Reading::TooLong });
            continue;
        }
        let text = match utf8 {
            // lines start and end at ASCII bytes, so these are char boundaries
            Some(whole) => whole.get(at.0 as usize..(at.0 + at.1) as usize).unwrap_or_default(),
            None => match std::str::from_utf8(raw) {
                Ok(text) => text,
                Err(_) => {
                    lines.push(Line { line, text: at, read: Reading::NotUtf8 });
                    continue;
                }
            },
        };
        if text.trim().is_empty() {
            continue;
        }
        let read = match quick(format, text) {
            Some(e) => Reading::Quick(Quick {
                index: e.index,
                time: e.time,
                process: e.process,
                kind: e.kind,
                f: functions.id(bytes, e.f.as_bytes()),
                key: match e.key {
                    Some(Spelled::Text(k)) => keys.id(bytes, k),
                    _ => NO_LOCAL_KEY,
                },
                value: match e.value {
                    Spelled::Text(v) => Some(span(bytes, v)),
                    Spelled::Value(_) => None,
                },
            }),
            None => match whole(format, text) {
                Ok(Some(e)) => Reading::Whole(Box::new(e)),
                Ok(None) => continue,
                Err(r) => Reading::Refused(r),
            },
        };
        lines.push(Line { line, text: at, read });
    }
    ReadBlock { lines, count, keys: keys.spans, functions: functions.spans }
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

/// Pairs a block's lines in order, and counts them into `lines_before`: the number of its
/// last line if that is a torn tail (left out).
fn pair_block(
    pairing: &mut Pairing,
    format: Format,
    name: &str,
    lines_before: &mut usize,
    block: &Block,
    read: &ReadBlock,
) -> Result<Option<usize>, Error> {
    let bytes = block.bytes();
    let at = |(start, len): Span| &bytes[start as usize..(start + len) as usize];
    let str_at = |s: Span| std::str::from_utf8(at(s)).unwrap_or_default();
    // a key that does not read sends its lines to the whole reading, which names the problem
    let keys: Vec<Option<u32>> = read.keys.iter().map(|&k| pairing.key_text(at(k)).ok()).collect();
    // a function is registered once a client uses it (the nemesis's are not the history's)
    let names: Vec<&str> = read.functions.iter().map(|&f| str_at(f)).collect();
    let mut functions: Vec<Option<u32>> = vec![None; names.len()];
    let mut torn = None;
    for l in &read.lines {
        let line = *lines_before + l.line as usize;
        // only the input's last line can lack its newline: every other block ends with one
        let terminated = l.line as usize != read.count || bytes.ends_with(b"\n");
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
        let whole_line = |pairing: &mut Pairing| match whole(format, str_at(l.text)) {
            Ok(Some((e, index))) => pairing.event(line, e.as_line_event(index)).map(|()| None),
            Ok(None) => Ok(None),
            Err(r) => refused(&r),
        };
        let this = match &l.read {
            Reading::Quick(q) => {
                let key = match q.key {
                    NO_LOCAL_KEY => Some(NO_KEY),
                    k => keys[k as usize],
                };
                match key {
                    Some(key) => {
                        let name = names[q.f as usize];
                        let f = match (q.process, functions[q.f as usize]) {
                            (Process::Nemesis, _) => 0,
                            (_, Some(f)) => f,
                            (_, None) => *functions[q.f as usize].insert(pairing.function(name)),
                        };
                        let e = LineEvent {
                            index: q.index,
                            time: q.time,
                            process: q.process,
                            kind: q.kind,
                            f: name,
                            key: None,
                            value: q.value.map_or(Spelled::Value(&NULL), |v| Spelled::Text(at(v))),
                        };
                        let key = (q.process != Process::Nemesis).then_some(key);
                        pairing.take(line, &e, key, f).map(|()| None)
                    }
                    None => whole_line(pairing),
                }
            }
            Reading::Whole(e) => pairing.event(line, e.0.as_line_event(e.1)).map(|()| None),
            Reading::Refused(r) => refused(r),
            Reading::TooLong => Err(too_long(name, line)),
            Reading::NotUtf8 => Err(Error::line(name, line, "not valid UTF-8")),
        };
        torn = this?.or(torn);
    }
    *lines_before += read.count;
    Ok(torn)
}

/// The quick reading of a line, or `None` when it needs the whole one.
fn quick(format: Format, line: &str) -> Option<LineEvent<'_>> {
    match format {
        Format::Jsonl => json_line::parse(line),
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
        let mut blocks = Blocks::new(&text[..]);
        let mut all = Vec::new();
        while let Some(b) = blocks.next().unwrap() {
            assert!(b.bytes().ends_with(b"\n") && !b.too_long);
            assert!(b.len <= BLOCK_BYTES + (1 << 16));
            all.extend_from_slice(b.bytes());
            blocks.recycle(b, Vec::new());
        }
        assert_eq!(all, text);
        let endless = std::io::Read::take(std::io::repeat(b'x'), 2 * BLOCK_BYTES as u64);
        let mut blocks = Blocks::new(endless);
        assert!(blocks.next().unwrap().unwrap().too_long);
        assert!(blocks.next().unwrap().is_none());
    }
}

//! What each fuzz target does with one input, and the properties it asserts beyond "no panic".
//!
//! The targets in `fuzz_targets/` are one line each, calling the function of the same name
//! here, so that `tests/corpus.rs` can replay every stored input on stable `cargo test`
//! without libFuzzer, and so that a defect found by fuzzing can be replayed by its file.
//!
//! Every input the network or the disk can give the project has a target (`docs/fuzzing.md`):
//!
//! | target             | input                                                        |
//! |--------------------|--------------------------------------------------------------|
//! | `peer_frames`      | a peer connection's bytes: frames, messages, into the core   |
//! | `peer_handshake`   | what the other side of a handshake sends, either side        |
//! | `storage_recovery` | a data directory: segment files and the hard state           |
//! | `client_requests`  | client request lines, and log entries' command bytes         |
//! | `histories`        | a history file in every format the checker reads             |
//! | `node_records`     | a node's `applied.jsonl` and `events.jsonl`                  |

pub mod files;
pub mod seeds;

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use checker::safety::{check_safety, NodeRecord};
use checker::{CheckOptions, CompactHistory, Format, History};
use harness::node::kv::{Command, Kv};
use harness::node::server::parse_request;
use raft::transport::{auth, decode, encode_frame, ClusterSecret, FrameReader, HEADER_LEN};
use raft::{Config, HardState, Message, RawNode, Role};

/// The largest frame the fuzzed peer connection accepts, as a node configured so would.
const MAX_FRAME: usize = 1 << 20;

/// A runtime for the async readers, made once per process.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("a runtime"))
}

/// Node 1 of three, whose invariants are checked after every input it is given.
struct Core {
    node: RawNode,
    term: u64,
    commit: u64,
    /// The term of every entry delivered as committed, by index - 1: none may ever change.
    committed_terms: Vec<u64>,
}

impl Core {
    fn new() -> Core {
        let config = Config::service(1, vec![1, 2, 3]);
        let node =
            RawNode::new(config, HardState::default(), Vec::new(), 7).expect("a valid config");
        Core { node, term: 0, commit: 0, committed_terms: Vec::new() }
    }

    /// Takes what the core has ready as a node would (everything persisted at once), checks
    /// what it asks for, and returns the messages it sends.
    fn drain(&mut self) -> Vec<Message> {
        let mut sent = Vec::new();
        while self.node.has_ready() {
            let ready = self.node.ready();
            if let Some(hs) = ready.hard_state {
                assert!(
                    hs.term >= self.term,
                    "the term went back from {} to {}",
                    self.term,
                    hs.term
                );
            }
            for e in &ready.committed_entries {
                let next = self.committed_terms.len() as u64 + 1;
                assert_eq!(e.index, next, "committed entries out of order");
                self.committed_terms.push(e.term);
            }
            for m in &ready.messages {
                assert!(m.from == 1 && m.to != 1, "a message from 1 to {} claims {}", m.to, m.from);
            }
            let mut ready = ready;
            sent.append(&mut ready.messages);
            self.node.advance(ready);
        }
        let status = self.node.status();
        assert!(status.term >= self.term, "the term went back");
        assert!(status.commit_index >= self.commit, "the commit index went back");
        assert!(status.commit_index <= status.last_index, "committed beyond the log");
        // §5.4.3 State Machine Safety, locally: a committed entry stays in the log as it was.
        for (i, &term) in self.committed_terms.iter().enumerate() {
            let held = self.node.entry(i as u64 + 1).map(|e| e.term);
            assert_eq!(held, Some(term), "committed entry {} changed or vanished", i + 1);
        }
        (self.term, self.commit) = (status.term, status.commit_index);
        if status.role == Role::Leader {
            // A leader that serves clients keeps proposing; replication paths get exercised.
            let _ = self.node.propose(b"x".to_vec());
        }
        sent
    }
}

/// A peer connection's bytes into node 1 of three: the first byte is how many ticks pass
/// first; the rest is read as frames, each decoded as a message and stepped.
///
/// Asserts that a decoded message encodes back to itself and that the core's invariants hold
/// whatever it is sent: its term and commit index never go back, it commits within its log,
/// delivers committed entries in order, and sends only as itself.
pub fn peer_frames(data: &[u8]) {
    replay_frames(&mut Core::new(), data);
}

/// [`peer_frames`] on a given core.
fn replay_frames(core: &mut Core, data: &[u8]) {
    let Some((&ticks, stream)) = data.split_first() else { return };
    for _ in 0..ticks {
        core.node.tick();
        let _ = core.drain();
    }
    let mut reader = FrameReader::new(stream, MAX_FRAME);
    let mut payloads = Vec::new();
    runtime().block_on(async {
        while let Ok(Some(payload)) = reader.next_frame().await {
            payloads.push(payload);
        }
    });
    for payload in payloads {
        if auth::is_hello_frame(&payload) {
            continue;
        }
        let Ok(msg) = decode::<Message>(&payload) else { continue };
        let again = encode_frame(&msg).expect("a decoded message encodes");
        let back: Message = decode(&again[HEADER_LEN..]).expect("its encoding decodes");
        assert_eq!(back, msg, "a message does not survive its own encoding");
        core.node.step(msg);
        let _ = core.drain();
        core.node.tick();
        let _ = core.drain();
    }
}

/// What the other side of a handshake sends: the first byte picks this node's side (even:
/// acceptor, odd: dialer); the rest is the other side's bytes.
///
/// Asserts that no input authenticates: the proofs depend on a fresh random nonce and the
/// secret, which the input cannot know.
pub fn peer_handshake(data: &[u8]) {
    let Some((&side, theirs)) = data.split_first() else { return };
    let secret =
        ClusterSecret::new(b"fuzzing secret, sixteen bytes or more".to_vec()).expect("long enough");
    let mut stream = tokio::io::join(theirs, tokio::io::sink());
    let outcome = runtime().block_on(async {
        if side % 2 == 0 {
            auth::accept(&mut stream, &secret, 1).await.map(|_| ())
        } else {
            auth::dial(&mut stream, &secret, 2, 1).await
        }
    });
    assert!(outcome.is_err(), "a forged handshake was accepted");
}

/// A data directory made of the input (see [`files`]), opened as a node opens it at restart.
///
/// Asserts that an opened log is contiguous and within the hard state's term, and that opening
/// is stable: what one open recovered, plus one entry appended and synced, is exactly what the
/// next open finds.
pub fn storage_recovery(data: &[u8]) {
    use raft::storage::{FileStorage, Storage};
    use raft::{Entry, EntryKind};

    let dir = files::scratch_dir();
    files::write_dir(data, dir.path());
    let Ok(mut storage) = FileStorage::open(dir.path()) else { return };
    let first = storage.initial_state().expect("an opened storage reads back");
    let (first_index, last_index) = (storage.first_index(), storage.last_index());
    assert_eq!(
        first.entries.len() as u64,
        last_index + 1 - first_index,
        "entries and indexes disagree"
    );
    for (i, e) in first.entries.iter().enumerate() {
        assert_eq!(e.index, first_index + i as u64, "recovered entries are not contiguous");
    }
    let term = first.hard_state.term.max(first.entries.last().map_or(0, |e| e.term));
    let Some(index) = last_index.checked_add(1) else { return };
    let entry = Entry { index, term, kind: EntryKind::Normal, data: b"after".to_vec() };
    if storage.append(std::slice::from_ref(&entry)).is_err() || storage.sync().is_err() {
        return;
    }
    drop(storage);
    let reopened = FileStorage::open(dir.path()).expect("a storage this process wrote reopens");
    let second = reopened.initial_state().expect("a reopened storage reads back");
    let mut expected = first.entries.clone();
    expected.push(entry);
    assert_eq!(second.entries, expected, "reopening lost or changed entries");
    assert_eq!(second.hard_state, first.hard_state, "reopening changed the hard state");
}

/// Client request lines, then the whole input as a log entry's command bytes (what a peer's
/// AppendEntries puts into every node's state machine).
///
/// Asserts that a request's command survives its encoding into the log, and that every
/// command that decodes applies.
pub fn client_requests(data: &[u8]) {
    let mut kv = Kv::default();
    for line in data.split(|&b| b == b'\n') {
        if let Ok((_, cmd)) = parse_request(line) {
            let decoded = Command::decode(&cmd.encode()).expect("an encoded command decodes");
            assert_eq!(decoded, cmd, "a command does not survive its encoding");
            kv.apply(cmd);
        }
    }
    if let Ok(cmd) = Command::decode(data) {
        let again = Command::decode(&cmd.encode()).expect("a re-encoded command decodes");
        assert_eq!(again, cmd, "a decoded command does not survive its encoding");
        kv.apply(cmd);
    }
}

/// A history file: the first byte picks the format (auto, jsonl, Jepsen log, EDN); the rest is
/// its text. A history that reads is checked, against both models, under a short time limit.
///
/// Asserts that an error on a line names a line of the input, and that the streaming reader
/// (`CompactHistory::read`) reads every history the whole reader reads, to the same
/// operations. (Where the whole reader refuses a line for a field the check ignores, such as
/// an `error` or a nemesis event's value, the streaming reader may read it.)
pub fn histories(data: &[u8]) {
    let Some((&pick, text)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(text);
    let format = [Format::Auto, Format::Jsonl, Format::JepsenLog, Format::Edn][pick as usize % 4];
    let whole =
        History::parse_str("fuzzed", &text, format).and_then(|h| CompactHistory::from_history(&h));
    let streamed = CompactHistory::read("fuzzed", text.as_bytes(), format);
    match (&whole, &streamed) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                (a.len(), a.nemesis_events(), a.torn_line()),
                (b.len(), b.nemesis_events(), b.torn_line())
            );
            for (i, (x, y)) in a.operations().zip(b.operations()).enumerate() {
                let (x, y) = (x.map_err(|e| e.to_string()), y.map_err(|e| e.to_string()));
                assert_eq!(x, y, "the readers disagree on operation {i}");
            }
        }
        (Ok(_), Err(e)) => panic!("the streaming reader refuses what the whole reader reads: {e}"),
        (Err(_), Ok(b)) => {
            let options = CheckOptions {
                time_limit: Some(Duration::from_millis(50)),
                threads: 1,
                memory_limit: None,
            };
            let _ = checker::check_compact(&workloads::Kv, b, &options);
        }
        (Err(_), Err(_)) => {}
    }
    let history = match History::parse_str("fuzzed", &text, format) {
        Ok(history) => history,
        Err(checker::Error::Line { line, .. }) => {
            let lines = text.lines().count().max(1);
            assert!((1..=lines).contains(&line), "an error names line {line} of {lines}");
            return;
        }
        Err(_) => return,
    };
    let options = CheckOptions {
        time_limit: Some(Duration::from_millis(50)),
        threads: 1,
        memory_limit: None,
    };
    let _ = checker::check(&workloads::CasRegister, &history, &options);
    let _ = checker::check(&workloads::Kv, &history, &options);
    let _ = checker::safety::acknowledged_writes(&history);
}

/// A node's records: the input up to its first zero byte is `applied.jsonl`, the rest
/// `events.jsonl`. Records that read are given to the safety checks as two nodes' records.
pub fn node_records(data: &[u8]) {
    let cut = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let applied = String::from_utf8_lossy(&data[..cut]);
    let events = String::from_utf8_lossy(data.get(cut + 1..).unwrap_or_default());
    let Ok(record) = NodeRecord::parse(1, ("applied.jsonl", &applied), ("events.jsonl", &events))
    else {
        return;
    };
    // The node's own reader of applied.jsonl (at restart) agrees with the checker's on every
    // complete line.
    let dir = files::scratch_dir();
    let complete = applied.rfind('\n').map_or("", |end| &applied[..=end]);
    std::fs::write(dir.path().join("applied.jsonl"), applied.as_bytes()).expect("writable");
    if let Ok(log) = harness::node::events::AppliedLog::open(dir.path()) {
        let whole = NodeRecord::parse(1, ("applied.jsonl", complete), ("events.jsonl", ""))
            .expect("what the node reads, the checker reads");
        let last = whole.applied.last().map_or(0, |e| e.index);
        assert_eq!(last, log.logged(), "the node and the checker disagree on the last entry");
    }
    let other = NodeRecord { node: 2, ..record.clone() };
    let checks = check_safety(&[record, other], &BTreeSet::new());
    for check in checks {
        assert_eq!(
            check.valid,
            check.violation_count == 0,
            "{}: verdict and count disagree",
            check.name
        );
    }
}

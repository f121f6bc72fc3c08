//! The seed inputs of each target, made by the project's own writers so that they are what the
//! network and the disk really carry; `examples/make_corpus.rs` writes them to `corpus/`.

use std::collections::VecDeque;

use harness::node::kv::{Command, Op};
use raft::storage::{FileStorage, FileStorageOptions, Storage};
use raft::transport::encode_frame;
use raft::{Config, Entry, EntryKind, HardState, Message, RawNode, Role};

use crate::{files, Core};

/// Named seed inputs of one target.
pub type Seeds = Vec<(String, Vec<u8>)>;

/// Node 1's inbound stream while a real three-node cluster elects `leader` and replicates:
/// the exact input under which [`crate::peer_frames`] replays node 1's part of the exchange.
fn cluster_exchange(leader: u64, frames: usize) -> Vec<u8> {
    let ticks: u8 = if leader == 1 { 60 } else { 0 };
    let mut one = Core::new();
    let mut others: Vec<RawNode> = [2, 3]
        .into_iter()
        .map(|id| {
            let config = Config::service(id, vec![1, 2, 3]);
            RawNode::new(config, HardState::default(), Vec::new(), id).expect("a valid config")
        })
        .collect();
    let mut out = vec![ticks];
    let mut in_flight: VecDeque<Message> = VecDeque::new();
    for _ in 0..ticks {
        one.node.tick();
        in_flight.extend(one.drain());
    }
    if leader != 1 {
        for _ in 0..60 {
            others[leader as usize - 2].tick();
            in_flight.extend(drain(&mut others[leader as usize - 2]));
        }
    }
    let mut sent = 0;
    while let Some(msg) = in_flight.pop_front() {
        if msg.to == 1 {
            out.extend(encode_frame(&msg).expect("a message encodes"));
            sent += 1;
            if sent == frames {
                break;
            }
            one.node.step(msg);
            in_flight.extend(one.drain());
            one.node.tick();
            in_flight.extend(one.drain());
        } else {
            let node = &mut others[msg.to as usize - 2];
            node.step(msg);
            if node.status().role == Role::Leader {
                let _ = node.propose(b"y".to_vec());
            }
            in_flight.extend(drain(node));
        }
    }
    out
}

fn drain(node: &mut RawNode) -> Vec<Message> {
    let mut sent = Vec::new();
    while node.has_ready() {
        let mut ready = node.ready();
        sent.append(&mut ready.messages);
        node.advance(ready);
    }
    sent
}

/// Seeds of `peer_frames`: node 1 elected, node 2 elected, and a short exchange.
pub fn peer_frames() -> Seeds {
    vec![
        ("leader-1".into(), cluster_exchange(1, 200)),
        ("leader-2".into(), cluster_exchange(2, 200)),
        ("short".into(), cluster_exchange(1, 4)),
    ]
}

/// Seeds of `peer_handshake`: a well-shaped hello to an acceptor and a well-shaped challenge
/// and proof to a dialer (`raft::transport::auth` gives the layout), with proofs that cannot
/// be right.
pub fn peer_handshake() -> Seeds {
    let mut hello = vec![0];
    hello.extend_from_slice(&81u32.to_be_bytes());
    hello.push(1);
    hello.extend_from_slice(&2u64.to_be_bytes());
    hello.extend_from_slice(&1u64.to_be_bytes());
    hello.extend_from_slice(&[7; 64]);
    let mut challenge = vec![1];
    challenge.extend_from_slice(b"RAFTAUTH");
    challenge.extend_from_slice(&[9; 64]);
    vec![("hello".into(), hello), ("challenge".into(), challenge)]
}

/// A storage directory written by [`FileStorage`] with `entries` entries, packed.
fn storage(entries: u64, segment_bytes: u64, cut: usize) -> Vec<u8> {
    let dir = files::scratch_dir();
    let options = FileStorageOptions { segment_bytes };
    let mut storage = FileStorage::open_with(dir.path(), options).expect("a new storage");
    storage.set_hard_state(HardState { term: 3, vote: Some(2) }).unwrap();
    for index in 1..=entries {
        let kind = if index % 7 == 1 { EntryKind::Noop } else { EntryKind::Normal };
        let data = format!("command {index}").into_bytes();
        let entry = Entry { index, term: 1 + index * 3 / (entries + 1), kind, data };
        storage.append(&[entry]).unwrap();
        if index % 3 == 0 {
            storage.sync().unwrap();
        }
    }
    storage.sync().unwrap();
    drop(storage);
    let mut packed = files::pack_dir(dir.path());
    packed.truncate(packed.len() - cut.min(packed.len()));
    packed
}

/// Seeds of `storage_recovery`: new, one segment, several segments, a torn tail.
pub fn storage_recovery() -> Seeds {
    vec![
        ("empty".into(), storage(0, 64 << 20, 0)),
        ("one-segment".into(), storage(12, 64 << 20, 0)),
        ("segments".into(), storage(40, 256, 0)),
        ("torn-tail".into(), storage(12, 64 << 20, 5)),
    ]
}

/// Seeds of `client_requests`: every kind of request line, and log entries' command bytes.
pub fn client_requests() -> Seeds {
    let lines = [
        r#"{"op":"auth","token":"secret"}"#,
        r#"{"id":1,"op":"read","key":"k"}"#,
        r#"{"id":2,"client":3,"seq":4,"op":"write","key":"k","value":5}"#,
        r#"{"id":3,"op":"cas","key":"k","from":5,"to":null}"#,
        r#"{"id":4,"op":"get","key":"a"}"#,
        r#"{"id":5,"op":"put","key":"a","value":"x"}"#,
        r#"{"id":6,"op":"append","key":"a","value":"y"}"#,
        r#"{"id":7,"op":"write","key":"k","value":-9223372036854775808}"#,
    ];
    let commands = [
        Command { session: Some((3, 4)), op: Op::Write { key: "k".into(), value: Some(5) } },
        Command { session: None, op: Op::Cas { key: "k".into(), from: None, to: Some(1) } },
        Command { session: Some((1, 1)), op: Op::Append { key: "a".into(), value: "z".into() } },
    ];
    let mut seeds: Seeds = vec![("lines".into(), lines.join("\n").into_bytes())];
    for (i, cmd) in commands.iter().enumerate() {
        seeds.push((format!("command-{i}"), cmd.encode()));
    }
    seeds
}

/// Seeds of `histories`: the first lines of the project's own test histories, one per format,
/// and the JSON Lines example of `docs/checker.md`.
pub fn histories(testdata: &std::path::Path) -> Seeds {
    let head = |path: &str, lines: usize| -> String {
        let text = std::fs::read_to_string(testdata.join(path)).expect("test data");
        text.lines().take(lines).collect::<Vec<_>>().join("\n") + "\n"
    };
    let jsonl = [
        r#"{"index":0,"time":1520331,"process":0,"type":"invoke","f":"write","key":"k3","value":4}"#,
        r#"{"index":1,"time":1534001,"process":0,"type":"ok","f":"write","key":"k3","value":4}"#,
        r#"{"index":2,"time":1600000,"process":1,"type":"invoke","f":"cas","key":"k3","value":[4,1]}"#,
        r#"{"index":3,"time":1700000,"process":2,"type":"invoke","f":"read","key":"k3","value":null}"#,
        r#"{"index":4,"time":1800000,"process":2,"type":"ok","f":"read","key":"k3","value":1}"#,
        r#"{"index":5,"time":9600000,"process":1,"type":"info","f":"cas","key":"k3","value":[4,1],"error":"timeout"}"#,
        r#"{"index":6,"time":9700000,"process":"nemesis","type":"info","f":"start-partition","value":{"kind":"majority"}}"#,
    ]
    .join("\n");
    let with = |format: u8, text: String| -> Vec<u8> {
        let mut input = vec![format];
        input.extend(text.into_bytes());
        input
    };
    vec![
        ("jsonl".into(), with(1, jsonl + "\n")),
        ("jepsen-log".into(), with(2, head("porcupine/jepsen/etcd_000.log", 40))),
        ("edn".into(), with(3, head("porcupine/kv/c01-ok.txt", 40))),
        ("auto-edn-bad".into(), with(0, head("porcupine/kv/c01-bad.txt", 40))),
    ]
}

/// Seeds of `node_records`: the records a node's own writers leave.
pub fn node_records() -> Seeds {
    use harness::node::events::{event, AppliedLog, EventKind, EventLog};

    let dir = files::scratch_dir();
    let mut applied = AppliedLog::open(dir.path()).expect("a new applied.jsonl");
    applied.push(1, 1, true, b"", None, true);
    applied.push(2, 1, false, b"write k 1", Some((4, 1)), true);
    applied.push(3, 2, false, b"write k 2", Some((4, 2)), false);
    applied.flush().unwrap();
    let mut events = EventLog::open(dir.path(), 1).expect("a new events.jsonl");
    for e in [
        event(Some(0), EventKind::Started { vote: None, last_index: Some(0) }),
        event(Some(1), EventKind::BecameLeader { last_index: 3 }),
        event(Some(1), EventKind::Restarted { vote: Some(1), last_index: Some(3) }),
        event(Some(2), EventKind::SteppedDown { last_index: 3 }),
    ] {
        events.record(e).unwrap();
    }
    let mut input = std::fs::read(dir.path().join("applied.jsonl")).unwrap();
    input.push(0);
    input.extend(std::fs::read(dir.path().join("events.jsonl")).unwrap());
    vec![("node".into(), input)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 1 after `input`, replayed as `peer_frames` replays it.
    fn replayed(input: &[u8]) -> raft::Status {
        let mut core = Core::new();
        crate::replay_frames(&mut core, input);
        core.node.status()
    }

    #[test]
    fn the_cluster_seeds_take_node_1_to_a_replicating_leader_and_follower() {
        let leader = replayed(&cluster_exchange(1, 200));
        assert_eq!((leader.role, leader.leader), (Role::Leader, Some(1)), "{leader:?}");
        assert!(leader.commit_index > 10, "{leader:?}");
        let follower = replayed(&cluster_exchange(2, 200));
        assert_eq!((follower.role, follower.leader), (Role::Follower, Some(2)), "{follower:?}");
        assert!(follower.commit_index > 10, "{follower:?}");
    }
}

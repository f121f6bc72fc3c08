//! The replicated state machine: registers and strings under string keys, with sessions that
//! make a retried command apply once, the binary encoding of commands in the Raft log, and the
//! state's encoding in a snapshot.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A value under a key: a register holds an integer, the kv operations work on strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Str(String),
}

/// One operation on the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// The register's value, or `None` when the key is absent.
    Read { key: String },
    /// Sets the register (`None`: removes the key).
    Write { key: String, value: Option<i64> },
    /// Sets the register to `to` if it holds `from` (`None`: absent).
    Cas { key: String, from: Option<i64>, to: Option<i64> },
    /// The string under the key; "" when absent.
    Get { key: String },
    /// Sets the string.
    Put { key: String, value: String },
    /// Appends to the string (an absent key holds "").
    Append { key: String, value: String },
}

impl Op {
    /// Whether the operation only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Read { .. } | Op::Get { .. })
    }
}

/// A command in the log: an operation, with the client's session when it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The client id and the sequence number of this request in its session.
    pub session: Option<(u64, u64)>,
    pub op: Op,
}

/// What applying an operation gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; reads carry the value read (`None`: an absent register).
    Ok(Option<Value>),
    /// A cas whose precondition did not hold: nothing changed.
    CasMismatch,
    /// A kv operation on a register or a register operation on a string: nothing changed.
    WrongType,
    /// A request of a session older than the last one applied for that client: not applied
    /// again, and its outcome is no longer known.
    StaleSequence,
    /// A log entry that is not a command this version understands: nothing changed.
    BadCommand,
}

/// The last request applied for one client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    seq: u64,
    outcome: Outcome,
}

/// The state machine.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Kv {
    data: HashMap<String, Value>,
    sessions: HashMap<u64, Session>,
}

/// A snapshot's data: the state's postcard encoding, keys and sessions in order, so that two
/// nodes with the same state write the same bytes.
#[derive(Serialize, Deserialize)]
struct SnapshotState {
    version: u8,
    data: Vec<(String, Value)>,
    sessions: Vec<(u64, Session)>,
}

/// The version of [`SnapshotState`].
const SNAPSHOT_VERSION: u8 = 1;

impl Kv {
    /// The state, for a snapshot: the same state always encodes to the same bytes.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut data: Vec<(String, Value)> =
            self.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        data.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut sessions: Vec<(u64, Session)> =
            self.sessions.iter().map(|(c, s)| (*c, s.clone())).collect();
        sessions.sort_unstable_by_key(|s| s.0);
        let state = SnapshotState { version: SNAPSHOT_VERSION, data, sessions };
        postcard::to_allocvec(&state).expect("the state encodes")
    }

    /// The state a snapshot's data holds.
    pub fn decode_state(bytes: &[u8]) -> Result<Kv, String> {
        let state: SnapshotState =
            postcard::from_bytes(bytes).map_err(|e| format!("undecodable snapshot: {e}"))?;
        if state.version != SNAPSHOT_VERSION {
            return Err(format!("snapshot of version {}, not {SNAPSHOT_VERSION}", state.version));
        }
        Ok(Kv {
            data: state.data.into_iter().collect(),
            sessions: state.sessions.into_iter().collect(),
        })
    }

    /// Applies a command. A command of a session whose sequence number was already applied is
    /// not applied again: the same sequence number gets the outcome it had.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        let Some((client, seq)) = cmd.session else {
            return self.apply_op(cmd.op);
        };
        if let Some(session) = self.sessions.get(&client) {
            if seq == session.seq {
                return session.outcome.clone();
            }
            if seq < session.seq {
                return Outcome::StaleSequence;
            }
        }
        let outcome = self.apply_op(cmd.op);
        self.sessions.insert(client, Session { seq, outcome: outcome.clone() });
        outcome
    }

    /// Answers a read from the current state, without a session (the stale-read bug).
    pub fn read_directly(&self, op: &Op) -> Outcome {
        match op {
            Op::Read { key } => self.read_register(key),
            Op::Get { key } => self.read_string(key),
            _ => Outcome::BadCommand,
        }
    }

    fn apply_op(&mut self, op: Op) -> Outcome {
        match op {
            Op::Read { key } => self.read_register(&key),
            Op::Get { key } => self.read_string(&key),
            Op::Write { key, value } => {
                if let Some(Value::Str(_)) = self.data.get(&key) {
                    return Outcome::WrongType;
                }
                match value {
                    Some(v) => self.data.insert(key, Value::Int(v)),
                    None => self.data.remove(&key),
                };
                Outcome::Ok(None)
            }
            Op::Cas { key, from, to } => {
                let current = match self.data.get(&key) {
                    None => None,
                    Some(Value::Int(v)) => Some(*v),
                    Some(Value::Str(_)) => return Outcome::WrongType,
                };
                if current != from {
                    return Outcome::CasMismatch;
                }
                match to {
                    Some(v) => self.data.insert(key, Value::Int(v)),
                    None => self.data.remove(&key),
                };
                Outcome::Ok(None)
            }
            Op::Put { key, value } => {
                if let Some(Value::Int(_)) = self.data.get(&key) {
                    return Outcome::WrongType;
                }
                self.data.insert(key, Value::Str(value));
                Outcome::Ok(None)
            }
            Op::Append { key, value } => match self.data.get_mut(&key) {
                Some(Value::Str(s)) => {
                    s.push_str(&value);
                    Outcome::Ok(None)
                }
                Some(Value::Int(_)) => Outcome::WrongType,
                None => {
                    self.data.insert(key, Value::Str(value));
                    Outcome::Ok(None)
                }
            },
        }
    }

    fn read_register(&self, key: &str) -> Outcome {
        match self.data.get(key) {
            None => Outcome::Ok(None),
            Some(Value::Int(v)) => Outcome::Ok(Some(Value::Int(*v))),
            Some(Value::Str(_)) => Outcome::WrongType,
        }
    }

    fn read_string(&self, key: &str) -> Outcome {
        match self.data.get(key) {
            None => Outcome::Ok(Some(Value::Str(String::new()))),
            Some(Value::Str(s)) => Outcome::Ok(Some(Value::Str(s.clone()))),
            Some(Value::Int(_)) => Outcome::WrongType,
        }
    }
}

// The log encoding of a command (little endian):
//
//   version: u8 = 1
//   op tag: u8 (1 read, 2 write, 3 cas, 4 get, 5 put, 6 append)
//   session: u8 flag, then client u64 and seq u64 when the flag is 1
//   key: u32 length, bytes (UTF-8)
//   then per op: write: opt-int; cas: opt-int from, opt-int to; put/append: u32 length, bytes
//   opt-int: u8 flag, then i64 when the flag is 1
//
// Compact and cheap to produce; a command that does not decode is applied as a no-op with the
// outcome `BadCommand`, never a panic.

const VERSION: u8 = 1;

/// Why a log entry is not a command.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "undecodable command: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

impl Command {
    /// The command's bytes in the log.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, key) = match &self.op {
            Op::Read { key } => (1, key),
            Op::Write { key, .. } => (2, key),
            Op::Cas { key, .. } => (3, key),
            Op::Get { key } => (4, key),
            Op::Put { key, .. } => (5, key),
            Op::Append { key, .. } => (6, key),
        };
        let mut out = Vec::with_capacity(32 + key.len());
        out.push(VERSION);
        out.push(tag);
        match self.session {
            Some((client, seq)) => {
                out.push(1);
                out.extend_from_slice(&client.to_le_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
            }
            None => out.push(0),
        }
        put_bytes(&mut out, key.as_bytes());
        match &self.op {
            Op::Read { .. } | Op::Get { .. } => {}
            Op::Write { value, .. } => put_opt_int(&mut out, *value),
            Op::Cas { from, to, .. } => {
                put_opt_int(&mut out, *from);
                put_opt_int(&mut out, *to);
            }
            Op::Put { value, .. } | Op::Append { value, .. } => {
                put_bytes(&mut out, value.as_bytes())
            }
        }
        out
    }

    /// Decodes a command from its bytes in the log.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(DecodeError("unknown version"));
        }
        let tag = r.u8()?;
        let session = match r.u8()? {
            0 => None,
            1 => Some((r.u64()?, r.u64()?)),
            _ => return Err(DecodeError("bad session flag")),
        };
        let key = r.string()?;
        let op = match tag {
            1 => Op::Read { key },
            2 => Op::Write { key, value: r.opt_int()? },
            3 => Op::Cas { key, from: r.opt_int()?, to: r.opt_int()? },
            4 => Op::Get { key },
            5 => Op::Put { key, value: r.string()? },
            6 => Op::Append { key, value: r.string()? },
            _ => return Err(DecodeError("unknown operation")),
        };
        if !r.0.is_empty() {
            return Err(DecodeError("trailing bytes"));
        }
        Ok(Command { session, op })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_opt_int(out: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }

    fn opt_int(&mut self) -> Result<Option<i64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()? as i64)),
            _ => Err(DecodeError("bad integer flag")),
        }
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let mut b = [0; 4];
        b.copy_from_slice(self.take(4)?);
        let len = u32::from_le_bytes(b) as usize;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError("key or value is not UTF-8"))
    }
}

/// A 64-bit FNV-1a hash: the digest of a command in `applied.jsonl`, stable across builds and
/// machines.
pub fn digest(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(session: Option<(u64, u64)>, op: Op) -> Command {
        Command { session, op }
    }

    fn key() -> String {
        "k".to_string()
    }

    #[test]
    fn every_command_survives_encoding() {
        let ops = vec![
            Op::Read { key: key() },
            Op::Write { key: "ключ".into(), value: Some(-7) },
            Op::Write { key: key(), value: None },
            Op::Cas { key: key(), from: None, to: Some(i64::MAX) },
            Op::Cas { key: key(), from: Some(i64::MIN), to: None },
            Op::Get { key: String::new() },
            Op::Put { key: key(), value: "v".into() },
            Op::Append { key: key(), value: "tail\n\"".into() },
        ];
        for op in ops {
            for session in [None, Some((3, 9))] {
                let c = cmd(session, op.clone());
                assert_eq!(Command::decode(&c.encode()), Ok(c));
            }
        }
    }

    #[test]
    fn garbage_does_not_decode_and_never_panics() {
        let good = cmd(Some((1, 2)), Op::Put { key: key(), value: "abc".into() }).encode();
        for cut in 0..good.len() {
            assert!(Command::decode(&good[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(Command::decode(&trailing).is_err());
        let mut bad_tag = good.clone();
        bad_tag[1] = 99;
        assert!(Command::decode(&bad_tag).is_err());
        // A huge length must not allocate or panic.
        let mut huge = cmd(None, Op::Get { key: key() }).encode();
        huge[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Command::decode(&huge).is_err());
    }

    #[test]
    fn registers_read_write_and_cas() {
        let mut kv = Kv::default();
        let apply = |kv: &mut Kv, op| kv.apply(cmd(None, op));
        assert_eq!(apply(&mut kv, Op::Read { key: key() }), Outcome::Ok(None));
        // cas on an absent key fails unless it expects absence.
        assert_eq!(
            apply(&mut kv, Op::Cas { key: key(), from: Some(0), to: Some(1) }),
            Outcome::CasMismatch
        );
        assert_eq!(
            apply(&mut kv, Op::Cas { key: key(), from: None, to: Some(1) }),
            Outcome::Ok(None)
        );
        assert_eq!(apply(&mut kv, Op::Read { key: key() }), Outcome::Ok(Some(Value::Int(1))));
        assert_eq!(
            apply(&mut kv, Op::Cas { key: key(), from: Some(2), to: Some(3) }),
            Outcome::CasMismatch
        );
        assert_eq!(apply(&mut kv, Op::Write { key: key(), value: Some(5) }), Outcome::Ok(None));
        assert_eq!(
            apply(&mut kv, Op::Cas { key: key(), from: Some(5), to: Some(6) }),
            Outcome::Ok(None)
        );
        assert_eq!(apply(&mut kv, Op::Read { key: key() }), Outcome::Ok(Some(Value::Int(6))));
        assert_eq!(apply(&mut kv, Op::Get { key: key() }), Outcome::WrongType);
    }

    #[test]
    fn strings_get_put_and_append() {
        let mut kv = Kv::default();
        let apply = |kv: &mut Kv, op| kv.apply(cmd(None, op));
        let s = |v: &str| Outcome::Ok(Some(Value::Str(v.to_string())));
        assert_eq!(apply(&mut kv, Op::Get { key: key() }), s(""));
        assert_eq!(apply(&mut kv, Op::Append { key: key(), value: "a".into() }), Outcome::Ok(None));
        assert_eq!(apply(&mut kv, Op::Append { key: key(), value: "b".into() }), Outcome::Ok(None));
        assert_eq!(apply(&mut kv, Op::Get { key: key() }), s("ab"));
        assert_eq!(apply(&mut kv, Op::Put { key: key(), value: "x".into() }), Outcome::Ok(None));
        assert_eq!(apply(&mut kv, Op::Get { key: key() }), s("x"));
        assert_eq!(apply(&mut kv, Op::Write { key: key(), value: Some(1) }), Outcome::WrongType);
    }

    #[test]
    fn a_retried_request_applies_once_and_gets_its_first_outcome() {
        let mut kv = Kv::default();
        let append = |seq| cmd(Some((7, seq)), Op::Append { key: key(), value: "x".into() });
        assert_eq!(kv.apply(append(1)), Outcome::Ok(None));
        assert_eq!(kv.apply(append(1)), Outcome::Ok(None));
        assert_eq!(kv.apply(append(2)), Outcome::Ok(None));
        assert_eq!(kv.apply(append(1)), Outcome::StaleSequence);
        assert_eq!(
            kv.apply(cmd(None, Op::Get { key: key() })),
            Outcome::Ok(Some(Value::Str("xx".into())))
        );
        // A retried cas keeps its original outcome even though the state changed since.
        let cas = |seq| cmd(Some((8, seq)), Op::Cas { key: "r".into(), from: None, to: Some(1) });
        assert_eq!(kv.apply(cas(1)), Outcome::Ok(None));
        assert_eq!(kv.apply(cas(1)), Outcome::Ok(None));
        assert_eq!(kv.apply(cas(2)), Outcome::CasMismatch);
        // Another client's sessions are separate.
        assert_eq!(
            kv.apply(cmd(Some((9, 1)), Op::Read { key: "r".into() })),
            Outcome::Ok(Some(Value::Int(1)))
        );
    }

    #[test]
    fn the_state_survives_a_snapshot_and_encodes_the_same_whatever_its_history() {
        let mut a = Kv::default();
        let mut b = Kv::default();
        let put = |k: &str, v: &str| cmd(Some((1, 1)), Op::Put { key: k.into(), value: v.into() });
        a.apply(put("x", "1"));
        a.apply(cmd(None, Op::Write { key: "r".into(), value: Some(5) }));
        b.apply(cmd(None, Op::Write { key: "r".into(), value: Some(5) }));
        b.apply(put("x", "1"));
        assert_eq!(a.encode_state(), b.encode_state());
        let restored = Kv::decode_state(&a.encode_state()).unwrap();
        assert_eq!(restored, a);
        // The session came along: the retried request is not applied again.
        let mut restored = restored;
        assert_eq!(restored.apply(put("x", "2")), Outcome::Ok(None));
        assert_eq!(restored.read_string("x"), Outcome::Ok(Some(Value::Str("1".into()))));
        assert!(Kv::decode_state(b"garbage").is_err());
    }

    #[test]
    fn digest_is_fnv1a() {
        assert_eq!(digest(b""), 0xcbf29ce484222325);
        assert_eq!(digest(b"a"), 0xaf63dc4c8601ec8c);
    }
}

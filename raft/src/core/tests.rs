//! Unit tests of the protocol core, one message at a time: the seed lab's P2Unit handler tests
//! (AppendEntries receiver, the leader's reply handling, the commit rule) and the election rules.

use super::progress::ReplicationState;
use super::*;

fn entry(index: Index, term: Term) -> Entry {
    Entry { index, term, kind: EntryKind::Normal, data: vec![index as u8, term as u8] }
}

fn log_of(terms: &[Term]) -> Vec<Entry> {
    terms.iter().enumerate().map(|(i, &t)| entry(i as Index + 1, t)).collect()
}

/// Peer `id` of a 3-peer cluster {1, 2, 3} at `term` holding a log with these terms.
fn peer(id: NodeId, term: Term, terms: &[Term]) -> RawNode {
    RawNode::new(Config::lab(id, vec![1, 2, 3]), HardState { term, vote: None }, log_of(terms), id)
        .unwrap()
}

fn msg(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message { from, to, term, body }
}

fn append(prev: (Index, Term), entries: Vec<Entry>, commit: Index) -> MessageBody {
    MessageBody::AppendEntries {
        prev_log_index: prev.0,
        prev_log_term: prev.1,
        entries,
        leader_commit: commit,
    }
}

/// Handles everything ready as a driver that persists at once would; returns the messages.
fn flush(node: &mut RawNode) -> Vec<Message> {
    flush_with_reads(node).0
}

/// As [`flush`], with the read states too.
pub(super) fn flush_with_reads(node: &mut RawNode) -> (Vec<Message>, Vec<ReadState>) {
    let (mut out, mut reads) = (Vec::new(), Vec::new());
    for round in 0.. {
        if !node.has_ready() {
            break;
        }
        // A core always runs out of work; one that does not must fail, not hang.
        assert!(round < 1_000, "still ready after 1000 readies: {:?}", node.status());
        let mut rd = node.ready();
        out.append(&mut rd.messages);
        reads.append(&mut rd.read_states);
        node.advance(rd);
    }
    (out, reads)
}

fn terms(node: &RawNode) -> Vec<Term> {
    node.entries().iter().map(|e| e.term).collect()
}

/// The single reply an input produced.
fn only_reply(node: &mut RawNode) -> Message {
    let out = flush(node);
    assert_eq!(out.len(), 1, "expected exactly one message, got {out:?}");
    out.into_iter().next().unwrap()
}

/// Ticks `node` (leaving its readies for the caller) until `done` holds; returns the ticks it took. Fails,
/// saying what it waited for, after 1,000 ticks (ten election timeouts of the lab profile), so
/// that a broken core fails the suite instead of hanging it.
fn tick_until(node: &mut RawNode, what: &str, done: impl Fn(&RawNode) -> bool) -> u32 {
    for ticks in 1..=1_000 {
        node.tick();
        if done(node) {
            return ticks;
        }
    }
    panic!("waited 1000 ticks for {what}: {:?}", node.status());
}

/// Makes peer 1 the leader of `term` (through a real pre-vote and vote with peer 2).
fn leader(term: Term, terms: &[Term]) -> RawNode {
    let mut node = peer(1, term - 1, terms);
    tick_until(&mut node, "a pre-vote", |n| n.status().role == Role::PreCandidate);
    flush(&mut node);
    node.step(msg(2, 1, term, MessageBody::RequestVoteResponse { pre_vote: true, granted: true }));
    assert_eq!(node.status().role, Role::Candidate);
    flush(&mut node);
    node.step(msg(2, 1, term, MessageBody::RequestVoteResponse { pre_vote: false, granted: true }));
    assert_eq!(node.status().role, Role::Leader);
    assert_eq!(node.status().term, term);
    flush(&mut node);
    node
}

// ---- AppendEntries receiver (P2Unit) ----

#[test]
fn append_entries_old_term_p2unit() {
    let mut f = peer(2, 3, &[1, 2]);
    f.step(msg(1, 2, 2, append((2, 2), vec![entry(3, 2)], 3)));
    let reply = only_reply(&mut f);
    assert_eq!(reply.term, 3, "the reply tells the stale leader the newer term");
    assert!(matches!(reply.body, MessageBody::AppendEntriesResponse { success: false, .. }));
    assert_eq!(terms(&f), vec![1, 2], "a stale leader's entries are refused");
    assert_eq!(f.status().commit_index, 0);
}

#[test]
fn append_entries_new_term_p2unit() {
    let mut f = peer(2, 1, &[1]);
    f.step(msg(1, 2, 3, append((1, 1), vec![entry(2, 3)], 0)));
    let st = f.status();
    assert_eq!((st.term, st.role, st.leader, st.vote), (3, Role::Follower, Some(1), None));
    let reply = only_reply(&mut f);
    assert_eq!(reply.term, 3);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 2, .. }
    ));
    assert_eq!(terms(&f), vec![1, 3]);
}

#[test]
fn append_entries_empty_log_p2unit() {
    let mut f = peer(2, 1, &[]);
    f.step(msg(1, 2, 1, append((0, 0), vec![entry(1, 1), entry(2, 1)], 1)));
    let reply = only_reply(&mut f);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 2, .. }
    ));
    assert_eq!(terms(&f), vec![1, 1]);
    assert_eq!(f.status().commit_index, 1);
}

#[test]
fn append_entries_basic_p2unit() {
    let mut f = peer(2, 2, &[1, 1]);
    f.step(msg(1, 2, 2, append((2, 1), vec![entry(3, 2), entry(4, 2)], 3)));
    let reply = only_reply(&mut f);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 4, .. }
    ));
    assert_eq!(terms(&f), vec![1, 1, 2, 2]);
    assert_eq!(f.status().commit_index, 3);
}

#[test]
fn append_entries_long_prev_index_p2unit() {
    let mut f = peer(2, 2, &[1, 1]);
    f.step(msg(1, 2, 2, append((5, 2), vec![entry(6, 2)], 5)));
    let reply = only_reply(&mut f);
    assert_eq!(
        reply.body,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 5,
            conflict_term: None,
            conflict_index: 3
        },
        "a follower with a shorter log names its next index"
    );
    assert_eq!(terms(&f), vec![1, 1]);
    assert_eq!(f.status().commit_index, 0, "nothing past the matching prefix commits");
}

#[test]
fn append_entries_longer_p2unit() {
    // A delayed append whose entries the follower already holds must not cut the log.
    let mut f = peer(2, 1, &[1, 1, 1, 1]);
    f.step(msg(1, 2, 1, append((1, 1), vec![entry(2, 1)], 2)));
    let reply = only_reply(&mut f);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 2, .. }
    ));
    assert_eq!(terms(&f), vec![1, 1, 1, 1]);
    assert_eq!(
        f.status().commit_index,
        2,
        "commit is capped at the last entry the append vouches for"
    );
}

#[test]
fn append_entries_conflict_one_p2unit() {
    // The follower's entries of term 2 conflict with the leader's term-3 entry: they go.
    let mut f = peer(2, 3, &[1, 1, 2, 2]);
    f.step(msg(1, 2, 3, append((2, 1), vec![entry(3, 3)], 0)));
    let reply = only_reply(&mut f);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 3, .. }
    ));
    assert_eq!(terms(&f), vec![1, 1, 3]);
    let rd = f.ready();
    assert!(rd.entries.is_empty(), "the truncated log was already handed out for persisting");
}

#[test]
fn append_entries_conflict_two_p2unit() {
    // The entry at prev_log_index has another term: the reply names that term and its first index.
    let mut f = peer(2, 3, &[1, 1, 2, 2, 2]);
    f.step(msg(1, 2, 3, append((4, 3), vec![entry(5, 3)], 0)));
    let reply = only_reply(&mut f);
    assert_eq!(
        reply.body,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 4,
            conflict_term: Some(2),
            conflict_index: 3
        }
    );
    assert_eq!(terms(&f), vec![1, 1, 2, 2, 2], "a rejected append changes nothing");
}

#[test]
fn append_entries_conflict_three_p2unit() {
    // The conflicting term starts the log: its first index is 1.
    let mut f = peer(2, 4, &[2, 2, 2]);
    f.step(msg(1, 2, 4, append((3, 4), vec![], 0)));
    let reply = only_reply(&mut f);
    assert_eq!(
        reply.body,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 3,
            conflict_term: Some(2),
            conflict_index: 1
        }
    );
}

// ---- The leader's side (P2Unit) ----

#[test]
fn send_append_entries_no_op_p2unit() {
    // A heartbeat changes no log; the follower answers and keeps following.
    let mut l = leader(2, &[1, 1]);
    for _ in 0..l.config().heartbeat_tick {
        l.tick();
    }
    let beats: Vec<Message> = flush(&mut l);
    assert_eq!(beats.len(), 2);
    assert!(beats.iter().all(|m| matches!(m.body, MessageBody::Heartbeat { commit: 0, round: 1 })));

    let mut f = peer(2, 2, &[1, 1]);
    f.step(beats.into_iter().find(|m| m.to == 2).unwrap());
    assert_eq!(only_reply(&mut f).body, MessageBody::HeartbeatResponse { round: 1 });
    assert_eq!(terms(&f), vec![1, 1]);
    assert_eq!(f.status().leader, Some(1));
}

#[test]
fn send_append_entries_stops_leading_p2unit() {
    let mut l = leader(2, &[1]);
    l.step(msg(
        2,
        1,
        5,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 0,
            conflict_term: None,
            conflict_index: 0,
        },
    ));
    let st = l.status();
    assert_eq!((st.role, st.term, st.leader), (Role::Follower, 5, None));
    assert_eq!(l.propose(b"x".to_vec()), Err(ProposeError::NotLeader { leader: None }));
}

#[test]
fn send_append_entries_success_update_indices_p2unit() {
    let mut l = leader(2, &[1, 1]);
    assert_eq!(l.progress[&2].next_index, 3);
    assert_eq!(l.progress[&2].match_index, 0);
    l.propose(b"a".to_vec()).unwrap();
    l.propose(b"b".to_vec()).unwrap();
    flush(&mut l);
    l.step(msg(
        2,
        1,
        2,
        MessageBody::AppendEntriesResponse {
            success: true,
            index: 4,
            conflict_term: None,
            conflict_index: 0,
        },
    ));
    let pr = &l.progress[&2];
    assert_eq!((pr.match_index, pr.next_index, pr.state), (4, 5, ReplicationState::Replicate));
    assert_eq!(l.status().commit_index, 4, "the leader and one follower are a majority of 3");
}

#[test]
fn send_append_entries_failure_update_indices_p2unit() {
    // Leader log terms [1,1,1,2,2,3,3]; follower holds [1,1,1,2,2,2,2,2,2] (conflict at 6).
    let mut l = leader(4, &[1, 1, 1, 2, 2, 3, 3]);
    assert_eq!(l.progress[&2].next_index, 8);
    // The follower rejects prev 7 with its term 2 starting at 4: the leader has term 2 up to 5,
    // so it retries right after its own last entry of that term.
    l.step(msg(
        2,
        1,
        4,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 7,
            conflict_term: Some(2),
            conflict_index: 4,
        },
    ));
    assert_eq!(l.progress[&2].next_index, 6);
    let retry = flush(&mut l);
    assert!(retry.iter().any(|m| m.to == 2
        && matches!(&m.body, MessageBody::AppendEntries { prev_log_index: 5, prev_log_term: 2, entries, .. } if entries.len() == 2)));

    // Peer 3 has a term the leader never had: back up to the follower's first index of it.
    l.step(msg(
        3,
        1,
        4,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 7,
            conflict_term: Some(9),
            conflict_index: 3,
        },
    ));
    assert_eq!(l.progress[&3].next_index, 3);
    // A follower whose log is short names its length.
    let mut l = leader(4, &[1, 1, 1, 2, 2, 3, 3]);
    l.step(msg(
        3,
        1,
        4,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 7,
            conflict_term: None,
            conflict_index: 2,
        },
    ));
    assert_eq!(l.progress[&3].next_index, 2);
    // A stale rejection (for a prev index the leader no longer probes) changes nothing.
    l.step(msg(
        3,
        1,
        4,
        MessageBody::AppendEntriesResponse {
            success: false,
            index: 7,
            conflict_term: None,
            conflict_index: 1,
        },
    ));
    assert_eq!(l.progress[&3].next_index, 2);
}

#[test]
fn update_commit_index_p2unit() {
    // §5.4.2 / Figure 8: entries of an earlier term are not committed by counting replicas.
    let mut l = leader(3, &[1, 2, 2]);
    l.step(msg(
        2,
        1,
        3,
        MessageBody::AppendEntriesResponse {
            success: true,
            index: 3,
            conflict_term: None,
            conflict_index: 0,
        },
    ));
    assert_eq!(
        l.status().commit_index,
        0,
        "term-2 entries on a majority are not committed by a term-3 leader"
    );
    let (index, _) = l.propose(b"now".to_vec()).unwrap();
    flush(&mut l);
    assert_eq!(
        l.status().commit_index,
        0,
        "a current-term entry on the leader alone is not committed"
    );
    l.step(msg(
        2,
        1,
        3,
        MessageBody::AppendEntriesResponse {
            success: true,
            index,
            conflict_term: None,
            conflict_index: 0,
        },
    ));
    assert_eq!(
        l.status().commit_index,
        4,
        "a current-term entry on a majority commits everything before it"
    );
    let rd = l.ready();
    assert_eq!(rd.committed_entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
}

// ---- Elections ----

#[test]
fn vote_requires_an_up_to_date_log() {
    let mut f = peer(2, 2, &[1, 2, 2]);
    // Shorter log of the same last term: refused.
    f.step(msg(
        3,
        2,
        3,
        MessageBody::RequestVote { pre_vote: false, last_log_index: 2, last_log_term: 2 },
    ));
    let reply = only_reply(&mut f);
    assert_eq!(reply.body, MessageBody::RequestVoteResponse { pre_vote: false, granted: false });
    assert_eq!(f.status().vote, None);
    // Later last term wins even with a shorter log; the vote is persisted before the grant.
    f.step(msg(
        1,
        2,
        3,
        MessageBody::RequestVote { pre_vote: false, last_log_index: 1, last_log_term: 3 },
    ));
    let rd = f.ready();
    assert_eq!(rd.hard_state, Some(HardState { term: 3, vote: Some(1) }));
    assert_eq!(
        rd.messages[0].body,
        MessageBody::RequestVoteResponse { pre_vote: false, granted: true }
    );
    f.advance(rd);
    // One vote per term.
    f.step(msg(
        3,
        2,
        3,
        MessageBody::RequestVote { pre_vote: false, last_log_index: 9, last_log_term: 3 },
    ));
    assert_eq!(
        only_reply(&mut f).body,
        MessageBody::RequestVoteResponse { pre_vote: false, granted: false }
    );
}

#[test]
fn pre_vote_does_not_raise_terms() {
    let mut f = peer(2, 2, &[1]);
    f.step(msg(
        3,
        2,
        3,
        MessageBody::RequestVote { pre_vote: true, last_log_index: 1, last_log_term: 1 },
    ));
    let reply = only_reply(&mut f);
    assert_eq!(reply.term, 3);
    assert_eq!(reply.body, MessageBody::RequestVoteResponse { pre_vote: true, granted: true });
    assert_eq!(f.status().term, 2, "answering a pre-vote changes neither term nor vote");
    assert_eq!(f.status().vote, None);

    // A pre-candidate that loses the poll stays in its term.
    let mut c = peer(1, 2, &[1]);
    tick_until(&mut c, "a pre-vote", |n| n.status().role == Role::PreCandidate);
    let polls = flush(&mut c);
    assert_eq!(polls.len(), 2);
    assert!(polls
        .iter()
        .all(|m| m.term == 3 && matches!(m.body, MessageBody::RequestVote { pre_vote: true, .. })));
    assert_eq!(c.status().term, 2);
    c.step(msg(2, 1, 2, MessageBody::RequestVoteResponse { pre_vote: true, granted: false }));
    c.step(msg(3, 1, 2, MessageBody::RequestVoteResponse { pre_vote: true, granted: false }));
    assert_eq!((c.status().role, c.status().term), (Role::Follower, 2));
}

#[test]
fn a_follower_with_a_live_leader_ignores_candidates() {
    let mut f = peer(2, 2, &[1]);
    f.step(msg(1, 2, 2, MessageBody::Heartbeat { commit: 0, round: 1 }));
    flush(&mut f);
    f.step(msg(
        3,
        2,
        3,
        MessageBody::RequestVote { pre_vote: false, last_log_index: 5, last_log_term: 2 },
    ));
    assert!(flush(&mut f).is_empty());
    assert_eq!(f.status().term, 2, "check-quorum's lease: the disruptive term is ignored");
    for _ in 0..f.config().election_tick {
        f.tick();
    }
    flush(&mut f);
    let term = f.status().term;
    f.step(msg(
        3,
        2,
        term + 1,
        MessageBody::RequestVote { pre_vote: false, last_log_index: 5, last_log_term: 2 },
    ));
    assert_eq!(
        only_reply(&mut f).body,
        MessageBody::RequestVoteResponse { pre_vote: false, granted: true }
    );
}

#[test]
fn check_quorum_deposes_an_isolated_leader() {
    let mut l = leader(2, &[]);
    let mut stepped_down_at = None;
    for t in 1..=(3 * l.config().election_tick) {
        l.tick();
        flush(&mut l);
        if l.status().role != Role::Leader {
            stepped_down_at = Some(t);
            break;
        }
    }
    let t = stepped_down_at.expect("an isolated leader must step down");
    assert!(t <= 2 * l.config().election_tick);
    assert_eq!(l.status().term, 2);
}

#[test]
fn malformed_and_misaddressed_messages_are_dropped() {
    let mut f = peer(2, 1, &[1]);
    // Entries that do not follow prev_log_index.
    f.step(msg(1, 2, 1, append((1, 1), vec![entry(5, 1)], 5)));
    // An unknown sender, and a message for another peer.
    f.step(msg(9, 2, 7, MessageBody::Heartbeat { commit: 1, round: 1 }));
    f.step(msg(1, 3, 7, MessageBody::Heartbeat { commit: 1, round: 1 }));
    assert!(flush(&mut f).is_empty());
    assert_eq!((f.status().term, f.status().last_index, f.status().commit_index), (1, 1, 0));
    // A follower never commits past its log, whatever a heartbeat claims.
    f.step(msg(1, 2, 1, MessageBody::Heartbeat { commit: 1_000_000, round: 1 }));
    flush(&mut f);
    assert_eq!(f.status().commit_index, 1);
}

#[test]
fn a_forged_last_term_is_refused_and_the_term_space_never_wraps() {
    // A message of term u64::MAX would leave the receiver no term to campaign in.
    let mut f = peer(2, 1, &[1]);
    f.step(msg(1, 2, Term::MAX, MessageBody::Heartbeat { commit: 1, round: 1 }));
    let vote = MessageBody::RequestVote { pre_vote: false, last_log_index: 9, last_log_term: 9 };
    f.step(msg(3, 2, Term::MAX, vote));
    assert!(flush(&mut f).is_empty(), "nothing answers a forged term");
    assert_eq!(f.status().term, 1, "the forged term was not adopted");

    // A peer already at the last usable term (through storage, say) waits as a follower
    // instead of wrapping around to term 0, and keeps answering its peers.
    for pre_vote in [false, true] {
        let config = Config { pre_vote, ..Config::lab(2, vec![1, 2, 3]) };
        let hard_state = HardState { term: Term::MAX - 1, vote: None };
        let mut f = RawNode::new(config, hard_state, log_of(&[1]), 2).unwrap();
        for _ in 0..10 * f.config().election_tick {
            f.tick();
        }
        assert!(flush(&mut f).is_empty(), "no campaign without a next term (pre_vote {pre_vote})");
        assert_eq!((f.status().term, f.status().role), (Term::MAX - 1, Role::Follower));
        f.step(msg(1, 2, Term::MAX - 1, MessageBody::Heartbeat { commit: 1, round: 1 }));
        assert_eq!(only_reply(&mut f).body, MessageBody::HeartbeatResponse { round: 1 });
    }
}

#[test]
fn an_append_that_conflicts_with_a_committed_entry_is_refused() {
    // Found by fuzzing the peer port: only a forged or broken leader sends this (§5.4), and
    // obeying it would cut an acknowledged write off the log.
    let mut f = peer(2, 2, &[1, 1, 2]);
    f.step(msg(1, 2, 2, append((3, 2), vec![], 3)));
    flush(&mut f);
    assert_eq!(f.status().commit_index, 3);
    f.step(msg(3, 2, 2, append((1, 1), vec![entry(2, 2)], 3)));
    assert!(flush(&mut f).is_empty(), "the conflicting append is not answered");
    assert_eq!((terms(&f), f.status().commit_index), (vec![1, 1, 2], 3), "the log is untouched");
    // The node goes on serving its leader.
    f.step(msg(1, 2, 2, append((3, 2), vec![entry(4, 2)], 4)));
    let reply = only_reply(&mut f);
    assert!(matches!(
        reply.body,
        MessageBody::AppendEntriesResponse { success: true, index: 4, .. }
    ));
    assert_eq!(f.status().commit_index, 4);
}

// ---- Small whole clusters on a perfect network ----

/// Delivers every message at once, in order, until the cluster is quiet.
fn settle(nodes: &mut [RawNode], applied: &mut [Vec<Entry>]) {
    let mut queue: std::collections::VecDeque<Message> = Default::default();
    for delivered in 0.. {
        assert!(delivered < 100_000, "the cluster never settles: a message storm");
        for (i, n) in nodes.iter_mut().enumerate() {
            for round in 0.. {
                if !n.has_ready() {
                    break;
                }
                assert!(round < 1_000, "still ready after 1000 readies: {:?}", n.status());
                let mut rd = n.ready();
                queue.extend(rd.messages.drain(..));
                applied[i].extend(rd.committed_entries.iter().cloned());
                n.advance(rd);
            }
        }
        let Some(m) = queue.pop_front() else { return };
        nodes[(m.to - 1) as usize].step(m);
    }
}

fn cluster(n: u64, config: impl Fn(NodeId, Vec<NodeId>) -> Config) -> Vec<RawNode> {
    let peers: Vec<NodeId> = (1..=n).collect();
    peers
        .iter()
        .map(|&id| {
            RawNode::new(config(id, peers.clone()), HardState::default(), vec![], id * 31).unwrap()
        })
        .collect()
}

#[test]
fn a_cluster_elects_one_leader_and_replicates_in_order() {
    let mut nodes = cluster(5, Config::lab);
    let mut applied = vec![Vec::new(); 5];
    let mut ticks = 0;
    while !nodes.iter().any(|n| n.status().role == Role::Leader) {
        nodes.iter_mut().for_each(RawNode::tick);
        settle(&mut nodes, &mut applied);
        ticks += 1;
        assert!(ticks < 1000, "no leader elected");
    }
    let leaders: Vec<_> = nodes.iter().filter(|n| n.status().role == Role::Leader).collect();
    assert_eq!(leaders.len(), 1);
    let lid = leaders[0].status().id as usize - 1;
    for i in 0..100u8 {
        let (index, _) = nodes[lid].propose(vec![i]).unwrap();
        assert_eq!(index, i as u64 + 1);
        settle(&mut nodes, &mut applied);
    }
    for _ in 0..nodes[0].config().heartbeat_tick {
        nodes.iter_mut().for_each(RawNode::tick);
        settle(&mut nodes, &mut applied);
    }
    for a in &applied {
        assert_eq!(a.iter().map(|e| e.data[0]).collect::<Vec<_>>(), (0..100u8).collect::<Vec<_>>());
    }
}

#[test]
fn a_service_leader_commits_its_noop_at_once() {
    let mut nodes = cluster(3, Config::service);
    let mut applied = vec![Vec::new(); 3];
    for ticks in 0.. {
        if nodes.iter().any(|n| n.status().role == Role::Leader) {
            break;
        }
        assert!(ticks < 1000, "no leader elected in 1000 ticks");
        nodes.iter_mut().for_each(RawNode::tick);
        settle(&mut nodes, &mut applied);
    }
    let leader = nodes.iter().find(|n| n.status().role == Role::Leader).unwrap();
    assert_eq!(leader.status().commit_index, 1);
    assert_eq!(leader.entry(1).unwrap().kind, EntryKind::Noop);
}

// ---- Figure 2, the rules the handler tests above leave unpinned ----

/// Peer `id` of {1, 2, 3} without pre-vote, so that a timeout starts a real election.
fn voter(id: NodeId, term: Term, terms: &[Term]) -> RawNode {
    let config = Config { pre_vote: false, ..Config::lab(id, vec![1, 2, 3]) };
    RawNode::new(config, HardState { term, vote: None }, log_of(terms), id).unwrap()
}

/// Peer 1 of {1, 2, 3} without pre-vote, a candidate of `term + 1` once its timer ran out,
/// its vote requests sent.
fn candidate(term: Term, terms: &[Term]) -> RawNode {
    let mut c = voter(1, term, terms);
    tick_until(&mut c, "an election", |n| n.status().role == Role::Candidate);
    c
}

fn vote_request(from: NodeId, to: NodeId, term: Term, last: (Index, Term)) -> Message {
    msg(
        from,
        to,
        term,
        MessageBody::RequestVote { pre_vote: false, last_log_index: last.0, last_log_term: last.1 },
    )
}

#[test]
fn request_vote_1_a_stale_candidate_gets_no_vote() {
    let mut f = voter(2, 5, &[1]);
    f.step(vote_request(3, 2, 4, (9, 4)));
    let out = flush(&mut f);
    assert!(
        !out.iter()
            .any(|m| matches!(m.body, MessageBody::RequestVoteResponse { granted: true, .. })),
        "{out:?}"
    );
    assert_eq!((f.status().term, f.status().vote), (5, None));
}

#[test]
fn request_vote_2_the_same_candidate_is_granted_again() {
    let mut f = voter(2, 2, &[1]);
    f.step(vote_request(3, 2, 3, (1, 1)));
    assert_eq!(
        only_reply(&mut f).body,
        MessageBody::RequestVoteResponse { pre_vote: false, granted: true }
    );
    // A duplicated or resent request: votedFor is the candidate, so it is granted again.
    f.step(vote_request(3, 2, 3, (1, 1)));
    assert_eq!(
        only_reply(&mut f).body,
        MessageBody::RequestVoteResponse { pre_vote: false, granted: true }
    );
    assert_eq!(f.status().vote, Some(3));
}

#[test]
fn append_entries_5_commit_is_capped_by_the_last_new_entry() {
    // The follower holds entries beyond what this append vouches for (of the same term, from a
    // leader that did not commit them): the leader's commit index may cover them, but only the
    // entries up to the last one this append matched are known to be the leader's.
    let mut f = peer(2, 1, &[1, 1, 1, 1]);
    f.step(msg(1, 2, 2, append((1, 1), vec![], 4)));
    flush(&mut f);
    assert_eq!(f.status().commit_index, 1, "min(leaderCommit, index of last new entry)");
    f.step(msg(1, 2, 2, append((1, 1), vec![entry(2, 2)], 4)));
    flush(&mut f);
    assert_eq!(f.status().commit_index, 2);
    assert_eq!(terms(&f), vec![1, 2], "the conflicting tail is gone");
}

#[test]
fn all_servers_a_higher_term_in_a_reply_makes_a_candidate_a_follower() {
    let mut c = candidate(2, &[1]);
    flush(&mut c);
    assert_eq!(c.status().term, 3);
    c.step(msg(2, 1, 7, MessageBody::RequestVoteResponse { pre_vote: false, granted: false }));
    let s = c.status();
    assert_eq!((s.role, s.term, s.vote), (Role::Follower, 7, None));
}

#[test]
fn followers_granting_a_vote_or_hearing_a_leader_resets_the_election_timer() {
    let timeout_ticks =
        |f: &mut RawNode| tick_until(f, "a campaign", |n| n.status().role != Role::Follower);
    // Without any message, a follower campaigns within 2 * election_tick.
    let mut quiet = voter(2, 2, &[1]);
    assert!(timeout_ticks(&mut quiet) < 60);
    for reset in [
        vote_request(3, 2, 3, (1, 1)),
        msg(1, 2, 2, MessageBody::Heartbeat { commit: 0, round: 1 }),
    ] {
        let mut f = voter(2, 2, &[1]);
        for _ in 0..29 {
            f.tick();
        }
        flush(&mut f);
        f.step(reset.clone());
        flush(&mut f);
        // The timer restarted: a full timeout (at least election_tick) passes before a campaign.
        assert!(timeout_ticks(&mut f) >= 30, "after {reset:?}");
    }
}

#[test]
fn candidates_vote_for_themselves_ask_everyone_and_try_again_on_timeout() {
    let mut c = candidate(4, &[1, 4]);
    let s = c.status();
    assert_eq!((s.term, s.vote), (5, Some(1)), "term incremented, vote for self");
    let asks = flush(&mut c);
    let mut to: Vec<NodeId> = asks.iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, vec![2, 3]);
    assert!(asks.iter().all(|m| m.term == 5
        && m.body
            == MessageBody::RequestVote { pre_vote: false, last_log_index: 2, last_log_term: 4 }));
    // No answer: a new election in the next term.
    tick_until(&mut c, "a second election", |n| n.status().term != 5);
    assert_eq!((c.status().role, c.status().term), (Role::Candidate, 6));
}

#[test]
fn candidates_follow_a_leader_of_their_own_term() {
    let mut c = candidate(2, &[1]);
    flush(&mut c);
    c.step(msg(3, 1, 3, append((1, 1), vec![entry(2, 3)], 0)));
    let s = c.status();
    assert_eq!((s.role, s.term, s.leader), (Role::Follower, 3, Some(3)));
    assert_eq!(terms(&c), vec![1, 3], "and takes the leader's entries");
}

#[test]
fn a_configuration_that_cannot_run_is_refused_setting_by_setting() {
    let good = Config::lab(1, vec![1, 2, 3]);
    good.validate().unwrap();
    let bad = [
        (Config { id: 4, ..good.clone() }, "not among"),
        (Config { peers: vec![1, 2, 2], ..good.clone() }, "twice"),
        (Config { heartbeat_tick: 0, ..good.clone() }, "heartbeat_tick"),
        (Config { election_tick: 10, heartbeat_tick: 10, ..good.clone() }, "election_tick"),
        (Config { max_append_entries: 0, ..good.clone() }, "max_append_entries"),
        (Config { max_inflight: 0, ..good.clone() }, "max_inflight"),
        (Config { max_uncommitted_entries: 0, ..good.clone() }, "max_uncommitted_entries"),
        (Config { max_uncommitted_bytes: 0, ..good.clone() }, "max_uncommitted_bytes"),
    ];
    for (config, reason) in bad {
        let err = config.validate().expect_err(reason).to_string();
        assert!(err.contains(reason), "{reason}: {err}");
        let refused = RawNode::new(config, HardState::default(), vec![], 1);
        assert!(refused.is_err(), "RawNode::new refuses it too ({reason})");
    }
}

// ---- Flow control ----

/// An acknowledgement from `from` of everything up to `index`, in `term`.
fn ack(from: NodeId, term: Term, index: Index) -> Message {
    let body = MessageBody::AppendEntriesResponse {
        success: true,
        index,
        conflict_term: None,
        conflict_index: 0,
    };
    msg(from, 1, term, body)
}

#[test]
fn a_leader_refuses_proposals_beyond_its_uncommitted_entries_until_they_commit() {
    let mut l = leader(2, &[]);
    l.config.max_uncommitted_entries = 3;
    for i in 1..=3 {
        assert_eq!(l.propose(vec![i]), Ok((i as Index, 2)));
    }
    let refused = l.propose(vec![4]).unwrap_err();
    assert_eq!(
        refused,
        ProposeError::Overloaded {
            entries: 3,
            bytes: 3 * (1 + Entry::OVERHEAD),
            max_entries: 3,
            max_bytes: l.config.max_uncommitted_bytes
        }
    );
    assert_eq!(refused.leader_hint(1), Some(1), "an overloaded leader names itself");
    assert_eq!(l.status().last_index, 3, "a refused proposal appends nothing");
    assert_eq!(l.coverage().count(Decision::ProposalRefusedOverloaded), 1);
    flush(&mut l);
    // A majority (the leader and peer 2) holds two of them: two commit, two places free up.
    l.step(ack(2, 2, 2));
    assert_eq!(l.status().commit_index, 2);
    assert_eq!(l.propose(vec![4]), Ok((4, 2)));
    assert_eq!(l.propose(vec![5]), Ok((5, 2)));
    assert!(matches!(l.propose(vec![6]), Err(ProposeError::Overloaded { entries: 3, .. })));
}

#[test]
fn a_leader_bounds_its_uncommitted_bytes_but_takes_one_large_entry() {
    let mut l = leader(2, &[]);
    l.config.max_uncommitted_bytes = 100;
    // Larger than the bound, but nothing else is uncommitted: taken, or it could never go.
    assert_eq!(l.propose(vec![0; 200]), Ok((1, 2)));
    match l.propose(vec![1]) {
        Err(ProposeError::Overloaded { bytes, max_bytes: 100, .. }) => {
            assert_eq!(bytes, 200 + Entry::OVERHEAD)
        }
        other => panic!("expected an overloaded refusal, got {other:?}"),
    }
    flush(&mut l);
    l.step(ack(2, 2, 1));
    assert_eq!(l.status().commit_index, 1);
    // The committed entry no longer counts.
    assert_eq!(l.propose(vec![1; 40]), Ok((2, 2)));
    assert!(l.propose(vec![2; 40]).is_err(), "40 + 40 bytes and their overhead exceed 100");
}

#[test]
fn a_new_leader_counts_the_uncommitted_entries_it_inherits() {
    // Entries of term 1 that nobody knows committed: they commit only with a term-3 entry.
    let mut l = leader(3, &[1, 1, 1]);
    l.config.max_uncommitted_entries = 4;
    assert_eq!(l.uncommitted_bytes, 3 * (2 + Entry::OVERHEAD));
    assert_eq!(l.propose(vec![9]), Ok((4, 3)));
    assert!(matches!(l.propose(vec![9]), Err(ProposeError::Overloaded { entries: 4, .. })));
}

// ---- Entries read back from storage ----

/// The append `out` holds for `to`: its previous index and the indexes it carries.
fn append_to(out: &[Message], to: NodeId) -> Option<(Index, Vec<Index>)> {
    out.iter().find(|m| m.to == to).and_then(|m| match &m.body {
        MessageBody::AppendEntries { prev_log_index, entries, .. } => {
            Some((*prev_log_index, entries.iter().map(|e| e.index).collect()))
        }
        _ => None,
    })
}

#[test]
fn a_leader_reads_evicted_entries_back_for_a_follower_that_lags() {
    let mut l = leader(2, &[1, 1, 1, 1, 1, 1]);
    l.config.max_log_memory_bytes = 0;
    let (index, _) = l.propose(b"x".to_vec()).unwrap();
    flush(&mut l);
    let ack = |index| MessageBody::AppendEntriesResponse {
        success: true,
        index,
        conflict_term: None,
        conflict_index: 0,
    };
    l.step(msg(2, 1, 2, ack(index)));
    flush(&mut l);
    let s = l.status();
    assert_eq!((s.commit_index, s.applied_index, s.held_from), (7, 7, 8), "all applied, evicted");
    assert_eq!((l.term(3), l.entry(3)), (Some(1), None), "terms stay; entries go");

    // Peer 3 holds only two entries: the leader needs 3..=7, which it no longer holds.
    let short = MessageBody::AppendEntriesResponse {
        success: false,
        index: 6,
        conflict_term: None,
        conflict_index: 3,
    };
    l.step(msg(3, 1, 2, short));
    let mut rd = l.ready();
    assert_eq!(rd.read_entries, Some(3..8), "a read of what peer 3 lacks, up to what is held");
    let out = std::mem::take(&mut rd.messages);
    assert_eq!(append_to(&out, 3), Some((2, vec![])), "meanwhile a probe without entries");
    l.advance(rd);
    // One read at a time: the probe's answer asks for nothing more while it is out.
    l.step(msg(3, 1, 2, ack(2)));
    assert!(flush(&mut l).iter().all(|m| m.to != 3), "nothing to send until the read is back");
    assert!(!l.has_ready());

    // Entries whose terms disagree with the log (storage changed since) are not sent.
    l.entries_read(vec![entry(3, 9)]);
    assert!(append_to(&flush(&mut l), 3).is_none());
    l.step(msg(3, 1, 2, MessageBody::HeartbeatResponse { round: 0 }));
    let mut rd = l.ready();
    assert_eq!(rd.read_entries, Some(3..8), "asked again");
    rd.messages.clear();
    l.advance(rd);
    l.entries_read(log_of(&[1, 1, 1, 1, 1, 1]).split_off(2));
    let out = flush(&mut l);
    assert_eq!(append_to(&out, 3), Some((2, vec![3, 4, 5, 6])), "sent from what was read");
    assert_eq!(l.coverage().count(Decision::EntriesReadBack), 1);
}

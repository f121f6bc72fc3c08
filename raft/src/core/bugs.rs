//! The catalogue of deliberately broken protocol variants.
//!
//! Each variant breaks one rule of the paper. They exist so that the project can prove that its
//! tests, its simulator's invariant checks and the gauntlet find real bugs. The variants are
//! named in every build, so that configurations and command lines parse the same way, but only a
//! build with the cargo feature `bugs` can switch one on (through `Config::bug`).

use std::fmt;
use std::str::FromStr;

/// One deliberately broken protocol variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Bug {
    /// Grant a vote without the up-to-date check of §5.4.1.
    VoteWithoutLogCheck,
    /// Commit an entry of an earlier term by counting replicas (the paper's Figure 8); such a
    /// leader does not append §8's no-op either, since the no-op only exists to commit earlier
    /// terms' entries the correct way.
    CommitOldTerm,
    /// The vote is not made durable: a restarted peer can vote twice in one term.
    ForgetVote,
    /// A follower cuts its log after `prev_log_index` on every AppendEntries, even when nothing
    /// conflicts (a stale, reordered message then erases committed entries).
    TruncateWithoutConflict,
    /// A leader ignores a higher term in a reply and keeps leading.
    IgnoreHigherTermReply,
    /// Entries are handed to the service before they are committed.
    ApplyUncommitted,
    /// (Durability, in [`FileStorage`](crate::storage::FileStorage)) the log is never
    /// `fdatasync`ed: a sync returns with the entries in the page cache only. A process kill
    /// keeps them; a power failure does not.
    SkipLogSync,
    /// (Durability, in [`FileStorage`](crate::storage::FileStorage)) the hard state file is
    /// renamed into place without a sync of its directory: a power failure can bring the old
    /// term and vote back.
    HardStateWithoutDirSync,
    /// (Durability, in the [`Node`](crate::node::Node) driver and the simulator's) append
    /// acknowledgements go out before the sync of their ready: a peer acknowledges entries it
    /// has not made durable.
    AckBeforeSync,
    /// (Durability, in the [`Node`](crate::node::Node) driver and the simulator's) vote
    /// grants go out before the sync of their ready: the vote is persisted after answering.
    VoteBeforeSync,
    /// (Durability, in [`FileStorage`](crate::storage::FileStorage)) a failed `fdatasync` of
    /// the log is logged and taken for a success: the entries the kernel dropped are
    /// acknowledged all the same.
    IgnoreFailedFsync,
    /// (Reads) a leader answers ReadIndex at once with its commit index, without the
    /// heartbeat round that confirms no other leader exists (thesis §6.4, step 3).
    ReadIndexWithoutQuorum,
    /// (Reads) lease reads: once a leader held a lease, it serves reads alone even after the
    /// lease ran out (thesis §6.4.1). Switches lease-based reads on.
    LeaseReadAfterExpiry,
    /// (Snapshots) a follower installs the leader's snapshot even when it has already
    /// committed (and maybe applied) past it: its service goes back to the older state (§7:
    /// a snapshot the log already holds is not installed).
    InstallOlderSnapshot,
    /// (Snapshots) a snapshot goes to storage without its last included term (as 0): a peer
    /// restarted from it checks the entry after the snapshot against the wrong term, and its
    /// log looks older than it is to the vote check (§7: the snapshot keeps the term of its
    /// last entry for both).
    SnapshotWithoutTerm,
}

impl Bug {
    /// Every variant of the catalogue.
    pub const ALL: [Bug; 15] = [
        Bug::VoteWithoutLogCheck,
        Bug::CommitOldTerm,
        Bug::ForgetVote,
        Bug::TruncateWithoutConflict,
        Bug::IgnoreHigherTermReply,
        Bug::ApplyUncommitted,
        Bug::SkipLogSync,
        Bug::HardStateWithoutDirSync,
        Bug::AckBeforeSync,
        Bug::VoteBeforeSync,
        Bug::IgnoreFailedFsync,
        Bug::ReadIndexWithoutQuorum,
        Bug::LeaseReadAfterExpiry,
        Bug::InstallOlderSnapshot,
        Bug::SnapshotWithoutTerm,
    ];

    /// The variant's name on command lines and in `RAFT_BUG`.
    pub fn name(self) -> &'static str {
        match self {
            Bug::VoteWithoutLogCheck => "vote-without-log-check",
            Bug::CommitOldTerm => "commit-old-term",
            Bug::ForgetVote => "forget-vote",
            Bug::TruncateWithoutConflict => "truncate-without-conflict",
            Bug::IgnoreHigherTermReply => "ignore-higher-term-reply",
            Bug::ApplyUncommitted => "apply-uncommitted",
            Bug::SkipLogSync => "skip-log-sync",
            Bug::HardStateWithoutDirSync => "hard-state-without-dir-sync",
            Bug::AckBeforeSync => "ack-before-sync",
            Bug::VoteBeforeSync => "vote-before-sync",
            Bug::IgnoreFailedFsync => "ignore-failed-fsync",
            Bug::ReadIndexWithoutQuorum => "read-index-without-quorum",
            Bug::LeaseReadAfterExpiry => "lease-read-after-expiry",
            Bug::InstallOlderSnapshot => "install-older-snapshot",
            Bug::SnapshotWithoutTerm => "snapshot-without-term",
        }
    }

    /// Whether the variant sends `msg` before the sync of its ready (the catalogue's
    /// `ack-before-sync` and `vote-before-sync`).
    pub fn sends_before_sync(self, msg: &crate::Message) -> bool {
        use crate::MessageBody::{AppendEntriesResponse, HeartbeatResponse, RequestVoteResponse};
        matches!(
            (self, &msg.body),
            (Bug::AckBeforeSync, AppendEntriesResponse { .. } | HeartbeatResponse { .. })
                | (Bug::VoteBeforeSync, RequestVoteResponse { pre_vote: false, granted: true })
        )
    }

    /// Whether the variant breaks reads (ReadIndex or leases), which only a checker of reads
    /// finds: the log and the applied entries stay right.
    pub fn breaks_reads(self) -> bool {
        matches!(self, Bug::ReadIndexWithoutQuorum | Bug::LeaseReadAfterExpiry)
    }

    /// Whether the variant lives in [`FileStorage`](crate::storage::FileStorage), which the
    /// simulator does not run (its peers' storage is a model of FileStorage's sync order):
    /// only real processes on a crash disk find these.
    pub fn in_file_storage(self) -> bool {
        matches!(self, Bug::SkipLogSync | Bug::HardStateWithoutDirSync | Bug::IgnoreFailedFsync)
    }

    /// What the variant breaks, in one line (for `--help`).
    pub fn summary(self) -> &'static str {
        match self {
            Bug::VoteWithoutLogCheck => "votes without the up-to-date log check (§5.4.1)",
            Bug::CommitOldTerm => "commits an earlier term's entry by counting replicas (Figure 8)",
            Bug::ForgetVote => "does not make the vote durable",
            Bug::TruncateWithoutConflict => "cuts the log on every AppendEntries, conflict or not",
            Bug::IgnoreHigherTermReply => "a leader ignores a higher term in a reply",
            Bug::ApplyUncommitted => "applies entries before they are committed",
            Bug::SkipLogSync => "(durability) never fdatasyncs the log",
            Bug::HardStateWithoutDirSync => {
                "(durability) renames the hard state into place without syncing its directory"
            }
            Bug::AckBeforeSync => "(durability) acknowledges appended entries before their sync",
            Bug::VoteBeforeSync => "(durability) grants a vote before the vote's sync",
            Bug::IgnoreFailedFsync => {
                "(durability) takes a failed fdatasync of the log for a success"
            }
            Bug::ReadIndexWithoutQuorum => {
                "(reads) answers ReadIndex without confirming the leadership with a majority"
            }
            Bug::LeaseReadAfterExpiry => "(reads) serves lease reads after the lease ran out",
            Bug::InstallOlderSnapshot => {
                "(snapshots) installs a snapshot older than what the follower committed"
            }
            Bug::SnapshotWithoutTerm => {
                "(snapshots) persists a snapshot without its last included term"
            }
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not in the catalogue.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown bug {0:?}; the catalogue has: {names}", names = catalogue())]
pub struct UnknownBug(pub String);

fn catalogue() -> String {
    Bug::ALL.map(Bug::name).join(", ")
}

impl FromStr for Bug {
    type Err = UnknownBug;
    fn from_str(s: &str) -> Result<Bug, UnknownBug> {
        Bug::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| UnknownBug(s.to_string()))
    }
}

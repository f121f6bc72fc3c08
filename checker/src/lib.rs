//! History types, linearizability checking and Raft safety checks.

//! Where a peer keeps its hard state and log.

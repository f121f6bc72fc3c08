//! Swarm configurations: the protocol settings and network character a torture run draws with
//! its faults.
//!
//! Swarm testing (Groce et al., 2012) finds more bugs than one fixed configuration with every
//! feature on: a bug that only a cluster of four peers, a pipeline of one message or a tight
//! election timeout reveals never shows under the lab profile, however many fault schedules
//! run. So every generated schedule draws a [`Swarm`] as well as its steps; the schedule prints,
//! encodes, replays and shrinks with it (a shrink changes steps, never the swarm).

use crate::core::{Config, ReadOnly};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The settings of one run that are not its fault steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Swarm {
    /// [`Config::election_tick`]: timeouts of `[et, 2 et)` ticks of 10 ms.
    pub election_tick: u32,
    /// [`Config::heartbeat_tick`] (below `election_tick`).
    pub heartbeat_tick: u32,
    /// [`Config::pre_vote`].
    pub pre_vote: bool,
    /// [`Config::check_quorum`].
    pub check_quorum: bool,
    /// [`Config::noop_on_election`].
    pub noop: bool,
    /// [`Config::max_append_entries`]: 1 sends every entry alone.
    pub max_append_entries: usize,
    /// [`Config::max_append_bytes`]: below a command's size, every append carries one entry
    /// by the byte limit.
    #[serde(default = "default_max_append_bytes")]
    pub max_append_bytes: usize,
    /// [`Config::max_inflight`]: 1 turns pipelining off.
    pub max_inflight: usize,
    /// Each tick lasts 10 ms give or take this percentage, drawn per tick: peers whose clocks
    /// run at different rates.
    pub tick_jitter_pct: u8,
    /// Per thousand messages, a long-tail delay on top of the network's own (0: none).
    pub tail_per_mille: u16,
    /// The longest long-tail delay, in milliseconds.
    pub tail_ms: u32,
    /// Per thousand messages duplicated throughout the fault phase (a duplication step raises
    /// it for a while, never lowers it).
    pub dup_per_mille: u16,
    /// [`Config::read_only`] is [`ReadOnly::LeaseBased`] (with check-quorum only, and only on
    /// clocks that keep within the lease's drift bound: jitter of 10% at most).
    #[serde(default)]
    pub lease_reads: bool,
    /// The service snapshots once it applied this many entries past its latest snapshot (0:
    /// never), and followers behind the leader's snapshot catch up by InstallSnapshot.
    #[serde(default)]
    pub snapshot_every: u16,
    /// [`Config::max_snapshot_chunk_bytes`]: below the simulated service's 16 bytes, a
    /// snapshot goes in several chunks.
    #[serde(default = "default_snapshot_chunk_bytes")]
    pub snapshot_chunk_bytes: u32,
    /// [`Config::max_log_memory_bytes`]: with a few hundred bytes, peers evict most applied
    /// entries from memory, and leaders read them back from storage for lagging followers.
    #[serde(default = "default_log_memory_bytes")]
    pub log_memory_bytes: u32,
}

fn default_log_memory_bytes() -> u32 {
    Swarm::LAB.log_memory_bytes
}

fn default_snapshot_chunk_bytes() -> u32 {
    Swarm::LAB.snapshot_chunk_bytes
}

fn default_max_append_bytes() -> usize {
    Swarm::LAB.max_append_bytes
}

impl Default for Swarm {
    fn default() -> Swarm {
        Swarm::LAB
    }
}

impl Swarm {
    /// The seed labs' profile ([`Config::lab`]) on the labs' network: what schedules ran under
    /// before swarms, and what a compact schedule without `swarm=` means.
    pub const LAB: Swarm = Swarm {
        election_tick: 30,
        heartbeat_tick: 10,
        pre_vote: true,
        check_quorum: true,
        noop: false,
        max_append_entries: 64,
        max_append_bytes: 1 << 20,
        max_inflight: 16,
        tick_jitter_pct: 0,
        tail_per_mille: 0,
        tail_ms: 0,
        dup_per_mille: 0,
        lease_reads: false,
        snapshot_every: 0,
        snapshot_chunk_bytes: 1 << 20,
        log_memory_bytes: 64 << 20,
    };

    /// Draws a configuration. Each setting is drawn on its own, with the lab's value among the
    /// likely ones, so that a run is rarely extreme in everything at once: timeouts from tight
    /// (50-100 ms, below the unreliable network's worst delays) to wide (0.6-1.2 s), batching
    /// down to one entry per append and one append in flight, each extension off in one run in
    /// four, jittery clocks, long-tailed delays and a steady trickle of duplicates.
    pub fn draw(rng: &mut ChaCha8Rng) -> Swarm {
        let election_tick = [5, 10, 20, 30, 30, 60][rng.gen_range(0..6)];
        let heartbeat_tick = match rng.gen_range(0..4) {
            0 => 1,
            1 => (election_tick / 10).max(1),
            _ => (election_tick / 3).max(1),
        };
        let tail = rng.gen_bool(0.4);
        let dup = rng.gen_bool(0.3);
        let mut swarm = Swarm {
            election_tick,
            heartbeat_tick,
            pre_vote: rng.gen_bool(0.75),
            check_quorum: rng.gen_bool(0.75),
            noop: rng.gen_bool(0.5),
            max_append_entries: [1, 2, 4, 64, 64][rng.gen_range(0..5)],
            max_append_bytes: [1 << 20, 1 << 20, 1 << 20, 80, 40][rng.gen_range(0..5)],
            max_inflight: [1, 2, 16, 16][rng.gen_range(0..4)],
            tick_jitter_pct: [0, 0, 10, 30, 60][rng.gen_range(0..5)],
            tail_per_mille: if tail { [10, 50, 200][rng.gen_range(0..3)] } else { 0 },
            tail_ms: if tail { [100, 500, 2_000][rng.gen_range(0..3)] } else { 0 },
            dup_per_mille: if dup { [5, 20, 100][rng.gen_range(0..3)] } else { 0 },
            lease_reads: false,
            snapshot_every: 0,
            snapshot_chunk_bytes: Swarm::LAB.snapshot_chunk_bytes,
            log_memory_bytes: Swarm::LAB.log_memory_bytes,
        };
        swarm.lease_reads = swarm.check_quorum && swarm.tick_jitter_pct <= 10 && rng.gen_bool(0.5);
        swarm
    }

    /// Draws the snapshot settings: in half of the runs the service snapshots, every 3 to 50
    /// entries, its snapshot sent whole or in chunks down to a byte.
    pub fn draw_snapshots(&mut self, rng: &mut ChaCha8Rng) {
        if rng.gen_bool(0.5) {
            self.snapshot_every = [3, 10, 10, 50][rng.gen_range(0..4)];
            self.snapshot_chunk_bytes = [1 << 20, 1 << 20, 5, 1][rng.gen_range(0..4)];
        }
    }

    /// Draws the log's memory budget: in a third of the runs, small enough (0 to 3,000 bytes)
    /// that applied entries leave memory and leaders read them back from storage.
    pub fn draw_log_memory(&mut self, rng: &mut ChaCha8Rng) {
        if rng.gen_bool(0.3) {
            self.log_memory_bytes = [0, 300, 3_000][rng.gen_range(0..3)];
        }
    }

    /// The shortest election timeout, in milliseconds (ticks of 10 ms).
    pub fn election_timeout_ms(&self) -> u64 {
        self.election_tick as u64 * 10
    }

    /// Sets the protocol settings of `config`.
    pub fn configure(&self, config: &mut Config) {
        config.election_tick = self.election_tick;
        config.heartbeat_tick = self.heartbeat_tick;
        config.pre_vote = self.pre_vote;
        config.check_quorum = self.check_quorum;
        config.noop_on_election = self.noop;
        config.max_append_entries = self.max_append_entries;
        config.max_append_bytes = self.max_append_bytes;
        config.max_inflight = self.max_inflight;
        config.max_snapshot_chunk_bytes = self.snapshot_chunk_bytes as usize;
        config.max_log_memory_bytes = self.log_memory_bytes as usize;
        if self.lease_reads {
            config.read_only = ReadOnly::LeaseBased;
        }
    }

    /// Checks that peers can run with it.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return Err(format!(
                "swarm: the election tick ({}) must be above the heartbeat tick ({}), which is at least 1",
                self.election_tick, self.heartbeat_tick
            ));
        }
        if self.election_tick > 1_000 {
            return Err(format!("swarm: election tick {} is over 1000", self.election_tick));
        }
        if self.lease_reads && (!self.check_quorum || self.tick_jitter_pct > 10) {
            return Err("swarm: lease reads need check-quorum and jitter of 10% at most".into());
        }
        if self.max_append_entries == 0
            || self.max_inflight == 0
            || self.max_append_bytes == 0
            || self.snapshot_chunk_bytes == 0
        {
            return Err("swarm: ae, ab, if and sc must be at least 1".to_string());
        }
        if self.tick_jitter_pct > 90 {
            return Err(format!("swarm: jitter {}% is over 90%", self.tick_jitter_pct));
        }
        if self.tail_per_mille > 1000 || self.dup_per_mille > 1000 {
            return Err("swarm: tail and dup are per thousand, 0-1000".to_string());
        }
        if self.tail_ms > 10_000 {
            return Err(format!("swarm: a tail of {} ms is over 10 s", self.tail_ms));
        }
        Ok(())
    }

    /// The one-token encoding of [`Schedule::to_compact`](super::Schedule::to_compact):
    /// `et30,hb10,pv1,cq1,noop0,ae64,ab1048576,if16,jit0,tail0/0,dup0` (and `,lr1` with lease
    /// reads, `,snap10` when the service snapshots every 10 entries, `,sc5` for chunks of 5
    /// bytes, `,mem300` for a log memory budget of 300 bytes).
    pub fn to_compact(&self) -> String {
        let b = |on: bool| u8::from(on);
        let mut snapshots = String::new();
        if self.snapshot_every > 0 {
            snapshots += &format!(",snap{}", self.snapshot_every);
        }
        if self.snapshot_chunk_bytes != Swarm::LAB.snapshot_chunk_bytes {
            snapshots += &format!(",sc{}", self.snapshot_chunk_bytes);
        }
        if self.log_memory_bytes != Swarm::LAB.log_memory_bytes {
            snapshots += &format!(",mem{}", self.log_memory_bytes);
        }
        format!(
            "et{},hb{},pv{},cq{},noop{},ae{},ab{},if{},jit{},tail{}/{},dup{}{}{snapshots}",
            self.election_tick,
            self.heartbeat_tick,
            b(self.pre_vote),
            b(self.check_quorum),
            b(self.noop),
            self.max_append_entries,
            self.max_append_bytes,
            self.max_inflight,
            self.tick_jitter_pct,
            self.tail_per_mille,
            self.tail_ms,
            self.dup_per_mille,
            if self.lease_reads { ",lr1" } else { "" }
        )
    }

    /// Parses [`Swarm::to_compact`]'s encoding; settings it leaves out keep the lab's value.
    pub fn parse_compact(text: &str) -> Result<Swarm, String> {
        let mut s = Swarm::LAB;
        for item in text.split(',').filter(|i| !i.is_empty()) {
            let split = item.find(|c: char| c.is_ascii_digit()).unwrap_or(item.len());
            let (key, value) = item.split_at(split);
            let bad = || format!("swarm {item:?}: expected a setting and a number, e.g. et30");
            let number = || value.parse::<u32>().map_err(|_| bad());
            let flag = || match value {
                "0" => Ok(false),
                "1" => Ok(true),
                _ => Err(format!("swarm {item:?}: {key} is 0 or 1")),
            };
            let small = |max: u32| {
                number().and_then(|v| {
                    if v <= max {
                        Ok(v)
                    } else {
                        Err(format!("swarm {item:?}: at most {max}"))
                    }
                })
            };
            match key {
                "et" => s.election_tick = number()?,
                "hb" => s.heartbeat_tick = number()?,
                "pv" => s.pre_vote = flag()?,
                "cq" => s.check_quorum = flag()?,
                "noop" => s.noop = flag()?,
                "ae" => s.max_append_entries = number()? as usize,
                "ab" => s.max_append_bytes = number()? as usize,
                "if" => s.max_inflight = number()? as usize,
                "jit" => s.tick_jitter_pct = small(90)? as u8,
                "tail" => {
                    let (p, ms) = value.split_once('/').ok_or_else(|| {
                        format!("swarm {item:?}: expected tailP/MS, e.g. tail50/500")
                    })?;
                    s.tail_per_mille = p.parse().map_err(|_| bad())?;
                    s.tail_ms = ms.parse().map_err(|_| bad())?;
                }
                "dup" => s.dup_per_mille = small(1000)? as u16,
                "lr" => s.lease_reads = flag()?,
                "snap" => s.snapshot_every = small(u16::MAX as u32)? as u16,
                "sc" => s.snapshot_chunk_bytes = number()?,
                "mem" => s.log_memory_bytes = number()?,
                _ => {
                    return Err(format!(
                        "swarm {item:?}: unknown setting {key:?} (et, hb, pv, cq, noop, ae, ab, if, jit, tail, dup, lr, snap, sc, mem)"
                    ))
                }
            }
        }
        s.validate()?;
        Ok(s)
    }
}

impl fmt::Display for Swarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Swarm::LAB {
            return f.write_str("the lab profile");
        }
        let on = |b: bool| if b { "on" } else { "off" };
        write!(
            f,
            "election timeouts {}-{} ms, heartbeats every {} ms, pre-vote {}, check-quorum {}, no-op {}, \
             {} entries or {} bytes per append, {} in flight",
            self.election_timeout_ms(),
            2 * self.election_timeout_ms(),
            self.heartbeat_tick * 10,
            on(self.pre_vote),
            on(self.check_quorum),
            on(self.noop),
            self.max_append_entries,
            self.max_append_bytes,
            self.max_inflight,
        )?;
        if self.tick_jitter_pct > 0 {
            write!(f, ", ticks ±{}%", self.tick_jitter_pct)?;
        }
        if self.tail_per_mille > 0 {
            write!(f, ", {}‰ of messages up to {} ms late", self.tail_per_mille, self.tail_ms)?;
        }
        if self.dup_per_mille > 0 {
            write!(f, ", {}‰ duplicated", self.dup_per_mille)?;
        }
        if self.lease_reads {
            f.write_str(", lease reads")?;
        }
        if self.snapshot_every > 0 {
            write!(
                f,
                ", snapshots every {} entries sent in chunks of {} bytes",
                self.snapshot_every, self.snapshot_chunk_bytes
            )?;
        }
        if self.log_memory_bytes != Swarm::LAB.log_memory_bytes {
            write!(f, ", {} bytes of log in memory", self.log_memory_bytes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drawn_swarms_are_valid_varied_and_round_trip() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let mut s = Swarm::draw(&mut rng);
            s.draw_snapshots(&mut rng);
            s.draw_log_memory(&mut rng);
            s.validate().unwrap();
            assert_eq!(Swarm::parse_compact(&s.to_compact()).unwrap(), s);
            seen.insert((s.max_append_entries, s.max_inflight, s.pre_vote, s.check_quorum));
        }
        assert!(seen.len() >= 40, "only {} combinations of batching and extensions", seen.len());
    }

    #[test]
    fn settings_left_out_keep_the_lab_values() {
        let s = Swarm::parse_compact("ae1,pv0").unwrap();
        assert_eq!(s, Swarm { max_append_entries: 1, pre_vote: false, ..Swarm::LAB });
        assert_eq!(Swarm::parse_compact(&Swarm::LAB.to_compact()).unwrap(), Swarm::LAB);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        for (text, reason) in [
            ("et5,hb5", "above the heartbeat"),
            ("ae0", "at least 1"),
            ("pv2", "0 or 1"),
            ("jit95", "at most 90"),
            ("tail50", "tailP/MS"),
            ("speed3", "unknown setting"),
            ("sc0", "at least 1"),
            ("et", "a setting and a number"),
        ] {
            let err = Swarm::parse_compact(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn a_swarm_sets_the_protocol_settings() {
        let s = Swarm::parse_compact("et10,hb1,pv0,cq0,noop1,ae1,if1,snap3,sc2").unwrap();
        assert_eq!(s.snapshot_every, 3);
        let mut c = Config::lab(0, vec![0, 1, 2]);
        s.configure(&mut c);
        assert_eq!(
            (c.election_tick, c.heartbeat_tick, c.max_append_entries, c.max_inflight),
            (10, 1, 1, 1)
        );
        assert_eq!(c.max_snapshot_chunk_bytes, 2);
        assert!(!c.pre_vote && !c.check_quorum && c.noop_on_election);
        c.validate().unwrap();
    }
}

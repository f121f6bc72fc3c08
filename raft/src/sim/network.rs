//! The simulated network: which links are up, and what happens to each message sent over one
//! (its delay, whether it is lost or duplicated).
//!
//! The modes are those of the seed labs' network:
//! - reliable: every message arrives after a short delay (0.1-1 ms);
//! - unreliable: every message is delayed 0-27 ms, and 10% of requests and 10% of replies are
//!   lost;
//! - long reordering (on top of either): 2/3 of replies are delayed a further 200-2200 ms.
//!
//! Connectivity follows the labs too: each peer is connected or not, and a link works when both
//! ends are connected. Links can also be cut one way, for partitions finer than a whole peer.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// What the network does with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost.
    Drop,
    /// Arrives after this many microseconds.
    Deliver(u64),
    /// Arrives twice, after each of these delays.
    Duplicate(u64, u64),
}

/// The network's modes and links.
#[derive(Clone, Debug)]
pub struct Network {
    n: usize,
    connected: Vec<bool>,
    /// `cut[from * n + to]`: the one-way link from `from` to `to` is cut.
    cut: Vec<bool>,
    reliable: bool,
    long_reordering: bool,
    slow_replies: bool,
    duplicate_per_mille: u32,
    /// A swarm's noise ([`Network::set_noise`]): long-tail delays and duplicates that last the
    /// whole fault phase.
    tail_per_mille: u32,
    tail_us: u64,
    noise_duplicate_per_mille: u32,
    rng: ChaCha8Rng,
}

impl Network {
    /// A reliable network of `n` connected peers, its randomness drawn from `rng`.
    pub fn new(n: usize, rng: ChaCha8Rng) -> Network {
        Network {
            n,
            connected: vec![true; n],
            cut: vec![false; n * n],
            reliable: true,
            long_reordering: false,
            slow_replies: false,
            duplicate_per_mille: 0,
            tail_per_mille: 0,
            tail_us: 0,
            noise_duplicate_per_mille: 0,
            rng,
        }
    }

    /// Whether a message from `from` to `to` gets through now.
    #[inline]
    pub fn link_up(&self, from: usize, to: usize) -> bool {
        self.connected[from] && self.connected[to] && !self.cut[from * self.n + to]
    }

    /// Whether peer `i` is connected.
    pub fn is_connected(&self, i: usize) -> bool {
        self.connected[i]
    }

    /// Connects or disconnects all of peer `i`'s links (one-way cuts stay as they are).
    pub fn set_connected(&mut self, i: usize, up: bool) {
        self.connected[i] = up;
    }

    /// Cuts (`up` false) or restores the one-way link from `from` to `to`.
    pub fn set_link(&mut self, from: usize, to: usize, up: bool) {
        self.cut[from * self.n + to] = !up;
    }

    /// Whether the network is reliable.
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// Switches between the reliable and unreliable modes.
    pub fn set_reliable(&mut self, reliable: bool) {
        self.reliable = reliable;
    }

    /// Whether long reordering is on.
    pub fn long_reordering(&self) -> bool {
        self.long_reordering
    }

    /// Switches long reordering of replies on or off.
    pub fn set_long_reordering(&mut self, on: bool) {
        self.long_reordering = on;
    }

    /// Delays every reply a further 30-400 ms (or not): with tight election timeouts, the
    /// answers to one round of votes arrive in the rounds after it.
    pub fn set_slow_replies(&mut self, on: bool) {
        self.slow_replies = on;
    }

    /// Duplicates this many messages per thousand (0 by default; the labs never duplicate).
    pub fn set_duplicate_per_mille(&mut self, per_mille: u32) {
        self.duplicate_per_mille = per_mille.min(1000);
    }

    /// A swarm's noise under every mode: `tail_per_mille` messages per thousand are delayed a
    /// further 0 to `tail_ms` (skewed towards short delays), and at least `dup_per_mille` per
    /// thousand are duplicated. All zero by default.
    pub fn set_noise(&mut self, tail_per_mille: u32, tail_ms: u64, dup_per_mille: u32) {
        self.tail_per_mille = tail_per_mille.min(1000);
        self.tail_us = tail_ms * 1000;
        self.noise_duplicate_per_mille = dup_per_mille.min(1000);
    }

    /// Draws the fate of one message, a request (vote, pre-vote, append) or a reply.
    pub fn fate(&mut self, is_request: bool) -> Fate {
        let first = match self.delay(is_request) {
            Some(d) => d,
            None => return Fate::Drop,
        };
        let duplicate = self.duplicate_per_mille.max(self.noise_duplicate_per_mille);
        if duplicate > 0 && self.rng.gen_range(0..1000) < duplicate {
            if let Some(second) = self.delay(is_request) {
                return Fate::Duplicate(first, second);
            }
        }
        Fate::Deliver(first)
    }

    fn delay(&mut self, is_request: bool) -> Option<u64> {
        let mut delay = if self.reliable {
            self.rng.gen_range(100..=1_000)
        } else {
            // The labs drop 10% of requests and, independently, 10% of replies.
            if self.rng.gen_range(0..1000) < 100 {
                return None;
            }
            self.rng.gen_range(0..27_000)
        };
        if self.long_reordering && !is_request && self.rng.gen_range(0..900) < 600 {
            // As the labs do it: 200 ms plus a delay skewed towards the short end, up to 2 s.
            let upper = self.rng.gen_range(0..=2_000u64);
            delay += 200_000 + self.rng.gen_range(0..=upper) * 1_000;
        }
        if self.slow_replies && !is_request {
            delay += self.rng.gen_range(30_000..=400_000);
        }
        if self.tail_per_mille > 0 && self.rng.gen_range(0..1000) < self.tail_per_mille {
            let upper = self.rng.gen_range(0..=self.tail_us);
            delay += self.rng.gen_range(0..=upper);
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn net() -> Network {
        Network::new(3, ChaCha8Rng::seed_from_u64(7))
    }

    #[test]
    fn links_need_both_ends_connected_and_no_cut() {
        let mut n = net();
        assert!(n.link_up(0, 1));
        n.set_connected(1, false);
        assert!(!n.link_up(0, 1) && !n.link_up(1, 0) && n.link_up(0, 2));
        n.set_connected(1, true);
        n.set_link(0, 1, false);
        assert!(!n.link_up(0, 1) && n.link_up(1, 0));
    }

    #[test]
    fn reliable_delivers_everything_quickly() {
        let mut n = net();
        for i in 0..1000 {
            match n.fate(i % 2 == 0) {
                Fate::Deliver(d) => assert!((100..=1_000).contains(&d)),
                other => panic!("reliable network gave {other:?}"),
            }
        }
    }

    #[test]
    fn unreliable_drops_about_a_tenth_and_delays_up_to_27ms() {
        let mut n = net();
        n.set_reliable(false);
        let mut dropped = 0;
        for _ in 0..10_000 {
            match n.fate(true) {
                Fate::Drop => dropped += 1,
                Fate::Deliver(d) => assert!(d < 27_000),
                Fate::Duplicate(..) => panic!("no duplicates by default"),
            }
        }
        assert!((800..1200).contains(&dropped), "dropped {dropped} of 10000");
    }

    #[test]
    fn long_reordering_delays_two_thirds_of_replies_only() {
        let mut n = net();
        n.set_long_reordering(true);
        let mut long = 0;
        for _ in 0..9_000 {
            if let Fate::Deliver(d) = n.fate(false) {
                if d >= 200_000 {
                    assert!(d <= 2_201_000);
                    long += 1;
                }
            }
            assert!(matches!(n.fate(true), Fate::Deliver(d) if d <= 1_000));
        }
        assert!((5_600..6_400).contains(&long), "{long} of 9000 replies delayed");
    }

    #[test]
    fn noise_delays_its_share_of_messages_and_duplicates_under_every_mode() {
        let mut n = net();
        n.set_noise(200, 500, 100);
        let (mut late, mut dup) = (0, 0);
        for _ in 0..10_000 {
            match n.fate(true) {
                Fate::Deliver(d) => late += usize::from(d > 1_000),
                Fate::Duplicate(a, b) => {
                    dup += 1;
                    late += usize::from(a > 1_000) + usize::from(b > 1_000);
                }
                Fate::Drop => panic!("the reliable network loses nothing"),
            }
            n.set_duplicate_per_mille(0);
        }
        assert!((1_500..2_600).contains(&late), "{late} of about 11000 deliveries late");
        assert!((800..1_200).contains(&dup), "{dup} of 10000 duplicated");
        n.set_noise(0, 0, 0);
        assert!(matches!(n.fate(true), Fate::Deliver(d) if d <= 1_000));
    }

    #[test]
    fn duplicates_when_asked() {
        let mut n = net();
        n.set_duplicate_per_mille(1000);
        assert!(matches!(n.fate(true), Fate::Duplicate(..)));
    }
}

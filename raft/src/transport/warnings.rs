//! [`WarningLimiter`]: warnings about refused connections, rate-limited.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;
use tracing::warn;

/// Warnings logged per second at most; the rest are counted and summed up.
const WARNINGS_PER_SECOND: u32 = 10;

/// Lets through at most ten warnings a second, so that a flood of connections cannot flood the
/// log too; a server that refuses connections beside the transport can use it as well.
///
/// ```
/// let limiter = raft::transport::WarningLimiter::default();
/// let admitted = (0..100).filter(|_| limiter.admit().is_some()).count();
/// assert_eq!(admitted, 10);
/// // The tail of the burst, for a summary line.
/// assert_eq!(limiter.take_held_back(), 90);
/// assert_eq!(limiter.take_held_back(), 0);
/// ```
#[derive(Debug, Default)]
pub struct WarningLimiter {
    /// The current one-second window's start, warnings let through in it, and those held back
    /// since the last one let through.
    state: Mutex<Option<(Instant, u32, u64)>>,
}

impl WarningLimiter {
    /// Whether to log a warning now (`Some`), with how many were held back since the last one
    /// let through.
    pub fn admit(&self) -> Option<u64> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (start, count, held) = state.get_or_insert((now, 0, 0));
        if now.duration_since(*start) >= Duration::from_secs(1) {
            (*start, *count) = (now, 0);
        }
        if *count >= WARNINGS_PER_SECOND {
            *held += 1;
            return None;
        }
        *count += 1;
        Some(std::mem::take(held))
    }

    /// Takes the count of warnings held back since the last one let through.
    pub fn take_held_back(&self) -> u64 {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.as_mut().map_or(0, |(_, _, held)| std::mem::take(held))
    }

    /// Logs how many warnings about `what` were held back since the last one let through, if
    /// any. Called once a second by whoever owns the limiter, so that the tail of a burst is
    /// reported as well.
    pub fn summarize(&self, what: &str) {
        let held_back = self.take_held_back();
        if held_back > 0 {
            warn!(held_back, "more warnings about {what} than the log shows were held back");
        }
    }
}

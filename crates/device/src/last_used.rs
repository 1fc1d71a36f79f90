//! When the person last did something, for the vault's idle lock.

use std::time::{Duration, Instant, SystemTime};

/// When the person last did something, on both clocks: the monotonic one
/// stops while the machine sleeps, the wall clock does not, and a vault
/// left open over a night's sleep must be locked on waking.
#[derive(Clone, Copy)]
pub(crate) struct LastUsed {
    at: Instant,
    wall: SystemTime,
}

impl LastUsed {
    /// Now.
    pub(crate) fn now() -> Self {
        LastUsed {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The longer of the two readings (a wall clock set back counts 0).
    pub(crate) fn elapsed(&self) -> Duration {
        self.at
            .elapsed()
            .max(self.wall.elapsed().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_asleep_counts_as_idle() {
        // A machine that slept an hour: the monotonic clock saw nothing,
        // the wall clock saw the hour.
        let slept = LastUsed {
            at: Instant::now(),
            wall: SystemTime::now() - Duration::from_secs(3600),
        };
        assert!(slept.elapsed() >= Duration::from_secs(3600));
        // A wall clock set back does not make the vault younger.
        let set_back = LastUsed {
            at: Instant::now() - Duration::from_secs(10),
            wall: SystemTime::now() + Duration::from_secs(3600),
        };
        assert!(set_back.elapsed() >= Duration::from_secs(10));
    }
}

//! Time as the core sees it: a number the caller hands in.
//!
//! The core never reads a clock. Every function that needs to know "when"
//! takes a [`Time`] argument instead. In the real runtime that value comes
//! from the operating system's monotonic clock; in the simulator it comes
//! from a simulated clock that jumps from event to event. Because the core
//! cannot tell the difference, the same protocol code is exercised in both
//! places, and a simulated run is exactly repeatable.
//!
//! A `Time` is a count of nanoseconds since an arbitrary origin chosen by the
//! caller (the start of the process, or of the simulation). Only differences
//! between two `Time`s mean anything.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in time, in nanoseconds since a caller-chosen origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    /// The origin.
    pub const ZERO: Time = Time(0);

    /// A time `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Time {
        Time(nanos)
    }

    /// A time `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Time {
        Time(micros.saturating_mul(1_000))
    }

    /// A time `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Time {
        Time(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the origin (rounded down).
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// How long after `earlier` this time is; zero if it is not later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates instead of overflowing: a timer "at the end of time" is a
    /// timer that never fires, which is what a huge timeout means.
    fn add(self, d: Duration) -> Time {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Time(self.0.saturating_add(nanos))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, d: Duration) {
        *self = *self + d;
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / 1_000_000_000,
            (self.0 / 1_000) % 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(5);
        assert_eq!(t + Duration::from_millis(1), Time::from_millis(6));
        assert_eq!(
            Time::from_nanos(u64::MAX - 1) + Duration::from_secs(1),
            Time::from_nanos(u64::MAX)
        );
        assert_eq!(Time::ZERO.saturating_since(t), Duration::ZERO);
        assert_eq!(
            t.saturating_since(Time::from_millis(2)),
            Duration::from_millis(3)
        );
        assert_eq!(t.to_string(), "0.005000s");
    }
}

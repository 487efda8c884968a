//! Delivery latency: how long messages took from send to delivery.

use serde::{Deserialize, Serialize};

use crate::PeerLog;

/// Send-to-delivery latency percentiles, in microseconds.
///
/// A sample is `delivered_us - sent_us` of one log entry that has both
/// (0 if the clocks say it arrived before it left, which only clock skew
/// between machines can cause). Every delivery counts, so a message
/// multicast to N peers gives N samples.
///
/// Percentiles use the *nearest-rank* method: the p-th percentile is the
/// smallest sample such that at least p % of all samples are at or below
/// it. Each percentile is therefore one of the samples (never an
/// interpolation between two), `p50` of `[1, 2, 3, 4]` is 2, and with fewer
/// than 1000 samples `p999` is the maximum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Median (50th percentile).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Latency {
    /// The latency of every entry of `logs` that has both times; `None`
    /// when none has.
    pub fn of_logs(logs: &[PeerLog]) -> Option<Latency> {
        Latency::from_samples(
            logs.iter()
                .flat_map(|l| &l.entries)
                .filter_map(|e| Some(e.delivered_us?.saturating_sub(e.sent_us?)))
                .collect(),
        )
    }

    /// Summarises `samples` (in any order); `None` without samples.
    pub fn from_samples(mut samples: Vec<u64>) -> Option<Latency> {
        let n = samples.len();
        if n == 0 {
            return None;
        }
        samples.sort_unstable();
        // Rank ⌈per_mille × n / 1000⌉ (1-based), in integers so that no
        // rounding error moves a percentile by one sample.
        let at = |per_mille: u128| {
            let rank = (per_mille * n as u128).div_ceil(1000).max(1);
            samples[(rank as usize).min(n) - 1]
        };
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Latency {
            count: n as u64,
            mean: sum as f64 / n as f64,
            p50: at(500),
            p90: at(900),
            p99: at(990),
            p999: at(999),
            max: samples[n - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcts(l: &Latency) -> [u64; 5] {
        [l.p50, l.p90, l.p99, l.p999, l.max]
    }

    #[test]
    fn nearest_rank() {
        let l = Latency::from_samples((1..=100).rev().collect()).unwrap();
        assert_eq!(pcts(&l), [50, 90, 99, 100, 100]);
        assert_eq!((l.count, l.mean), (100, 50.5));
        let l = Latency::from_samples(vec![1, 2, 3, 4]).unwrap();
        assert_eq!(pcts(&l), [2, 4, 4, 4, 4]);
        let l = Latency::from_samples((1..=1000).collect()).unwrap();
        assert_eq!(pcts(&l), [500, 900, 990, 999, 1000]);
        let l = Latency::from_samples((1..=1001).collect()).unwrap();
        assert_eq!(pcts(&l), [501, 901, 991, 1000, 1001]);
    }

    #[test]
    fn one_sample_or_none() {
        let l = Latency::from_samples(vec![7]).unwrap();
        assert_eq!(pcts(&l), [7; 5]);
        assert_eq!(l.mean, 7.0);
        assert_eq!(Latency::from_samples(Vec::new()), None);
    }

    #[test]
    fn huge_samples_do_not_overflow_the_mean() {
        let l = Latency::from_samples(vec![u64::MAX, u64::MAX]).unwrap();
        assert_eq!(l.mean, u64::MAX as f64);
    }
}

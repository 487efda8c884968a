//! The simulated network: regions, delays, jitter, loss, duplication and
//! reordering, every choice drawn from one seeded random number generator.
//!
//! Peers live in *regions* (think: cloud regions). A datagram between two
//! peers of the same region takes the `intra` delay; between regions, the
//! `inter` delay. Each delay is `base ± jitter`, drawn uniformly; jitter alone
//! already reorders datagrams that are sent close together. On top of that a
//! datagram may be lost, duplicated (the copy takes its own delay), or held
//! back by an extra delay (reordering it behind later datagrams).
//!
//! *Skew* makes the network asymmetric: datagrams from a higher-numbered
//! region to a lower-numbered one take `1 + skew` times as long. Different
//! delays in different directions are what make peers in different regions
//! see messages in different orders — the problem the `total` order solves.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use mpcomm_core::MemberId;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// A delay of `base ± jitter`, uniformly distributed, never negative.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delay {
    /// Mean delay.
    pub base: Duration,
    /// Half-width of the uniform spread around `base`.
    pub jitter: Duration,
}

impl Delay {
    /// `base ± jitter`.
    pub const fn new(base: Duration, jitter: Duration) -> Delay {
        Delay { base, jitter }
    }

    /// Draws one delay.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let base = self.base.as_nanos() as i128;
        let jitter = self.jitter.as_nanos() as i128;
        let d = if jitter == 0 {
            base
        } else {
            base + rng.random_range(-jitter..=jitter)
        };
        Duration::from_nanos(d.max(0) as u64)
    }
}

/// How the simulated network behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetProfile {
    /// Delay between peers in the same region.
    pub intra: Delay,
    /// Delay between peers in different regions.
    pub inter: Delay,
    /// Datagrams from a higher-numbered region to a lower one take `1 + skew`
    /// times as long (0 = symmetric).
    pub skew: f64,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra delay of up to
    /// `reorder_delay`, so that later datagrams overtake it.
    pub reorder: f64,
    /// The largest extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

impl Default for NetProfile {
    /// Two regions a continent apart: 1–3 ms within a region, 40 ± 15 ms
    /// between them (the figures of the original MPComm measurements), no
    /// faults.
    fn default() -> NetProfile {
        NetProfile {
            intra: Delay::new(Duration::from_millis(2), Duration::from_millis(1)),
            inter: Delay::new(Duration::from_millis(40), Duration::from_millis(15)),
            skew: 0.0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
        }
    }
}

/// The region of each of `peers` peers when spread over `regions` regions:
/// consecutive blocks, as even as possible (6 peers in 2 regions: 0 0 0 1 1 1).
pub fn region_of(peer: usize, peers: usize, regions: usize) -> usize {
    if regions <= 1 || peers == 0 {
        0
    } else {
        peer * regions.min(peers) / peers
    }
}

/// What happens to one datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost.
    Lost,
    /// Arrives after each of these delays (two for a duplicate).
    Arrives(Vec<Duration>),
}

impl NetProfile {
    /// Decides the fate of a datagram from region `from` to region `to`.
    pub fn fate(&self, from: usize, to: usize, rng: &mut impl Rng) -> Fate {
        if self.loss > 0.0 && rng.random_bool(self.loss.clamp(0.0, 1.0)) {
            return Fate::Lost;
        }
        let copies = if self.duplicate > 0.0 && rng.random_bool(self.duplicate.clamp(0.0, 1.0)) {
            2
        } else {
            1
        };
        let delays = (0..copies)
            .map(|_| {
                let mut d = if from == to {
                    self.intra.sample(rng)
                } else {
                    self.inter.sample(rng)
                };
                if from > to && self.skew > 0.0 {
                    d = d.mul_f64(1.0 + self.skew);
                }
                if self.reorder > 0.0 && rng.random_bool(self.reorder.clamp(0.0, 1.0)) {
                    let extra = self.reorder_delay.as_nanos() as u64;
                    d += Duration::from_nanos(rng.random_range(0..=extra));
                }
                d
            })
            .collect();
        Fate::Arrives(delays)
    }
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Datagrams it lost.
    pub lost: u64,
    /// Extra copies it made.
    pub duplicated: u64,
    /// Datagrams that reached a peer before that peer had started (dropped,
    /// as by a closed port).
    pub before_start: u64,
}

/// A network description that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseNetError(String);

impl ParseNetError {
    /// The error, prefixed with the setting it is about (`loss=1: …`).
    fn setting(self, key: &str, value: &str) -> ParseNetError {
        ParseNetError(format!("{key}={}: {}", value.trim(), self.0))
    }
}

/// Parses a duration such as `40ms`, `1.5s`, `250us`, `250µs` or `0`.
pub fn parse_duration(s: &str) -> Result<Duration, ParseNetError> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| ParseNetError(format!("{s:?} is not a duration (try 40ms)")))?;
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "" if value == 0.0 => 0.0,
        other => {
            return Err(ParseNetError(format!(
                "unknown time unit {other:?} in {s:?} (use ns, us, ms or s)"
            )));
        }
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=3600.0).contains(&secs) {
        return Err(ParseNetError(format!(
            "duration {s:?} is out of range (0 to 1 hour)"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a probability, written one of two ways: as a percentage (`5%`,
/// `0.5%`, `100%`) or as a fraction below one (`0.05`, `0`).
///
/// A bare number of one or more is refused: `loss=1` could mean one
/// percent or every datagram (it used to mean the latter, silently), and
/// `loss=5` is not a fraction at all. The error says what to write.
pub fn parse_probability(s: &str) -> Result<f64, ParseNetError> {
    let s = s.trim();
    let (num, percent) = match s.strip_suffix('%') {
        Some(n) => (n.trim(), true),
        None => (s, false),
    };
    let v = num
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| ParseNetError(format!("{s:?} is not a probability (try 5% or 0.05)")))?;
    if percent {
        if !(0.0..=100.0).contains(&v) {
            return Err(ParseNetError(format!(
                "probability {s:?} is outside 0% to 100%"
            )));
        }
        return Ok(v / 100.0);
    }
    if v < 0.0 {
        return Err(ParseNetError(format!(
            "probability {s:?} is negative (try 5% or 0.05)"
        )));
    }
    if v >= 1.0 {
        return Err(ParseNetError(format!(
            "{s:?} is ambiguous: write {num}% for {num} percent{}; a number without % must be a fraction below 1 (e.g. {})",
            if v == 1.0 {
                " (or 100% to lose every datagram)"
            } else {
                ""
            },
            v / 100.0
        )));
    }
    Ok(v)
}

impl FromStr for Delay {
    type Err = ParseNetError;

    /// `40ms`, `40ms±15ms` or `40ms+-15ms`.
    fn from_str(s: &str) -> Result<Delay, ParseNetError> {
        let (base, jitter) = match s.split_once('±').or_else(|| s.split_once("+-")) {
            Some((b, j)) => (parse_duration(b)?, parse_duration(j)?),
            None => (parse_duration(s)?, Duration::ZERO),
        };
        Ok(Delay { base, jitter })
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        if self.jitter.is_zero() {
            write!(f, "{}ms", ms(self.base))
        } else {
            write!(f, "{}ms±{}ms", ms(self.base), ms(self.jitter))
        }
    }
}

impl FromStr for NetProfile {
    type Err = ParseNetError;

    /// A comma-separated list of `key=value` settings over the defaults of a
    /// fault-free network, e.g. `intra=2ms±1ms, inter=80ms±30ms, loss=1%`.
    /// Keys: `intra`, `inter` (delays), `loss`, `dup` (or `duplicate`),
    /// `reorder` (probabilities), `reorder-delay` (a duration), `skew` (a
    /// factor). The word `none` or `off` gives a network with no delay at all.
    fn from_str(s: &str) -> Result<NetProfile, ParseNetError> {
        let mut p = NetProfile::default();
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("off") {
            p.intra = Delay::new(Duration::ZERO, Duration::ZERO);
            p.inter = p.intra;
            return Ok(p);
        }
        for part in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(ParseNetError(format!(
                    "{part:?} is not key=value (e.g. inter=80ms±30ms)"
                )));
            };
            match key.trim() {
                "intra" => p.intra = value.parse()?,
                "inter" => p.inter = value.parse()?,
                "loss" => {
                    p.loss = parse_probability(value).map_err(|e| e.setting("loss", value))?
                }
                "dup" | "duplicate" => {
                    p.duplicate = parse_probability(value).map_err(|e| e.setting("dup", value))?
                }
                "reorder" => {
                    p.reorder = parse_probability(value).map_err(|e| e.setting("reorder", value))?
                }
                "reorder-delay" | "reorder_delay" => p.reorder_delay = parse_duration(value)?,
                "skew" => {
                    p.skew = value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
                        .ok_or_else(|| {
                            ParseNetError(format!("skew {value:?} must be a number from 0 to 100"))
                        })?
                }
                other => {
                    return Err(ParseNetError(format!(
                        "unknown network setting {other:?} (known: intra, inter, loss, dup, reorder, reorder-delay, skew)"
                    )));
                }
            }
        }
        Ok(p)
    }
}

impl fmt::Display for NetProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "intra={}, inter={}", self.intra, self.inter)?;
        if self.loss > 0.0 {
            write!(f, ", loss={}%", self.loss * 100.0)?;
        }
        if self.duplicate > 0.0 {
            write!(f, ", dup={}%", self.duplicate * 100.0)?;
        }
        if self.reorder > 0.0 {
            write!(
                f,
                ", reorder={}%, reorder-delay={}ms",
                self.reorder * 100.0,
                self.reorder_delay.as_secs_f64() * 1e3
            )?;
        }
        if self.skew > 0.0 {
            write!(f, ", skew={}", self.skew)?;
        }
        Ok(())
    }
}

/// Converts a region index to the label used in reports.
pub fn region_label(region: usize) -> String {
    format!("r{region}")
}

/// Which members share a region with `peer`.
pub fn same_region(peer: MemberId, other: MemberId, peers: usize, regions: usize) -> bool {
    region_of(usize::from(peer), peers, regions) == region_of(usize::from(other), peers, regions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_network_descriptions() {
        let p: NetProfile = "intra=2ms±1ms, inter=80ms+-30ms, loss=1%, dup=0.05, skew=0.5"
            .parse()
            .unwrap();
        assert_eq!(
            p.intra,
            Delay::new(Duration::from_millis(2), Duration::from_millis(1))
        );
        assert_eq!(
            p.inter,
            Delay::new(Duration::from_millis(80), Duration::from_millis(30))
        );
        assert!(
            (p.loss - 0.01).abs() < 1e-12 && (p.duplicate - 0.05).abs() < 1e-12 && p.skew == 0.5
        );
        assert_eq!(
            p.to_string().parse::<NetProfile>().unwrap(),
            p,
            "Display round-trips"
        );
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250µs").unwrap(), Duration::from_micros(250));
        for bad in [
            "inter=80",
            "loss=150%",
            "loss=1",
            "loss=5",
            "loss=-0.1",
            "dup=2",
            "reorder=inf",
            "foo=1",
            "inter",
            "intra=-3ms",
            "skew=abc",
        ] {
            let err = bad.parse::<NetProfile>().unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        assert_eq!(
            "off".parse::<NetProfile>().unwrap().inter.base,
            Duration::ZERO
        );
    }

    #[test]
    fn probabilities_are_percentages_or_fractions_below_one() {
        let p = |s: &str| parse_probability(s);
        assert_eq!(p("1%").unwrap(), 0.01);
        assert_eq!(p("0.5 %").unwrap(), 0.005);
        assert_eq!(p("100%").unwrap(), 1.0);
        assert_eq!(p("0").unwrap(), 0.0);
        assert_eq!(p("0.01").unwrap(), 0.01);
        assert_eq!(p("0.999").unwrap(), 0.999);
        // A bare 1 could mean 1 % or 100 %: refused, saying what to write.
        let e = p("1").unwrap_err().to_string();
        assert!(
            e.contains("ambiguous") && e.contains("1%") && e.contains("100%"),
            "{e}"
        );
        let e = p("5").unwrap_err().to_string();
        assert!(e.contains("5%") && e.contains("0.05"), "{e}");
        let e = "inter=40ms,loss=1"
            .parse::<NetProfile>()
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("loss=1: "), "{e}");
        for bad in ["1.0", "-1%", "101%", "x", "%", "nan", "inf"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regions_are_consecutive_blocks() {
        let r: Vec<_> = (0..6).map(|p| region_of(p, 6, 2)).collect();
        assert_eq!(r, vec![0, 0, 0, 1, 1, 1]);
        let r: Vec<_> = (0..5).map(|p| region_of(p, 5, 3)).collect();
        assert_eq!(r, vec![0, 0, 1, 1, 2]);
        assert_eq!(region_of(3, 4, 1), 0);
        assert_eq!(
            region_of(1, 2, 5),
            1,
            "more regions than peers: one peer each"
        );
    }

    #[test]
    fn delays_stay_in_range_and_skew_applies() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let p = NetProfile {
            skew: 1.0,
            ..NetProfile::default()
        };
        for _ in 0..1000 {
            let Fate::Arrives(d) = p.fate(0, 1, &mut rng) else {
                panic!("no loss configured")
            };
            assert!(d[0] >= Duration::from_millis(25) && d[0] <= Duration::from_millis(55));
            let Fate::Arrives(d) = p.fate(1, 0, &mut rng) else {
                panic!("no loss configured")
            };
            assert!(d[0] >= Duration::from_millis(50) && d[0] <= Duration::from_millis(110));
        }
    }

    #[test]
    fn loss_and_duplication_rates_are_roughly_right() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let p = NetProfile {
            loss: 0.2,
            duplicate: 0.1,
            ..NetProfile::default()
        };
        let (mut lost, mut dup) = (0, 0);
        for _ in 0..10_000 {
            match p.fate(0, 0, &mut rng) {
                Fate::Lost => lost += 1,
                Fate::Arrives(d) if d.len() == 2 => dup += 1,
                Fate::Arrives(_) => {}
            }
        }
        assert!((1800..2200).contains(&lost), "{lost}");
        assert!((600..1000).contains(&dup), "{dup}");
    }
}

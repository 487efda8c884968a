//! Faults the simulator injects into a run: crashes, restarts, pauses and
//! partitions.
//!
//! A real group loses members in four typical ways, and each teaches
//! something different about views:
//!
//! | fault | what happens | what the group should do |
//! |---|---|---|
//! | **crash** (crash-stop) | a process dies and never comes back | suspect it, move to a view without it |
//! | **restart** | a process dies and a new one (a new incarnation) takes its place | exclude the old incarnation, admit the new one |
//! | **pause** | a process stops (a laptop sleeps, `SIGSTOP`), then resumes with its old state | exclude it if the pause outlasts the failure detector; on resuming it learns it was excluded and stops — it never splits the group |
//! | **partition** | some members cannot reach the others for a while, then the link heals | the majority goes on; the minority stops |
//!
//! Each is written `MEMBER@TIME` (a crash), `MEMBER@TIME+DOWN` (a restart
//! after `DOWN`, or a pause of `DOWN`), or `M1,M2,…@TIME+LENGTH` (a
//! partition of those members from the rest), times counted from the
//! simulation's start: `2@1.5s`, `0@800ms+2s`, `0,1@2s+3s`.

use std::fmt;
use std::time::Duration;

use mpcomm_core::MemberId;
use serde::Serialize;

use crate::net::parse_duration;

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Fault {
    /// `member` crashes at `at` and never comes back.
    Crash {
        /// The member.
        member: MemberId,
        /// When.
        #[serde(serialize_with = "ser_ms")]
        at: Duration,
    },
    /// `member` crashes at `at`; a new process (a new incarnation) starts
    /// in its place `down` later and asks to join.
    Restart {
        /// The member.
        member: MemberId,
        /// When it crashes.
        #[serde(serialize_with = "ser_ms")]
        at: Duration,
        /// How long until the new process starts.
        #[serde(serialize_with = "ser_ms")]
        down: Duration,
    },
    /// `member` stops handling anything from `at` for `length`, then goes on
    /// with its old state (datagrams that arrived meanwhile wait in its
    /// socket buffer).
    Pause {
        /// The member.
        member: MemberId,
        /// When it stops.
        #[serde(serialize_with = "ser_ms")]
        at: Duration,
        /// For how long.
        #[serde(serialize_with = "ser_ms")]
        length: Duration,
    },
    /// `side` cannot exchange datagrams with the other members from `at`
    /// for `length`.
    Partition {
        /// The members cut off from the rest.
        side: Vec<MemberId>,
        /// When the cut starts.
        #[serde(serialize_with = "ser_ms")]
        at: Duration,
        /// How long it lasts.
        #[serde(serialize_with = "ser_ms")]
        length: Duration,
    },
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl Fault {
    /// The member(s) the fault strikes.
    pub fn members(&self) -> Vec<MemberId> {
        match self {
            Fault::Crash { member, .. }
            | Fault::Restart { member, .. }
            | Fault::Pause { member, .. } => vec![*member],
            Fault::Partition { side, .. } => side.clone(),
        }
    }

    /// Parses a crash: `MEMBER@TIME`.
    pub fn parse_crash(s: &str) -> Result<Fault, String> {
        let (member, at) = member_at(s)?;
        if at.1.is_some() {
            return Err(format!("{s:?}: a crash is MEMBER@TIME (no +DURATION)"));
        }
        Ok(Fault::Crash { member, at: at.0 })
    }

    /// Parses a restart: `MEMBER@TIME+DOWN`.
    pub fn parse_restart(s: &str) -> Result<Fault, String> {
        let (member, (at, down)) = member_at(s)?;
        let down = down.ok_or_else(|| format!("{s:?}: a restart is MEMBER@TIME+DOWNTIME"))?;
        Ok(Fault::Restart { member, at, down })
    }

    /// Parses a pause: `MEMBER@TIME+LENGTH`.
    pub fn parse_pause(s: &str) -> Result<Fault, String> {
        let (member, (at, length)) = member_at(s)?;
        let length = length.ok_or_else(|| format!("{s:?}: a pause is MEMBER@TIME+LENGTH"))?;
        Ok(Fault::Pause { member, at, length })
    }

    /// Parses a partition: `M1,M2,…@TIME+LENGTH`.
    pub fn parse_partition(s: &str) -> Result<Fault, String> {
        let (side, when) = s
            .split_once('@')
            .ok_or_else(|| format!("{s:?}: a partition is M1,M2,…@TIME+LENGTH"))?;
        let side = side
            .split(',')
            .map(|m| {
                m.trim()
                    .parse::<MemberId>()
                    .map_err(|_| format!("{s:?}: {m:?} is not a member id"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (at, length) = time_plus(when, s)?;
        let length = length.ok_or_else(|| format!("{s:?}: a partition is M1,M2,…@TIME+LENGTH"))?;
        Ok(Fault::Partition { side, at, length })
    }

    /// Checks the fault against a group of `peers` members.
    pub fn validate(&self, peers: usize) -> Result<(), String> {
        for m in self.members() {
            if usize::from(m) >= peers {
                return Err(format!(
                    "fault on member {m}, but the group has members 0..{peers}"
                ));
            }
        }
        if let Fault::Partition { side, .. } = self
            && (side.is_empty() || side.len() >= peers)
        {
            return Err("a partition must cut some members, not all, from the rest".into());
        }
        Ok(())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| format!("{}ms", d.as_secs_f64() * 1000.0);
        match self {
            Fault::Crash { member, at } => write!(f, "--crash {member}@{}", ms(at)),
            Fault::Restart { member, at, down } => {
                write!(f, "--restart {member}@{}+{}", ms(at), ms(down))
            }
            Fault::Pause { member, at, length } => {
                write!(f, "--pause {member}@{}+{}", ms(at), ms(length))
            }
            Fault::Partition { side, at, length } => {
                let side: Vec<String> = side.iter().map(|m| m.to_string()).collect();
                write!(
                    f,
                    "--partition {}@{}+{}",
                    side.join(","),
                    ms(at),
                    ms(length)
                )
            }
        }
    }
}

fn member_at(s: &str) -> Result<(MemberId, (Duration, Option<Duration>)), String> {
    let (member, when) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?}: expected MEMBER@TIME, e.g. 2@1.5s"))?;
    let member = member
        .trim()
        .parse::<MemberId>()
        .map_err(|_| format!("{s:?}: {member:?} is not a member id"))?;
    Ok((member, time_plus(when, s)?))
}

fn time_plus(when: &str, whole: &str) -> Result<(Duration, Option<Duration>), String> {
    let (at, plus) = match when.split_once('+') {
        Some((a, p)) => (a, Some(p)),
        None => (when, None),
    };
    let at = parse_duration(at.trim()).map_err(|e| format!("{whole:?}: {e}"))?;
    let plus = plus
        .map(|p| parse_duration(p.trim()).map_err(|e| format!("{whole:?}: {e}")))
        .transpose()?;
    Ok((at, plus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_and_print() {
        let c = Fault::parse_crash("2@1.5s").unwrap();
        assert_eq!(
            c,
            Fault::Crash {
                member: 2,
                at: Duration::from_millis(1500)
            }
        );
        assert_eq!(c.to_string(), "--crash 2@1500ms");
        let r = Fault::parse_restart("0@800ms+2s").unwrap();
        assert_eq!(Fault::parse_restart(&r.to_string()[10..]).unwrap(), r);
        let p = Fault::parse_partition("0,1@2s+3s").unwrap();
        assert_eq!(p.members(), vec![0, 1]);
        assert!(Fault::parse_crash("x@1s").is_err());
        assert!(Fault::parse_crash("1@1s+2s").is_err());
        assert!(Fault::parse_pause("1@1s").is_err());
        assert!(
            Fault::parse_partition("0,1,2@1s+1s")
                .unwrap()
                .validate(3)
                .is_err()
        );
        assert!(Fault::parse_crash("7@1s").unwrap().validate(4).is_err());
    }
}

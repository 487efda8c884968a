//! Who takes part in a run: the peers the group manager lists *and* that
//! answer.
//!
//! The group manager's list is a phone book, not a roll call: a peer that
//! crashed stays listed until its registration expires (10 s by default),
//! and one that is paused (`SIGSTOP`) or cut off stays listed as long as
//! its heartbeats get through — or longer. Starting a run with such a peer
//! costs the run: the start command is refused ("connection refused"), or
//! the handshake waits for a member that never answers. So before every
//! run the server *pings* each listed peer on its control address, and a
//! peer that does not answer within a second or two is not a member.
//!
//! With `--expect N` every run waits (up to `--expect-timeout`) until at
//! least N peers answer, and fails naming who is missing if they do not —
//! not only the first run: a peer lost between runs is waited for, or the
//! run fails saying so, instead of running silently with fewer members.

use std::time::Duration;

use anyhow::bail;
use tokio::time::Instant;

use mpcomm::control::{self, GmRequest, PeerCommand, PeerInfo, Reply};
use mpcomm_core::KeyRing;

use super::ServerEvent;

/// How long a listed peer may take to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `list` request may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two looks at the membership while waiting.
const POLL: Duration = Duration::from_millis(200);
/// While the count does not change, "waiting" is said again this often.
const REMIND: Duration = Duration::from_secs(10);

/// The listed peers, in natural name order (the order member ids are
/// given in), split into those that answer a ping and those that do not
/// (with why).
pub(super) struct Roll {
    pub answering: Vec<PeerInfo>,
    pub silent: Vec<(PeerInfo, String)>,
}

/// Lists the peers at the group manager.
pub(super) async fn list(
    group_manager: &str,
    keys: Option<&KeyRing>,
) -> anyhow::Result<Vec<PeerInfo>> {
    let reply: Reply = control::request_keyed(group_manager, &GmRequest::List, LIST_TIMEOUT, keys)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot list the peers at the group manager {group_manager}: {e}; {}",
                super::super::reach::hint(group_manager)
            )
        })?;
    let mut peers = reply.peers.unwrap_or_default();
    peers.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(peers)
}

/// Lists the peers and pings every one of them, all at once.
pub(super) async fn roll_call(group_manager: &str, keys: Option<&KeyRing>) -> anyhow::Result<Roll> {
    let listed = list(group_manager, keys).await?;
    let pings = listed.iter().map(|p| {
        let p = p.clone();
        let keys = keys.cloned();
        tokio::spawn(async move {
            let answer = control::request_keyed::<_, _, Reply>(
                p.control_addr,
                &PeerCommand::Ping,
                PING_TIMEOUT,
                keys.as_ref(),
            )
            .await;
            let verdict = match answer {
                Ok(r) if r.name.as_deref() == Some(p.name.as_str()) => Ok(()),
                Ok(r) => Err(format!(
                    "another process answers at {}: {:?}",
                    p.control_addr,
                    r.name.unwrap_or_default()
                )),
                Err(e) => Err(format!("{}: {e}", p.control_addr)),
            };
            (p, verdict)
        })
    });
    let mut roll = Roll {
        answering: Vec::new(),
        silent: Vec::new(),
    };
    for ping in pings.collect::<Vec<_>>() {
        match ping.await {
            Ok((p, Ok(()))) => roll.answering.push(p),
            Ok((p, Err(why))) => roll.silent.push((p, why)),
            Err(e) => bail!("pinging the peers failed: {e}"),
        }
    }
    Ok(roll)
}

/// The members of the next run: every listed peer that answers, once at
/// least `expect` of them do (at least one without `expect`), waiting up
/// to `timeout`. The error says who is missing: how many answer, and which
/// listed peers do not, and why.
pub(super) async fn wait_for_members(
    group_manager: &str,
    keys: Option<&KeyRing>,
    expect: Option<usize>,
    timeout: Duration,
    progress: &mut dyn FnMut(ServerEvent),
) -> anyhow::Result<Vec<PeerInfo>> {
    let wanted = expect.unwrap_or(1).max(1);
    let until = Instant::now() + timeout;
    // What was last said, and when: progress is told when the count
    // changes, and now and then while it does not.
    let mut said: Option<(usize, Instant)> = None;
    loop {
        match roll_call(group_manager, keys).await {
            Ok(roll) => {
                let n = roll.answering.len();
                if n >= wanted {
                    return Ok(roll.answering);
                }
                let now = Instant::now();
                if said.is_none_or(|(k, at)| k != n || now >= at + REMIND) {
                    progress(ServerEvent::Waiting {
                        registered: n,
                        expected: wanted,
                    });
                    said = Some((n, now));
                }
                if now >= until {
                    bail!("{}", missing(&roll, wanted, timeout, expect.is_some()));
                }
            }
            // The group manager may be restarting: keep trying until the
            // timeout, then say so.
            Err(e) if Instant::now() >= until => return Err(e),
            Err(e) => tracing::debug!("{e:#}"),
        }
        tokio::time::sleep(POLL).await;
    }
}

/// "only 3 of the 4 expected peers answer …", naming them and the silent.
fn missing(roll: &Roll, wanted: usize, timeout: Duration, expected: bool) -> String {
    let names = |v: &[PeerInfo]| {
        v.iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut s = if roll.answering.is_empty() && !expected {
        "no peer answers".to_string()
    } else {
        format!(
            "only {} of the {wanted} expected peers answer{} after waiting {timeout:?}",
            roll.answering.len(),
            if roll.answering.is_empty() {
                String::new()
            } else {
                format!(" ({})", names(&roll.answering))
            }
        )
    };
    if !roll.silent.is_empty() {
        let silent: Vec<String> = roll
            .silent
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.name))
            .collect();
        s.push_str(&format!(
            "; listed by the group manager but not answering: {}",
            silent.join(", ")
        ));
    }
    s.push_str(
        "; start the missing peers (`mpcomm peer --group-manager …`), or expect fewer with --expect",
    );
    s
}

/// Compares names as people do: runs of digits by their value, so that
/// `peer-2` comes before `peer-10` and a demo of 12 peers numbers its
/// members in the order of their names. Equal by that rule (`peer-02` and
/// `peer-2`), names fall back to byte order, so the order is total.
pub(super) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> impl Iterator<Item = &str> {
        let mut rest = s;
        std::iter::from_fn(move || {
            let first = rest.chars().next()?;
            let digit = first.is_ascii_digit();
            let end = rest
                .find(|c: char| c.is_ascii_digit() != digit)
                .unwrap_or(rest.len());
            let (chunk, tail) = rest.split_at(end);
            rest = tail;
            Some(chunk)
        })
    }
    let chunk_cmp = |x: &str, y: &str| {
        let digits = |c: &str| c.bytes().all(|b| b.is_ascii_digit());
        if digits(x) && digits(y) {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        } else {
            x.cmp(y)
        }
    };
    let (mut xs, mut ys) = (chunks(a), chunks(b));
    let by_value = loop {
        match (xs.next(), ys.next()) {
            (Some(x), Some(y)) => match chunk_cmp(x, y) {
                std::cmp::Ordering::Equal => continue,
                other => break other,
            },
            (x, y) => break x.is_some().cmp(&y.is_some()),
        }
    };
    by_value.then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut names = vec![
            "peer-10", "peer-2", "peer-1", "peer-02", "b", "a10b", "a9b", "peer-", "",
        ];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            names,
            [
                "", "a9b", "a10b", "b", "peer-", "peer-1", "peer-02", "peer-2", "peer-10"
            ]
        );
    }

    fn info(name: &str) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            data_addr: "127.0.0.1:7000".parse().unwrap(),
            control_addr: "127.0.0.1:7001".parse().unwrap(),
            region: "r0".into(),
            age_ms: 0,
        }
    }

    #[test]
    fn the_missing_are_named() {
        let roll = Roll {
            answering: vec![info("a"), info("b"), info("c")],
            silent: vec![(info("d"), "127.0.0.1:7001: connection refused".into())],
        };
        let s = missing(&roll, 4, Duration::from_secs(4), true);
        assert!(
            s.starts_with("only 3 of the 4 expected peers answer (a, b, c) after waiting 4s; listed by the group manager but not answering: d (127.0.0.1:7001: connection refused)"),
            "{s}"
        );
    }
}

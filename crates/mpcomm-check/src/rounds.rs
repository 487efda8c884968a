//! The original MPComm metric: *unordered rounds*, and how the original
//! miscounted it.
//!
//! Line the logs up side by side. *Round* `j` is everybody's `j`-th
//! delivery (counting from 0). A round is *unordered* when not every peer
//! delivered the same message in it; a peer whose log has no `j`-th entry
//! counts as different. There are as many rounds as the longest log has
//! entries.
//!
//! ```text
//!   round:     0    1    2    3
//!   peer 0:   0:0  1:0  0:1  1:1
//!   peer 1:   0:0  1:0  0:1  1:1
//!   peer 2:   0:0  1:0  1:1  0:1      rounds 2 and 3 are unordered
//! ```
//!
//! The metric is easy to explain but crude: it counts positions, not
//! disagreements. One lost message shifts every later delivery of that peer
//! by one place, so every later round becomes "unordered" although no two
//! peers ever delivered two messages in opposite orders. The properties in
//! the crate root ([`crate::check`]) say precisely what went wrong; this
//! number is kept because it is what the original printed and what students
//! compare.

use crate::PeerLog;

/// The unordered-rounds count of a set of logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rounds {
    /// Rounds in all: the length of the longest log.
    pub rounds: u64,
    /// Rounds in which not every peer delivered the same message.
    pub unordered: u64,
    /// The first unordered round (from 0), if any.
    pub first_unordered: Option<u64>,
}

/// Counts unordered rounds over every position of every log.
///
/// With no logs or one log there is nobody to disagree with: 0. The order
/// of `logs` does not matter. Entries are compared by message
/// (`sender:seq`) only; stamps and times are ignored.
pub fn unordered_rounds(logs: &[PeerLog]) -> Rounds {
    let rounds = logs.iter().map(|l| l.entries.len()).max().unwrap_or(0);
    let mut out = Rounds {
        rounds: rounds as u64,
        ..Rounds::default()
    };
    let Some((head, rest)) = logs.split_first() else {
        return out;
    };
    for j in 0..rounds {
        let m = head.entries.get(j).map(|e| e.msg());
        let same = m.is_some() && rest.iter().all(|l| l.entries.get(j).map(|e| e.msg()) == m);
        if !same {
            out.unordered += 1;
            out.first_unordered.get_or_insert(j as u64);
        }
    }
    out
}

/// What the original comparison server would have printed for `logs`,
/// bugs included, for comparison with [`unordered_rounds`].
///
/// `logs` must be in the order the server received them: the original
/// compared everybody with *the first log to arrive* (which it called
/// peer 0). `messages_per_peer` is the number the operator typed, the
/// messages each peer sent. The original loop was, in Python:
///
/// ```text
/// for j in range(0, nMsgs-1):           # positions 0 .. nMsgs-2 only
///     firstMsg = msgs[0][j]
///     for i in range(1, N-1):           # peers 1 .. N-2 only
///         if firstMsg != msgs[i][j]:
///             unordered = unordered + 1
///             break
/// ```
///
/// Three mistakes hide in it:
///
/// * every peer delivers `N × nMsgs` messages, but it looked at only the
///   first `nMsgs - 1` positions — with 4 peers sending 20 messages each,
///   19 of 80 rounds, so it could never print more than 19;
/// * `range(0, nMsgs-1)` also drops position `nMsgs - 1`, the last one it
///   meant to look at;
/// * `range(1, N-1)` skips the last peer, so a peer that disagreed alone was
///   never seen, and with two peers nothing at all was compared.
///
/// Where the original would have crashed on a log that is too short (an
/// `IndexError`), this counts the missing entry as a different message.
pub fn original_unordered_rounds(logs: &[PeerLog], messages_per_peer: u64) -> u64 {
    let Some((first, others)) = logs.split_first() else {
        return 0;
    };
    // `range(1, N-1)`: every log but the first and the last.
    let compared = match others.split_last() {
        Some((_, middle)) => middle,
        None => return 0,
    };
    let positions = messages_per_peer.saturating_sub(1);
    let mut unordered = 0;
    for j in 0..positions {
        let Ok(j) = usize::try_from(j) else { break };
        let at = |l: &PeerLog| l.entries.get(j).map(|e| e.msg());
        let head = at(first);
        if compared.iter().any(|l| at(l) != head) {
            unordered += 1;
        }
        if j >= first.entries.len() && compared.iter().all(|l| j >= l.entries.len()) {
            // Past every compared log: nothing more can differ.
            break;
        }
    }
    unordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::log;

    const ALL: [(u16, u64); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

    fn rounds(logs: &[PeerLog]) -> (u64, u64, Option<u64>) {
        let r = unordered_rounds(logs);
        (r.unordered, r.rounds, r.first_unordered)
    }

    #[test]
    fn identical_logs_have_no_unordered_round() {
        let logs: Vec<_> = (0..4).map(|p| log(p, &ALL)).collect();
        assert_eq!(rounds(&logs), (0, 4, None));
    }

    #[test]
    fn one_log_or_none_has_nobody_to_disagree_with() {
        assert_eq!(rounds(&[log(0, &ALL)]), (0, 4, None));
        assert_eq!(rounds(&[]), (0, 0, None));
        assert_eq!(rounds(&[log(0, &[]), log(1, &[])]), (0, 0, None));
    }

    #[test]
    fn disorder_only_in_the_last_round_counts() {
        // 2 peers × 2 messages, a swap of the last two positions. (With 2
        // messages per peer the original looked at position 0 only, and with
        // 2 peers at no peer at all.)
        let logs = [log(0, &ALL), log(1, &[(0, 0), (1, 0), (1, 1), (0, 1)])];
        assert_eq!(rounds(&logs), (2, 4, Some(2)));
        let last_only = [log(0, &[(0, 0), (1, 0)]), log(1, &[(0, 0), (1, 1)])];
        assert_eq!(rounds(&last_only), (1, 2, Some(1)));
        assert_eq!(original_unordered_rounds(&logs, 2), 0);
    }

    #[test]
    fn a_disagreement_of_the_last_peer_alone_counts() {
        let logs = [
            log(0, &ALL),
            log(1, &ALL),
            log(2, &[(1, 0), (0, 0), (0, 1), (1, 1)]),
        ];
        assert_eq!(rounds(&logs), (2, 4, Some(0)));
        // The original compared peer 1 only: nothing.
        assert_eq!(original_unordered_rounds(&logs, 4), 0);
        // Put the odd log in the middle and the original sees round 0 (its
        // loop over positions stops before round 1 when nMsgs is 2).
        let middle = [logs[0].clone(), logs[2].clone(), logs[1].clone()];
        assert_eq!(original_unordered_rounds(&middle, 2), 1);
        assert_eq!(original_unordered_rounds(&middle, 4), 2);
    }

    #[test]
    fn a_shorter_log_makes_its_missing_rounds_unordered() {
        let logs = [log(0, &ALL), log(1, &ALL[..3]), log(2, &ALL)];
        assert_eq!(rounds(&logs), (1, 4, Some(3)));
        // The shorter log may be any of them, the first included.
        let logs = [log(0, &ALL[..2]), log(1, &ALL), log(2, &ALL)];
        assert_eq!(rounds(&logs), (2, 4, Some(2)));
    }

    #[test]
    fn one_lost_message_shifts_every_later_round() {
        // Peer 1 never got 0:0; no two messages are in opposite orders, yet
        // every round is unordered.
        let logs = [log(0, &ALL), log(1, &ALL[1..])];
        assert_eq!(rounds(&logs), (4, 4, Some(0)));
    }

    #[test]
    fn the_original_looked_at_n_minus_1_of_n_times_peers_rounds() {
        // 4 peers sending 5 messages each deliver 20 messages; the last two
        // logs reverse everything, so all 20 rounds are unordered.
        let forward: Vec<(u16, u64)> = (0..20).map(|i| ((i % 4) as u16, i / 4)).collect();
        let backward: Vec<(u16, u64)> = forward.iter().rev().copied().collect();
        let logs = [
            log(0, &forward),
            log(1, &forward),
            log(2, &backward),
            log(3, &backward),
        ];
        assert_eq!(rounds(&logs), (20, 20, Some(0)));
        assert_eq!(original_unordered_rounds(&logs, 5), 4);
        // An absurd message count does not make it loop for ever.
        assert_eq!(original_unordered_rounds(&logs, u64::MAX), 20);
    }
}

//! What every property check needs, computed once.
//!
//! Logs can hold millions of entries, so the checks must not compare logs
//! entry by entry with hash look-ups over and over. Instead each distinct
//! message gets a small integer id (one hash look-up per entry, once), and
//! every check then works on vectors indexed by id.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::{Msg, PeerLog, RunSpec};

/// A log's first duplicate: the message and the positions of its first and
/// second delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dup {
    pub msg: Msg,
    pub first: usize,
    pub second: usize,
}

pub(crate) struct Index<'a> {
    pub logs: &'a [PeerLog],
    /// Indices into `logs`, sorted by peer id (ties: by index). Every
    /// "first counter-example" is first in this order.
    pub order: Vec<usize>,
    /// Message id → message.
    pub msgs: Vec<Msg>,
    /// Per log (indexed like `logs`): the ids of its messages at their first
    /// delivery, in delivery order. Order properties look at these: a
    /// duplicate delivery is integrity's business, not an order's.
    pub firsts: Vec<Vec<usize>>,
    /// Per log: its first duplicate delivery (the earliest second delivery).
    pub dup: Vec<Option<Dup>>,
    /// Per message id: how many logs delivered it.
    pub holders: Vec<usize>,
    /// Per log: the id of every entry, duplicates included, in log order.
    pub raw: Vec<Vec<usize>>,
    dense: Dense,
    others: HashMap<Msg, usize, BuildHasherDefault<MsgHasher>>,
}

impl<'a> Index<'a> {
    pub fn new(spec: &RunSpec, logs: &'a [PeerLog]) -> Index<'a> {
        let mut order: Vec<usize> = (0..logs.len()).collect();
        order.sort_by_key(|&i| (logs[i].peer, i));
        let total: usize = logs.iter().map(|l| l.entries.len()).sum();
        // Messages that were sent get the ids 0..dense.len(), in order;
        // others (invented by a faulty log) get ids after those, through a
        // hash map.
        let dense = Dense::new(spec, total);
        let mut msgs = dense.messages();
        let mut others: HashMap<Msg, usize, BuildHasherDefault<MsgHasher>> = HashMap::default();
        let mut holders = vec![0; msgs.len()];
        // Per message id: the last log (index + 1) that delivered it, and
        // where. A log is processed whole before the next, so "seen by this
        // log" is `owner[id] == log + 1`, without clearing between logs.
        let mut owner: Vec<usize> = vec![0; msgs.len()];
        let mut at: Vec<usize> = vec![0; msgs.len()];
        let mut firsts = vec![Vec::new(); logs.len()];
        let mut raw = vec![Vec::new(); logs.len()];
        let mut dup = vec![None; logs.len()];
        for &li in &order {
            let log = &logs[li];
            let mut seq = Vec::with_capacity(log.entries.len());
            let mut all = Vec::with_capacity(log.entries.len());
            for (pos, e) in log.entries.iter().enumerate() {
                let m = e.msg();
                let id = match dense.id(m) {
                    Some(id) => id,
                    None => *others.entry(m).or_insert_with(|| {
                        msgs.push(m);
                        holders.push(0);
                        owner.push(0);
                        at.push(0);
                        msgs.len() - 1
                    }),
                };
                all.push(id);
                if owner[id] == li + 1 {
                    if dup[li].is_none() {
                        dup[li] = Some(Dup {
                            msg: m,
                            first: at[id],
                            second: pos,
                        });
                    }
                } else {
                    owner[id] = li + 1;
                    at[id] = pos;
                    holders[id] += 1;
                    seq.push(id);
                }
            }
            firsts[li] = seq;
            raw[li] = all;
        }
        Index {
            logs,
            order,
            msgs,
            firsts,
            dup,
            holders,
            raw,
            dense,
            others,
        }
    }

    /// The id of message `m`, if some log delivered it or it was sent.
    pub fn id(&self, m: Msg) -> Option<usize> {
        self.dense.id(m).or_else(|| self.others.get(&m).copied())
    }

    /// The peer of log `li`.
    pub fn peer(&self, li: usize) -> u16 {
        self.logs[li].peer
    }
}

/// Dense ids for the messages that were sent: member `s`'s message `q` is
/// `start[s] + q`. Used only when there are not many more sent messages than
/// deliveries in the logs (a spec claiming billions of messages must not
/// make the checker allocate for them); otherwise every message goes
/// through the hash map.
struct Dense {
    /// `start[s]..start[s + 1]` are member `s`'s ids.
    start: Vec<usize>,
}

impl Dense {
    fn new(spec: &RunSpec, deliveries: usize) -> Dense {
        let senders = spec
            .members
            .min(spec.sent.len())
            .min(usize::from(u16::MAX) + 1);
        let budget = deliveries.saturating_mul(2).saturating_add(1024);
        let mut start = Vec::with_capacity(senders + 1);
        start.push(0usize);
        for &sent in &spec.sent[..senders] {
            let next = usize::try_from(sent)
                .ok()
                .and_then(|n| start.last().and_then(|s| s.checked_add(n)))
                .filter(|&n| n <= budget);
            match next {
                Some(n) => start.push(n),
                None => return Dense { start: vec![0] },
            }
        }
        Dense { start }
    }

    fn len(&self) -> usize {
        self.start.last().copied().unwrap_or(0)
    }

    fn id(&self, m: Msg) -> Option<usize> {
        let s = usize::from(m.sender);
        let (&from, &to) = (self.start.get(s)?, self.start.get(s + 1)?);
        let q = usize::try_from(m.seq).ok()?;
        (q < to - from).then(|| from + q)
    }

    /// Every dense id's message, in id order.
    fn messages(&self) -> Vec<Msg> {
        let mut msgs = Vec::with_capacity(self.len());
        for (sender, w) in self.start.windows(2).enumerate() {
            // `start` has at most 65 537 entries: senders fit in u16.
            let sender = sender as u16;
            msgs.extend((0..(w[1] - w[0]) as u64).map(|seq| Msg { sender, seq }));
        }
        msgs
    }
}

/// A fast hasher for [`Msg`] keys (the default SipHash is several times
/// slower and its protection against crafted collisions buys nothing for an
/// offline checker). Multiply-rotate mixing as in FxHash, with a full
/// avalanche at the end so that the high bits the hash table relies on
/// depend on every input bit.
#[derive(Default)]
pub(crate) struct MsgHasher(u64);

impl Hasher for MsgHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u16(&mut self, x: u16) {
        self.write_u64(u64::from(x));
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn finish(&self) -> u64 {
        // splitmix64's finaliser.
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::log;

    fn spec(members: usize, each: u64) -> RunSpec {
        RunSpec::uniform(mpcomm_core::OrderKind::Total, members, each)
    }

    #[test]
    fn firsts_duplicates_and_holders() {
        let logs = [log(1, &[(0, 0), (0, 1), (0, 0), (0, 1)]), log(0, &[(0, 1)])];
        // Dense ids, hashed ids (absurd spec), and a mix (sender 0 sent
        // only one message, so 0:1 is invented).
        for spec in [spec(1, 2), spec(1, u64::MAX), spec(1, 1)] {
            let ix = Index::new(&spec, &logs);
            assert_eq!(ix.order, [1, 0], "sorted by peer");
            let named =
                |li: usize| -> Vec<Msg> { ix.firsts[li].iter().map(|&i| ix.msgs[i]).collect() };
            assert_eq!(
                named(0),
                [Msg { sender: 0, seq: 0 }, Msg { sender: 0, seq: 1 }]
            );
            assert_eq!(named(1), [Msg { sender: 0, seq: 1 }]);
            assert_eq!(
                ix.dup[0],
                Some(Dup {
                    msg: Msg { sender: 0, seq: 0 },
                    first: 0,
                    second: 2
                })
            );
            assert_eq!(ix.dup[1], None);
            let held = |m: Msg| ix.holders[ix.msgs.iter().position(|&x| x == m).unwrap()];
            assert_eq!(held(Msg { sender: 0, seq: 1 }), 2);
            assert_eq!(held(Msg { sender: 0, seq: 0 }), 1);
            let mut distinct = ix.msgs.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), ix.msgs.len(), "one id per message");
        }
    }

    #[test]
    fn dense_ids_only_for_sent_messages_within_budget() {
        let d = Dense::new(
            &RunSpec {
                order: mpcomm_core::OrderKind::None,
                members: 3,
                sent: vec![2, 0, 3, 9],
            },
            10,
        );
        assert_eq!(d.len(), 5);
        let m = |sender, seq| Msg { sender, seq };
        assert_eq!(d.id(m(0, 1)), Some(1));
        assert_eq!(d.id(m(2, 0)), Some(2));
        assert_eq!(d.id(m(2, 2)), Some(4));
        for bad in [m(0, 2), m(1, 0), m(2, 3), m(3, 0), m(9, 0), m(0, u64::MAX)] {
            assert_eq!(d.id(bad), None, "{bad}");
        }
        assert_eq!(d.messages(), [m(0, 0), m(0, 1), m(2, 0), m(2, 1), m(2, 2)]);
        // More sent than twice the deliveries (plus slack): no dense ids.
        let d = Dense::new(&spec(2, 1_000), 100);
        assert_eq!((d.len(), d.id(m(0, 0))), (0, None));
    }
}

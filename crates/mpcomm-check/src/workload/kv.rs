//! `kv`: a replicated key-value store with a few keys.
//!
//! Every member keeps a copy of a store of [`KEYS`] keys, `k0` to `k3`, all
//! empty at the start. Each message carries one operation:
//!
//! * `put k2 1:4` sets key `k2` to the value `1:4` — the name of the
//!   message itself, so that the final store shows whose write won;
//! * `del k2` empties key `k2`.
//!
//! Two writes to the same key from different members, or a write and a
//! delete, do not commute: members that deliver them in different orders
//! end with different stores. This is the course's "database replication"
//! assignment in miniature.
//!
//! The operations come from [`TABLE`] (message `q` of member `s` uses row
//! [`op_for`]`(seed, s, q)`), whose tests check every row against its text.

use std::fmt;
use std::str::FromStr;

use super::{OpParseError, mix};
use crate::Msg;

/// Number of keys: `k0` to `k3`.
pub const KEYS: usize = 4;

/// One row of the operation table: what a message does, before it is
/// given its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvRow {
    /// Write the message's name into this key.
    Put(u8),
    /// Empty this key.
    Del(u8),
}

/// The rows members draw from: writes to every key, more often to `k0` and
/// `k1` (so that writes collide), and deletes of `k0` and `k2`.
pub const TABLE: [KvRow; 8] = [
    KvRow::Put(0),
    KvRow::Put(1),
    KvRow::Put(2),
    KvRow::Put(3),
    KvRow::Put(0),
    KvRow::Put(1),
    KvRow::Del(0),
    KvRow::Del(2),
];

/// One operation on the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOp {
    /// Set `key` to `value`.
    Put {
        /// Which key, `0..KEYS`.
        key: u8,
        /// The value: the name of the message that wrote it.
        value: Msg,
    },
    /// Empty `key`.
    Del {
        /// Which key, `0..KEYS`.
        key: u8,
    },
}

/// The operation of member `sender`'s message `seq` in a run with `seed`.
pub fn op_for(seed: u64, sender: u16, seq: u64) -> KvOp {
    match TABLE[(mix(seed, sender, seq) % TABLE.len() as u64) as usize] {
        KvRow::Put(key) => KvOp::Put {
            key,
            value: Msg { sender, seq },
        },
        KvRow::Del(key) => KvOp::Del { key },
    }
}

/// One copy of the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Store {
    /// Each key's value, `None` when empty.
    pub values: [Option<Msg>; KEYS],
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Applies one operation (a key outside the store is ignored; parsing
    /// refuses it, so only a hand-built operation can have one).
    pub fn apply(&mut self, op: &KvOp) {
        match *op {
            KvOp::Put { key, value } => {
                if let Some(v) = self.values.get_mut(usize::from(key)) {
                    *v = Some(value);
                }
            }
            KvOp::Del { key } => {
                if let Some(v) = self.values.get_mut(usize::from(key)) {
                    *v = None;
                }
            }
        }
    }

    /// Bytes that identify the state, for its hash.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut out = b"kv".to_vec();
        for v in &self.values {
            match v {
                None => out.push(0),
                Some(m) => {
                    out.push(1);
                    out.extend_from_slice(&m.sender.to_be_bytes());
                    out.extend_from_slice(&m.seq.to_be_bytes());
                }
            }
        }
        out
    }
}

impl fmt::Display for Store {
    /// `k0=1:4 k1=- k2=0:7 k3=-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in self.values.iter().enumerate() {
            if k > 0 {
                f.write_str(" ")?;
            }
            match v {
                Some(m) => write!(f, "k{k}={m}")?,
                None => write!(f, "k{k}=-")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for KvOp {
    /// `put k2 1:4` or `del k2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOp::Put { key, value } => write!(f, "put k{key} {value}"),
            KvOp::Del { key } => write!(f, "del k{key}"),
        }
    }
}

fn key(s: &str) -> Option<u8> {
    let n: u8 = s.strip_prefix('k')?.parse().ok()?;
    (usize::from(n) < KEYS && s.len() == 2).then_some(n)
}

impl FromStr for KvOp {
    type Err = OpParseError;

    fn from_str(s: &str) -> Result<KvOp, OpParseError> {
        let bad = || OpParseError(s.to_string());
        let mut words = s.split(' ');
        let op = match (words.next(), words.next(), words.next()) {
            (Some("put"), Some(k), Some(v)) => KvOp::Put {
                key: key(k).ok_or_else(bad)?,
                value: v.parse().map_err(|_| bad())?,
            },
            (Some("del"), Some(k), None) => KvOp::Del {
                key: key(k).ok_or_else(bad)?,
            },
            _ => return Err(bad()),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        Ok(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_does_what_it_says() {
        let full = Store {
            values: [Some(Msg { sender: 9, seq: 9 }); KEYS],
        };
        for (q, row) in TABLE.iter().enumerate() {
            let value = Msg {
                sender: 3,
                seq: q as u64,
            };
            let op = match *row {
                KvRow::Put(key) => KvOp::Put { key, value },
                KvRow::Del(key) => KvOp::Del { key },
            };
            let text = op.to_string();
            assert_eq!(text.parse::<KvOp>(), Ok(op), "{text} reads back");
            let mut s = full;
            s.apply(&op);
            let changed: Vec<usize> = (0..KEYS)
                .filter(|&k| s.values[k] != full.values[k])
                .collect();
            match *row {
                KvRow::Put(key) => {
                    assert!(text.starts_with(&format!("put k{key} ")));
                    assert_eq!(changed, [usize::from(key)], "{text}");
                    assert_eq!(s.values[usize::from(key)], Some(value), "{text}");
                }
                KvRow::Del(key) => {
                    assert_eq!(text, format!("del k{key}"));
                    assert_eq!(changed, [usize::from(key)], "{text}");
                    assert_eq!(s.values[usize::from(key)], None, "{text}");
                }
            }
        }
    }

    #[test]
    fn the_table_matches_its_description() {
        let puts = TABLE.iter().filter(|r| matches!(r, KvRow::Put(_))).count();
        assert_eq!((puts, TABLE.len() - puts), (6, 2));
        assert!(TABLE.iter().all(|r| match r {
            KvRow::Put(k) | KvRow::Del(k) => usize::from(*k) < KEYS,
        }));
        // Every key is written by some row.
        for k in 0..KEYS as u8 {
            assert!(TABLE.contains(&KvRow::Put(k)), "k{k} is never written");
        }
        // The value of a put is the message's own name.
        for q in 0..50 {
            if let KvOp::Put { value, .. } = op_for(3, 2, q) {
                assert_eq!(value, Msg { sender: 2, seq: q });
            }
        }
    }

    #[test]
    fn writes_to_one_key_do_not_commute() {
        let a = KvOp::Put {
            key: 1,
            value: Msg { sender: 0, seq: 0 },
        };
        let b = KvOp::Put {
            key: 1,
            value: Msg { sender: 1, seq: 0 },
        };
        let (mut ab, mut ba) = (Store::new(), Store::new());
        ab.apply(&a);
        ab.apply(&b);
        ba.apply(&b);
        ba.apply(&a);
        assert_ne!(ab, ba);
        assert_eq!(ab.to_string(), "k0=- k1=1:0 k2=- k3=-");
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            "put k4 1:2",
            "put k1",
            "put k1 1",
            "put k1 1:2 3",
            "del",
            "del k9",
            "del k01",
            "get k1",
            "del k1 x",
        ] {
            assert!(bad.parse::<KvOp>().is_err(), "{bad}");
        }
    }
}

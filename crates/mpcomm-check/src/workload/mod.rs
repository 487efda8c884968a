//! Workloads: what the messages of a run say, and what members do with them.
//!
//! The original MPComm's messages said nothing: `sender:seq` and padding.
//! Disorder then shows only as a number, the unordered rounds. The course
//! built on it makes messages *mean* something, so that disorder shows as
//! a wrong answer. mpcomm offers four workloads, the same in the simulator,
//! the peer processes and the checker:
//!
//! | workload | a message is | a member keeps | disorder shows as |
//! |---|---|---|---|
//! | `seq` | nothing but its name | nothing | unordered rounds |
//! | [`bank`] | `deposit 5.00`, `withdraw 4.00`, `interest 1.50%` | an account | different balances |
//! | [`chat`] | `ask 2`, `answer 1:4` | nothing | answers before their questions |
//! | [`kv`] | `put k2 1:4`, `del k2` | a store of 4 keys | different stores |
//!
//! # What travels where
//!
//! A message's payload ([`payload`]) carries its send time, how many
//! messages its sender had delivered when it sent it (`after`), and its
//! operation as text. Each member writes both into the delivery's log
//! line:
//!
//! ```text
//! {"run":7,"peer":2,"sender":1,"seq":4,"stamp":9,"sent_us":…,"delivered_us":…,"after":6,"op":"deposit 5.00"}
//! ```
//!
//! That is all the checker needs to judge a run from its logs alone:
//!
//! * **states** — replaying a member's log through [`State::apply`] gives
//!   that member's account or store after every delivery, so the checker
//!   can say whether the members ended in the same state, and after which
//!   delivery they first differed;
//! * **causality** — message `1:4` with `after: 6` was sent after member 1
//!   had delivered the first 6 messages of *its own* log: those happened
//!   before `1:4`, and no member may deliver `1:4` before them. An answer
//!   also names its question outright.
//!
//! A member's final state also goes into the `end` line of its log
//! (`"state":{"balance":"112.34","refused":0,"hash":"…"}`), so that a
//! reader sees the outcome without replaying anything.
//!
//! # Who sends what
//!
//! [`Script`] is one member's side of a workload: which operation its next
//! message carries and, for `chat`, when an answer is due. The simulator
//! and the peer process drive it the same way: call
//! [`Script::on_deliver`] for every delivery, [`Script::next`] at every
//! scheduled send, and, when [`Script::reply_due`] says so, right away.
//! The operations of `bank` and `kv` come from tables of data ([`bank::TABLE`],
//! [`kv::TABLE`]), picked by a hash of the run's seed and the message's
//! name, so a seed always gives the same operations.

pub mod bank;
pub mod chat;
pub mod kv;
pub mod payload;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use mpcomm_core::MemberId;
use serde::{Deserialize, Serialize};

use crate::Msg;
use bank::{Account, BankOp};
use chat::ChatOp;
use kv::{KvOp, Store};

/// The workloads, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// `sender:seq` messages with no content (the original's).
    #[default]
    Seq,
    /// A replicated bank account.
    Bank,
    /// Questions and answers.
    Chat,
    /// A replicated key-value store.
    Kv,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 4] = [Workload::Seq, Workload::Bank, Workload::Chat, Workload::Kv];

    /// The name used on the command line, in JSON and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Seq => "seq",
            Workload::Bank => "bank",
            Workload::Chat => "chat",
            Workload::Kv => "kv",
        }
    }

    /// Whether members keep a state that must agree (`bank`, `kv`).
    pub fn has_state(self) -> bool {
        matches!(self, Workload::Bank | Workload::Kv)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workload name that is not one of ours.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown workload {0:?} (expected one of: seq, bank, chat, kv)")]
pub struct UnknownWorkload(pub String);

impl FromStr for Workload {
    type Err = UnknownWorkload;

    fn from_str(s: &str) -> Result<Workload, UnknownWorkload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownWorkload(s.to_string()))
    }
}

impl Serialize for Workload {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Workload {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Workload, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Text that is not an operation of any workload.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an operation (e.g. \"deposit 5.00\", \"answer 1:4\", \"put k2 1:4\")")]
pub struct OpParseError(pub String);

/// One message's operation, of any workload. Written (in logs and
/// payloads) as its text: `deposit 5.00`, `ask 2`, `put k2 1:4`, ….
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A `bank` operation.
    Bank(BankOp),
    /// A `chat` message.
    Chat(ChatOp),
    /// A `kv` operation.
    Kv(KvOp),
}

impl Op {
    /// The workload the operation belongs to.
    pub fn workload(&self) -> Workload {
        match self {
            Op::Bank(_) => Workload::Bank,
            Op::Chat(_) => Workload::Chat,
            Op::Kv(_) => Workload::Kv,
        }
    }

    /// The question this message answers, if it is an answer.
    pub fn answers(&self) -> Option<Msg> {
        match self {
            Op::Chat(ChatOp::Answer { question }) => Some(*question),
            _ => None,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Bank(o) => o.fmt(f),
            Op::Chat(o) => o.fmt(f),
            Op::Kv(o) => o.fmt(f),
        }
    }
}

impl FromStr for Op {
    type Err = OpParseError;

    fn from_str(s: &str) -> Result<Op, OpParseError> {
        let verb = s.split(' ').next().unwrap_or("");
        match verb {
            "deposit" | "withdraw" | "interest" => s.parse().map(Op::Bank),
            "ask" | "answer" => s.parse().map(Op::Chat),
            "put" | "del" => s.parse().map(Op::Kv),
            _ => Err(OpParseError(s.to_string())),
        }
    }
}

impl Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A member's state in a stateful workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// A `bank` account.
    Bank(Account),
    /// A `kv` store.
    Kv(Store),
}

impl State {
    /// The state every member starts from; `None` for workloads without
    /// state (`seq`, `chat`).
    pub fn initial(workload: Workload) -> Option<State> {
        match workload {
            Workload::Bank => Some(State::Bank(Account::new())),
            Workload::Kv => Some(State::Kv(Store::new())),
            Workload::Seq | Workload::Chat => None,
        }
    }

    /// Applies a delivered message's operation. Returns `false`, changing
    /// nothing, for an operation of another workload.
    pub fn apply(&mut self, op: &Op) -> bool {
        match (self, op) {
            (State::Bank(a), Op::Bank(o)) => a.apply(o),
            (State::Kv(s), Op::Kv(o)) => s.apply(o),
            _ => return false,
        }
        true
    }

    /// A 64-bit hash of the state (FNV-1a over a fixed byte layout: the
    /// same on every machine and in every build). Equal states have equal
    /// hashes; the hash is what a peer reports, the checker compares the
    /// states themselves.
    pub fn hash(&self) -> u64 {
        let bytes = match self {
            State::Bank(a) => a.canonical(),
            State::Kv(s) => s.canonical(),
        };
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

impl fmt::Display for State {
    /// `balance 112.34` or `k0=1:4 k1=- k2=0:7 k3=-`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Bank(a) => a.fmt(f),
            State::Kv(s) => s.fmt(f),
        }
    }
}

impl Serialize for State {
    /// `{"balance":"112.34","refused":0,"hash":"…"}` or
    /// `{"keys":{"k0":"1:4","k1":null,…},"hash":"…"}`; the hash as 16 hex
    /// digits.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        match self {
            State::Bank(a) => {
                m.serialize_entry("balance", &bank::Money(a.balance).to_string())?;
                m.serialize_entry("refused", &a.refused)?;
            }
            State::Kv(store) => {
                let keys: std::collections::BTreeMap<String, Option<String>> = store
                    .values
                    .iter()
                    .enumerate()
                    .map(|(k, v)| (format!("k{k}"), v.map(|m| m.to_string())))
                    .collect();
                m.serialize_entry("keys", &keys)?;
            }
        }
        m.serialize_entry("hash", &format!("{:016x}", self.hash()))?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for State {
    /// Reads what [`State`]'s `Serialize` writes (the hash is recomputed,
    /// not trusted).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<State, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        struct Repr {
            balance: Option<String>,
            refused: Option<u64>,
            keys: Option<std::collections::BTreeMap<String, Option<String>>>,
        }
        let r = Repr::deserialize(d)?;
        match (r.balance, r.keys) {
            (Some(balance), None) => Ok(State::Bank(Account {
                balance: bank::hundredths(&balance)
                    .ok_or_else(|| D::Error::custom(format!("bad balance {balance:?}")))?,
                refused: r.refused.unwrap_or(0),
            })),
            (None, Some(keys)) => {
                let mut store = Store::new();
                for (k, v) in keys {
                    let slot = k
                        .strip_prefix('k')
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| store.values.get_mut(n))
                        .ok_or_else(|| D::Error::custom(format!("bad key {k:?}")))?;
                    *slot = match v {
                        None => None,
                        Some(v) => Some(v.parse().map_err(D::Error::custom)?),
                    };
                }
                Ok(State::Kv(store))
            }
            _ => Err(D::Error::custom("a state has either a balance or keys")),
        }
    }
}

/// A stable 64-bit mix of a run's seed and a message's name (splitmix64's
/// finaliser), to pick table rows: the same on every machine.
pub(crate) fn mix(seed: u64, sender: MemberId, seq: u64) -> u64 {
    let mut z = seed
        ^ u64::from(sender).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ seq.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a member sends now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// Its next message is due on its own schedule.
    Scheduled,
    /// It has just delivered a question for it ([`Script::reply_due`]).
    Reply,
}

/// One member's side of a workload: what it sends, and when it must
/// answer. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Script {
    workload: Workload,
    me: MemberId,
    members: usize,
    messages: u64,
    seed: u64,
    sent: u64,
    delivered: u64,
    /// `chat`: questions for us, delivered and not yet answered, oldest first.
    questions: VecDeque<Msg>,
}

impl Script {
    /// Member `me`'s script in a group of `members`, sending `messages`
    /// messages in all, in a run with `seed`.
    pub fn new(
        workload: Workload,
        me: MemberId,
        members: usize,
        messages: u64,
        seed: u64,
    ) -> Script {
        Script {
            workload,
            me,
            members,
            messages,
            seed,
            sent: 0,
            delivered: 0,
            questions: VecDeque::new(),
        }
    }

    /// The workload.
    pub fn workload(&self) -> Workload {
        self.workload
    }

    /// Messages sent so far (the next message's sequence number).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Messages delivered so far: the `after` of the next message sent.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Whether every message has been sent (time for the end of stream).
    pub fn is_done(&self) -> bool {
        self.sent >= self.messages
    }

    /// Records a delivery. Call it for every delivered message, in order.
    pub fn on_deliver(&mut self, msg: Msg, op: Option<&Op>) {
        self.delivered += 1;
        if let Some(Op::Chat(ChatOp::Ask { to })) = op
            && *to == self.me
        {
            self.questions.push_back(msg);
        }
    }

    /// Whether an answer waits to be sent: send it now, with
    /// [`Turn::Reply`], rather than at the next scheduled time.
    pub fn reply_due(&self) -> bool {
        !self.questions.is_empty() && !self.is_done()
    }

    /// The operation of the next message, which the caller must multicast
    /// now (it becomes message [`Script::sent`]): `Some(None)` for a
    /// message without an operation (`seq`); `None` when there is nothing
    /// to send on this turn (every message sent, or a [`Turn::Reply`] with
    /// no answer due).
    pub fn next(&mut self, turn: Turn) -> Option<Option<Op>> {
        if self.is_done() {
            return None;
        }
        let seq = self.sent;
        let op = match self.workload {
            Workload::Seq if turn == Turn::Scheduled => None,
            Workload::Bank if turn == Turn::Scheduled => {
                Some(Op::Bank(bank::op_for(self.seed, self.me, seq)))
            }
            Workload::Kv if turn == Turn::Scheduled => {
                Some(Op::Kv(kv::op_for(self.seed, self.me, seq)))
            }
            Workload::Chat => match self.questions.pop_front() {
                Some(question) => Some(Op::Chat(ChatOp::Answer { question })),
                None if turn == Turn::Scheduled => Some(Op::Chat(ChatOp::Ask {
                    to: chat::addressee(self.me, seq, self.members),
                })),
                None => return None,
            },
            _ => return None,
        };
        self.sent += 1;
        Some(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(w.as_str().parse::<Workload>(), Ok(w));
            assert_eq!(serde_json::to_string(&w).unwrap(), format!("\"{w}\""));
        }
        assert_eq!(" BANK ".parse::<Workload>(), Ok(Workload::Bank));
        assert!("banking".parse::<Workload>().is_err());
    }

    #[test]
    fn ops_read_back_through_json() {
        for text in [
            "deposit 5.00",
            "interest 1.50%",
            "ask 2",
            "answer 1:4",
            "put k2 1:4",
            "del k0",
        ] {
            let op: Op = text.parse().unwrap();
            assert_eq!(op.to_string(), text);
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
        }
        assert!(serde_json::from_str::<Op>("\"borrow 5.00\"").is_err());
        assert_eq!(
            "answer 1:4".parse::<Op>().unwrap().answers(),
            Some(Msg { sender: 1, seq: 4 })
        );
    }

    #[test]
    fn states_apply_their_own_workload_only() {
        let mut s = State::initial(Workload::Bank).unwrap();
        assert!(!s.apply(&"put k1 1:1".parse().unwrap()));
        assert!(s.apply(&"deposit 1.00".parse().unwrap()));
        assert_eq!(s.to_string(), "balance 101.00");
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["balance"], "101.00");
        assert_eq!(serde_json::from_value::<State>(json.clone()).unwrap(), s);
        assert_eq!(json["hash"].as_str().unwrap().len(), 16);
        assert!(State::initial(Workload::Chat).is_none());
        let mut k = State::initial(Workload::Kv).unwrap();
        k.apply(&"put k3 0:2".parse().unwrap());
        let json = serde_json::to_value(k).unwrap();
        assert_eq!(json["keys"]["k3"], "0:2");
        assert_eq!(serde_json::from_value::<State>(json).unwrap(), k);
        assert!(serde_json::from_str::<State>(r#"{"keys":{"k9":null}}"#).is_err());
        assert_ne!(k.hash(), State::initial(Workload::Kv).unwrap().hash());
    }

    #[test]
    fn scripts_send_their_budget_then_stop() {
        for w in [Workload::Seq, Workload::Bank, Workload::Kv] {
            let mut s = Script::new(w, 1, 3, 4, 9);
            let ops: Vec<Option<Op>> = std::iter::from_fn(|| s.next(Turn::Scheduled)).collect();
            assert_eq!(ops.len(), 4, "{w}");
            assert!(s.is_done() && s.next(Turn::Scheduled).is_none());
            assert_eq!(ops.iter().all(Option::is_some), w != Workload::Seq);
            assert!(ops.iter().flatten().all(|o| o.workload() == w));
        }
        // The same seed gives the same operations.
        let a: Vec<_> = {
            let mut s = Script::new(Workload::Bank, 2, 3, 20, 5);
            std::iter::from_fn(|| s.next(Turn::Scheduled)).collect()
        };
        let b: Vec<_> = {
            let mut s = Script::new(Workload::Bank, 2, 3, 20, 5);
            std::iter::from_fn(|| s.next(Turn::Scheduled)).collect()
        };
        assert_eq!(a, b);
    }

    /// A chat member asks on its schedule, answers the questions for it
    /// (only those) as soon as it delivered them, and never sends more
    /// than its budget.
    #[test]
    fn chat_answers_what_it_delivered() {
        let mut s = Script::new(Workload::Chat, 1, 3, 3, 0);
        assert_eq!(s.next(Turn::Reply), None, "nothing to answer yet");
        assert_eq!(
            s.next(Turn::Scheduled),
            Some(Some("ask 2".parse().unwrap()))
        );
        s.on_deliver(Msg { sender: 0, seq: 0 }, Some(&"ask 2".parse().unwrap()));
        assert!(!s.reply_due(), "not for us");
        s.on_deliver(Msg { sender: 0, seq: 1 }, Some(&"ask 1".parse().unwrap()));
        s.on_deliver(Msg { sender: 2, seq: 0 }, Some(&"ask 1".parse().unwrap()));
        assert!(s.reply_due());
        assert_eq!(
            s.next(Turn::Reply),
            Some(Some("answer 0:1".parse().unwrap()))
        );
        assert_eq!(s.delivered(), 3);
        // A scheduled turn answers first too; then the budget is spent.
        assert_eq!(
            s.next(Turn::Scheduled),
            Some(Some("answer 2:0".parse().unwrap()))
        );
        assert!(s.is_done() && !s.reply_due());
        s.on_deliver(Msg { sender: 2, seq: 1 }, Some(&"ask 1".parse().unwrap()));
        assert!(!s.reply_due() && s.next(Turn::Reply).is_none());
    }
}

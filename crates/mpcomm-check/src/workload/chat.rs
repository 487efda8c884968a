//! `chat`: a conversation in which every answer names its question.
//!
//! Members ask each other questions, and a member answers a question
//! addressed to it as soon as it has *delivered* it:
//!
//! * `ask 2` — a question to member 2 (question `q` of member `s` goes to
//!   the other members in turn: [`addressee`]);
//! * `answer 1:4` — the answer to question `1:4`.
//!
//! An answer is caused by its question: its sender could not have written
//! it without reading the question. A member that shows the answer before
//! the question — which happens when the answer comes from a nearby member
//! and the question from a distant one — shows a conversation that makes
//! no sense. `fifo` cannot prevent it (question and answer have different
//! senders); `causal`, `sequencer` and `total` do.
//!
//! The conversation is scripted, not random: who asks whom follows from
//! the message numbers, and when a member answers follows from what it
//! delivered (see [`super::Script`]). The workload has no state to compare;
//! the checker judges it by causal order ("peer 2 delivered 3:5, which
//! answers 1:4, before 1:4").

use std::fmt;
use std::str::FromStr;

use super::OpParseError;
use crate::Msg;
use mpcomm_core::MemberId;

/// One chat message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChatOp {
    /// A question to member `to`.
    Ask {
        /// The member who should answer.
        to: MemberId,
    },
    /// The answer to `question`.
    Answer {
        /// The question it answers.
        question: Msg,
    },
}

/// Who question `seq` of member `sender` is for, in a group of `members`:
/// the other members in turn, starting with the next one (in a group of
/// one, the asker answers itself).
pub fn addressee(sender: MemberId, seq: u64, members: usize) -> MemberId {
    let n = members as u64;
    if n <= 1 {
        return sender;
    }
    let step = 1 + seq % (n - 1);
    ((u64::from(sender) + step) % n) as MemberId
}

impl fmt::Display for ChatOp {
    /// `ask 2` or `answer 1:4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChatOp::Ask { to } => write!(f, "ask {to}"),
            ChatOp::Answer { question } => write!(f, "answer {question}"),
        }
    }
}

impl FromStr for ChatOp {
    type Err = OpParseError;

    fn from_str(s: &str) -> Result<ChatOp, OpParseError> {
        let bad = || OpParseError(s.to_string());
        match s.split_once(' ') {
            Some(("ask", to)) if to.bytes().all(|b| b.is_ascii_digit()) => Ok(ChatOp::Ask {
                to: to.parse().map_err(|_| bad())?,
            }),
            Some(("answer", q)) => Ok(ChatOp::Answer {
                question: q.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_go_round_the_others() {
        let to: Vec<MemberId> = (0..6).map(|q| addressee(1, q, 4)).collect();
        assert_eq!(to, [2, 3, 0, 2, 3, 0]);
        for n in 2..10usize {
            for s in 0..n as MemberId {
                for q in 0..20 {
                    let a = addressee(s, q, n);
                    assert!(a != s && usize::from(a) < n);
                }
            }
        }
        assert_eq!(addressee(0, 5, 1), 0);
    }

    #[test]
    fn text_round_trips_and_refuses_nonsense() {
        for op in [
            ChatOp::Ask { to: 2 },
            ChatOp::Answer {
                question: Msg { sender: 1, seq: 4 },
            },
        ] {
            assert_eq!(op.to_string().parse::<ChatOp>(), Ok(op));
        }
        assert_eq!(ChatOp::Ask { to: 2 }.to_string(), "ask 2");
        for bad in [
            "ask",
            "ask -1",
            "ask 70000",
            "answer 1",
            "answer",
            "reply 1:4",
        ] {
            assert!(bad.parse::<ChatOp>().is_err(), "{bad}");
        }
    }
}

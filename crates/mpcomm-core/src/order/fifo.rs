//! `fifo`: each sender's messages in the order it sent them.
//!
//! The reliable link already releases every sender's records in sequence
//! order, so this engine simply delivers what the link releases. Messages of
//! *different* senders may still interleave differently at different peers:
//! FIFO order is weaker than total order.
//!
//! So a message never waits *here*: it waits at the link, behind a gap in
//! its sender's stream, until the missing record arrives. That is what
//! [`Ordering::wait_reason`] reports, from the view of the links it is given.

use std::collections::VecDeque;

use super::{LinkGaps, OrderKind, Ordering};
use crate::trace::{WaitCause, WaitReason};
use crate::wire::{MemberId, Record};

/// Per-sender FIFO engine.
#[derive(Debug, Default)]
pub struct FifoOrder {
    ready: VecDeque<Record>,
}

impl FifoOrder {
    /// A new engine.
    pub fn new() -> FifoOrder {
        FifoOrder::default()
    }
}

impl Ordering for FifoOrder {
    fn kind(&self) -> OrderKind {
        OrderKind::Fifo
    }

    fn on_fifo(&mut self, rec: Record) {
        self.ready.push_back(rec);
    }

    fn poll_deliver(&mut self) -> Option<Record> {
        self.ready.pop_front()
    }

    fn pending(&self) -> usize {
        self.ready.len()
    }

    /// The first sender (by id) whose stream has a gap: its first record
    /// behind the gap waits for the missing one.
    fn wait_reason(&self, links: &dyn LinkGaps) -> Option<WaitReason> {
        (0..links.members()).find_map(|k| {
            let sender = k as MemberId;
            links.gap(sender).map(|(head, missing)| WaitReason {
                head,
                waiting_for: vec![sender],
                cause: WaitCause::Gap { sender, missing },
            })
        })
    }
}

//! `fifo`: each sender's messages in the order it sent them.
//!
//! The reliable link already releases every sender's records in sequence
//! order, so this engine simply delivers what the link releases. Messages of
//! *different* senders may still interleave differently at different peers:
//! FIFO order is weaker than total order.

use std::collections::VecDeque;

use super::{OrderKind, Ordering};
use crate::wire::Record;

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
}

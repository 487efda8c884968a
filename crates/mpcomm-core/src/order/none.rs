//! `none`: deliver each message the moment it first arrives.
//!
//! This is what the original MPComm did, and it is here to *show the
//! problem*: two peers that receive the same messages over links with
//! different delays deliver them in different orders. Links are still
//! reliable (nothing is lost and nothing is delivered twice), so the only
//! difference from the other orders is the order itself.
//!
//! Nothing ever waits here, so the engine keeps the default
//! [`Ordering::wait_reason`], which says so.

use std::collections::VecDeque;

use super::{OrderKind, Ordering};
use crate::wire::Record;

/// Arrival-order engine.
#[derive(Debug, Default)]
pub struct ArrivalOrder {
    ready: VecDeque<Record>,
}

impl ArrivalOrder {
    /// A new engine.
    pub fn new() -> ArrivalOrder {
        ArrivalOrder::default()
    }
}

impl Ordering for ArrivalOrder {
    fn kind(&self) -> OrderKind {
        OrderKind::None
    }

    fn on_arrival(&mut self, rec: &Record) {
        // Cloning a record only bumps the reference counts of its buffers.
        self.ready.push_back(rec.clone());
    }

    fn on_fifo(&mut self, _rec: Record) {}

    fn poll_deliver(&mut self) -> Option<Record> {
        self.ready.pop_front()
    }

    fn pending(&self) -> usize {
        self.ready.len()
    }
}

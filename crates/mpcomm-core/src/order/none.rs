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
use crate::wire::{Record, RecordKind};

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
        // Data goes out the moment it arrives. (Cloning a record only bumps
        // the reference counts of its buffers.)
        if matches!(rec.kind, RecordKind::Data { .. }) {
            self.ready.push_back(rec.clone());
        }
    }

    /// The end-of-stream marker waits until the link releases it in order,
    /// that is, after every record its sender sent before it: so when a
    /// peer learns that a member ended its stream, it has delivered all of
    /// that member's messages. (Arrival order for data is the point of
    /// `none`; for the marker it would only mean guessing what is still
    /// missing.)
    fn on_fifo(&mut self, rec: Record) {
        if matches!(rec.kind, RecordKind::EndOfStream { .. }) {
            self.ready.push_back(rec);
        }
    }

    fn poll_deliver(&mut self) -> Option<Record> {
        self.ready.pop_front()
    }

    fn pending(&self) -> usize {
        self.ready.len()
    }
}

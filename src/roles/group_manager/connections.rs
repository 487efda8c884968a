//! The open connections of the group manager, and which one makes room
//! when a new one would exceed a limit (see the parent module's "Defending
//! the server").
//!
//! Every connection is in a table with its source address, since when it
//! has been waiting for its next complete request, and how many requests
//! it has sent. At the limit, the connection that makes room is one that
//! never sent a complete request (it has not proved it speaks the
//! protocol) before one that did, and among those the one waiting longest.
//! A client that opens connections and sends nothing can therefore hold at
//! most the places no request needs, and only until its first-request
//! timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::debug;

/// One open connection, for choosing which one makes room.
struct Conn {
    source: IpAddr,
    /// Since when it has been waiting for its next complete request.
    waiting_since: Instant,
    /// Requests it has sent (0: it has not proved itself yet).
    served: u64,
    task: AbortHandle,
}

/// The open connections.
#[derive(Default)]
pub(super) struct Table {
    next: u64,
    open: HashMap<u64, Conn>,
    per_source: HashMap<IpAddr, usize>,
}

pub(super) fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

impl Table {
    pub(super) fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    pub(super) fn insert(&mut self, id: u64, source: IpAddr, task: AbortHandle) {
        self.open.insert(
            id,
            Conn {
                source,
                waiting_since: Instant::now(),
                served: 0,
                task,
            },
        );
        *self.per_source.entry(source).or_default() += 1;
    }

    pub(super) fn remove(&mut self, id: u64) {
        if let Some(c) = self.open.remove(&id)
            && let Some(n) = self.per_source.get_mut(&c.source)
        {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&c.source);
            }
        }
    }

    /// A request was served on `id`: it has proved itself, and waits anew.
    pub(super) fn served(&mut self, id: u64) {
        if let Some(c) = self.open.get_mut(&id) {
            c.served += 1;
            c.waiting_since = Instant::now();
        }
    }

    /// The connection that should make room: among those of `source` (or
    /// all), one that never sent a complete request before one that did,
    /// then the one waiting longest.
    fn victim(&self, source: Option<IpAddr>) -> Option<u64> {
        self.open
            .iter()
            .filter(|(_, c)| source.is_none_or(|s| c.source == s))
            .min_by_key(|(id, c)| (c.served > 0, c.waiting_since, **id))
            .map(|(id, _)| *id)
    }

    /// Makes room for a new connection from `source` within the limits,
    /// closing the connection that has waited longest if need be. False
    /// if there is no room to make.
    pub(super) fn make_room(&mut self, source: IpAddr, max: usize, per_source: usize) -> bool {
        loop {
            let from_source = self.per_source.get(&source).copied().unwrap_or(0);
            let scope = if from_source >= per_source {
                Some(source)
            } else if self.open.len() >= max {
                None
            } else {
                return true;
            };
            let Some(id) = self.victim(scope) else {
                return false;
            };
            if let Some(c) = self.open.get(&id) {
                debug!(client = %c.source, "closing the connection waiting longest, to make room");
                c.task.abort();
            }
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn table_with(conns: &[(u8, u64, u64)]) -> Table {
        // (source's last octet, served, waited ms ago)
        let now = Instant::now();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut t = Table::default();
        for &(ip, served, ago) in conns {
            let id = t.next_id();
            let task = rt.block_on(async { tokio::spawn(async {}).abort_handle() });
            let source = IpAddr::from([10, 0, 0, ip]);
            t.insert(id, source, task);
            let c = t.open.get_mut(&id).unwrap();
            c.served = served;
            c.waiting_since = now - Duration::from_millis(ago);
        }
        t
    }

    #[test]
    fn the_connection_that_never_asked_anything_makes_room_first() {
        // id 1: served, waiting longest; id 2: never served; id 3: never
        // served, waiting longer than 2.
        let mut t = table_with(&[(1, 5, 900), (1, 0, 100), (2, 0, 300)]);
        assert_eq!(t.victim(None), Some(3));
        assert_eq!(t.victim(Some(IpAddr::from([10, 0, 0, 1]))), Some(2));
        // Full: a newcomer from a third address closes id 3.
        assert!(t.make_room(IpAddr::from([10, 0, 0, 3]), 3, 10));
        assert_eq!(t.open.len(), 2);
        assert!(!t.open.contains_key(&3));
        // A source at its own limit makes room among its own connections.
        assert!(t.make_room(IpAddr::from([10, 0, 0, 1]), 10, 2));
        assert!(!t.open.contains_key(&2));
        assert_eq!(t.per_source.get(&IpAddr::from([10, 0, 0, 1])), Some(&1));
        assert!(t.make_room(IpAddr::from([10, 0, 0, 2]), 10, 2));
    }
}

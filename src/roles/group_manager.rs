//! The group manager: a phone book of the peers that are up.
//!
//! Peers *register* when they start ("I am `peer-1`; send me datagrams at
//! `10.0.0.5:7000`, control messages at `10.0.0.5:7001`; I am in region
//! `eu`"). The comparison server *lists* the registrations to pick the
//! members of a run. That is all the group manager does: it does not take
//! part in runs and never talks to peers on its own.
//!
//! It speaks the JSON Lines control protocol of [`mpcomm::control`]
//! (requests are [`GmRequest`]); see `docs/control-protocol.md`.
//!
//! # Why registrations expire
//!
//! A peer that crashes, loses its network or is killed with `kill -9` never
//! says goodbye. In the original MPComm its entry stayed in the list for
//! ever, so the next run waited for a ghost. Here every registration has a
//! time to live (`ttl`, 10 s by default): a peer must renew it with a
//! `heartbeat` (every `ttl/3`, so two lost heartbeats are tolerated),
//! otherwise it is dropped. Expired entries are removed before every request
//! is answered (so `list` never shows one), and by a periodic sweep, which
//! also logs them.
//!
//! # Why registering an existing name replaces it
//!
//! A restarted peer registers again under the same name, usually before its
//! old entry has expired. Rejecting that ("name taken") would force the user
//! to wait out the ttl; keeping both would show a ghost. So the newest
//! registration wins: a name is one peer, and the peer that registers it
//! last is the one that is alive. For the same reason a registration also
//! evicts entries of *other* names with the same data or control address:
//! two live processes cannot own one address, so the older entry is stale
//! (e.g. a peer restarted under a new name).
//!
//! # Defending the server
//!
//! The group manager is a long-running server reachable over the network,
//! so no client can make it misbehave: bad requests get an error reply and
//! the connection stays usable; request lines are limited to
//! [`MAX_REQUEST`] bytes (longer ones get an error and the connection is
//! closed).
//!
//! Above all, idle or slow connections must not be able to keep the peers
//! out: a peer whose heartbeats do not get through is dropped from the
//! list after its time to live, and 1,100 connections that never send a
//! byte once did exactly that to every peer. So:
//!
//! * a new connection has [`FIRST_REQUEST_TIMEOUT`] (5 s) to send a
//!   complete request; one that has proved itself may then stay idle for
//!   [`IDLE_TIMEOUT`] between requests;
//! * at most [`MAX_CONNECTIONS`] connections are open at once (fewer if
//!   the process may not open that many files), and at most
//!   [`MAX_PER_SOURCE`] from one IP address, so that one host cannot take
//!   every place;
//! * when a new connection would exceed a limit, it is not the newcomer
//!   that is turned away but the connection that has waited longest for a
//!   request — preferring one that never sent a complete request at all. A
//!   peer's heartbeat (a fresh connection that sends its request at once)
//!   therefore always gets in, and an idle connection can at most hold a
//!   place until a request needs it.
//!
//! Like the original, anyone who can reach the port can `stop` it or change
//! the registry: run it on a trusted network.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mpcomm::keyfile::KeySource;
use mpcomm::secure::{self, Channel};
use mpcomm_core::KeyRing;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tracing::{debug, info, warn};

use mpcomm::control::{
    ControlError, Framed, GmRequest, PeerInfo, Register, Reply, decode_op, truncate_for_display,
};

mod connections;
use connections::{Table, lock};

/// The group manager's well-known port (as in the original).
pub const DEFAULT_PORT: u16 = 5680;
/// How long a registration lives without a heartbeat, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
/// A new connection that has not sent a complete request for this long is
/// closed.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that has been served, and has not sent its next complete
/// request for this long, is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many connections are served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// At most this many connections from one IP address are served at once.
pub const MAX_PER_SOURCE: usize = 256;
/// A reply that cannot be written within this time (the client does not
/// read) closes the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After a too-long line, how long to drain the client's input so that the
/// error reply reaches it (see [`Framed::close_gracefully`]).
const LINGER: Duration = Duration::from_secs(2);

/// How to run a group manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupManagerOptions {
    /// Address to listen on (TCP); port 0 lets the system choose.
    pub listen: SocketAddr,
    /// Time to live of a registration without a heartbeat.
    pub ttl: Duration,
}

impl Default for GroupManagerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            ttl: DEFAULT_TTL,
        }
    }
}

/// A group manager with its listening socket bound; [`run`](Self::run) it.
#[derive(Debug)]
pub struct GroupManager {
    listener: TcpListener,
    local_addr: SocketAddr,
    ttl: Duration,
    idle_timeout: Duration,
    first_request_timeout: Duration,
    max_connections: usize,
    max_per_source: usize,
    keys: Arc<KeySource>,
}

impl GroupManager {
    /// Binds the listening socket. Fails if the address is in use or the
    /// ttl is zero.
    pub async fn bind(opts: GroupManagerOptions) -> io::Result<Self> {
        if opts.ttl.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the registration ttl must be greater than zero (e.g. 10s)",
            ));
        }
        let listener = TcpListener::bind(opts.listen).await?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            ttl: opts.ttl,
            idle_timeout: IDLE_TIMEOUT,
            first_request_timeout: FIRST_REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_per_source: MAX_PER_SOURCE,
            keys: Arc::new(KeySource::fixed(None)),
        })
    }

    /// The address actually bound (with the real port if `listen` had 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The registration time to live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Closes connections idle for `idle` instead of [`IDLE_TIMEOUT`].
    pub fn with_idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = idle;
        self
    }

    /// Closes new connections that have not sent a complete request within
    /// `t` instead of [`FIRST_REQUEST_TIMEOUT`].
    pub fn with_first_request_timeout(mut self, t: Duration) -> Self {
        self.first_request_timeout = t;
        self
    }

    /// Authenticates every connection with the group key from `keys`
    /// (re-read for each connection when it is a file): a client that does
    /// not hold it is refused before any request is read.
    pub fn with_keys(mut self, keys: Arc<KeySource>) -> Self {
        self.keys = keys;
        self
    }

    /// Serves at most `n` connections at once instead of
    /// [`MAX_CONNECTIONS`]; a further connection takes the place of the one
    /// that has waited longest for a request.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Serves at most `n` connections from one IP address at once instead
    /// of [`MAX_PER_SOURCE`].
    pub fn with_max_per_source(mut self, n: usize) -> Self {
        self.max_per_source = n.max(1);
        self
    }

    /// The most connections served at once.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Serves until a client sends `{"op":"stop"}`.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until a client sends `{"op":"stop"}` or `shutdown` completes
    /// (e.g. a signal, or a channel in tests). Open connections are closed
    /// when it returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> io::Result<()> {
        let shared = Arc::new(Shared {
            registry: Mutex::new(Registry::new(self.ttl)),
            stop: Notify::new(),
        });
        let table = Arc::new(Mutex::new(Table::default()));
        let mut connections = JoinSet::new();
        let mut sweep = tokio::time::interval(sweep_period(self.ttl));
        sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        info!(addr = %self.local_addr, ttl = ?self.ttl, "group manager listening");

        loop {
            tokio::select! {
                () = &mut shutdown => {
                    info!("group manager shutting down");
                    break;
                }
                () = shared.stop.notified() => {
                    info!("group manager stopped by a stop request");
                    break;
                }
                _ = sweep.tick() => {
                    shared.registry().expire(Instant::now());
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, client)) => {
                        let mut t = lock(&table);
                        if !t.make_room(client.ip(), self.max_connections, self.max_per_source) {
                            refuse(&stream, client, self.max_connections);
                            continue;
                        }
                        let id = t.next_id();
                        let shared = Arc::clone(&shared);
                        let table2 = Arc::clone(&table);
                        let timeouts = (self.first_request_timeout, self.idle_timeout);
                        let keys = self.keys.current();
                        let task = connections.spawn(async move {
                            serve(stream, client, &shared, timeouts, &table2, id, keys).await;
                            lock(&table2).remove(id);
                        });
                        t.insert(id, client.ip(), task);
                    }
                    Err(e) => {
                        // Typically EMFILE (out of file descriptors) or a
                        // connection reset before we accepted it. Neither is
                        // a reason to stop serving; pause briefly so a
                        // persistent error does not spin the CPU.
                        warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// How often expired registrations are swept (for the log; requests expire
/// entries lazily anyway).
fn sweep_period(ttl: Duration) -> Duration {
    (ttl / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Tells a client over the connection limit why it is turned away, without
/// waiting for it (a non-blocking write into an empty socket buffer).
fn refuse(stream: &TcpStream, client: SocketAddr, max: usize) {
    warn!(%client, "refusing connection: {max} connections already open");
    let reply = Reply::err(format!(
        "too many connections ({max} open); try again later"
    ));
    if let Ok(mut line) = serde_json::to_vec(&reply) {
        line.push(b'\n');
        let _ = stream.try_write(&line);
    }
}

/// State shared by the connection tasks.
struct Shared {
    registry: Mutex<Registry>,
    stop: Notify,
}

impl Shared {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters here, so a poisoned lock is still usable.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Longest request line accepted. The largest request, a registration, is
/// a few hundred bytes; the limit bounds what [`MAX_CONNECTIONS`] clients
/// can make the group manager hold to 64 MiB.
pub const MAX_REQUEST: usize = 64 * 1024;

/// One connection: requests in, one reply each, in order.
async fn serve(
    stream: TcpStream,
    client: SocketAddr,
    shared: &Shared,
    (first, idle): (Duration, Duration),
    table: &Mutex<Table>,
    id: u64,
    keys: Option<KeyRing>,
) {
    let _ = stream.set_nodelay(true);
    // With a key, the client proves it holds it before any request is read;
    // the handshake has its own timeout, so an idle client is let go.
    let channel = match secure::server(stream, keys.as_ref()).await {
        Ok(channel) => channel,
        Err(e) => {
            warn!(%client, "refused a connection: {e}");
            return;
        }
    };
    let mut framed = Framed::with_limit(channel, MAX_REQUEST);
    debug!(%client, "connection opened");
    let mut patience = first;
    loop {
        let value = match timeout(patience, framed.recv_value()).await {
            Err(_) => {
                debug!(%client, "closing connection: no complete request for {patience:?}");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(value))) => value,
            Ok(Err(ControlError::BadJson { reason, .. })) => {
                debug!(%client, "malformed request: {reason}");
                let reply = Reply::err(format!(
                    "malformed JSON ({reason}): send one JSON object per line, e.g. {{\"op\":\"list\"}}"
                ));
                if send(&mut framed, &reply).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(Err(e @ ControlError::TooLong { .. })) => {
                debug!(%client, "{e}; closing the connection");
                let reply = Reply::err(format!("{e}; closing the connection"));
                let _ = send(&mut framed, &reply).await;
                framed.close_gracefully(LINGER).await;
                return;
            }
            Ok(Err(e @ ControlError::Truncated)) => {
                // The client may have only shut down its sending side.
                let _ = send(&mut framed, &Reply::err(e.to_string())).await;
                break;
            }
            Ok(Err(e)) => {
                debug!(%client, "connection failed: {e}");
                break;
            }
        };
        // Rendering the request costs time; only do it when it is logged.
        let shown = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| truncate_for_display(&value.to_string(), 300));
        let (reply, stop) = handle(&mut shared.registry(), value, Instant::now());
        debug!(
            %client,
            request = shown.as_deref().unwrap_or(""),
            ok = reply.ok,
            error = reply.error.as_deref().unwrap_or(""),
            "request"
        );
        let sent = send(&mut framed, &reply).await;
        lock(table).served(id);
        patience = idle;
        if stop {
            shared.stop.notify_one();
            break;
        }
        if sent.is_err() {
            break;
        }
    }
    debug!(%client, "connection closed");
}

async fn send(framed: &mut Framed<Channel>, reply: &Reply) -> Result<(), ControlError> {
    match timeout(WRITE_TIMEOUT, framed.send(reply)).await {
        Ok(result) => result,
        Err(_) => Err(ControlError::Timeout(WRITE_TIMEOUT)),
    }
}

/// Answers one request; the flag is true for `stop`.
fn handle(registry: &mut Registry, value: Value, now: Instant) -> (Reply, bool) {
    registry.expire(now);
    let request = match decode_op::<GmRequest>(value) {
        Ok(request) => request,
        Err(msg) => return (Reply::err(msg), false),
    };
    let reply = match request {
        GmRequest::Register(reg) => match registry.register(reg, now) {
            Ok(()) => Reply {
                ttl_ms: Some(duration_ms(registry.ttl)),
                ..Reply::ok()
            },
            Err(msg) => Reply::err(msg),
        },
        GmRequest::Heartbeat { name } => {
            if registry.heartbeat(&name, now) {
                Reply::ok()
            } else {
                Reply::err(format!(
                    "unknown peer {:?} (expired or never registered): register again",
                    truncate_for_display(&name, 80)
                ))
            }
        }
        GmRequest::Unregister { name } => Reply {
            removed: Some(registry.unregister(&name)),
            ..Reply::ok()
        },
        GmRequest::List => Reply {
            peers: Some(registry.list(now)),
            ..Reply::ok()
        },
        GmRequest::Stop => return (Reply::ok(), true),
    };
    (reply, false)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One registration.
#[derive(Debug, Clone)]
struct Entry {
    data_addr: SocketAddr,
    control_addr: SocketAddr,
    region: String,
    registered: Instant,
    refreshed: Instant,
}

/// The registrations, by name (so `list` comes out sorted).
#[derive(Debug)]
struct Registry {
    ttl: Duration,
    peers: BTreeMap<String, Entry>,
}

impl Registry {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            peers: BTreeMap::new(),
        }
    }

    /// Drops every entry not refreshed within the ttl.
    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.peers.retain(|name, e| {
            let alive = now.saturating_duration_since(e.refreshed) <= ttl;
            if !alive {
                info!(peer = %name, "registration expired (no heartbeat for {ttl:?})");
            }
            alive
        });
    }

    fn register(&mut self, reg: Register, now: Instant) -> Result<(), String> {
        reg.validate()?;
        let region = reg.region_or_default().to_string();
        // Other names at the same address are stale (see the module docs).
        self.peers.retain(|name, e| {
            let stale = *name != reg.name
                && (e.data_addr == reg.data_addr || e.control_addr == reg.control_addr);
            if stale {
                info!(peer = %name, new = %reg.name, "registration replaced by a new peer at the same address");
            }
            !stale
        });
        let entry = Entry {
            data_addr: reg.data_addr,
            control_addr: reg.control_addr,
            region,
            registered: now,
            refreshed: now,
        };
        match self.peers.insert(reg.name.clone(), entry) {
            Some(_) => {
                info!(peer = %reg.name, data = %reg.data_addr, "peer re-registered (old entry replaced)")
            }
            None => info!(peer = %reg.name, data = %reg.data_addr, "peer registered"),
        }
        Ok(())
    }

    fn heartbeat(&mut self, name: &str, now: Instant) -> bool {
        match self.peers.get_mut(name) {
            Some(e) => {
                e.refreshed = now;
                true
            }
            None => false,
        }
    }

    fn unregister(&mut self, name: &str) -> bool {
        let removed = self.peers.remove(name).is_some();
        if removed {
            info!(peer = %name, "peer unregistered");
        }
        removed
    }

    fn list(&self, now: Instant) -> Vec<PeerInfo> {
        self.peers
            .iter()
            .map(|(name, e)| PeerInfo {
                name: name.clone(),
                data_addr: e.data_addr,
                control_addr: e.control_addr,
                region: e.region.clone(),
                age_ms: duration_ms(now.saturating_duration_since(e.registered)),
            })
            .collect()
    }
}

/// Raises the soft limit on open files to the hard limit, so that the
/// group manager can hold [`MAX_CONNECTIONS`] connections, and returns the
/// soft limit now in force (`None` if it cannot be known).
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// The most connections a process with `open_files` file descriptors may
/// serve, keeping some for the listener, the standard streams and logs.
pub fn connections_for(open_files: u64) -> usize {
    let spare = open_files.saturating_sub(64);
    usize::try_from(spare)
        .unwrap_or(usize::MAX)
        .clamp(1, MAX_CONNECTIONS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connection_limits_follow_the_open_files_limit() {
        assert_eq!(connections_for(1 << 20), MAX_CONNECTIONS);
        assert_eq!(connections_for(1024), 960);
        assert_eq!(connections_for(10), 1);
    }

    fn reg(name: &str, data: &str, control: &str) -> Value {
        json!({"op":"register","name":name,"data_addr":data,"control_addr":control,"region":""})
    }

    #[test]
    fn registry_lifecycle() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(10));
        let (reply, stop) = handle(&mut r, reg("b", "127.0.0.1:1", "127.0.0.1:2"), t0);
        assert!(reply.ok && !stop);
        assert_eq!(reply.ttl_ms, Some(10_000));
        handle(&mut r, reg("a", "127.0.0.1:3", "127.0.0.1:4"), t0);
        let t1 = t0 + Duration::from_secs(6);
        let (reply, _) = handle(&mut r, json!({"op":"heartbeat","name":"a"}), t1);
        assert!(reply.ok);
        let (reply, _) = handle(&mut r, json!({"op":"list"}), t1);
        let peers = reply.peers.unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0].name, "a");
        assert_eq!(peers[0].region, "default");
        assert_eq!(peers[0].age_ms, 6000);
        // b was not refreshed and expires; a was.
        let t2 = t0 + Duration::from_secs(11);
        let (reply, _) = handle(&mut r, json!({"op":"list"}), t2);
        let names: Vec<_> = reply.peers.unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["a"]);
        let (reply, _) = handle(&mut r, json!({"op":"heartbeat","name":"b"}), t2);
        assert_eq!(
            reply.error.as_deref(),
            Some("unknown peer \"b\" (expired or never registered): register again")
        );
    }

    #[test]
    fn same_address_evicts_other_name() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(10));
        handle(&mut r, reg("old", "127.0.0.1:1", "127.0.0.1:2"), t0);
        handle(&mut r, reg("other", "127.0.0.1:5", "127.0.0.1:6"), t0);
        handle(&mut r, reg("new", "127.0.0.1:1", "127.0.0.1:9"), t0);
        let (reply, _) = handle(&mut r, json!({"op":"list"}), t0);
        let names: Vec<_> = reply.peers.unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["new", "other"]);
    }

    #[test]
    fn stop_and_unregister() {
        let t0 = Instant::now();
        let mut r = Registry::new(Duration::from_secs(10));
        let (reply, _) = handle(&mut r, json!({"op":"unregister","name":"x"}), t0);
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"ok":true,"removed":false}"#
        );
        let (reply, stop) = handle(&mut r, json!({"op":"stop"}), t0);
        assert!(reply.ok && stop);
    }

    #[test]
    fn sweep_period_is_bounded() {
        assert_eq!(
            sweep_period(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(300)),
            Duration::from_millis(150)
        );
        assert_eq!(
            sweep_period(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
    }
}

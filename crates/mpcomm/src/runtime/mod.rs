//! The runtime: the sans-IO core over a real UDP socket, with tokio.
//!
//! [`Group`] is the library API for engineers who embed ordered multicast in
//! their own program: join a group, multicast bytes, receive deliveries as
//! an async stream. The `mpcomm peer` process is built on it.
//!
//! # How it works
//!
//! [`Group::join`] spawns one *driver* task that owns the protocol state
//! machine ([`mpcomm_core::Peer`]) and the socket. The driver is a loop
//! around one `select!`: a datagram arrived, the application sent a message,
//! a timer fired, or the application has room for more deliveries. After
//! each wake-up it drains the socket, lets the core react, and sends whatever
//! the core wants sent — so everything that arrived in one burst is answered
//! with one burst of (batched) datagrams.
//!
//! The application talks to the driver through two channels, which is why
//! sending and receiving are separate paths: a [`GroupSender`] (multicast,
//! finish) and a [`GroupReceiver`] (the stream of [`GroupEvent`]s). Both are
//! bounded:
//!
//! * when the protocol's send window is full, the driver stops taking
//!   messages, the command channel fills, and [`GroupSender::multicast`]
//!   waits — *backpressure* reaches the application instead of memory
//!   growing;
//! * when the application falls behind on deliveries, the driver stops
//!   reading the socket (timers, retransmissions and acknowledgements go on)
//!   until it catches up. The application must therefore keep reading
//!   events, typically in a task of its own, while it sends.
//!
//! ```no_run
//! use bytes::Bytes;
//! use mpcomm::runtime::{Group, GroupEvent, GroupOptions};
//! use mpcomm::core::OrderKind;
//!
//! # async fn example() -> anyhow::Result<()> {
//! let members = vec!["10.0.0.1:7000".parse()?, "10.0.0.2:7000".parse()?];
//! let socket = mpcomm::runtime::bind_udp("0.0.0.0:7000".parse()?)?;
//! let opts = GroupOptions::new(42, 0, members, OrderKind::Total);
//! let group = Group::join(opts, socket).await?; // returns once everyone is up
//! let (mut tx, mut rx, control) = group.split();
//! tokio::spawn(async move {
//!     tx.multicast(Bytes::from_static(b"hello")).await?;
//!     tx.finish().await
//! });
//! while let Some(event) = rx.next().await {
//!     match event {
//!         GroupEvent::Delivery(d) => println!("{}:{} {:?}", d.sender, d.seq, d.payload),
//!         GroupEvent::View { id, members, .. } => println!("view {id}: {members:?}"),
//!         GroupEvent::Completed => break,
//!         GroupEvent::Failed(e) => anyhow::bail!(e),
//!     }
//! }
//! let stats = control.wait().await; // lingers until the others are done too
//! # let _ = stats; Ok(()) }
//! ```

#[cfg(feature = "wan")]
pub mod wan;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use mpcomm_core::wire::{MAX_DATAGRAM, MAX_PAYLOAD};
use mpcomm_core::{Config, Delivery, Event, MemberId, OrderKind, Peer, PeerError, Stats, Time};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[cfg(feature = "wan")]
pub use wan::{WanConfig, WanEmulator};

/// Without the `wan` feature there is no emulator: this type has no values,
/// so the driver's `Option<WanEmulator>` is always `None` and the code that
/// would route through it compiles away.
#[cfg(not(feature = "wan"))]
#[derive(Debug)]
enum WanEmulator {}

#[cfg(not(feature = "wan"))]
impl WanEmulator {
    fn next_due(&self) -> Option<Instant> {
        match *self {}
    }

    fn release(&mut self, _now: Instant, _out: &mut Vec<(MemberId, Bytes)>) {
        match *self {}
    }

    fn route(
        &mut self,
        _to: MemberId,
        _bytes: &[u8],
        _now: Instant,
        _out: &mut Vec<(MemberId, Bytes)>,
    ) {
        match *self {}
    }
}

/// How to join a group.
#[derive(Clone, Debug)]
pub struct GroupOptions {
    /// The protocol configuration (run id, own id, group size, order, timings).
    pub config: Config,
    /// Every member's UDP address, indexed by member id (ours included).
    pub addrs: Vec<SocketAddr>,
    /// Emulate a wide-area network on outgoing datagrams (feature `wan`).
    #[cfg(feature = "wan")]
    pub wan: Option<WanConfig>,
    /// Capacity of the command and event channels.
    pub channel_capacity: usize,
}

impl GroupOptions {
    /// Options with default protocol timings.
    pub fn new(
        run_id: u64,
        me: MemberId,
        addrs: Vec<SocketAddr>,
        order: OrderKind,
    ) -> GroupOptions {
        GroupOptions {
            config: Config::new(run_id, me, addrs.len(), order),
            addrs,
            #[cfg(feature = "wan")]
            wan: None,
            channel_capacity: 1024,
        }
    }
}

/// What the group tells the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupEvent {
    /// A message, in the group's delivery order.
    Delivery(Delivery),
    /// A new view: the members changed (one crashed or was excluded, one
    /// joined). Deliveries before this event belong to the previous view,
    /// after it to this one; every member that installs this view delivered
    /// the same messages in the previous one (virtual synchrony). The first
    /// view (id 1, the whole member list) comes before any delivery.
    View {
        /// The view's number.
        id: u32,
        /// Its members, in id order.
        members: Vec<MemberId>,
        /// Members new in it.
        joined: Vec<MemberId>,
        /// Members of the previous view not in it.
        left: Vec<MemberId>,
    },
    /// Every member finished and everything was delivered.
    Completed,
    /// The run failed.
    Failed(PeerError),
}

/// Why joining or sending failed.
#[derive(Debug, Error)]
pub enum GroupError {
    /// The configuration is unusable.
    #[error("invalid group configuration: {0}")]
    Config(String),
    /// The run failed (e.g. the handshake timed out).
    #[error(transparent)]
    Failed(#[from] PeerError),
    /// The message is too large for one datagram.
    #[error("message of {0} bytes exceeds the {MAX_PAYLOAD}-byte limit")]
    TooLarge(usize),
    /// The driver has stopped (the run ended or failed).
    #[error("the group has stopped")]
    Closed,
}

/// Binds a UDP socket for a group, with socket buffers large enough for
/// bursts (the kernel may cap them; see `docs/performance.md`).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only means earlier drops under bursts,
    // which the reliable links repair. The kernel caps what we may ask for
    // at net.core.rmem_max (often 208 KiB); a privileged process may go
    // beyond it with SO_RCVBUFFORCE.
    if nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::RcvBufForce, &(4 << 20))
        .is_err()
    {
        let _ = socket.set_recv_buffer_size(4 << 20);
    }
    if nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::SndBufForce, &(4 << 20))
        .is_err()
    {
        let _ = socket.set_send_buffer_size(4 << 20);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

enum Command {
    Multicast(Bytes),
    Finish,
}

/// A joined group. Use it directly, or [`Group::split`] it to send and
/// receive from different tasks.
#[derive(Debug)]
pub struct Group {
    tx: GroupSender,
    rx: GroupReceiver,
    control: GroupControl,
}

/// The sending half of a group.
#[derive(Debug)]
pub struct GroupSender {
    commands: mpsc::Sender<Command>,
    next_seq: u64,
}

/// The receiving half of a group: a stream of [`GroupEvent`]s.
#[derive(Debug)]
pub struct GroupReceiver {
    events: mpsc::Receiver<GroupEvent>,
}

/// Observes and ends the driver task.
#[derive(Debug)]
pub struct GroupControl {
    driver: JoinHandle<Stats>,
    stats: watch::Receiver<Stats>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Multicast(b) => write!(f, "Multicast({} bytes)", b.len()),
            Command::Finish => f.write_str("Finish"),
        }
    }
}

impl Group {
    /// Joins the group over `socket` and waits until the handshake with every
    /// member is complete.
    pub async fn join(
        opts: GroupOptions,
        socket: impl Into<Arc<UdpSocket>>,
    ) -> Result<Group, GroupError> {
        let (group, ready) = Group::start(opts, socket)?;
        match ready.await {
            Ok(Ok(())) => Ok(group),
            Ok(Err(e)) => Err(GroupError::Failed(e)),
            Err(_) => Err(GroupError::Closed),
        }
    }

    /// Starts the driver without waiting for the handshake; the returned
    /// receiver resolves when it completes (or fails).
    ///
    /// The socket is shared (`Arc`) so that a long-lived process can reuse
    /// its one registered address for run after run; only one group may use
    /// it at a time, or they would steal each other's datagrams.
    pub fn start(
        opts: GroupOptions,
        socket: impl Into<Arc<UdpSocket>>,
    ) -> Result<(Group, oneshot::Receiver<Result<(), PeerError>>), GroupError> {
        let socket = socket.into();
        if opts.addrs.len() != opts.config.members {
            return Err(GroupError::Config(format!(
                "{} addresses for a group of {}",
                opts.addrs.len(),
                opts.config.members
            )));
        }
        let start = Instant::now();
        let mut config = opts.config.clone();
        if config.incarnation == 0 {
            // A fresh process: draw an incarnation nobody used before.
            config.incarnation = random_u64().map_err(|e| {
                GroupError::Config(format!("no random numbers from the system: {e}"))
            })?;
        }
        let peer = Peer::new(config, Time::ZERO).map_err(|e| GroupError::Config(e.to_string()))?;
        let capacity = opts.channel_capacity.max(1);
        let (cmd_tx, cmd_rx) = mpsc::channel(capacity);
        let (ev_tx, ev_rx) = mpsc::channel(capacity);
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stats_tx, stats_rx) = watch::channel(Stats::default());
        #[cfg(feature = "wan")]
        let wan = opts
            .wan
            .as_ref()
            .map(|w| WanEmulator::new(w, opts.config.me));
        #[cfg(not(feature = "wan"))]
        let wan: Option<WanEmulator> = None;
        let driver = Driver {
            peer,
            socket,
            addrs: opts.addrs,
            start,
            wan,
            commands: cmd_rx,
            commands_open: true,
            events: ev_tx,
            backlog: VecDeque::new(),
            ready: Some(ready_tx),
            stats: stats_tx,
            outbox: Vec::new(),
        };
        let handle = tokio::spawn(driver.run());
        let group = Group {
            tx: GroupSender {
                commands: cmd_tx,
                next_seq: 0,
            },
            rx: GroupReceiver { events: ev_rx },
            control: GroupControl {
                driver: handle,
                stats: stats_rx,
            },
        };
        Ok((group, ready_rx))
    }

    /// Multicasts `payload`; see [`GroupSender::multicast`].
    pub async fn multicast(&mut self, payload: Bytes) -> Result<u64, GroupError> {
        self.tx.multicast(payload).await
    }

    /// Ends our stream; see [`GroupSender::finish`].
    pub async fn finish(&mut self) -> Result<(), GroupError> {
        self.tx.finish().await
    }

    /// The next event; see [`GroupReceiver::next`].
    pub async fn next(&mut self) -> Option<GroupEvent> {
        self.rx.next().await
    }

    /// The protocol counters, as of the last update.
    pub fn stats(&self) -> Stats {
        self.control.stats()
    }

    /// Splits the group so that sending and receiving can run in different
    /// tasks.
    pub fn split(self) -> (GroupSender, GroupReceiver, GroupControl) {
        (self.tx, self.rx, self.control)
    }
}

impl GroupSender {
    /// Multicasts `payload` to every member, ourselves included, and returns
    /// its sequence number. Waits while the send window is full.
    pub async fn multicast(&mut self, payload: Bytes) -> Result<u64, GroupError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(GroupError::TooLarge(payload.len()));
        }
        self.commands
            .send(Command::Multicast(payload))
            .await
            .map_err(|_| GroupError::Closed)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Sends our end-of-stream marker; no more multicasts afterwards.
    pub async fn finish(&mut self) -> Result<(), GroupError> {
        self.commands
            .send(Command::Finish)
            .await
            .map_err(|_| GroupError::Closed)
    }
}

impl GroupReceiver {
    /// The next event, or `None` once the driver has stopped.
    pub async fn next(&mut self) -> Option<GroupEvent> {
        self.events.recv().await
    }
}

impl futures_core::Stream for GroupReceiver {
    type Item = GroupEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<GroupEvent>> {
        self.events.poll_recv(cx)
    }
}

impl GroupControl {
    /// The protocol counters, as of the last update.
    pub fn stats(&self) -> Stats {
        self.stats.borrow().clone()
    }

    /// Waits for the driver to stop — after the run completed, every other
    /// member holds our records and has completed (or is gone, silent for
    /// the peer timeout), and a short close wait passed; after a failure;
    /// or once both the sender and the receiver have been dropped — and
    /// returns the final counters.
    pub async fn wait(self) -> Stats {
        let last = self.stats.borrow().clone();
        match self.driver.await {
            Ok(stats) => stats,
            Err(e) => {
                if e.is_panic() {
                    tracing::error!("the protocol driver panicked: {e}");
                }
                last
            }
        }
    }

    /// Stops the driver at once.
    pub fn abort(&self) {
        self.driver.abort();
    }

    /// A handle that stops the driver, usable after `self` is gone.
    pub fn abort_handle(&self) -> tokio::task::AbortHandle {
        self.driver.abort_handle()
    }
}

/// The task that owns the protocol and the socket.
struct Driver {
    peer: Peer,
    socket: Arc<UdpSocket>,
    addrs: Vec<SocketAddr>,
    start: Instant,
    wan: Option<WanEmulator>,
    commands: mpsc::Receiver<Command>,
    commands_open: bool,
    events: mpsc::Sender<GroupEvent>,
    /// Events the application has no room for yet.
    backlog: VecDeque<GroupEvent>,
    ready: Option<oneshot::Sender<Result<(), PeerError>>>,
    stats: watch::Sender<Stats>,
    /// Datagrams to send now.
    outbox: Vec<(MemberId, Bytes)>,
}

/// Why the driver woke up.
enum Wake {
    Readable,
    SocketError(io::Error),
    EventRoom(bool),
    Command(Option<Command>),
    Timer,
}

/// At most this many datagrams are read per wake-up before the driver
/// answers them, so that one busy sender cannot starve everything else.
const RECV_BATCH: usize = 256;

impl Driver {
    fn now(&self) -> Time {
        Time::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    fn instant(&self, t: Time) -> Instant {
        self.start + Duration::from_nanos(t.as_nanos())
    }

    async fn run(mut self) -> Stats {
        let mut recv_buf = vec![0u8; 2048];
        let mut send_buf = vec![0u8; MAX_DATAGRAM];
        let far = self.start + Duration::from_secs(86_400 * 365);
        let sleep = tokio::time::sleep_until(far);
        tokio::pin!(sleep);
        loop {
            self.flush(&mut send_buf).await;
            self.dispatch_events();
            if self.finished() {
                break;
            }
            let mut deadline = self.peer.poll_timeout().map(|t| self.instant(t));
            if let Some(t) = self.wan.as_ref().and_then(WanEmulator::next_due) {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
            let deadline = deadline.unwrap_or(far);
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let accepting = self.commands_open && self.peer.can_send();
            let wake = tokio::select! {
                biased;
                ready = self.socket.readable(), if self.backlog.is_empty() => match ready {
                    Ok(()) => Wake::Readable,
                    Err(e) => Wake::SocketError(e),
                },
                room = self.events.reserve(), if !self.backlog.is_empty() => Wake::EventRoom(room.is_ok()),
                cmd = self.commands.recv(), if accepting => Wake::Command(cmd),
                () = &mut sleep => Wake::Timer,
            };
            match wake {
                Wake::Readable => self.receive(&mut recv_buf),
                Wake::SocketError(e) => {
                    tracing::warn!("udp socket error: {e}");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Wake::EventRoom(true) => {
                    // Room was reserved and released; we are the only sender,
                    // so these sends succeed until the channel is full again.
                    while let Some(ev) = self.backlog.pop_front() {
                        if let Err(e) = self.events.try_send(ev) {
                            if let mpsc::error::TrySendError::Full(ev) = e {
                                self.backlog.push_front(ev);
                            }
                            break;
                        }
                    }
                }
                Wake::EventRoom(false) => self.backlog.clear(), // the application is gone
                Wake::Command(Some(cmd)) => {
                    self.command(cmd);
                    // Take whatever else is queued while the window has room.
                    while self.peer.can_send() {
                        match self.commands.try_recv() {
                            Ok(cmd) => self.command(cmd),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Command(None) => self.commands_open = false,
                Wake::Timer => {
                    let now = self.now();
                    self.peer.handle_timeout(now);
                }
            }
        }
        let stats = self.peer.stats().clone();
        self.stats.send_replace(stats.clone());
        stats
    }

    fn finished(&self) -> bool {
        let app_gone = !self.commands_open && self.events.is_closed();
        if app_gone {
            return true;
        }
        if !self.backlog.is_empty() {
            return false;
        }
        if self.peer.is_failed() {
            return true;
        }
        // The core's rule: every other member holds our records and has
        // completed (or is gone), and the close wait after that has passed.
        self.peer.may_leave(self.now())
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        // The window was checked before the command was taken, and a payload
        // too large was refused by the sender, so errors here mean the run
        // has ended; the application learns that from the event stream.
        let _ = match cmd {
            Command::Multicast(payload) => self.peer.multicast(now, payload).map(|_| ()),
            Command::Finish => self.peer.finish(now),
        };
    }

    fn receive(&mut self, buf: &mut [u8]) {
        for _ in 0..RECV_BATCH {
            match self.socket.try_recv_from(buf) {
                Ok((len, from)) => {
                    let source_ok = self.source_ok(&buf[..len], from);
                    let now = self.now();
                    self.peer.handle_datagram_from(
                        now,
                        Bytes::copy_from_slice(&buf[..len]),
                        source_ok,
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!("udp receive error: {e}");
                    break;
                }
            }
        }
    }

    /// Without a key, a datagram is accepted only from the address of the
    /// member its header names (the address that member registered: IP and
    /// port, as advertised), so that nobody can speak for a member just by
    /// writing its id into a header. This is weak (source addresses can be
    /// forged by anyone on the path, or on the same host) and it breaks where
    /// a NAT rewrites a member's source to something other than the address
    /// it advertised, which is why, with a key, the check is skipped: the
    /// seal proves who sent a datagram far better than its address.
    /// The core drops a datagram from the wrong address only once it knows
    /// it is otherwise a datagram for us (so garbage still counts as
    /// malformed, another run's datagram as another run's).
    fn source_ok(&self, bytes: &[u8], source: SocketAddr) -> bool {
        if self.peer.config().keys.is_some() || bytes.len() < 14 {
            return true;
        }
        let claimed = u16::from_be_bytes([bytes[12], bytes[13]]);
        match self.addrs.get(usize::from(claimed)) {
            Some(addr) => same_endpoint(*addr, source),
            None => true,
        }
    }

    /// Sends everything the core (and the WAN emulator's delay queue) has
    /// ready.
    async fn flush(&mut self, buf: &mut [u8]) {
        let now = self.now();
        let instant_now = Instant::now();
        let mut outbox = std::mem::take(&mut self.outbox);
        if let Some(wan) = self.wan.as_mut() {
            wan.release(instant_now, &mut outbox);
        }
        while let Some(t) = self.peer.poll_transmit(now, buf) {
            match self.wan.as_mut() {
                Some(wan) => wan.route(t.to, &buf[..t.len], instant_now, &mut outbox),
                None => {
                    let addr = self.addrs[usize::from(t.to)];
                    send(&self.socket, &buf[..t.len], addr).await;
                }
            }
        }
        for (to, bytes) in outbox.drain(..) {
            send(&self.socket, &bytes, self.addrs[usize::from(to)]).await;
        }
        self.outbox = outbox;
    }

    fn dispatch_events(&mut self) {
        while let Some(ev) = self.peer.poll_event() {
            let ev = match ev {
                Event::Ready => {
                    if let Some(tx) = self.ready.take() {
                        let _ = tx.send(Ok(()));
                    }
                    continue;
                }
                Event::Deliver(d) => GroupEvent::Delivery(d),
                Event::View {
                    id,
                    members,
                    joined,
                    left,
                } => GroupEvent::View {
                    id,
                    members,
                    joined,
                    left,
                },
                Event::Completed => {
                    self.stats.send_replace(self.peer.stats().clone());
                    GroupEvent::Completed
                }
                Event::Failed(e) => {
                    if let Some(tx) = self.ready.take() {
                        let _ = tx.send(Err(e.clone()));
                    }
                    self.stats.send_replace(self.peer.stats().clone());
                    GroupEvent::Failed(e)
                }
            };
            if !self.backlog.is_empty() {
                self.backlog.push_back(ev);
                continue;
            }
            match self.events.try_send(ev) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(ev)) => self.backlog.push_back(ev),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// A random number from the operating system (never zero: zero means "draw
/// one" in [`Config::incarnation`]).
pub fn random_u64() -> Result<u64, getrandom::Error> {
    loop {
        let v = getrandom::u64()?;
        if v != 0 {
            return Ok(v);
        }
    }
}

/// Whether two socket addresses are the same endpoint (an IPv4 address and
/// its IPv4-mapped IPv6 form are the same).
fn same_endpoint(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.ip().to_canonical() == b.ip().to_canonical()
}

async fn send(socket: &UdpSocket, bytes: &[u8], addr: SocketAddr) {
    if let Err(e) = socket.send_to(bytes, addr).await {
        // UDP send errors (e.g. no route yet) are like losses: the reliable
        // links retransmit.
        tracing::debug!("udp send to {addr} failed: {e}");
    }
}

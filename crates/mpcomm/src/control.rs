//! The control plane: how mpcomm processes talk to each other over TCP.
//!
//! The *data plane* (the multicast itself) is UDP with a compact binary
//! format, because it carries many small messages and must be fast. The
//! *control plane* carries few, rare messages — "I am peer-1, reach me
//! here", "who is registered?", "start run 7 with these members", "here is
//! my delivery log" — so it is optimised for something else: being easy to
//! read, debug and re-implement. The full specification, with example
//! exchanges, is `docs/control-protocol.md`.
//!
//! # Why JSON Lines
//!
//! Every message is one JSON object on one line, terminated by `\n`
//! ([JSON Lines](https://jsonlines.org/)). The line break is the frame
//! boundary: no length prefixes, no binary headers. That means a person can
//! talk to any mpcomm process with `nc`:
//!
//! ```text
//! $ nc 127.0.0.1 5680
//! {"op":"list"}
//! {"ok":true,"peers":[]}
//! ```
//!
//! and every language has a JSON parser and a "read a line" function. JSON
//! cannot contain a raw newline outside of strings, and inside strings a
//! newline is written as `\n`, so a serialised object never spans two lines.
//!
//! The original MPComm used Python's `pickle` here, which lets whoever sends
//! the bytes run code in the receiver. JSON is *data only*: the worst a bad
//! message can do is be rejected.
//!
//! # Why a size limit
//!
//! "Read until the newline" is dangerous on a network: a client that never
//! sends a newline would make the reader buffer forever, until the process
//! runs out of memory. So [`Framed`] reads at most [`MAX_LINE`] bytes (1 MiB)
//! per line and answers anything longer with [`ControlError::TooLong`]. The
//! limit is far above any real message; the only long thing on the control
//! plane is a delivery log, and that is sent as *one line per entry* (see
//! [`send_report`]), so it can be streamed to disk without ever being in
//! memory as a whole.
//!
//! # Requests and replies
//!
//! Requests are JSON objects with an `"op"` field naming the operation
//! (`{"op":"heartbeat","name":"peer-1"}`); in Rust they are enums tagged by
//! `op` ([`GmRequest`], [`PeerCommand`], [`ReportMsg`]). Every request gets
//! exactly one [`Reply`]: `{"ok":true, ...}` or `{"ok":false,"error":"why"}`.
//! Servers answer a request they do not understand with an error reply and
//! keep the connection open, so a typo in `nc` does not cost the session.
//!
//! # Timeouts
//!
//! Nothing here waits forever on its own: [`request`] has a timeout built
//! in, and every other reading function is meant to be wrapped in
//! [`tokio::time::timeout`] by its caller (who knows how long is
//! reasonable: a heartbeat should take milliseconds, a big log seconds).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpStream, ToSocketAddrs};

use crate::secure::{self, Channel};
use mpcomm_core::seal::KeyRing;

/// The longest line (in bytes, without the terminating `\n`) accepted by
/// default.
pub const MAX_LINE: usize = 1 << 20;

/// How much of an offending line is quoted in [`ControlError::BadJson`].
const QUOTE_CHARS: usize = 200;

/// Outgoing bytes are written to the socket once this much is queued (only
/// matters when streaming many lines, see [`send_lines`]).
const WRITE_CHUNK: usize = 64 * 1024;

/// After a long line, the line buffer is shrunk back to this capacity so an
/// idle connection does not keep a megabyte allocated.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Everything that can go wrong on a control connection.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket (or file) failed. Displays as the I/O error itself
    /// (which already says what failed, e.g. "cannot connect to …"), and
    /// has no further source, so that a chain of causes says it once.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A line was longer than the limit. The connection is now in the middle
    /// of a line and should be closed.
    #[error(
        "line longer than {limit} bytes (each control message must be one line of at most {limit} bytes)"
    )]
    TooLong { limit: usize },
    /// The other side closed the connection in the middle of a line.
    #[error("connection closed in the middle of a line (the message was cut off)")]
    Truncated,
    /// A line was not valid JSON, or not the JSON that was expected.
    #[error("malformed message ({reason}): {line:?}")]
    BadJson {
        /// The first 200 characters of the line.
        line: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// The connection ended where a message was required.
    #[error("connection closed by the other side before the expected message arrived")]
    Closed,
    /// Nothing (or not enough) arrived in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The other side answered `{"ok":false,"error":...}`.
    #[error("the other side refused: {0}")]
    Remote(String),
    /// Well-formed messages in the wrong order or with inconsistent content
    /// (e.g. a report with fewer entries than announced).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The other side holds another group key, or none while we hold one
    /// (or the reverse); see [`crate::secure`]. No retry can fix this.
    #[error("{0} (the group keys differ: give every process the same --key file)")]
    KeyMismatch(String),
}

impl ControlError {
    /// Whether retrying cannot help: the keys differ (also when a keyless
    /// client is told so by a keyed server, in a JSON error reply).
    pub fn is_key_mismatch(&self) -> bool {
        match self {
            ControlError::KeyMismatch(_) => true,
            ControlError::Remote(msg) => msg.contains("the keys differ"),
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// What [`read_line_limited`] found.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// A complete line (newline removed) is in the buffer.
    Line,
    /// End of input before any byte of a new line.
    Eof,
    /// End of input after some bytes but before the newline; they are in the
    /// buffer.
    Partial,
}

/// Reads one line into `buf` (cleared first), never holding more than
/// `limit` bytes of it. Uses `fill_buf`/`consume` so that bytes after the
/// newline stay in the reader for the next call.
async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<LineRead, ControlError> {
    buf.clear();
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if buf.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Partial
            });
        }
        match available.iter().position(|&b| b == b'\n') {
            Some(i) => {
                if buf.len() + i > limit {
                    reader.consume(i + 1);
                    return Err(ControlError::TooLong { limit });
                }
                buf.extend_from_slice(&available[..i]);
                reader.consume(i + 1);
                // Tolerate CRLF line ends (telnet, Windows tools).
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
                return Ok(LineRead::Line);
            }
            None => {
                let n = available.len();
                if buf.len() + n > limit {
                    reader.consume(n);
                    return Err(ControlError::TooLong { limit });
                }
                buf.extend_from_slice(available);
                reader.consume(n);
            }
        }
    }
}

/// The first [`QUOTE_CHARS`] characters of a line, for error messages.
fn quote_line(line: &[u8]) -> String {
    let head = &line[..line.len().min(QUOTE_CHARS * 4)];
    String::from_utf8_lossy(head)
        .chars()
        .take(QUOTE_CHARS)
        .collect()
}

/// A string cut to `max` characters (with `…` if cut), for echoing
/// untrusted input in error messages.
pub fn truncate_for_display(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// A JSON Lines connection: typed messages in, typed messages out.
///
/// Wraps a [`TcpStream`] (or any `AsyncRead + AsyncWrite + Unpin`, such as
/// [`tokio::io::duplex`] in tests) with a read buffer. Reading never holds
/// more than the line limit; writing queues bytes and flushes them at the
/// end of every [`send`](Self::send).
///
/// Blank lines (only whitespace) between messages are skipped, so a person
/// typing in `nc` can press Enter without causing an error.
#[derive(Debug)]
pub struct Framed<S> {
    inner: BufReader<S>,
    limit: usize,
    line: Vec<u8>,
    out: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Framed<S> {
    /// Wraps `stream` with the default line limit [`MAX_LINE`].
    pub fn new(stream: S) -> Self {
        Self::with_limit(stream, MAX_LINE)
    }

    /// Wraps `stream`; lines longer than `limit` bytes are rejected.
    pub fn with_limit(stream: S, limit: usize) -> Self {
        Self {
            inner: BufReader::new(stream),
            limit,
            line: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The line limit in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The wrapped stream, mutably. Reading from it directly skips bytes
    /// already buffered here; use with care.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// Unwraps the stream. Bytes already read into the buffer but not yet
    /// returned as a message are lost.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }

    /// Reads the next non-blank line (without the `\n`).
    ///
    /// `Ok(None)` means the other side closed the connection cleanly between
    /// two lines. After [`ControlError::TooLong`] the stream is in the middle
    /// of a line; the only sensible thing left is to reply and close.
    pub async fn recv_line(&mut self) -> Result<Option<&[u8]>, ControlError> {
        loop {
            if self.line.capacity() > KEEP_CAPACITY {
                self.line = Vec::new();
            }
            match read_line_limited(&mut self.inner, &mut self.line, self.limit).await? {
                LineRead::Eof => return Ok(None),
                LineRead::Partial => return Err(ControlError::Truncated),
                LineRead::Line if is_blank(&self.line) => continue,
                LineRead::Line => return Ok(Some(&self.line)),
            }
        }
    }

    /// Reads the next message and decodes it as `T`.
    ///
    /// `Ok(None)` on a clean end of the connection between messages. A line
    /// that is not valid JSON or does not match `T` gives
    /// [`ControlError::BadJson`]; the connection is still usable afterwards.
    pub async fn recv<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ControlError> {
        let Some(line) = self.recv_line().await? else {
            return Ok(None);
        };
        serde_json::from_slice(line)
            .map(Some)
            .map_err(|e| ControlError::BadJson {
                line: quote_line(line),
                reason: e.to_string(),
            })
    }

    /// Reads the next message as untyped JSON. Servers use this to tell
    /// "not JSON" from "JSON, but an unknown op" and answer each precisely
    /// (see [`decode_op`]).
    pub async fn recv_value(&mut self) -> Result<Option<Value>, ControlError> {
        self.recv::<Value>().await
    }

    /// Sends one message (as one line) and flushes it to the socket.
    ///
    /// Fails with [`ControlError::TooLong`] (without sending anything) if the
    /// encoded message is longer than the limit, since the other side would
    /// reject it anyway.
    pub async fn send<T: Serialize + ?Sized>(&mut self, msg: &T) -> Result<(), ControlError> {
        let start = self.out.len();
        serde_json::to_writer(&mut self.out, msg).map_err(io::Error::from)?;
        if self.out.len() - start > self.limit {
            self.out.truncate(start);
            return Err(ControlError::TooLong { limit: self.limit });
        }
        self.out.push(b'\n');
        self.flush().await
    }

    /// Queues one raw line (which must not contain `\n`; the `\n` is added)
    /// without flushing; bytes go out in chunks. Used to stream log entries.
    pub async fn feed_line(&mut self, line: &[u8]) -> Result<(), ControlError> {
        if line.len() > self.limit {
            return Err(ControlError::TooLong { limit: self.limit });
        }
        if line.contains(&b'\n') {
            return Err(ControlError::Protocol(
                "a line to send contains a newline character".into(),
            ));
        }
        self.out.extend_from_slice(line);
        self.out.push(b'\n');
        if self.out.len() >= WRITE_CHUNK {
            let inner = self.inner.get_mut();
            inner.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes everything queued and flushes the stream.
    pub async fn flush(&mut self) -> Result<(), ControlError> {
        let inner = self.inner.get_mut();
        if !self.out.is_empty() {
            let result = inner.write_all(&self.out).await;
            self.out.clear();
            if self.out.capacity() > KEEP_CAPACITY {
                self.out = Vec::new();
            }
            result?;
        }
        inner.flush().await?;
        Ok(())
    }

    /// Closes the connection politely: flushes, shuts down the sending
    /// direction, then reads and discards whatever the other side is still
    /// sending, for at most `linger` (and at most 16 MiB).
    ///
    /// Why: closing a TCP socket while unread bytes are waiting in it makes
    /// the kernel send a reset, and a reset can destroy our last reply
    /// before the other side reads it. Draining first lets an error reply
    /// ("line too long") actually arrive.
    pub async fn close_gracefully(mut self, linger: Duration) {
        let drain = async {
            self.flush().await.ok()?;
            self.inner.get_mut().shutdown().await.ok()?;
            let mut scratch = vec![0u8; 16 * 1024];
            let mut total = 0usize;
            while total < 16 << 20 {
                match self.inner.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
            Some(())
        };
        let _ = tokio::time::timeout(linger, drain).await;
    }
}

/// Sends one request to `addr` on a new connection and returns the reply.
///
/// Connecting, sending and receiving together must finish within `timeout`
/// ([`ControlError::Timeout`] otherwise). A reply `{"ok":false,...}` becomes
/// [`ControlError::Remote`], whatever `Resp` is; use [`Reply`] as `Resp` for
/// the standard replies.
pub async fn request<A, Req, Resp>(
    addr: A,
    req: &Req,
    timeout: Duration,
) -> Result<Resp, ControlError>
where
    A: ToSocketAddrs + fmt::Display,
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    request_keyed(addr, req, timeout, None).await
}

/// Connects to `addr` and, with keys, authenticates the connection (see
/// [`crate::secure`]) before returning it.
pub async fn connect<A>(addr: A, keys: Option<&KeyRing>) -> Result<Framed<Channel>, ControlError>
where
    A: ToSocketAddrs + fmt::Display,
{
    let stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    Ok(Framed::new(secure::client(stream, keys).await?))
}

/// Accepts a connection: with keys, authenticates it before anything is
/// read from it (see [`crate::secure`]).
pub async fn accept(
    stream: TcpStream,
    keys: Option<&KeyRing>,
) -> Result<Framed<Channel>, ControlError> {
    let _ = stream.set_nodelay(true);
    Ok(Framed::new(secure::server(stream, keys).await?))
}

/// [`request`] with the group keys: the connection is authenticated first.
pub async fn request_keyed<A, Req, Resp>(
    addr: A,
    req: &Req,
    timeout: Duration,
    keys: Option<&KeyRing>,
) -> Result<Resp, ControlError>
where
    A: ToSocketAddrs + fmt::Display,
    Req: Serialize + ?Sized,
    Resp: DeserializeOwned,
{
    let exchange = async {
        let mut framed = connect(&addr, keys).await?;
        framed.send(req).await?;
        let value = framed.recv_value().await?.ok_or(ControlError::Closed)?;
        if let Some(msg) = remote_error(&value) {
            return Err(ControlError::Remote(msg));
        }
        serde_json::from_value(value.clone()).map_err(|e| ControlError::BadJson {
            line: quote_line(value.to_string().as_bytes()),
            reason: e.to_string(),
        })
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ControlError::Timeout(timeout)),
    }
}

/// If `value` is an error reply (`"ok": false`), its message.
fn remote_error(value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    if obj.get("ok")?.as_bool()? {
        return None;
    }
    Some(
        obj.get("error")
            .and_then(Value::as_str)
            .unwrap_or("(no reason given)")
            .to_string(),
    )
}

// ---------------------------------------------------------------------------
// Decoding requests with precise errors
// ---------------------------------------------------------------------------

/// A request enum tagged by `"op"`, with the list of its ops, so that
/// [`decode_op`] can say "unknown op" instead of serde's generic message.
pub trait OpSet: DeserializeOwned {
    /// Every valid value of `"op"`.
    const OPS: &'static [&'static str];
}

/// Decodes a request received with [`Framed::recv_value`], with an error
/// message fit to send back to the client as `{"ok":false,"error":...}`.
pub fn decode_op<T: OpSet>(value: Value) -> Result<T, String> {
    let expected = T::OPS.join(", ");
    let Some(obj) = value.as_object() else {
        return Err(format!(
            "expected a JSON object with an \"op\" field, like {{\"op\":\"{}\"}}, got {}",
            T::OPS.first().copied().unwrap_or("list"),
            json_kind(&value)
        ));
    };
    let op = match obj.get("op") {
        None => return Err(format!("missing \"op\" field (one of: {expected})")),
        Some(Value::String(op)) => op.clone(),
        Some(other) => {
            return Err(format!(
                "\"op\" must be a string (one of: {expected}), got {}",
                json_kind(other)
            ));
        }
    };
    if !T::OPS.contains(&op.as_str()) {
        return Err(format!(
            "unknown op {:?} (expected one of: {expected})",
            truncate_for_display(&op, 40)
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("bad {op:?} request: {e}"))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deserializes a socket address with an error that shows the bad value.
fn de_socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "{:?} is not a socket address (expected IP:PORT, e.g. 10.0.0.5:7000 or [::1]:7000)",
            truncate_for_display(&s, 60)
        ))
    })
}

/// Deserializes a string where `null` means the empty string.
fn de_null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------

/// The answer to every request: `{"ok":true,...}` or
/// `{"ok":false,"error":"..."}`. Fields that do not apply are left out of
/// the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Why it failed (with `ok: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The registered peers (answer to `list`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerInfo>>,
    /// How long a registration lives without a heartbeat, in milliseconds
    /// (answer to `register`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
    /// Whether `unregister` removed an entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<bool>,
    /// The answering peer's name (answer to `ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The answering peer's state, e.g. `"idle"`, `"running"` (answer to
    /// `ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The run the answering peer is in, if any (answer to `ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<u64>,
}

impl Reply {
    /// `{"ok":true}`.
    pub fn ok() -> Self {
        Self {
            ok: true,
            ..Self::default()
        }
    }

    /// `{"ok":false,"error":msg}`.
    pub fn err(msg: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(msg.into()),
            ..Self::default()
        }
    }

    /// `Ok(self)` if `ok` is true, else [`ControlError::Remote`] with the
    /// error message.
    pub fn into_result(self) -> Result<Reply, ControlError> {
        if self.ok {
            Ok(self)
        } else {
            Err(ControlError::Remote(
                self.error
                    .unwrap_or_else(|| "(no reason given)".to_string()),
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// Group manager
// ---------------------------------------------------------------------------

/// The longest peer name.
pub const MAX_NAME: usize = 64;
/// The longest region name.
pub const MAX_REGION: usize = 32;

/// A request to the group manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GmRequest {
    /// Add (or replace) a peer: `{"op":"register","name":...,...}`.
    Register(Register),
    /// Keep a registration alive: `{"op":"heartbeat","name":"peer-1"}`.
    Heartbeat { name: String },
    /// Remove a registration: `{"op":"unregister","name":"peer-1"}`.
    Unregister { name: String },
    /// List the live registrations: `{"op":"list"}`.
    List,
    /// Stop the group manager: `{"op":"stop"}`.
    Stop,
}

impl OpSet for GmRequest {
    const OPS: &'static [&'static str] = &["register", "heartbeat", "unregister", "list", "stop"];
}

/// The body of a `register` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Register {
    /// Unique name of the peer, 1..=64 characters of `A-Z a-z 0-9 . _ -`.
    pub name: String,
    /// Where the peer receives multicast datagrams (UDP).
    #[serde(deserialize_with = "de_socket_addr")]
    pub data_addr: SocketAddr,
    /// Where the peer accepts control connections (TCP).
    #[serde(deserialize_with = "de_socket_addr")]
    pub control_addr: SocketAddr,
    /// Network region (for the emulated WAN and for reports); 0..=32
    /// characters of the same set as names; empty means `"default"`.
    #[serde(default, deserialize_with = "de_null_as_empty")]
    pub region: String,
}

impl Register {
    /// Checks the rules the group manager enforces, so a peer can check
    /// its own registration before sending it. The message says what is
    /// wrong and how to fix it.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        validate_region(&self.region)?;
        validate_addr("data_addr", self.data_addr)?;
        validate_addr("control_addr", self.control_addr)?;
        Ok(())
    }

    /// The region, with empty replaced by `"default"`.
    pub fn region_or_default(&self) -> &str {
        if self.region.is_empty() {
            "default"
        } else {
            &self.region
        }
    }
}

fn valid_chars(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A peer name is 1..=64 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME || !valid_chars(name) {
        return Err(format!(
            "invalid peer name {:?}: use 1 to {MAX_NAME} characters from A-Z a-z 0-9 . _ - (e.g. \"peer-1\")",
            truncate_for_display(name, 80)
        ));
    }
    Ok(())
}

/// A region is 0..=32 characters of `A-Z a-z 0-9 . _ -`.
pub fn validate_region(region: &str) -> Result<(), String> {
    if region.len() > MAX_REGION || !valid_chars(region) {
        return Err(format!(
            "invalid region {:?}: use up to {MAX_REGION} characters from A-Z a-z 0-9 . _ - (e.g. \"eu\"), or leave it empty",
            truncate_for_display(region, 80)
        ));
    }
    Ok(())
}

/// An address other processes will connect to: non-zero port, specific IP.
pub fn validate_addr(field: &str, addr: SocketAddr) -> Result<(), String> {
    if addr.port() == 0 {
        return Err(format!(
            "{field} {addr} has port 0: register the actual port the socket is bound to"
        ));
    }
    if addr.ip().is_unspecified() {
        return Err(format!(
            "{field} {addr} is unspecified ({}): other peers cannot send to it; register an address they can reach, e.g. 127.0.0.1:{} or this host's LAN address",
            addr.ip(),
            addr.port()
        ));
    }
    Ok(())
}

/// One registered peer, as returned by `list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's unique name.
    pub name: String,
    /// Where it receives datagrams (UDP).
    pub data_addr: SocketAddr,
    /// Where it accepts control connections (TCP).
    pub control_addr: SocketAddr,
    /// Its region (never empty: `"default"` if it registered none).
    pub region: String,
    /// Milliseconds since it (last) registered.
    pub age_ms: u64,
}

// ---------------------------------------------------------------------------
// Comparison server → peer
// ---------------------------------------------------------------------------

/// A command from the comparison server to a peer's control address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PeerCommand {
    /// Take part in a run: `{"op":"start",...}`.
    Start(StartRun),
    /// Unregister and exit: `{"op":"stop"}`.
    Stop,
    /// Are you alive? `{"op":"ping"}` → `{"ok":true,"name":..,"state":..}`.
    Ping,
    /// End run `run` now and report what was delivered, as failed, with
    /// `reason` as the error: `{"op":"abort","run":7,"reason":"…"}`. The
    /// server sends it when a run's outcome is decided (a member died or
    /// failed), so that the others stop at once instead of waiting for a
    /// timeout, and their logs still reach the server.
    Abort {
        /// The run to end; a peer in another run (or none) refuses.
        run: u64,
        /// Why, for the peer's log and report.
        reason: String,
    },
}

impl OpSet for PeerCommand {
    const OPS: &'static [&'static str] = &["start", "stop", "ping", "abort"];
}

/// Everything a peer needs to take part in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRun {
    /// Run id; every datagram of the run carries it.
    pub run: u64,
    /// This peer's member id in the run (index into `members`).
    pub member: u16,
    /// The group, in member-id order.
    pub members: Vec<MemberSpec>,
    /// Delivery order: `"none"`, `"fifo"` or `"total"`.
    pub order: String,
    /// How many messages each peer multicasts.
    pub messages: u64,
    /// Shortest pause between two of this peer's messages, microseconds.
    pub min_interval_us: u64,
    /// Longest pause between two of this peer's messages, microseconds.
    pub max_interval_us: u64,
    /// Bytes per message (at least 8).
    pub payload: usize,
    /// Seed for this peer's random choices (pauses, payload).
    pub seed: u64,
    /// Network emulation, e.g. `"intra=2ms±1ms, inter=80ms±30ms, loss=1%"`,
    /// or `null` for the real network.
    pub wan: Option<String>,
    /// Where to send the delivery log when done (TCP).
    pub report_to: SocketAddr,
    /// Give up (and report failure) after this many milliseconds.
    pub deadline_ms: u64,
    /// Declare a member that has been silent this long unresponsive, and
    /// fail the run (milliseconds, 1000 or more); absent or `null` = the
    /// protocol's default (10 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_timeout_ms: Option<u64>,
}

/// One member of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSpec {
    /// The peer's registered name.
    pub name: String,
    /// Where it receives datagrams.
    pub data_addr: SocketAddr,
    /// Its region.
    pub region: String,
}

// ---------------------------------------------------------------------------
// Peer → comparison server: the delivery-log report
// ---------------------------------------------------------------------------

/// The framing messages of a report. On the connection to `report_to`:
///
/// ```text
/// {"op":"report","run":7,"member":0,...,"entries":2,...}   ReportMsg::Report
/// {...log entry...}                                        2 raw JSON lines
/// {...log entry...}
/// {"op":"end","entries":2}                                 ReportMsg::End
/// ```
/// answered by one [`Reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ReportMsg {
    /// The header: who reports, how it went, how many entries follow.
    Report(ReportHeader),
    /// The trailer, repeating the number of entries sent.
    End { entries: u64 },
}

impl OpSet for ReportMsg {
    const OPS: &'static [&'static str] = &["report", "end"];
}

/// The first line of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportHeader {
    /// The run.
    pub run: u64,
    /// The reporting peer's member id.
    pub member: u16,
    /// The reporting peer's name.
    pub name: String,
    /// `"completed"` or `"failed"`.
    pub status: String,
    /// Why it failed (with `"failed"`), else `null`.
    pub error: Option<String>,
    /// Number of log lines that follow.
    pub entries: u64,
    /// Number of deliveries in the log (its lines but the meta and end
    /// lines); absent from older peers, whose logs have delivery lines only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u64>,
    /// Counters (datagrams sent, retransmissions, ...).
    #[serde(default)]
    pub stats: BTreeMap<String, u64>,
}

/// A body line must be a JSON object that is not itself a framing message.
#[derive(Deserialize)]
struct EntryProbe {
    #[serde(default)]
    op: Option<IgnoredAny>,
}

fn check_entry(line: &[u8], index: u64) -> Result<(), ControlError> {
    let first = line.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ControlError::BadJson {
            line: quote_line(line),
            reason: format!("log entry {index} is not a JSON object"),
        });
    }
    match serde_json::from_slice::<EntryProbe>(line) {
        Ok(EntryProbe { op: None }) => Ok(()),
        Ok(EntryProbe { op: Some(_) }) => Err(ControlError::Protocol(format!(
            "log entry {index} has an \"op\" field: the report has fewer entries than its header announced, or an entry is not a log entry"
        ))),
        Err(e) => Err(ControlError::BadJson {
            line: quote_line(line),
            reason: format!("log entry {index}: {e}"),
        }),
    }
}

/// Streams exactly `expected` lines from `reader` (a delivery log file, one
/// JSON object per line) as the body of a report, without loading the file
/// into memory. Each line is checked (length limit, a JSON object) before
/// it is sent. A missing newline after the last line of the file is
/// tolerated. Returns the number of lines sent; fails with
/// [`ControlError::Protocol`] if the file has more or fewer lines than
/// `expected`.
///
/// Does not send the trailer; see [`send_report`] for the whole exchange.
pub async fn send_lines<S, R>(
    framed: &mut Framed<S>,
    mut reader: R,
    expected: u64,
) -> Result<u64, ControlError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    let limit = framed.limit();
    let mut line = Vec::new();
    let mut sent = 0u64;
    loop {
        match read_line_limited(&mut reader, &mut line, limit).await? {
            LineRead::Eof => break,
            LineRead::Line | LineRead::Partial => {
                if is_blank(&line) {
                    continue;
                }
                if sent == expected {
                    return Err(ControlError::Protocol(format!(
                        "the log has more than the {expected} entries announced"
                    )));
                }
                check_entry(&line, sent)?;
                framed.feed_line(&line).await?;
                sent += 1;
            }
        }
    }
    framed.flush().await?;
    if sent != expected {
        return Err(ControlError::Protocol(format!(
            "the log has {sent} entries, but {expected} were announced"
        )));
    }
    Ok(sent)
}

/// Receives exactly `expected` body lines and writes each (with its `\n`)
/// to `writer`, e.g. a file, checking every line against the limit and that
/// it is a JSON object. Flushes `writer` at the end. Does not read the
/// trailer; see [`recv_report_body`].
pub async fn recv_lines<S, W>(
    framed: &mut Framed<S>,
    mut writer: W,
    expected: u64,
) -> Result<u64, ControlError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut chunk: Vec<u8> = Vec::new();
    let mut received = 0u64;
    while received < expected {
        let line = match framed.recv_line().await? {
            Some(line) => line,
            None => {
                return Err(ControlError::Protocol(format!(
                    "connection closed after {received} of {expected} log entries"
                )));
            }
        };
        check_entry(line, received)?;
        chunk.extend_from_slice(line);
        chunk.push(b'\n');
        received += 1;
        if chunk.len() >= WRITE_CHUNK {
            writer.write_all(&chunk).await?;
            chunk.clear();
        }
    }
    writer.write_all(&chunk).await?;
    writer.flush().await?;
    Ok(received)
}

/// Receives the body and the trailer of a report whose header (already
/// received) announced `header.entries` lines, writing the lines to
/// `writer`. The caller then answers with a [`Reply`] — typically after
/// making the file durable.
pub async fn recv_report_body<S, W>(
    framed: &mut Framed<S>,
    header: &ReportHeader,
    writer: W,
) -> Result<(), ControlError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let n = recv_lines(framed, writer, header.entries).await?;
    match framed.recv::<ReportMsg>().await {
        Ok(Some(ReportMsg::End { entries })) if entries == n => Ok(()),
        Ok(Some(ReportMsg::End { entries })) => Err(ControlError::Protocol(format!(
            "report trailer says {entries} entries, but the header announced {n} and {n} were received"
        ))),
        Ok(Some(ReportMsg::Report(_))) => Err(ControlError::Protocol(format!(
            "expected {{\"op\":\"end\"}} after {n} entries, got another report header"
        ))),
        Ok(None) => Err(ControlError::Closed),
        Err(ControlError::BadJson { line, .. }) => Err(ControlError::Protocol(format!(
            "expected {{\"op\":\"end\",\"entries\":{n}}} after {n} entries (does the log have more entries than announced?), got {line:?}"
        ))),
        Err(e) => Err(e),
    }
}

/// The whole peer side of a report: sends `header`, streams
/// `header.entries` lines from `log`, sends the trailer and waits for the
/// reply (`ok:false` becomes [`ControlError::Remote`]). Wrap it in a
/// timeout.
pub async fn send_report<S, R>(
    framed: &mut Framed<S>,
    header: &ReportHeader,
    log: R,
) -> Result<Reply, ControlError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    framed.send(&ReportMsg::Report(header.clone())).await?;
    let n = send_lines(framed, log, header.entries).await?;
    framed.send(&ReportMsg::End { entries: n }).await?;
    framed
        .recv::<Reply>()
        .await?
        .ok_or(ControlError::Closed)?
        .into_result()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncWriteExt, duplex};

    const T: Duration = Duration::from_secs(5);

    async fn with_timeout<F: Future>(f: F) -> F::Output {
        tokio::time::timeout(T, f).await.expect("test timed out")
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn several_messages_then_clean_eof() {
        let (a, mut b) = duplex(1024);
        let mut framed = Framed::new(a);
        b.write_all(b"{\"op\":\"list\"}\n\n  \r\n{\"op\":\"stop\"}\n")
            .await
            .unwrap();
        drop(b);
        let m1: GmRequest = with_timeout(framed.recv()).await.unwrap().unwrap();
        let m2: GmRequest = with_timeout(framed.recv()).await.unwrap().unwrap();
        assert_eq!(m1, GmRequest::List);
        assert_eq!(m2, GmRequest::Stop);
        assert!(
            with_timeout(framed.recv::<GmRequest>())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn crlf_is_accepted() {
        let (a, mut b) = duplex(1024);
        let mut framed = Framed::new(a);
        b.write_all(b"{\"op\":\"list\"}\r\n{}\r\n").await.unwrap();
        let m: GmRequest = with_timeout(framed.recv()).await.unwrap().unwrap();
        assert_eq!(m, GmRequest::List);
        let raw = with_timeout(framed.recv_line()).await.unwrap().unwrap();
        assert_eq!(raw, b"{}");
    }

    #[tokio::test]
    async fn truncated_line() {
        let (a, mut b) = duplex(1024);
        let mut framed = Framed::new(a);
        b.write_all(b"{\"op\":\"li").await.unwrap();
        drop(b);
        let err = with_timeout(framed.recv_value()).await.unwrap_err();
        assert!(matches!(err, ControlError::Truncated), "{err:?}");
    }

    #[tokio::test]
    async fn too_long_line() {
        let (a, mut b) = duplex(64 * 1024);
        let mut framed = Framed::with_limit(a, 100);
        tokio::spawn(async move {
            let _ = b.write_all(&[b'x'; 10_000]).await;
            let _ = b.write_all(b"\n").await;
        });
        let err = with_timeout(framed.recv_value()).await.unwrap_err();
        assert!(
            matches!(err, ControlError::TooLong { limit: 100 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn line_exactly_at_limit_is_accepted() {
        let (a, mut b) = duplex(1024);
        let mut framed = Framed::with_limit(a, 10);
        // 10 bytes exactly, then 11 bytes.
        b.write_all(b"\"12345678\"\n\"123456789\"\n").await.unwrap();
        let v: String = with_timeout(framed.recv()).await.unwrap().unwrap();
        assert_eq!(v, "12345678");
        let err = with_timeout(framed.recv::<String>()).await.unwrap_err();
        assert!(
            matches!(err, ControlError::TooLong { limit: 10 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn bad_json_then_connection_still_usable() {
        let (a, mut b) = duplex(1024);
        let mut framed = Framed::new(a);
        b.write_all(b"this is not json\n{\"op\":\"list\"}\n")
            .await
            .unwrap();
        let err = with_timeout(framed.recv_value()).await.unwrap_err();
        match err {
            ControlError::BadJson { line, reason } => {
                assert_eq!(line, "this is not json");
                assert!(!reason.is_empty());
            }
            other => panic!("{other:?}"),
        }
        let v = with_timeout(framed.recv_value()).await.unwrap().unwrap();
        assert_eq!(v, json!({"op":"list"}));
    }

    #[tokio::test]
    async fn bad_json_quote_is_bounded() {
        let (a, mut b) = duplex(64 * 1024);
        let mut framed = Framed::new(a);
        let mut line = vec![b'y'; 5000];
        line.push(b'\n');
        b.write_all(&line).await.unwrap();
        match with_timeout(framed.recv_value()).await.unwrap_err() {
            ControlError::BadJson { line, .. } => assert_eq!(line.chars().count(), 200),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn send_writes_one_line() {
        let (a, b) = duplex(1024);
        let mut tx = Framed::new(a);
        let mut rx = Framed::new(b);
        tx.send(&GmRequest::Heartbeat {
            name: "p\n1".into(),
        })
        .await
        .unwrap();
        let line = with_timeout(rx.recv_line())
            .await
            .unwrap()
            .unwrap()
            .to_vec();
        assert_eq!(line, br#"{"op":"heartbeat","name":"p\n1"}"#);
    }

    #[tokio::test]
    async fn send_refuses_oversized_message() {
        let (a, _b) = duplex(1024);
        let mut tx = Framed::with_limit(a, 20);
        let err = tx.send(&"x".repeat(100)).await.unwrap_err();
        assert!(matches!(err, ControlError::TooLong { limit: 20 }));
        // Nothing was queued: a small message still goes out alone.
        tx.send(&1u8).await.unwrap();
    }

    #[test]
    fn gm_request_shapes() {
        let reg = GmRequest::Register(Register {
            name: "peer-1".into(),
            data_addr: addr("10.0.0.5:7000"),
            control_addr: addr("10.0.0.5:7001"),
            region: "eu".into(),
        });
        assert_eq!(
            serde_json::to_string(&reg).unwrap(),
            r#"{"op":"register","name":"peer-1","data_addr":"10.0.0.5:7000","control_addr":"10.0.0.5:7001","region":"eu"}"#
        );
        assert_eq!(
            serde_json::to_string(&GmRequest::List).unwrap(),
            r#"{"op":"list"}"#
        );
        assert_eq!(
            serde_json::to_string(&GmRequest::Unregister {
                name: "peer-1".into()
            })
            .unwrap(),
            r#"{"op":"unregister","name":"peer-1"}"#
        );
        let back: GmRequest = serde_json::from_str(
            r#"{"op":"register","name":"peer-1","data_addr":"[::1]:7000","control_addr":"10.0.0.5:7001"}"#,
        )
        .unwrap();
        match back {
            GmRequest::Register(r) => {
                assert_eq!(r.region, "");
                assert_eq!(r.region_or_default(), "default");
                assert_eq!(r.data_addr, addr("[::1]:7000"));
            }
            other => panic!("{other:?}"),
        }
        let back: GmRequest = serde_json::from_str(
            r#"{"op":"register","name":"p","data_addr":"1.2.3.4:5","control_addr":"1.2.3.4:6","region":null}"#,
        )
        .unwrap();
        assert!(matches!(back, GmRequest::Register(r) if r.region.is_empty()));
        // Unknown fields are ignored (newer clients can add fields).
        let back: GmRequest = serde_json::from_str(r#"{"op":"list","verbose":true}"#).unwrap();
        assert_eq!(back, GmRequest::List);
    }

    #[test]
    fn reply_shapes() {
        assert_eq!(
            serde_json::to_string(&Reply::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::err("unknown op \"frobnicate\"")).unwrap(),
            r#"{"ok":false,"error":"unknown op \"frobnicate\""}"#
        );
        let list = Reply {
            peers: Some(vec![PeerInfo {
                name: "peer-1".into(),
                data_addr: addr("10.0.0.5:7000"),
                control_addr: addr("10.0.0.5:7001"),
                region: "eu".into(),
                age_ms: 1500,
            }]),
            ..Reply::ok()
        };
        assert_eq!(
            serde_json::to_string(&list).unwrap(),
            r#"{"ok":true,"peers":[{"name":"peer-1","data_addr":"10.0.0.5:7000","control_addr":"10.0.0.5:7001","region":"eu","age_ms":1500}]}"#
        );
        let ttl = Reply {
            ttl_ms: Some(10_000),
            ..Reply::ok()
        };
        assert_eq!(
            serde_json::to_string(&ttl).unwrap(),
            r#"{"ok":true,"ttl_ms":10000}"#
        );
        assert!(Reply::ok().into_result().is_ok());
        match Reply::err("nope").into_result() {
            Err(ControlError::Remote(m)) => assert_eq!(m, "nope"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn peer_command_shapes() {
        let start = PeerCommand::Start(StartRun {
            run: 7,
            member: 1,
            members: vec![MemberSpec {
                name: "a".into(),
                data_addr: addr("127.0.0.1:7000"),
                region: "eu".into(),
            }],
            order: "total".into(),
            messages: 20,
            min_interval_us: 10_000,
            max_interval_us: 100_000,
            payload: 8,
            seed: 42,
            wan: None,
            report_to: addr("127.0.0.1:5678"),
            deadline_ms: 60_000,
            peer_timeout_ms: None,
        });
        let s = serde_json::to_string(&start).unwrap();
        assert_eq!(
            s,
            r#"{"op":"start","run":7,"member":1,"members":[{"name":"a","data_addr":"127.0.0.1:7000","region":"eu"}],"order":"total","messages":20,"min_interval_us":10000,"max_interval_us":100000,"payload":8,"seed":42,"wan":null,"report_to":"127.0.0.1:5678","deadline_ms":60000}"#
        );
        assert_eq!(serde_json::from_str::<PeerCommand>(&s).unwrap(), start);
        assert_eq!(
            serde_json::to_string(&PeerCommand::Ping).unwrap(),
            r#"{"op":"ping"}"#
        );
        assert_eq!(
            serde_json::to_string(&PeerCommand::Stop).unwrap(),
            r#"{"op":"stop"}"#
        );
        assert_eq!(
            serde_json::to_string(&PeerCommand::Abort {
                run: 7,
                reason: "peer 2 died".into()
            })
            .unwrap(),
            r#"{"op":"abort","run":7,"reason":"peer 2 died"}"#
        );
        // A start command of an older server has no peer_timeout_ms.
        let old = r#"{"op":"start","run":7,"member":0,"members":[],"order":"total","messages":1,"min_interval_us":1,"max_interval_us":2,"payload":8,"seed":1,"wan":null,"report_to":"127.0.0.1:5678","deadline_ms":60000}"#;
        match serde_json::from_str::<PeerCommand>(old).unwrap() {
            PeerCommand::Start(s) => assert_eq!(s.peer_timeout_ms, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn report_shapes() {
        let h = ReportMsg::Report(ReportHeader {
            run: 7,
            member: 0,
            name: "peer-1".into(),
            status: "completed".into(),
            error: None,
            entries: 2,
            delivered: None,
            stats: BTreeMap::from([("sent".to_string(), 40)]),
        });
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"op":"report","run":7,"member":0,"name":"peer-1","status":"completed","error":null,"entries":2,"stats":{"sent":40}}"#
        );
        assert_eq!(
            serde_json::to_string(&ReportMsg::End { entries: 2 }).unwrap(),
            r#"{"op":"end","entries":2}"#
        );
    }

    #[test]
    fn decode_op_errors() {
        let e = decode_op::<GmRequest>(json!({"op":"frobnicate"})).unwrap_err();
        assert!(e.starts_with("unknown op \"frobnicate\""), "{e}");
        let e = decode_op::<GmRequest>(json!({"name":"x"})).unwrap_err();
        assert!(e.contains("missing \"op\""), "{e}");
        let e = decode_op::<GmRequest>(json!({"op":"heartbeat"})).unwrap_err();
        assert!(e.contains("missing field `name`"), "{e}");
        let e = decode_op::<GmRequest>(json!([1, 2])).unwrap_err();
        assert!(e.contains("JSON object"), "{e}");
        let e = decode_op::<GmRequest>(json!({"op": 3})).unwrap_err();
        assert!(e.contains("must be a string"), "{e}");
        let e = decode_op::<GmRequest>(
            json!({"op":"register","name":"a","data_addr":"nowhere","control_addr":"1.2.3.4:5"}),
        )
        .unwrap_err();
        assert!(e.contains("\"nowhere\" is not a socket address"), "{e}");
        assert_eq!(
            decode_op::<GmRequest>(json!({"op":"list"})).unwrap(),
            GmRequest::List
        );
    }

    #[test]
    fn validation() {
        let ok = Register {
            name: "peer-1.a_b".into(),
            data_addr: addr("127.0.0.1:7000"),
            control_addr: addr("[::1]:7001"),
            region: String::new(),
        };
        assert!(ok.validate().is_ok());
        let bad = |f: &dyn Fn(&mut Register)| {
            let mut r = ok.clone();
            f(&mut r);
            r.validate().unwrap_err()
        };
        assert!(bad(&|r| r.name = String::new()).contains("invalid peer name"));
        assert!(bad(&|r| r.name = "a b".into()).contains("invalid peer name"));
        assert!(bad(&|r| r.name = "x".repeat(65)).contains("invalid peer name"));
        assert!(bad(&|r| r.name = "é".into()).contains("invalid peer name"));
        assert!(bad(&|r| r.region = "x".repeat(33)).contains("invalid region"));
        assert!(bad(&|r| r.region = "eu/west".into()).contains("invalid region"));
        assert!(bad(&|r| r.data_addr = addr("0.0.0.0:7000")).contains("unspecified"));
        assert!(bad(&|r| r.control_addr = addr("[::]:7000")).contains("unspecified"));
        assert!(bad(&|r| r.data_addr = addr("127.0.0.1:0")).contains("port 0"));
        let mut r = ok.clone();
        r.name = "x".repeat(64);
        r.region = "y".repeat(32);
        assert!(r.validate().is_ok());
    }

    #[tokio::test]
    async fn report_round_trip() {
        let (a, b) = duplex(4096);
        let log = b"{\"sender\":0,\"seq\":1}\n{\"sender\":1,\"seq\":1}".to_vec(); // no final newline
        let header = ReportHeader {
            run: 1,
            member: 0,
            name: "p".into(),
            status: "completed".into(),
            error: None,
            entries: 2,
            delivered: None,
            stats: BTreeMap::new(),
        };
        let h2 = header.clone();
        let server = tokio::spawn(async move {
            let mut framed = Framed::new(b);
            let Some(ReportMsg::Report(h)) = framed.recv::<ReportMsg>().await.unwrap() else {
                panic!("expected header");
            };
            assert_eq!(h, h2);
            let mut out = Vec::new();
            recv_report_body(&mut framed, &h, &mut out).await.unwrap();
            framed.send(&Reply::ok()).await.unwrap();
            out
        });
        let mut framed = Framed::new(a);
        let reply = with_timeout(send_report(&mut framed, &header, &log[..]))
            .await
            .unwrap();
        assert!(reply.ok);
        let out = with_timeout(server).await.unwrap();
        assert_eq!(out, b"{\"sender\":0,\"seq\":1}\n{\"sender\":1,\"seq\":1}\n");
    }

    #[tokio::test]
    async fn send_lines_checks_count_and_content() {
        let (a, _b) = duplex(1 << 20);
        let mut framed = Framed::new(a);
        let err = send_lines(&mut framed, &b"{}\n{}\n"[..], 1)
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Protocol(_)), "{err:?}");
        let err = send_lines(&mut framed, &b"{}\n"[..], 2).await.unwrap_err();
        assert!(matches!(err, ControlError::Protocol(_)), "{err:?}");
        let err = send_lines(&mut framed, &b"[1]\n"[..], 1).await.unwrap_err();
        assert!(matches!(err, ControlError::BadJson { .. }), "{err:?}");
        let mut small = Framed::with_limit(duplex(1024).0, 4);
        let err = send_lines(&mut small, &b"{\"a\":1}\n"[..], 1)
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::TooLong { limit: 4 }), "{err:?}");
    }

    #[tokio::test]
    async fn recv_lines_detects_short_report() {
        let (a, mut b) = duplex(4096);
        let mut framed = Framed::new(a);
        b.write_all(b"{\"x\":1}\n{\"op\":\"end\",\"entries\":1}\n")
            .await
            .unwrap();
        let header = ReportHeader {
            run: 1,
            member: 0,
            name: "p".into(),
            status: "completed".into(),
            error: None,
            entries: 3,
            delivered: None,
            stats: BTreeMap::new(),
        };
        let mut out = Vec::new();
        let err = with_timeout(recv_report_body(&mut framed, &header, &mut out))
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Protocol(_)), "{err:?}");
    }

    #[tokio::test]
    async fn recv_lines_detects_long_report() {
        let (a, mut b) = duplex(4096);
        let mut framed = Framed::new(a);
        b.write_all(b"{\"x\":1}\n{\"x\":2}\n{\"op\":\"end\",\"entries\":2}\n")
            .await
            .unwrap();
        let header = ReportHeader {
            run: 1,
            member: 0,
            name: "p".into(),
            status: "completed".into(),
            error: None,
            entries: 1,
            delivered: None,
            stats: BTreeMap::new(),
        };
        let err = with_timeout(recv_report_body(&mut framed, &header, Vec::new()))
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Protocol(_)), "{err:?}");
    }

    #[tokio::test]
    async fn request_times_out_and_maps_remote_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = listener.local_addr().unwrap();
        // First connection: never answers. Second: answers with an error.
        let server = tokio::spawn(async move {
            let (silent, _) = listener.accept().await.unwrap();
            let (s, _) = listener.accept().await.unwrap();
            let mut f = Framed::new(s);
            let _ = f.recv_value().await;
            f.send(&Reply::err("no such thing")).await.unwrap();
            drop(silent);
        });
        let err = request::<_, _, Reply>(a, &GmRequest::List, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, ControlError::Timeout(_)), "{err:?}");
        let err = request::<_, _, Reply>(a.to_string(), &GmRequest::List, T)
            .await
            .unwrap_err();
        match err {
            ControlError::Remote(m) => assert_eq!(m, "no such thing"),
            other => panic!("{other:?}"),
        }
        with_timeout(server).await.unwrap();
    }
}

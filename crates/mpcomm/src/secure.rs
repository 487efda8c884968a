//! The secure control channel: every TCP connection between mpcomm
//! processes proves, before any request is read, that both ends hold the
//! group key — and then encrypts everything it carries.
//!
//! # Why a Noise handshake
//!
//! The control plane can register peers, start runs and stop processes, so
//! "anyone who reaches the port" must not be "anyone who can do it". We use
//! the [Noise protocol framework](https://noiseprotocol.org) (the `snow`
//! crate, not home-made cryptography) with the pattern `NNpsk0`:
//!
//! * `psk0`: both sides mix a *pre-shared key* — derived from the group key
//!   — into the handshake from its first message. A side with another key
//!   cannot decrypt that message, so a process with the wrong key is refused
//!   at the first message, before it can send a single request.
//! * `NN`: each side also makes a fresh Diffie-Hellman key pair per
//!   connection, so a recorded connection cannot be decrypted later even by
//!   someone who steals the group key then (forward secrecy), and a replayed
//!   connection goes nowhere (the other side's fresh key differs).
//!
//! After the two handshake messages, both sides hold session keys
//! (ChaCha20-Poly1305) and every byte of the JSON-lines protocol travels in
//! authenticated, encrypted frames.
//!
//! # On the wire
//!
//! ```text
//! client → server   "MPCOMM-NOISE/1 epoch=E\n"        (clear: which key)
//! client → server   len u16 | Noise message 1          (psk, e)
//! server → client   len u16 | Noise message 2          (e, ee)
//!              or   0x0000 | reason line "\n"          (refused, in clear)
//! then, both ways   len u16 | Noise transport message  (≤ 65535 bytes)
//! ```
//!
//! The first line is text so that a process *without* a key, which expects
//! JSON lines, answers at once with an error line instead of waiting for a
//! newline; the client recognises that answer (`{`) and reports that the
//! other side has no key. Likewise a keyed server that receives a JSON
//! request instead of the first line answers, in JSON, that a key is needed.
//! Either way both sides learn immediately that their keys differ — an
//! error no retry can fix ([`ControlError::KeyMismatch`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use mpcomm_core::seal::KeyRing;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::control::ControlError;

/// The Noise protocol name: pattern, curve, cipher, hash.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";
/// The clear first line's prefix.
const PREAMBLE: &str = "MPCOMM-NOISE/1 epoch=";
/// Longest first line accepted.
const MAX_PREAMBLE: usize = 64;
/// Largest Noise message.
const MAX_MSG: usize = 65535;
/// Noise's tag.
const TAG: usize = 16;
/// Largest plaintext per transport message.
const MAX_PLAIN: usize = MAX_MSG - TAG;
/// The handshake must finish within this (an idle or slow client cannot
/// hold a server task open with it).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A control connection: in the clear (no key) or through Noise. Reads and
/// writes plaintext either way, so `Framed<Channel>` speaks JSON lines over
/// both.
#[derive(Debug)]
pub enum Channel {
    /// No key: plain TCP (loopback-only use, or `--insecure`).
    Plain(TcpStream),
    /// Authenticated and encrypted.
    Noise(Box<NoiseStream>),
}

impl Channel {
    /// The underlying TCP stream.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Channel::Plain(s) => s,
            Channel::Noise(n) => &n.io,
        }
    }
}

fn prologue(epoch: u32) -> Vec<u8> {
    format!("{PREAMBLE}{epoch}").into_bytes()
}

fn builder<'a>(psk: &'a [u8; 32], prologue: &'a [u8]) -> Result<snow::Builder<'a>, ControlError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e| ControlError::Protocol(format!("noise parameters: {e}")))?;
    snow::Builder::new(params)
        .psk(0, psk)
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| ControlError::Protocol(format!("noise setup: {e}")))
}

fn mismatch(msg: impl Into<String>) -> ControlError {
    ControlError::KeyMismatch(msg.into())
}

async fn write_frame(io: &mut TcpStream, msg: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(2 + msg.len());
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    io.write_all(&out).await?;
    io.flush().await
}

async fn read_line_raw(io: &mut TcpStream, first: Option<u8>) -> io::Result<Vec<u8>> {
    let mut line: Vec<u8> = first.into_iter().collect();
    while line.len() <= MAX_PREAMBLE {
        let b = io.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
    }
    Ok(line)
}

/// Refuses a client in the clear: `0x0000 | reason "\n"`, then closes.
async fn refuse(io: &mut TcpStream, why: String) {
    let mut out = vec![0, 0];
    out.extend_from_slice(why.as_bytes());
    out.push(b'\n');
    let _ = io.write_all(&out).await;
    let _ = io.shutdown().await;
}

/// Opens the client side of a control connection: with keys, runs the
/// handshake (and fails with [`ControlError::KeyMismatch`] if the other side
/// holds another key or none); without, returns the plain stream.
pub async fn client(mut io: TcpStream, keys: Option<&KeyRing>) -> Result<Channel, ControlError> {
    let Some(keys) = keys else {
        return Ok(Channel::Plain(io));
    };
    let key = keys.send_key();
    let psk = key.control_psk();
    let prologue = prologue(key.epoch());
    let handshake = async {
        let mut hs = builder(&psk, &prologue)?
            .build_initiator()
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))?;
        let mut msg = vec![0u8; MAX_MSG];
        let n = hs
            .write_message(&[], &mut msg)
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))?;
        let mut first = prologue.clone();
        first.push(b'\n');
        io.write_all(&first).await?;
        write_frame(&mut io, &msg[..n]).await?;
        let b0 = match io.read_u8().await {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(mismatch(
                    "the other side closed the connection during the key handshake (it holds another key, or speaks another protocol)",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if b0 == b'{' {
            return Err(mismatch(
                "the other side has no group key (it answers in the clear): start it with the same --key, or start this process without one",
            ));
        }
        let b1 = io.read_u8().await?;
        let len = usize::from(u16::from_be_bytes([b0, b1]));
        if len == 0 {
            let reason = read_line_raw(&mut io, None).await.unwrap_or_default();
            return Err(mismatch(format!(
                "refused by the other side: {}",
                String::from_utf8_lossy(&reason)
            )));
        }
        io.read_exact(&mut msg[..len]).await?;
        let mut payload = vec![0u8; MAX_MSG];
        hs.read_message(&msg[..len], &mut payload)
            .map_err(|_| mismatch("the other side's handshake does not verify: the keys differ"))?;
        let state = hs
            .into_transport_mode()
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))?;
        Ok::<_, ControlError>(state)
    };
    let state = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r?,
        Err(_) => return Err(ControlError::Timeout(HANDSHAKE_TIMEOUT)),
    };
    Ok(Channel::Noise(Box::new(NoiseStream::new(io, state))))
}

/// Accepts the server side of a control connection: with keys, runs the
/// handshake before anything else is read, and refuses a client with
/// another key, or none, with an error it can show. Without keys, returns
/// the plain stream.
pub async fn server(mut io: TcpStream, keys: Option<&KeyRing>) -> Result<Channel, ControlError> {
    let Some(keys) = keys else {
        return Ok(Channel::Plain(io));
    };
    let handshake = async {
        let first = io.read_u8().await?;
        let line = read_line_raw(&mut io, Some(first)).await?;
        if first == b'{' {
            // A client without a key sent a JSON request: answer in JSON.
            let reply = serde_json::json!({
                "ok": false,
                "error": "this process requires the group key: the keys differ (start the client with --key FILE, the same key file)"
            });
            let mut out = reply.to_string().into_bytes();
            out.push(b'\n');
            let _ = io.write_all(&out).await;
            let _ = io.shutdown().await;
            return Err(mismatch("a client without a group key was refused"));
        }
        let epoch = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.strip_prefix(PREAMBLE))
            .and_then(|e| e.parse::<u32>().ok());
        let Some(epoch) = epoch else {
            return Err(ControlError::Protocol(
                "not an mpcomm control handshake".into(),
            ));
        };
        let Some(key) = keys.get(epoch) else {
            let why = format!("the keys differ: this process holds no key of epoch {epoch}");
            refuse(&mut io, why.clone()).await;
            return Err(mismatch(format!("a client sent {why}")));
        };
        let psk = key.control_psk();
        let prologue = prologue(epoch);
        let mut hs = builder(&psk, &prologue)?
            .build_responder()
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))?;
        let hi = io.read_u8().await?;
        let lo = io.read_u8().await?;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        let mut msg = vec![0u8; MAX_MSG];
        io.read_exact(&mut msg[..len]).await?;
        let mut payload = vec![0u8; MAX_MSG];
        if hs.read_message(&msg[..len], &mut payload).is_err() {
            let why = format!("the keys differ (epoch {epoch} here is another key)");
            refuse(&mut io, why).await;
            return Err(mismatch("a client with another group key was refused"));
        }
        let n = hs
            .write_message(&[], &mut msg)
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))?;
        write_frame(&mut io, &msg[..n]).await?;
        hs.into_transport_mode()
            .map_err(|e| ControlError::Protocol(format!("noise: {e}")))
    };
    let state = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(r) => r?,
        Err(_) => return Err(ControlError::Timeout(HANDSHAKE_TIMEOUT)),
    };
    Ok(Channel::Noise(Box::new(NoiseStream::new(io, state))))
}

/// A TCP stream carrying Noise transport messages; reads and writes
/// plaintext.
pub struct NoiseStream {
    io: TcpStream,
    state: snow::TransportState,
    /// An incoming message being assembled: `len u16 | message`.
    rbuf: Vec<u8>,
    rlen: usize,
    /// Decrypted bytes not yet read, from `plain_pos`.
    plain: Vec<u8>,
    plain_pos: usize,
    /// Encrypted bytes not yet written, from `wpos`.
    wbuf: Vec<u8>,
    wpos: usize,
}

impl std::fmt::Debug for NoiseStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoiseStream")
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

impl NoiseStream {
    fn new(io: TcpStream, state: snow::TransportState) -> NoiseStream {
        NoiseStream {
            io,
            state,
            rbuf: vec![0; 2 + MAX_MSG],
            rlen: 0,
            plain: Vec::new(),
            plain_pos: 0,
            wbuf: Vec::new(),
            wpos: 0,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.wpos < self.wbuf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.wbuf[self.wpos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wpos += n;
        }
        self.wbuf.clear();
        self.wpos = 0;
        Poll::Ready(Ok(()))
    }
}

fn bad_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl AsyncRead for NoiseStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.plain_pos < this.plain.len() {
                let n = buf.remaining().min(this.plain.len() - this.plain_pos);
                buf.put_slice(&this.plain[this.plain_pos..this.plain_pos + n]);
                this.plain_pos += n;
                return Poll::Ready(Ok(()));
            }
            let need = if this.rlen < 2 {
                2
            } else {
                2 + usize::from(u16::from_be_bytes([this.rbuf[0], this.rbuf[1]]))
            };
            if this.rlen == need && need > 2 {
                let mut plain = std::mem::take(&mut this.plain);
                plain.resize(MAX_MSG, 0);
                let n = this
                    .state
                    .read_message(&this.rbuf[2..need], &mut plain)
                    .map_err(|_| bad_data("a control message failed to authenticate"))?;
                plain.truncate(n);
                this.plain = plain;
                this.plain_pos = 0;
                this.rlen = 0;
                continue;
            }
            if this.rlen == need {
                // A zero-length message: never sent by mpcomm.
                return Poll::Ready(Err(bad_data("empty noise message")));
            }
            let mut rb = ReadBuf::new(&mut this.rbuf[this.rlen..need]);
            ready!(Pin::new(&mut this.io).poll_read(cx, &mut rb))?;
            let got = rb.filled().len();
            if got == 0 {
                return Poll::Ready(if this.rlen == 0 {
                    Ok(()) // a clean end between messages
                } else {
                    Err(io::ErrorKind::UnexpectedEof.into())
                });
            }
            this.rlen += got;
        }
    }
}

impl AsyncWrite for NoiseStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_PLAIN);
        this.wbuf.resize(2 + n + TAG, 0);
        let len = this
            .state
            .write_message(&buf[..n], &mut this.wbuf[2..])
            .map_err(|e| io::Error::other(format!("noise: {e}")))?;
        this.wbuf.truncate(2 + len);
        this.wbuf[..2].copy_from_slice(&(len as u16).to_be_bytes());
        this.wpos = 0;
        // The bytes are ours now; push them out if the socket takes them.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl AsyncRead for Channel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Channel::Noise(n) => Pin::new(n.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Channel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Channel::Noise(n) => Pin::new(n.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_flush(cx),
            Channel::Noise(n) => Pin::new(n.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Channel::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Channel::Noise(n) => Pin::new(n.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Framed, Reply};
    use mpcomm_core::seal::GroupKey;
    use tokio::net::TcpListener;

    fn ring(epoch: u32, b: u8) -> KeyRing {
        KeyRing::single(GroupKey::new(epoch, [b; 32]))
    }

    /// Connects a client with `ck` to a server with `sk`; returns both
    /// sides' handshake results (the server's as a string).
    async fn pair(
        ck: Option<KeyRing>,
        sk: Option<KeyRing>,
    ) -> (Result<Channel, ControlError>, Result<Channel, ControlError>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            server(s, sk.as_ref()).await
        });
        let c = TcpStream::connect(addr).await.unwrap();
        let c = client(c, ck.as_ref()).await;
        (c, srv.await.unwrap())
    }

    #[tokio::test]
    async fn same_key_talks_json_lines_both_ways_including_long_lines() {
        let (c, s) = pair(Some(ring(1, 7)), Some(ring(1, 7))).await;
        let (mut c, mut s) = (Framed::new(c.unwrap()), Framed::new(s.unwrap()));
        let long = "x".repeat(200_000);
        let echo = tokio::spawn(async move {
            for _ in 0..2 {
                let v: serde_json::Value = s.recv().await.unwrap().unwrap();
                s.send(&v).await.unwrap();
            }
        });
        c.send(&Reply::err(long.clone())).await.unwrap();
        let r: Reply = c.recv().await.unwrap().unwrap();
        assert_eq!(r.error.as_deref(), Some(long.as_str()));
        c.send(&Reply::ok()).await.unwrap();
        assert_eq!(c.recv::<Reply>().await.unwrap(), Some(Reply::ok()));
        echo.await.unwrap();
    }

    #[tokio::test]
    async fn another_key_is_refused_at_once_on_both_sides() {
        let (c, s) = pair(Some(ring(1, 7)), Some(ring(1, 8))).await;
        let ce = c.unwrap_err();
        assert!(matches!(ce, ControlError::KeyMismatch(_)), "{ce}");
        assert!(ce.to_string().contains("keys differ"), "{ce}");
        assert!(matches!(s.unwrap_err(), ControlError::KeyMismatch(_)));
        // Another epoch.
        let (c, _) = pair(Some(ring(2, 7)), Some(ring(1, 7))).await;
        let ce = c.unwrap_err();
        assert!(ce.to_string().contains("epoch 2"), "{ce}");
    }

    #[tokio::test]
    async fn a_keyed_client_and_a_keyless_server_and_vice_versa() {
        // A keyless server answers the first line with an error line.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            let mut f = Framed::new(s);
            let _ = f.recv_value().await;
            let _ = f.send(&Reply::err("malformed message")).await;
        });
        let c = client(TcpStream::connect(addr).await.unwrap(), Some(&ring(1, 7))).await;
        let ce = c.unwrap_err();
        assert!(ce.to_string().contains("no group key"), "{ce}");
        // A keyless client gets a JSON error reply from a keyed server.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            server(s, Some(&ring(1, 7))).await
        });
        let r = crate::control::request::<_, _, Reply>(
            addr,
            &serde_json::json!({"op": "list"}),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(r.to_string().contains("keys differ"), "{r}");
        assert!(srv.await.unwrap().is_err());
    }
}

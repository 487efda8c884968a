//! The wire format: how protocol messages become bytes in a UDP datagram.
//!
//! `docs/protocol.md` specifies this format byte by byte, for anyone who wants
//! to speak it from another language; this module is its reference
//! implementation. In short:
//!
//! ```text
//! datagram = header frame+                      (at most MAX_DATAGRAM bytes)
//! header   = magic "MP" | version u8 | flags u8 | run_id u64 | from u16 | to u16
//!            | incarnation u64 | view u32
//! frame    = kind u8 | length u16 | body[length]
//! ```
//!
//! All integers are big-endian ("network order"). A datagram carries one or
//! more *frames*; each frame is one protocol message (a handshake, an
//! acknowledgement, a data record, …). Packing many frames into one datagram
//! is how the protocol batches: one system call and one header carry many
//! messages.
//!
//! # Decoding is total and bounded
//!
//! [`Datagram::parse`] accepts *any* byte string and returns either a fully
//! validated datagram or a [`DecodeError`] saying what is wrong. It never
//! panics, never loops more than once per byte, and never allocates: frames
//! are views into the received buffer ([`Bytes`] slices share it). Contrast
//! this with the original MPComm, which fed network input to Python's
//! `pickle` — letting any sender run code on the receiver.

use bytes::{Buf, Bytes};
use thiserror::Error;

pub mod view;

pub use view::{Item, ViewFrame, ViewHead, ViewMsgKind};

/// A member's id within a run's group: `0..N`.
pub type MemberId = u16;

/// The first two bytes of every mpcomm datagram.
pub const MAGIC: [u8; 2] = *b"MP";
/// The version of the format this module reads and writes. Version 2 added
/// the sender's incarnation and view to the header.
pub const VERSION: u8 = 2;
/// Length of the fixed datagram header.
pub const HEADER_LEN: usize = 28;
/// Header flag: the frames after the header are sealed (authenticated and
/// encrypted with the group key; see the `seal` layer). A datagram without
/// it carries its frames in the clear.
pub const FLAG_SEALED: u8 = 0x01;
/// The header flags this version defines; a datagram with any other bit set
/// is rejected.
pub const FLAGS_KNOWN: u8 = FLAG_SEALED;
/// Largest datagram mpcomm sends or accepts. Below the usual 1500-byte
/// Ethernet MTU with room for IP/UDP headers and tunnels, so datagrams are
/// never fragmented by IP.
pub const MAX_DATAGRAM: usize = 1400;
/// Length of a frame's `kind | length` prefix.
pub const FRAME_PREFIX_LEN: usize = 3;
/// Fixed part of a record body: `link_seq u64 | value u64 | stamp u64 | ext_len u8`.
pub const RECORD_FIXED_LEN: usize = 25;
/// Fixed part of an ACK body, before the selective-ack words.
pub const ACK_FIXED_LEN: usize = 42;
/// Length of a HELLO or HELLO_ACK body.
pub const HELLO_LEN: usize = 10;
/// At most this many 64-bit selective-ack words (256 records past `cum`).
pub const SACK_MAX_WORDS: usize = 4;
/// Largest order-specific extension a record can carry.
pub const MAX_EXT: usize = u8::MAX as usize;
/// Room every datagram keeps free for the seal layer (its nonce counter,
/// key epoch and authentication tag), so that a datagram built for the clear
/// still fits once sealed.
pub const SEAL_RESERVE: usize = 32;
/// Largest application payload one record may carry: a datagram must always
/// have room for the header, the seal, a full ACK frame and one record with
/// the largest extension, so a record never waits for a datagram that can
/// hold it.
pub const MAX_PAYLOAD: usize = MAX_DATAGRAM
    - HEADER_LEN
    - SEAL_RESERVE
    - (FRAME_PREFIX_LEN + ACK_FIXED_LEN + 8 * SACK_MAX_WORDS)
    - (FRAME_PREFIX_LEN + RECORD_FIXED_LEN)
    - MAX_EXT;

/// Frame kinds (the first byte of every frame).
pub mod kind {
    /// Handshake: "I am here, with this configuration".
    pub const HELLO: u8 = 0x01;
    /// Handshake reply: "I heard your HELLO".
    pub const HELLO_ACK: u8 = 0x02;
    /// Link acknowledgement plus the sender's clock and status.
    pub const ACK: u8 = 0x03;
    /// An application message in the sender's reliable stream.
    pub const DATA: u8 = 0x04;
    /// The end-of-stream marker: the sender will send no more data.
    pub const EOS: u8 = 0x05;
    /// An ordering engine's own message (reserved for engines such as a
    /// fixed sequencer), carried in the same reliable stream as data.
    pub const CONTROL: u8 = 0x06;
    /// A message of a view change (proposal, state report, installation,
    /// relay request, "not a member"); see [`super::view`].
    pub const VIEW: u8 = 0x10;
    /// A record of *another* member's stream, relayed during a view change.
    pub const RELAY: u8 = 0x11;
}

/// The fixed header at the start of every datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Which run (experiment) the datagram belongs to. Datagrams of other runs
    /// are dropped, so a late datagram of an old run can never be mistaken for
    /// one of the current run.
    pub run_id: u64,
    /// The sending member.
    pub from: MemberId,
    /// The member the datagram is meant for.
    pub to: MemberId,
    /// The sender's incarnation: a number its process draws at random when
    /// it starts, so that the datagrams of a member that crashed and came
    /// back (the same id, a new incarnation) are told apart from the old
    /// process's datagrams that are still in the network.
    pub incarnation: u64,
    /// The view the sender is in (see the membership layer); 0 before it
    /// belongs to any.
    pub view: u32,
}

/// A HELLO or HELLO_ACK body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Group size as the sender believes it.
    pub members: u16,
    /// A digest of the sender's run configuration; peers whose digests differ
    /// must not talk to each other.
    pub digest: u64,
}

/// An ACK frame: everything a peer tells another about its state.
///
/// It is *state*, not an event: a newer ACK supersedes an older one, so ACKs
/// are never retransmitted as such — the next one carries the news again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ack {
    /// Cumulative acknowledgement of the *receiver's* stream: the ACK's sender
    /// holds every record with `link_seq < cum`.
    pub cum: u64,
    /// Selective acknowledgement of records after `cum`.
    pub sack: Sack,
    /// The ACK sender's Lamport clock when it sent this frame.
    pub clock: u64,
    /// How many records the ACK sender had put into its own stream. Every
    /// later record is stamped above `clock`: once the receiver holds the
    /// first `sent` records of that stream, it knows no record stamped at or
    /// below `clock` can still come from this sender.
    pub sent: u64,
    /// How many records of the *receiver's* stream the ACK's sender has
    /// delivered to its application (or consumed, for control records):
    /// flow control keeps every sender within one window of its slowest
    /// receiver's deliveries, which bounds what a receiver holds back.
    pub flow: u64,
    /// Every member holds the records of the ACK *sender's* own stream below
    /// this: its stable prefix, which nobody will ask for again.
    pub stable: u64,
    /// The ACK sender has delivered everything and is finished.
    pub done: bool,
    /// The ACK sender knows that the receiver has completed (it received
    /// the receiver's `done`): the receiver need not stay for it.
    pub done_seen: bool,
    /// The ACK sender asks for an ACK in return (it is waiting on us).
    pub want_reply: bool,
    /// The ACK sender misses records of the receiver's stream (those that
    /// `cum` and `sack` do not cover) and asks for them now: a negative
    /// acknowledgement.
    pub nak: bool,
}

/// Selective acknowledgement bitmap: bit `i` set means record `cum + 1 + i`
/// was received (`cum` itself is missing, or it would have been counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sack {
    words: [u64; SACK_MAX_WORDS],
    len: u8,
}

impl Sack {
    /// Number of records a SACK can describe past `cum`.
    pub const SPAN: u64 = (SACK_MAX_WORDS * 64) as u64;

    /// An empty SACK: nothing received past `cum`.
    pub const fn empty() -> Sack {
        Sack {
            words: [0; SACK_MAX_WORDS],
            len: 0,
        }
    }

    /// Marks record `cum + 1 + offset` as received; offsets past [`Sack::SPAN`]
    /// are ignored (the SACK has no room for them).
    pub fn set(&mut self, offset: u64) {
        if offset >= Self::SPAN {
            return;
        }
        let word = (offset / 64) as usize;
        self.words[word] |= 1 << (offset % 64);
        self.len = self.len.max(word as u8 + 1);
    }

    /// Whether record `cum + 1 + offset` was received.
    pub fn get(&self, offset: u64) -> bool {
        offset < Self::SPAN && self.words[(offset / 64) as usize] & (1 << (offset % 64)) != 0
    }

    /// Whether no record past `cum` is marked.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Offset of the highest marked record, if any.
    pub fn highest(&self) -> Option<u64> {
        (0..SACK_MAX_WORDS).rev().find_map(|w| {
            let word = self.words[w];
            (word != 0).then(|| w as u64 * 64 + 63 - u64::from(word.leading_zeros()))
        })
    }

    fn encoded_words(&self) -> usize {
        // Trailing zero words need not be sent.
        (0..self.len as usize)
            .rev()
            .find(|&w| self.words[w] != 0)
            .map_or(0, |w| w + 1)
    }
}

/// What a record in a sender's reliable stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// An application message, the sender's `seq`-th (from 0).
    Data {
        /// The sender's sequence number for application messages, from 0.
        seq: u64,
    },
    /// The end-of-stream marker, with how many data messages the sender sent.
    EndOfStream {
        /// Number of data messages the sender multicast in this run.
        count: u64,
    },
    /// An ordering engine's control message; its meaning is the engine's.
    Control,
}

/// One record of a sender's reliable, ordered stream.
///
/// Every record goes to every member, so a record's position in its
/// sender's stream, `link_seq`, is also its sequence number on each
/// sender→receiver link.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    /// The member whose stream this is. Not encoded in the frame: it is the
    /// datagram header's `from`.
    pub sender: MemberId,
    /// Position in the sender's stream, from 0, counting every record kind.
    pub link_seq: u64,
    /// What the record is.
    pub kind: RecordKind,
    /// The sender's Lamport stamp for the record.
    pub stamp: u64,
    /// Order-specific extension (empty for `none`, `fifo` and `total`; room
    /// for, e.g., a vector clock), at most [`MAX_EXT`] bytes.
    pub ext: Bytes,
    /// The application's bytes (data) or the engine's (control); empty for EOS.
    pub payload: Bytes,
}

impl Record {
    /// Bytes this record occupies as a frame, prefix included.
    pub fn encoded_len(&self) -> usize {
        FRAME_PREFIX_LEN + RECORD_FIXED_LEN + self.ext.len() + self.payload.len()
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Handshake.
    Hello(Hello),
    /// Handshake reply.
    HelloAck(Hello),
    /// Acknowledgement and state.
    Ack(Ack),
    /// A record of the datagram sender's stream (data, EOS or control).
    Record(Record),
    /// A view-change message.
    View(ViewFrame),
    /// A record of another member's stream (named by its `sender`),
    /// relayed during a view change.
    Relay(Record),
}

/// Why a byte string is not a valid mpcomm datagram.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than a header.
    #[error("datagram of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {len} bytes exceeds the {MAX_DATAGRAM}-byte limit")]
    TooLong {
        /// The datagram's length.
        len: usize,
    },
    /// Does not start with "MP".
    #[error("bad magic bytes (not an mpcomm datagram)")]
    BadMagic,
    /// A version this implementation does not speak.
    #[error("unsupported protocol version {0} (this build speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// Unknown header flags, or a sealed datagram handed to the parser
    /// unopened.
    #[error("header flags {0:#04x} are not valid here (unknown bits, or sealed and not opened)")]
    ReservedFlags(u8),
    /// A header with no frames after it.
    #[error("datagram carries no frames")]
    NoFrames,
    /// A frame's prefix or body runs past the end of the datagram.
    #[error("frame at byte {offset} runs past the end of the datagram")]
    Truncated {
        /// Where the frame starts.
        offset: usize,
    },
    /// A frame kind this version does not define.
    #[error("unknown frame kind {kind:#04x} at byte {offset}")]
    UnknownKind {
        /// Where the frame starts.
        offset: usize,
        /// The kind byte.
        kind: u8,
    },
    /// A frame whose length does not fit its kind.
    #[error("frame of kind {kind:#04x} at byte {offset} has invalid length {len}")]
    BadLength {
        /// Where the frame starts.
        offset: usize,
        /// The kind byte.
        kind: u8,
        /// The declared body length.
        len: usize,
    },
    /// An ACK frame with reserved flag bits set or too many SACK words.
    #[error("malformed ACK frame at byte {offset}")]
    BadAck {
        /// Where the frame starts.
        offset: usize,
    },
}

/// A validated datagram: its header and a body known to consist of
/// well-formed frames.
#[derive(Clone, Debug)]
pub struct Datagram {
    header: Header,
    body: Bytes,
}

impl Datagram {
    /// Validates `bytes` as a datagram. Total: every input gives `Ok` or a
    /// typed error; nothing is allocated (frames share `bytes`).
    pub fn parse(bytes: Bytes) -> Result<Datagram, DecodeError> {
        let len = bytes.len();
        if len < HEADER_LEN {
            return Err(DecodeError::TooShort { len });
        }
        if len > MAX_DATAGRAM {
            return Err(DecodeError::TooLong { len });
        }
        let mut h = &bytes[..HEADER_LEN];
        if h[..2] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        h.advance(2);
        let version = h.get_u8();
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let flags = h.get_u8();
        if flags & !FLAGS_KNOWN != 0 || flags & FLAG_SEALED != 0 {
            // A sealed datagram must be opened (authenticated and decrypted)
            // before it is parsed; reaching here sealed means it was not.
            return Err(DecodeError::ReservedFlags(flags));
        }
        let header = Header {
            run_id: h.get_u64(),
            from: h.get_u16(),
            to: h.get_u16(),
            incarnation: h.get_u64(),
            view: h.get_u32(),
        };
        let body = bytes.slice(HEADER_LEN..);
        if body.is_empty() {
            return Err(DecodeError::NoFrames);
        }
        // Validate every frame now, so that iterating later cannot fail and a
        // bad frame anywhere rejects the whole datagram before any of it acts.
        let mut offset = 0;
        while offset < body.len() {
            let (_, _, next) = check_frame(&body, offset)?;
            offset = next;
        }
        Ok(Datagram { header, body })
    }

    /// The datagram's header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// The frames, in the order they were written.
    pub fn frames(&self) -> Frames<'_> {
        Frames {
            body: &self.body,
            offset: 0,
            from: self.header.from,
        }
    }
}

/// Iterator over the frames of a validated [`Datagram`].
#[derive(Debug)]
pub struct Frames<'a> {
    body: &'a Bytes,
    offset: usize,
    from: MemberId,
}

impl Iterator for Frames<'_> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.offset >= self.body.len() {
            return None;
        }
        // The body was validated by `Datagram::parse`, so this cannot fail;
        // if it somehow did, ending the iteration is the safe answer.
        let (frame, next) = decode_frame(self.body, self.offset, self.from).ok()?;
        self.offset = next;
        Some(frame)
    }
}

/// Checks the frame starting at `offset` without building it: its kind, its
/// length, and the fields that constrain the layout. Returns the kind, the
/// body's range and the next offset. `Datagram::parse` runs this over every
/// frame; iteration then builds frames knowing they are valid.
fn check_frame(body: &[u8], offset: usize) -> Result<(u8, usize, usize), DecodeError> {
    let rest = &body[offset..];
    if rest.len() < FRAME_PREFIX_LEN {
        return Err(DecodeError::Truncated { offset });
    }
    let kind = rest[0];
    let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
    let start = offset + FRAME_PREFIX_LEN;
    let end = start + len;
    if end > body.len() {
        return Err(DecodeError::Truncated { offset });
    }
    let b = &body[start..end];
    let bad_length = DecodeError::BadLength { offset, kind, len };
    match kind {
        kind::HELLO | kind::HELLO_ACK if len != HELLO_LEN => Err(bad_length),
        kind::HELLO | kind::HELLO_ACK => Ok((kind, start, end)),
        kind::ACK => {
            if len < ACK_FIXED_LEN {
                return Err(bad_length);
            }
            let (flags, words) = (b[40], usize::from(b[41]));
            if flags & !ACK_FLAGS_KNOWN != 0 || words > SACK_MAX_WORDS {
                return Err(DecodeError::BadAck { offset });
            }
            if len != ACK_FIXED_LEN + 8 * words {
                return Err(bad_length);
            }
            Ok((kind, start, end))
        }
        kind::DATA | kind::EOS | kind::CONTROL => {
            if len < RECORD_FIXED_LEN {
                return Err(bad_length);
            }
            let ext_len = usize::from(b[24]);
            if RECORD_FIXED_LEN + ext_len > len
                || (kind == kind::EOS && len != RECORD_FIXED_LEN + ext_len)
            {
                return Err(bad_length); // (an EOS has no payload)
            }
            Ok((kind, start, end))
        }
        kind::VIEW if view::check_view(b) => Ok((kind, start, end)),
        kind::RELAY if view::check_relay(b) => Ok((kind, start, end)),
        kind::VIEW | kind::RELAY => Err(bad_length),
        _ => Err(DecodeError::UnknownKind { offset, kind }),
    }
}

/// Decodes the frame starting at `offset`; returns it and the next offset.
fn decode_frame(
    body: &Bytes,
    offset: usize,
    from: MemberId,
) -> Result<(Frame, usize), DecodeError> {
    let (kind, start, end) = check_frame(body, offset)?;
    let mut b = &body[start..end];
    let frame = match kind {
        kind::VIEW => Frame::View(view::decode_view(body, start, end)),
        kind::RELAY => Frame::Relay(view::decode_relay(body, start, end)),
        kind::HELLO | kind::HELLO_ACK => {
            let hello = Hello {
                members: b.get_u16(),
                digest: b.get_u64(),
            };
            if kind == kind::HELLO {
                Frame::Hello(hello)
            } else {
                Frame::HelloAck(hello)
            }
        }
        kind::ACK => {
            let cum = b.get_u64();
            let clock = b.get_u64();
            let sent = b.get_u64();
            let flow = b.get_u64();
            let stable = b.get_u64();
            let flags = b.get_u8();
            let words = b.get_u8();
            let mut sack = Sack::empty();
            for w in 0..usize::from(words) {
                sack.words[w] = b.get_u64();
            }
            // Trailing zero words say nothing; dropping them keeps a decoded
            // SACK equal to the same SACK built or re-encoded (found by the
            // fuzzer: a zero word made a decoded ACK differ from itself
            // re-encoded).
            sack.len = words;
            sack.len = sack.encoded_words() as u8;
            Frame::Ack(Ack {
                cum,
                sack,
                clock,
                sent,
                flow,
                stable,
                done: flags & ACK_DONE != 0,
                done_seen: flags & ACK_DONE_SEEN != 0,
                want_reply: flags & ACK_WANT_REPLY != 0,
                nak: flags & ACK_NAK != 0,
            })
        }
        _ => {
            let link_seq = b.get_u64();
            let value = b.get_u64();
            let stamp = b.get_u64();
            let ext_len = usize::from(b.get_u8());
            let ext_start = start + RECORD_FIXED_LEN;
            let payload_start = ext_start + ext_len;
            let record_kind = match kind {
                kind::DATA => RecordKind::Data { seq: value },
                kind::EOS => RecordKind::EndOfStream { count: value },
                _ => RecordKind::Control,
            };
            // Slicing a `Bytes` bumps a shared reference count; skip it for
            // the (usual) empty extension and payload.
            let slice = |from: usize, to: usize| {
                if from == to {
                    Bytes::new()
                } else {
                    body.slice(from..to)
                }
            };
            Frame::Record(Record {
                sender: from,
                link_seq,
                kind: record_kind,
                stamp,
                ext: slice(ext_start, payload_start),
                payload: slice(payload_start, end),
            })
        }
    };
    Ok((frame, end))
}

const ACK_DONE: u8 = 0x01;
const ACK_WANT_REPLY: u8 = 0x02;
const ACK_NAK: u8 = 0x04;
const ACK_DONE_SEEN: u8 = 0x08;
const ACK_FLAGS_KNOWN: u8 = ACK_DONE | ACK_WANT_REPLY | ACK_NAK | ACK_DONE_SEEN;

/// Writes one datagram into a caller-supplied buffer, frame by frame.
///
/// Each `push_*` returns `false`, writing nothing, when the frame does not fit
/// in what is left of the buffer (or of [`MAX_DATAGRAM`]); the caller then
/// sends what it has and starts a new datagram.
#[derive(Debug)]
pub struct DatagramWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
}

impl<'a> DatagramWriter<'a> {
    /// Starts a datagram with `header`, or returns `None` if `buf` cannot hold
    /// even a header.
    pub fn new(buf: &'a mut [u8], header: Header) -> Option<DatagramWriter<'a>> {
        DatagramWriter::with_limit(buf, header, MAX_DATAGRAM)
    }

    /// Like [`DatagramWriter::new`], but the datagram stays within `limit`
    /// bytes (and never beyond [`MAX_DATAGRAM`]): a datagram that will be
    /// sealed leaves [`SEAL_RESERVE`] bytes free.
    pub fn with_limit(
        buf: &'a mut [u8],
        header: Header,
        limit: usize,
    ) -> Option<DatagramWriter<'a>> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        buf[0..2].copy_from_slice(&MAGIC);
        buf[2] = VERSION;
        buf[3] = 0;
        buf[4..12].copy_from_slice(&header.run_id.to_be_bytes());
        buf[12..14].copy_from_slice(&header.from.to_be_bytes());
        buf[14..16].copy_from_slice(&header.to.to_be_bytes());
        buf[16..24].copy_from_slice(&header.incarnation.to_be_bytes());
        buf[24..28].copy_from_slice(&header.view.to_be_bytes());
        Some(DatagramWriter {
            buf,
            len: HEADER_LEN,
            limit: limit.min(MAX_DATAGRAM),
        })
    }

    /// Bytes written so far (header included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no frame has been written yet.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Room left for frames.
    pub fn remaining(&self) -> usize {
        self.buf.len().min(self.limit).saturating_sub(self.len)
    }

    fn frame(&mut self, kind: u8, body_len: usize) -> Option<&mut [u8]> {
        let total = FRAME_PREFIX_LEN + body_len;
        if total > self.remaining() || body_len > usize::from(u16::MAX) {
            return None;
        }
        let start = self.len;
        self.buf[start] = kind;
        self.buf[start + 1..start + 3].copy_from_slice(&(body_len as u16).to_be_bytes());
        self.len += total;
        Some(&mut self.buf[start + FRAME_PREFIX_LEN..start + total])
    }

    /// Appends a HELLO (`ack == false`) or HELLO_ACK frame.
    pub fn push_hello(&mut self, hello: Hello, ack: bool) -> bool {
        let kind = if ack { kind::HELLO_ACK } else { kind::HELLO };
        let Some(out) = self.frame(kind, HELLO_LEN) else {
            return false;
        };
        out[0..2].copy_from_slice(&hello.members.to_be_bytes());
        out[2..10].copy_from_slice(&hello.digest.to_be_bytes());
        true
    }

    /// Bytes an ACK frame with this SACK occupies.
    pub fn ack_len(ack: &Ack) -> usize {
        FRAME_PREFIX_LEN + ACK_FIXED_LEN + 8 * ack.sack.encoded_words()
    }

    /// Appends an ACK frame.
    pub fn push_ack(&mut self, ack: &Ack) -> bool {
        let words = ack.sack.encoded_words();
        let Some(out) = self.frame(kind::ACK, ACK_FIXED_LEN + 8 * words) else {
            return false;
        };
        out[0..8].copy_from_slice(&ack.cum.to_be_bytes());
        out[8..16].copy_from_slice(&ack.clock.to_be_bytes());
        out[16..24].copy_from_slice(&ack.sent.to_be_bytes());
        out[24..32].copy_from_slice(&ack.flow.to_be_bytes());
        out[32..40].copy_from_slice(&ack.stable.to_be_bytes());
        out[40] = if ack.done { ACK_DONE } else { 0 }
            | if ack.want_reply { ACK_WANT_REPLY } else { 0 }
            | if ack.nak { ACK_NAK } else { 0 }
            | if ack.done_seen { ACK_DONE_SEEN } else { 0 };
        out[41] = words as u8;
        for (w, chunk) in out[ACK_FIXED_LEN..].chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&ack.sack.words[w].to_be_bytes());
        }
        true
    }

    /// Appends a record frame. Returns `false` if it does not fit, or if its
    /// extension is longer than [`MAX_EXT`] or an EOS carries a payload
    /// (neither could be decoded).
    pub fn push_record(&mut self, rec: &Record) -> bool {
        let Some((kind, value)) = record_kind(rec) else {
            return false;
        };
        let body_len = RECORD_FIXED_LEN + rec.ext.len() + rec.payload.len();
        let Some(out) = self.frame(kind, body_len) else {
            return false;
        };
        write_record_body(out, rec, value);
        true
    }

    /// Appends a RELAY frame carrying `rec`, a record of `rec.sender`'s
    /// stream. Returns `false` if it does not fit or cannot be encoded.
    pub fn push_relay(&mut self, rec: &Record) -> bool {
        let Some((kind, value)) = record_kind(rec) else {
            return false;
        };
        let body_len =
            view::RELAY_PREFIX_LEN + RECORD_FIXED_LEN + rec.ext.len() + rec.payload.len();
        let Some(out) = self.frame(kind::RELAY, body_len) else {
            return false;
        };
        out[0..2].copy_from_slice(&rec.sender.to_be_bytes());
        out[2] = kind;
        write_record_body(&mut out[view::RELAY_PREFIX_LEN..], rec, value);
        true
    }

    /// Appends one part of a VIEW message. Returns `false` if it does not
    /// fit (parts made by [`view::split_parts`] always fit an otherwise
    /// empty datagram).
    pub fn push_view(&mut self, head: &ViewHead, items: &[Item]) -> bool {
        let Some(out) = self.frame(kind::VIEW, view::view_body_len(items)) else {
            return false;
        };
        view::write_view(out, head, items);
        true
    }

    /// Finishes the datagram; returns its length in bytes.
    pub fn finish(self) -> usize {
        self.len
    }
}

/// A record's frame kind and the value of its `value` field, or `None` if it
/// cannot be encoded (an extension too long, an EOS with a payload).
fn record_kind(rec: &Record) -> Option<(u8, u64)> {
    if rec.ext.len() > MAX_EXT {
        return None;
    }
    match rec.kind {
        RecordKind::Data { seq } => Some((kind::DATA, seq)),
        RecordKind::EndOfStream { count } => rec.payload.is_empty().then_some((kind::EOS, count)),
        RecordKind::Control => Some((kind::CONTROL, 0)),
    }
}

/// Writes a record's body (everything after the frame prefix) into `out`,
/// which is exactly as long as the body.
fn write_record_body(out: &mut [u8], rec: &Record, value: u64) {
    out[0..8].copy_from_slice(&rec.link_seq.to_be_bytes());
    out[8..16].copy_from_slice(&value.to_be_bytes());
    out[16..24].copy_from_slice(&rec.stamp.to_be_bytes());
    out[24] = rec.ext.len() as u8;
    let ext_end = RECORD_FIXED_LEN + rec.ext.len();
    out[RECORD_FIXED_LEN..ext_end].copy_from_slice(&rec.ext);
    out[ext_end..].copy_from_slice(&rec.payload);
}

/// Encodes a whole datagram into a new vector (for tests and tools; the
/// protocol's hot path writes into reused buffers with [`DatagramWriter`]).
/// Returns `None` if the frames do not fit in one datagram.
pub fn encode(header: Header, frames: &[Frame]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut w = DatagramWriter::new(&mut buf, header)?;
    for f in frames {
        let ok = match f {
            Frame::Hello(h) => w.push_hello(*h, false),
            Frame::HelloAck(h) => w.push_hello(*h, true),
            Frame::Ack(a) => w.push_ack(a),
            Frame::Record(r) => w.push_record(r),
            Frame::Relay(r) => w.push_relay(r),
            Frame::View(v) => {
                let items: Vec<Item> = v.items().collect();
                w.push_view(&v.head, &items)
            }
        };
        if !ok {
            return None;
        }
    }
    let len = w.finish();
    buf.truncate(len);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzer finding (fuzz/corpus/datagram/crash-reencode-1): an ACK whose
    /// SACK words end in zeros decoded to a value unequal to itself
    /// re-encoded.
    #[test]
    fn trailing_zero_sack_words_decode_to_the_empty_sack() {
        let h = Header {
            run_id: 1,
            from: 1,
            to: 0,
            incarnation: 1,
            view: 1,
        };
        let mut bytes = encode(h, &[]).unwrap_or_default();
        bytes.truncate(HEADER_LEN);
        bytes.extend_from_slice(&[kind::ACK, 0, (ACK_FIXED_LEN + 8) as u8]);
        bytes.extend_from_slice(&[0; 40]);
        bytes.extend_from_slice(&[0, 1]);
        bytes.extend_from_slice(&[0; 8]);
        let d = Datagram::parse(Bytes::from(bytes)).unwrap();
        let Some(Frame::Ack(a)) = d.frames().next() else {
            panic!("no ACK");
        };
        assert_eq!(a.sack, Sack::empty());
    }
    use proptest::prelude::*;

    fn header() -> Header {
        Header {
            run_id: 0x0102_0304_0506_0708,
            from: 3,
            to: 1,
            incarnation: 0x1112_1314_1516_1718,
            view: 0x2122_2324,
        }
    }

    #[test]
    fn header_layout_is_as_documented() {
        let bytes = encode(
            header(),
            &[Frame::Hello(Hello {
                members: 4,
                digest: 9,
            })],
        )
        .unwrap();
        assert_eq!(&bytes[..4], b"MP\x02\x00");
        assert_eq!(&bytes[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[12..16], &[0, 3, 0, 1]);
        assert_eq!(
            &bytes[16..24],
            &[0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18]
        );
        assert_eq!(&bytes[24..28], &[0x21, 0x22, 0x23, 0x24]);
        assert_eq!(&bytes[28..31], &[kind::HELLO, 0, 10]);
        assert_eq!(bytes.len(), HEADER_LEN + FRAME_PREFIX_LEN + HELLO_LEN);
    }

    /// The worked example of `docs/protocol.md`, byte for byte.
    #[test]
    fn the_documented_example_is_exact() {
        let h = Header {
            run_id: 0x2a,
            from: 2,
            to: 0,
            incarnation: 7,
            view: 1,
        };
        let ack = Ack {
            cum: 5,
            sack: Sack::empty(),
            clock: 9,
            sent: 3,
            flow: 4,
            stable: 1,
            done: false,
            done_seen: false,
            want_reply: false,
            nak: false,
        };
        let rec = Record {
            sender: 2,
            link_seq: 2,
            kind: RecordKind::Data { seq: 2 },
            stamp: 9,
            ext: Bytes::new(),
            payload: Bytes::from_static(b"hi"),
        };
        let bytes = encode(h, &[Frame::Ack(ack), Frame::Record(rec)]).unwrap();
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expected = "4d 50 02 00 00 00 00 00 00 00 00 2a 00 02 00 00 \
                        00 00 00 00 00 00 00 07 00 00 00 01 \
                        03 00 2a 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00 03 \
                        00 00 00 00 00 00 00 04 00 00 00 00 00 00 00 01 00 00 \
                        04 00 1b 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00 09 00 68 69";
        assert_eq!(
            hex.join(" "),
            expected.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(bytes.len(), 103);
    }

    #[test]
    fn typed_errors_for_garbage() {
        let ok = encode(
            header(),
            &[Frame::Hello(Hello {
                members: 4,
                digest: 9,
            })],
        )
        .unwrap();
        let parse = |b: &[u8]| Datagram::parse(Bytes::copy_from_slice(b)).map(|_| ());
        assert_eq!(parse(&ok[..5]), Err(DecodeError::TooShort { len: 5 }));
        assert_eq!(parse(&ok[..HEADER_LEN]), Err(DecodeError::NoFrames));
        assert_eq!(
            parse(&ok[..ok.len() - 1]),
            Err(DecodeError::Truncated { offset: 0 })
        );
        let mut bad = ok.clone();
        bad[0] = b'X';
        assert_eq!(parse(&bad), Err(DecodeError::BadMagic));
        let mut bad = ok.clone();
        bad[2] = 9;
        assert_eq!(parse(&bad), Err(DecodeError::UnsupportedVersion(9)));
        let mut bad = ok.clone();
        bad[HEADER_LEN] = 0x7f;
        assert_eq!(
            parse(&bad),
            Err(DecodeError::UnknownKind {
                offset: 0,
                kind: 0x7f
            })
        );
        assert_eq!(
            parse(&vec![0; MAX_DATAGRAM + 1]),
            Err(DecodeError::TooLong {
                len: MAX_DATAGRAM + 1
            })
        );
    }

    #[test]
    fn the_largest_record_always_fits_beside_a_full_ack() {
        let mut sack = Sack::empty();
        sack.set(Sack::SPAN - 1);
        let ack = Ack {
            cum: 1,
            sack,
            clock: 2,
            sent: 3,
            flow: 1,
            stable: 0,
            done: false,
            done_seen: false,
            want_reply: false,
            nak: false,
        };
        let rec = Record {
            sender: 3,
            link_seq: 0,
            kind: RecordKind::Data { seq: 0 },
            stamp: 1,
            ext: Bytes::from(vec![0; MAX_EXT]),
            payload: Bytes::from(vec![0; MAX_PAYLOAD]),
        };
        let bytes = encode(header(), &[Frame::Ack(ack), Frame::Record(rec)]).unwrap();
        assert!(
            bytes.len() + SEAL_RESERVE <= MAX_DATAGRAM,
            "room left for the seal"
        );
    }

    #[test]
    fn sack_bits() {
        let mut s = Sack::empty();
        assert_eq!(s.highest(), None);
        s.set(0);
        s.set(70);
        s.set(Sack::SPAN); // ignored
        assert!(s.get(0) && s.get(70) && !s.get(1));
        assert_eq!(s.highest(), Some(70));
        assert_eq!(s.encoded_words(), 2);
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let hello =
            (any::<u16>(), any::<u64>()).prop_map(|(members, digest)| Hello { members, digest });
        let sack = proptest::collection::vec(0..Sack::SPAN, 0..20).prop_map(|offs| {
            let mut s = Sack::empty();
            for o in offs {
                s.set(o);
            }
            s
        });
        let ack = (
            (any::<u64>(), sack, any::<u64>(), any::<u64>()),
            (any::<u64>(), any::<u64>()),
            (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        )
            .prop_map(
                |((cum, sack, clock, sent), (flow, stable), (done, done_seen, want_reply, nak))| {
                    Ack {
                        cum,
                        sack,
                        clock,
                        sent,
                        flow,
                        stable,
                        done,
                        done_seen,
                        want_reply,
                        nak,
                    }
                },
            );
        let kind = prop_oneof![
            any::<u64>().prop_map(|seq| RecordKind::Data { seq }),
            any::<u64>().prop_map(|count| RecordKind::EndOfStream { count }),
            Just(RecordKind::Control),
        ];
        let record = (
            kind,
            any::<u64>(),
            any::<u64>(),
            arb_bytes(40),
            arb_bytes(300),
        )
            .prop_map(|(kind, link_seq, stamp, ext, payload)| Record {
                sender: 3,
                link_seq,
                kind,
                stamp,
                ext,
                payload: if matches!(kind, RecordKind::EndOfStream { .. }) {
                    Bytes::new()
                } else {
                    payload
                },
            });
        let item = prop_oneof![
            (any::<u16>(), any::<u64>())
                .prop_map(|(id, incarnation)| Item::Member { id, incarnation }),
            (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(|(sender, from, count)| {
                Item::Range {
                    sender,
                    from,
                    count,
                }
            }),
            (any::<u16>(), any::<u16>()).prop_map(|(sender, donor)| Item::Donor { sender, donor }),
            any::<u64>().prop_map(Item::Clock),
            (any::<u16>(), any::<u64>())
                .prop_map(|(id, incarnation)| Item::Finished { id, incarnation }),
        ];
        let msg = prop_oneof![
            Just(ViewMsgKind::Propose),
            Just(ViewMsgKind::State),
            Just(ViewMsgKind::Install),
            Just(ViewMsgKind::RelayRequest),
            Just(ViewMsgKind::NotMember),
            Just(ViewMsgKind::Suspect),
        ];
        let view = (
            msg,
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            (1u8..5),
            proptest::collection::vec(item, 0..12),
        )
            .prop_map(|(msg, old_view, round, coord, parts, items)| {
                let head = ViewHead {
                    msg,
                    old_view,
                    round,
                    coord,
                    part: parts - 1,
                    parts,
                };
                ViewFrame::new(head, &items)
            });
        let relay = (
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            arb_bytes(300),
        )
            .prop_map(|(sender, link_seq, seq, stamp, payload)| Record {
                sender,
                link_seq,
                kind: RecordKind::Data { seq },
                stamp,
                ext: Bytes::new(),
                payload,
            });
        prop_oneof![
            hello.clone().prop_map(Frame::Hello),
            hello.prop_map(Frame::HelloAck),
            ack.prop_map(Frame::Ack),
            record.prop_map(Frame::Record),
            view.prop_map(Frame::View),
            relay.prop_map(Frame::Relay),
        ]
    }

    /// Compares SACKs by content, since trailing zero words are not sent.
    fn normalise(f: Frame) -> Frame {
        match f {
            Frame::Ack(mut a) => {
                a.sack.len = a.sack.encoded_words() as u8;
                Frame::Ack(a)
            }
            other => other,
        }
    }

    proptest! {
        #[test]
        fn round_trip(frames in proptest::collection::vec(arb_frame(), 1..4), run_id: u64, to: u16, incarnation: u64, view: u32) {
            let h = Header { run_id, from: 3, to, incarnation, view };
            if let Some(bytes) = encode(h, &frames) {
                let d = Datagram::parse(Bytes::from(bytes)).expect("our own encoding parses");
                prop_assert_eq!(d.header(), h);
                let back: Vec<Frame> = d.frames().collect();
                let want: Vec<Frame> = frames.into_iter().map(normalise).collect();
                prop_assert_eq!(back, want);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1600)) {
            if let Ok(d) = Datagram::parse(Bytes::from(bytes)) {
                prop_assert!(d.frames().count() >= 1);
            }
        }

        #[test]
        fn garbage_after_a_valid_header_is_rejected(tail in proptest::collection::vec(any::<u8>(), 1..200)) {
            // Random frames almost never form a valid body; when they do,
            // parse must agree with iteration.
            let mut bytes = encode(header(), &[Frame::Hello(Hello { members: 1, digest: 1 })]).unwrap();
            bytes.truncate(HEADER_LEN);
            bytes.extend_from_slice(&tail);
            if let Ok(d) = Datagram::parse(Bytes::from(bytes)) {
                let mut len = 0;
                for f in d.frames() {
                    len += match f {
                        Frame::Hello(_) | Frame::HelloAck(_) => FRAME_PREFIX_LEN + HELLO_LEN,
                        Frame::Ack(a) => DatagramWriter::ack_len(&a) ,
                        Frame::Record(r) => r.encoded_len(),
                        Frame::Relay(r) => r.encoded_len() + view::RELAY_PREFIX_LEN,
                        Frame::View(v) => {
                            let items: Vec<Item> = v.items().collect();
                            FRAME_PREFIX_LEN + view::view_body_len(&items)
                        }
                    };
                }
                // ACKs may carry trailing zero words we would not write, so
                // the re-encoded length is at most the original.
                prop_assert!(len <= tail.len());
            }
        }

        #[test]
        fn single_bit_flips_never_panic(frames in proptest::collection::vec(arb_frame(), 1..3), bit in 0usize..(1400 * 8)) {
            if let Some(mut bytes) = encode(header(), &frames) {
                let bit = bit % (bytes.len() * 8);
                bytes[bit / 8] ^= 1 << (bit % 8);
                let _ = Datagram::parse(Bytes::from(bytes));
            }
        }
    }
}

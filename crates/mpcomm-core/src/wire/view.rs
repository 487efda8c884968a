//! The frames of a view change: proposals, state reports, installations,
//! relayed records.
//!
//! When a member crashes (or joins), the survivors agree on a new *view*
//! through a flush (see `crate::membership` and `docs/algorithms.md`). The
//! messages of that protocol are rare — a handful per view change — but
//! their size grows with the group: a proposal lists every member, a state
//! report says what its sender holds of every member's stream. So they
//! share one frame kind, `VIEW`, whose body is a short fixed head followed
//! by a list of self-describing **items**, and one logical message may be
//! split into several **parts** (each a frame of its own, in its own
//! datagram if need be); the receiver acts once it holds every part.
//!
//! ```text
//! VIEW  = msg u8 | old_view u32 | round u32 | coord u16 | part u8 | parts u8 | item*
//! item  = MEMBER   0x01 id u16 incarnation u64
//!       | RANGE    0x02 sender u16 from u64 count u64
//!       | DONOR    0x03 sender u16 donor u16
//!       | CLOCK    0x04 value u64
//!       | FINISHED 0x05 id u16 incarnation u64
//! RELAY = sender u16 | kind u8 | record body      (one record of another member's stream)
//! ```
//!
//! `(round, coord)` is the **ballot** of the view change: proposals with a
//! higher ballot supersede lower ones (see `crate::membership::Ballot`).
//! Like every decoder in this crate, parsing is total and bounded: a frame
//! with an unknown message or item, a truncated item, or an impossible part
//! number is rejected whole.

use bytes::{Buf, Bytes};

use super::{MemberId, RECORD_FIXED_LEN, Record, RecordKind, kind};

/// Length of a VIEW frame's fixed head.
pub const VIEW_FIXED_LEN: usize = 13;
/// Length of a RELAY frame's fixed part before the record body.
pub const RELAY_PREFIX_LEN: usize = 3;
/// The item bytes one part may carry, so that any part fits in a datagram
/// beside the header, the seal's reserve and a full ACK.
pub const VIEW_PART_BUDGET: usize = 1200;

/// What a VIEW frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ViewMsgKind {
    /// Coordinator → proposed members: "let us move from `old_view` to a view
    /// of these members" (MEMBER items).
    Propose,
    /// Member → coordinator: what I hold of the old view (RANGE items per
    /// stream, my own stream's length as a RANGE of mine, my CLOCK, the
    /// FINISHED members I know of).
    State,
    /// Coordinator → members: the decision: the new view (MEMBER items), the
    /// old view's records every member delivers (RANGE items per stream),
    /// who can supply them (DONOR items), the clock floor (CLOCK), and which
    /// members have ended their streams (FINISHED).
    Install,
    /// Member → donor: "send me these records of the old view" (RANGE items).
    RelayRequest,
    /// "You are not a member of my view" — to a process whose datagrams
    /// come from an incarnation or a view this member no longer has.
    NotMember,
    /// Member → coordinator: "I suspect these members" (MEMBER items).
    Suspect,
}

impl ViewMsgKind {
    fn code(self) -> u8 {
        match self {
            ViewMsgKind::Propose => 1,
            ViewMsgKind::State => 2,
            ViewMsgKind::Install => 3,
            ViewMsgKind::RelayRequest => 4,
            ViewMsgKind::NotMember => 5,
            ViewMsgKind::Suspect => 6,
        }
    }

    fn from_code(code: u8) -> Option<ViewMsgKind> {
        Some(match code {
            1 => ViewMsgKind::Propose,
            2 => ViewMsgKind::State,
            3 => ViewMsgKind::Install,
            4 => ViewMsgKind::RelayRequest,
            5 => ViewMsgKind::NotMember,
            6 => ViewMsgKind::Suspect,
            _ => return None,
        })
    }
}

/// The fixed head of a VIEW frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ViewHead {
    /// What the message is.
    pub msg: ViewMsgKind,
    /// The view being changed (or, for NOT_MEMBER, the sender's view).
    pub old_view: u32,
    /// The ballot's round.
    pub round: u32,
    /// The ballot's coordinator.
    pub coord: MemberId,
    /// This part's index, from 0.
    pub part: u8,
    /// How many parts the message has (at least 1).
    pub parts: u8,
}

/// One item of a VIEW frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Item {
    /// A member of a view: its id and incarnation.
    Member {
        /// Member id.
        id: MemberId,
        /// Its incarnation.
        incarnation: u64,
    },
    /// Records `from..from + count` of `sender`'s stream in the old view.
    Range {
        /// Whose stream.
        sender: MemberId,
        /// First record.
        from: u64,
        /// How many.
        count: u64,
    },
    /// `donor` holds the decided records of `sender`'s stream.
    Donor {
        /// Whose stream.
        sender: MemberId,
        /// Who holds it.
        donor: MemberId,
    },
    /// A Lamport clock value.
    Clock(u64),
    /// A member (id and incarnation) whose stream has ended.
    Finished {
        /// Member id.
        id: MemberId,
        /// Its incarnation.
        incarnation: u64,
    },
}

const ITEM_MEMBER: u8 = 0x01;
const ITEM_RANGE: u8 = 0x02;
const ITEM_DONOR: u8 = 0x03;
const ITEM_CLOCK: u8 = 0x04;
const ITEM_FINISHED: u8 = 0x05;

impl Item {
    /// Bytes the item occupies, tag included.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Item::Member { .. } | Item::Finished { .. } => 10,
            Item::Range { .. } => 18,
            Item::Donor { .. } => 4,
            Item::Clock(_) => 8,
        }
    }

    fn body_len(tag: u8) -> Option<usize> {
        match tag {
            ITEM_MEMBER | ITEM_FINISHED => Some(10),
            ITEM_RANGE => Some(18),
            ITEM_DONOR => Some(4),
            ITEM_CLOCK => Some(8),
            _ => None,
        }
    }

    fn write(&self, out: &mut [u8]) {
        match *self {
            Item::Member { id, incarnation } | Item::Finished { id, incarnation } => {
                out[0] = if matches!(self, Item::Member { .. }) {
                    ITEM_MEMBER
                } else {
                    ITEM_FINISHED
                };
                out[1..3].copy_from_slice(&id.to_be_bytes());
                out[3..11].copy_from_slice(&incarnation.to_be_bytes());
            }
            Item::Range {
                sender,
                from,
                count,
            } => {
                out[0] = ITEM_RANGE;
                out[1..3].copy_from_slice(&sender.to_be_bytes());
                out[3..11].copy_from_slice(&from.to_be_bytes());
                out[11..19].copy_from_slice(&count.to_be_bytes());
            }
            Item::Donor { sender, donor } => {
                out[0] = ITEM_DONOR;
                out[1..3].copy_from_slice(&sender.to_be_bytes());
                out[3..5].copy_from_slice(&donor.to_be_bytes());
            }
            Item::Clock(v) => {
                out[0] = ITEM_CLOCK;
                out[1..9].copy_from_slice(&v.to_be_bytes());
            }
        }
    }
}

/// A decoded VIEW frame: its head and its (validated) items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewFrame {
    /// The fixed head.
    pub head: ViewHead,
    items: Bytes,
}

impl ViewFrame {
    /// A frame with these items (for tests and tools; the protocol writes
    /// parts straight into datagrams with `DatagramWriter::push_view`).
    pub fn new(head: ViewHead, items: &[Item]) -> ViewFrame {
        let mut out = vec![0u8; view_body_len(items)];
        write_view(&mut out, &head, items);
        ViewFrame {
            head,
            items: Bytes::from(out).slice(VIEW_FIXED_LEN..),
        }
    }

    /// The items, in order.
    pub fn items(&self) -> impl Iterator<Item = Item> + '_ {
        let mut b: &[u8] = &self.items;
        std::iter::from_fn(move || {
            if b.is_empty() {
                return None;
            }
            // Validated by `check_view`, so every item is complete.
            let tag = b.get_u8();
            Some(match tag {
                ITEM_MEMBER | ITEM_FINISHED => {
                    let id = b.get_u16();
                    let incarnation = b.get_u64();
                    if tag == ITEM_MEMBER {
                        Item::Member { id, incarnation }
                    } else {
                        Item::Finished { id, incarnation }
                    }
                }
                ITEM_RANGE => Item::Range {
                    sender: b.get_u16(),
                    from: b.get_u64(),
                    count: b.get_u64(),
                },
                ITEM_DONOR => Item::Donor {
                    sender: b.get_u16(),
                    donor: b.get_u16(),
                },
                _ => Item::Clock(b.get_u64()),
            })
        })
    }
}

/// Validates a VIEW frame body; `false` if it is malformed.
pub(super) fn check_view(b: &[u8]) -> bool {
    if b.len() < VIEW_FIXED_LEN || ViewMsgKind::from_code(b[0]).is_none() {
        return false;
    }
    let (part, parts) = (b[11], b[12]);
    if parts == 0 || part >= parts {
        return false;
    }
    let mut rest = &b[VIEW_FIXED_LEN..];
    while let Some((&tag, after)) = rest.split_first() {
        let Some(len) = Item::body_len(tag) else {
            return false;
        };
        if after.len() < len {
            return false;
        }
        rest = &after[len..];
    }
    true
}

/// Decodes a VIEW frame body that [`check_view`] accepted.
pub(super) fn decode_view(body: &Bytes, start: usize, end: usize) -> ViewFrame {
    let mut b = &body[start..end];
    let msg = ViewMsgKind::from_code(b.get_u8()).unwrap_or(ViewMsgKind::NotMember);
    let head = ViewHead {
        msg,
        old_view: b.get_u32(),
        round: b.get_u32(),
        coord: b.get_u16(),
        part: b.get_u8(),
        parts: b.get_u8(),
    };
    ViewFrame {
        head,
        items: body.slice(start + VIEW_FIXED_LEN..end),
    }
}

/// Encodes a VIEW frame body into `out` (which must be exactly
/// [`view_body_len`] long).
pub(super) fn write_view(out: &mut [u8], head: &ViewHead, items: &[Item]) {
    out[0] = head.msg.code();
    out[1..5].copy_from_slice(&head.old_view.to_be_bytes());
    out[5..9].copy_from_slice(&head.round.to_be_bytes());
    out[9..11].copy_from_slice(&head.coord.to_be_bytes());
    out[11] = head.part;
    out[12] = head.parts;
    let mut at = VIEW_FIXED_LEN;
    for item in items {
        let len = item.encoded_len();
        item.write(&mut out[at..at + len]);
        at += len;
    }
}

/// The body length of a VIEW frame with these items.
pub fn view_body_len(items: &[Item]) -> usize {
    VIEW_FIXED_LEN + items.iter().map(Item::encoded_len).sum::<usize>()
}

/// Splits a message's items into parts that each fit
/// [`VIEW_PART_BUDGET`]. Always at least one part (possibly empty); at most
/// 255 parts, which is room for far more than a group of
/// [`crate::config::MAX_MEMBERS`] needs.
pub fn split_parts(items: &[Item]) -> Vec<&[Item]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, item) in items.iter().enumerate() {
        let len = item.encoded_len();
        if size + len > VIEW_PART_BUDGET && i > start {
            parts.push(&items[start..i]);
            start = i;
            size = 0;
        }
        size += len;
    }
    parts.push(&items[start..]);
    parts.truncate(usize::from(u8::MAX));
    parts
}

/// Validates a RELAY frame body; `false` if it is malformed.
pub(super) fn check_relay(b: &[u8]) -> bool {
    if b.len() < RELAY_PREFIX_LEN + RECORD_FIXED_LEN {
        return false;
    }
    let rkind = b[2];
    let rec = &b[RELAY_PREFIX_LEN..];
    let ext_len = usize::from(rec[24]);
    matches!(rkind, kind::DATA | kind::EOS | kind::CONTROL)
        && RECORD_FIXED_LEN + ext_len <= rec.len()
        && (rkind != kind::EOS || rec.len() == RECORD_FIXED_LEN + ext_len)
}

/// Decodes a RELAY frame body that [`check_relay`] accepted: the record, with
/// the sender it names (not the datagram's sender, which only relays it).
pub(super) fn decode_relay(body: &Bytes, start: usize, end: usize) -> Record {
    let mut b = &body[start..end];
    let sender = b.get_u16();
    let rkind = b.get_u8();
    let link_seq = b.get_u64();
    let value = b.get_u64();
    let stamp = b.get_u64();
    let ext_len = usize::from(b.get_u8());
    let ext_start = start + RELAY_PREFIX_LEN + RECORD_FIXED_LEN;
    let payload_start = ext_start + ext_len;
    let slice = |from: usize, to: usize| {
        if from == to {
            Bytes::new()
        } else {
            body.slice(from..to)
        }
    };
    Record {
        sender,
        link_seq,
        kind: match rkind {
            kind::DATA => RecordKind::Data { seq: value },
            kind::EOS => RecordKind::EndOfStream { count: value },
            _ => RecordKind::Control,
        },
        stamp,
        ext: slice(ext_start, payload_start),
        payload: slice(payload_start, end),
    }
}

//! The bytes of a message: its send time, what its sender had delivered,
//! and its operation.
//!
//! ```text
//! offset  0  sent_us   u64, big-endian   microseconds, the sender's clock
//!         8  tag       u8                0: nothing follows; 1: the fields below
//!         9  after     u64, big-endian   messages the sender had delivered
//!        17  op_len    u8                0 when the message has no operation
//!        18  op        op_len bytes      the operation's text (UTF-8)
//!            padding   zeros             up to the run's payload size
//! ```
//!
//! The first eight bytes are what mpcomm's messages have always started
//! with, and a message of the original layout (the time, then zeros) reads
//! as one that says nothing else. The text form of the operation is the one
//! logs carry, so a payload in a packet capture reads like a log line.

use thiserror::Error;

use super::Op;

/// The tag of the layout above.
const TAG_V1: u8 = 1;
/// Bytes before the operation's text.
const HEADER: usize = 18;

/// What a message's payload says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// When it was sent (microseconds, the sender's clock); `None` for a
    /// payload shorter than eight bytes.
    pub sent_us: Option<u64>,
    /// How many messages its sender had delivered when it sent it; `None`
    /// when the payload does not say.
    pub after: Option<u64>,
    /// Its operation, if it has one.
    pub op: Option<Op>,
}

/// A payload that does not follow the layout.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PayloadError {
    /// An unknown tag byte.
    #[error("unknown payload tag {0} (this build reads 0 and 1)")]
    Tag(u8),
    /// The fields run past the end.
    #[error("payload of {0} bytes is too short for its fields")]
    Truncated(usize),
    /// The operation's text is not UTF-8 or not an operation.
    #[error("payload operation: {0}")]
    Op(String),
}

/// The payload of a message sent at `sent_us` after delivering `after`
/// messages, carrying `op`, padded with zeros to at least `min_len` bytes.
pub fn encode(sent_us: u64, after: u64, op: Option<&Op>, min_len: usize) -> Vec<u8> {
    let text = op.map(|o| o.to_string()).unwrap_or_default();
    // Operations are a few dozen bytes; a longer text cannot be one.
    let text = &text.as_bytes()[..text.len().min(usize::from(u8::MAX))];
    let mut out = Vec::with_capacity((HEADER + text.len()).max(min_len));
    out.extend_from_slice(&sent_us.to_be_bytes());
    out.push(TAG_V1);
    out.extend_from_slice(&after.to_be_bytes());
    out.push(text.len() as u8);
    out.extend_from_slice(text);
    if out.len() < min_len {
        out.resize(min_len, 0);
    }
    out
}

/// Reads a payload. Total: any bytes give a [`Decoded`] or an error.
pub fn decode(payload: &[u8]) -> Result<Decoded, PayloadError> {
    let sent_us = payload
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes);
    let none = Decoded {
        sent_us,
        after: None,
        op: None,
    };
    match payload.get(8) {
        None | Some(0) => Ok(none),
        Some(&TAG_V1) => {
            let short = || PayloadError::Truncated(payload.len());
            let after = payload
                .get(9..17)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(short)?;
            let len = usize::from(*payload.get(17).ok_or_else(short)?);
            let text = payload.get(HEADER..HEADER + len).ok_or_else(short)?;
            let op = if len == 0 {
                None
            } else {
                let text = std::str::from_utf8(text)
                    .map_err(|_| PayloadError::Op("not UTF-8".to_string()))?;
                Some(
                    text.parse::<Op>()
                        .map_err(|e| PayloadError::Op(e.to_string()))?,
                )
            };
            Ok(Decoded {
                sent_us,
                after: Some(after),
                op,
            })
        }
        Some(&t) => Err(PayloadError::Tag(t)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_with_and_without_an_operation() {
        let op: Op = "withdraw 4.00".parse().unwrap();
        let p = encode(1234, 7, Some(&op), 64);
        assert_eq!(p.len(), 64);
        assert_eq!(
            decode(&p),
            Ok(Decoded {
                sent_us: Some(1234),
                after: Some(7),
                op: Some(op)
            })
        );
        let p = encode(5, 0, None, 8);
        assert_eq!(p.len(), HEADER);
        assert_eq!(decode(&p).unwrap().op, None);
        assert_eq!(decode(&p).unwrap().after, Some(0));
    }

    #[test]
    fn the_original_layout_reads_as_saying_nothing() {
        let mut p = vec![0u8; 64];
        p[..8].copy_from_slice(&99u64.to_be_bytes());
        assert_eq!(
            decode(&p),
            Ok(Decoded {
                sent_us: Some(99),
                after: None,
                op: None
            })
        );
        assert_eq!(decode(&[1, 2]).unwrap().sent_us, None);
    }

    #[test]
    fn bad_payloads_are_errors() {
        let good = encode(1, 2, Some(&"ask 1".parse().unwrap()), 0);
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(PayloadError::Truncated(good.len() - 1))
        );
        let mut tag = good.clone();
        tag[8] = 9;
        assert_eq!(decode(&tag), Err(PayloadError::Tag(9)));
        let mut text = good.clone();
        text[HEADER] = b'z';
        assert!(matches!(decode(&text), Err(PayloadError::Op(_))));
        let mut utf = good;
        utf[HEADER] = 0xff;
        assert!(matches!(decode(&utf), Err(PayloadError::Op(_))));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes);
        }
    }
}

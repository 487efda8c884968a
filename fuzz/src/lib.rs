//! Fuzz targets: one function per decoder that takes outside input, each
//! total (it must return, whatever the bytes) and checking what it can.
//!
//! A fuzzer calls a target millions of times with inputs it mutates towards
//! new code paths (coverage guidance); a panic, a hang or an assertion
//! failure is a finding. The targets live in this ordinary library so that
//! [`TARGETS`] can be replayed over the stored corpus (`fuzz/corpus/NAME/`)
//! by `cargo test` on every build, and wrapped by the AFL harness in
//! `fuzz/afl` (run by `fuzz/run-afl`, see `fuzz/README.md`).

use bytes::Bytes;
use mpcomm::control::{self, GmRequest, PeerCommand, Reply, ReportMsg};
use mpcomm_core::seal::{GroupKey, KeyRing, Opener, Sealer};
use mpcomm_core::wire::{self, Datagram, Frame, MAX_DATAGRAM};
use mpcomm_core::{Config, MemberId, OrderKind, Peer, Time};

/// A fuzz target: any bytes in, returns (or panics on a finding).
pub type Target = fn(&[u8]);

/// Every target, by name (the name of its corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("datagram", datagram),
    ("sealed", sealed),
    ("peer", peer),
    ("control", control_line),
    ("log", log_lines),
    ("wan", wan),
    ("keyfile", keyfile),
];

/// The key the `sealed` and `peer` targets use (the corpus is sealed with
/// it, so that the fuzzer starts from datagrams that open).
pub fn fuzz_keys() -> KeyRing {
    KeyRing::new(
        GroupKey::new(1, [0x42; 32]),
        Some(GroupKey::new(2, [0x43; 32])),
    )
    .unwrap_or_else(|_| KeyRing::single(GroupKey::new(1, [0x42; 32])))
}

/// Run id of the fuzzed peers.
pub const FUZZ_RUN: u64 = 7;

/// `Datagram::parse`; a datagram that parses must re-encode to one that
/// parses to the same frames.
pub fn datagram(data: &[u8]) {
    let Ok(d) = Datagram::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let frames: Vec<Frame> = d.frames().collect();
    assert!(!frames.is_empty());
    if let Some(again) = wire::encode(d.header(), &frames) {
        let d2 = Datagram::parse(Bytes::from(again)).expect("a re-encoded datagram parses");
        assert_eq!(d2.header(), d.header());
        assert_eq!(d2.frames().collect::<Vec<_>>(), frames);
    }
}

/// `Opener::open` with the fuzz keys; whatever opens must then be a
/// datagram the parser judges (not a panic), and a datagram sealed again
/// must open again.
pub fn sealed(data: &[u8]) {
    let keys = fuzz_keys();
    let mut opener = Opener::new(&keys, FUZZ_RUN, 4);
    let mut buf = data.to_vec();
    if let Ok(n) = opener.open(&mut buf) {
        assert!(n <= data.len());
        let _ = Datagram::parse(Bytes::copy_from_slice(&buf[..n]));
        let from = u16::from_be_bytes([buf[12], buf[13]]);
        let inc = u64::from_be_bytes(buf[16..24].try_into().unwrap_or([0; 8]));
        let mut sealer = Sealer::new(&keys, FUZZ_RUN, from, inc);
        let mut again = buf[..n].to_vec();
        again.resize(MAX_DATAGRAM.max(n + 32), 0);
        if let Ok(len) = sealer.seal(&mut again, n) {
            let mut fresh = Opener::new(&keys, FUZZ_RUN, 4);
            again.truncate(len);
            assert_eq!(fresh.open(&mut again), Ok(n));
        }
    }
    // The same bytes, split in two datagrams, must not panic either.
    let mid = data.len() / 2;
    let _ = opener.open(&mut data[..mid].to_vec());
}

/// Two peers (member 0 of 2) — one with keys, one without — fed the input
/// as a sequence of datagrams (split at `0xff 0xfe` markers): nothing may
/// panic, and nothing forged may be delivered by the keyed one.
pub fn peer(data: &[u8]) {
    let mut keyed = Config::new(FUZZ_RUN, 0, 2, OrderKind::Total);
    keyed.keys = Some(fuzz_keys());
    keyed.incarnation = 1;
    let mut clear = Config::new(FUZZ_RUN, 0, 2, OrderKind::Total);
    clear.incarnation = 1;
    let (Ok(mut a), Ok(mut b)) = (Peer::new(keyed, Time::ZERO), Peer::new(clear, Time::ZERO))
    else {
        return;
    };
    let mut buf = [0u8; MAX_DATAGRAM];
    for (i, part) in split(data).enumerate() {
        let now = Time::from_millis(i as u64);
        for p in [&mut a, &mut b] {
            p.handle_datagram(now, Bytes::copy_from_slice(part));
            p.handle_timeout(now);
            while p.poll_transmit(now, &mut buf).is_some() {}
            while p.poll_event().is_some() {}
        }
    }
    let _ = MemberId::MAX;
}

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.windows(2).position(|w| w == [0xff, 0xfe]) {
            Some(i) => {
                let (head, tail) = rest.split_at(i);
                rest = &tail[2..];
                Some(head)
            }
            None => Some(std::mem::take(&mut rest)),
        }
    })
}

/// A control-plane line as every receiver decodes it: the group manager's
/// requests, a peer's commands, a report's framing, and replies.
pub fn control_line(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(GmRequest::Register(r)) = control::decode_op::<GmRequest>(value.clone()) {
        let _ = r.validate();
    }
    let _ = control::decode_op::<PeerCommand>(value.clone());
    let _ = control::decode_op::<ReportMsg>(value.clone());
    if let Ok(reply) = serde_json::from_value::<Reply>(value) {
        let _ = reply.into_result();
    }
}

/// A delivery log, as the checker reads it.
pub fn log_lines(data: &[u8]) {
    let _ = mpcomm_check::log::read_log(std::io::Cursor::new(data), "fuzz");
}

/// The `--wan` grammar.
pub fn wan(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<mpcomm_sim::NetProfile>();
        let _ = mpcomm_sim::net::parse_duration(s);
        let _ = mpcomm_sim::net::parse_probability(s);
    }
}

/// The key file; a file that parses must format and parse back the same.
pub fn keyfile(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(keys) = mpcomm::keyfile::parse(s)
    {
        let again = mpcomm::keyfile::parse(&mpcomm::keyfile::format(&keys));
        assert_eq!(again.ok(), Some(keys));
    }
}

//! The `causal` engine's contract with the peer state machine, on real
//! peers: a member that delivered from so many others that its vector's
//! delta does not fit a record's 255-byte extension sends the excess in
//! control records first, and the peer lets it (it drains
//! `Ordering::poll_control` after deliveries, before the next multicast).
//! If a rewrite of the peer broke that, the data record's extension would
//! be cut (counted as a protocol violation) and causal order could break.

use bytes::Bytes;
use mpcomm_core::wire::MAX_DATAGRAM;
use mpcomm_core::{Config, Event, MemberId, OrderKind, Peer, Time};

/// Moves datagrams until none is left, losing those `drop` says to.
fn exchange(peers: &mut [Peer], now: Time, drop: impl Fn(MemberId, MemberId) -> bool) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let mut batch = Vec::new();
        for (from, p) in peers.iter_mut().enumerate() {
            while let Some(t) = p.poll_transmit(now, &mut buf) {
                if !drop(from as MemberId, t.to) {
                    batch.push((t.to, Bytes::copy_from_slice(&buf[..t.len])));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        for (to, bytes) in batch {
            peers[usize::from(to)].handle_datagram(now, bytes);
        }
    }
}

fn delivered(p: &mut Peer) -> Vec<(MemberId, u64)> {
    std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            Event::Deliver(d) => Some((d.sender, d.seq)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_delta_too_large_for_the_extension_goes_out_first_and_still_orders() {
    const N: usize = 150;
    let last = (N - 1) as MemberId;
    let mut peers: Vec<Peer> = (0..N)
        .map(|i| {
            let mut cfg = Config::new(3, i as MemberId, N, OrderKind::Causal);
            // No view changes here: the test jumps seconds ahead at once.
            cfg.suspect_after = std::time::Duration::from_secs(60);
            Peer::new(cfg, Time::ZERO).unwrap()
        })
        .collect();
    exchange(&mut peers, Time::ZERO, |_, _| false);
    assert!(peers.iter().all(Peer::is_ready));
    for p in &mut peers {
        delivered(p);
    }
    // Everyone but member 0 says something; member 1 never hears the last
    // member (its datagrams to 1 are lost, and no time passes for a
    // retransmission).
    let t = Time::from_millis(1);
    for p in peers.iter_mut().skip(1) {
        p.multicast(t, Bytes::from_static(b"hello")).unwrap();
    }
    let cut = |from: MemberId, to: MemberId| from == last && to == 1;
    let others = (N - 1) as u64;
    assert_eq!(peers[0].stats().records_sent, 0);
    exchange(&mut peers, t, cut);
    // Member 0 delivered 149 messages from 149 members: a delta of about
    // 300 bytes. It has already sent the excess, to every member.
    assert_eq!(delivered(&mut peers[0]).len(), N - 1);
    assert!(
        peers[0].stats().records_sent >= others,
        "no control record went out ({} records)",
        peers[0].stats().records_sent
    );
    // It answers.
    peers[0].multicast(t, Bytes::from_static(b"reply")).unwrap();
    exchange(&mut peers, t, cut);
    assert_eq!(peers[0].stats().protocol_violations, 0, "nothing was cut");
    // Member 1 holds the reply: member 0 had delivered the last member's
    // message, which member 1 has not.
    let got = delivered(&mut peers[1]);
    assert!(!got.contains(&(0, 0)), "{got:?}");
    assert!(peers[1].held() >= 1);
    // Time passes, the lost datagrams are resent: first the missing
    // message, then the reply.
    let later = Time::from_millis(3000);
    for p in &mut peers {
        p.handle_timeout(later);
    }
    exchange(&mut peers, later, |_, _| false);
    let got = delivered(&mut peers[1]);
    let pos = |m| got.iter().position(|x| *x == m);
    assert!(
        pos((last, 0)) < pos((0, 0)) && pos((0, 0)).is_some(),
        "{got:?}"
    );
}

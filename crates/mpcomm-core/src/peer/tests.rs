//! Unit tests of the peer state machine over a tiny in-memory network; the
//! real testing happens in the simulator crate.
use super::*;
use crate::wire::MAX_DATAGRAM;

/// A tiny lossless, zero-delay network for unit tests; the real testing
/// happens in the simulator crate.
fn exchange(peers: &mut [Peer], now: Time) -> usize {
    let mut moved = 0;
    loop {
        let mut batch = vec![];
        for p in peers.iter_mut() {
            let mut buf = [0u8; MAX_DATAGRAM];
            while let Some(t) = p.poll_transmit(now, &mut buf) {
                batch.push((t.to, Bytes::copy_from_slice(&buf[..t.len])));
            }
        }
        if batch.is_empty() {
            return moved;
        }
        moved += batch.len();
        for (to, bytes) in batch {
            peers[usize::from(to)].handle_datagram(now, bytes);
        }
    }
}

fn group(n: usize, order: OrderKind) -> Vec<Peer> {
    (0..n)
        .map(|i| Peer::new(Config::new(7, i as MemberId, n, order), Time::ZERO).unwrap())
        .collect()
}

/// The first view of a group of `n`: everyone, all new.
fn first_view(n: u16) -> Event {
    Event::View {
        id: 1,
        members: (0..n).collect(),
        joined: (0..n).collect(),
        left: vec![],
    }
}

fn events(p: &mut Peer) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

#[test]
fn handshake_then_total_order_run() {
    let mut peers = group(3, OrderKind::Total);
    assert_eq!(
        peers[0].multicast(Time::ZERO, Bytes::from_static(b"x")),
        Err(SendError::NotReady)
    );
    exchange(&mut peers, Time::ZERO);
    for p in peers.iter_mut() {
        assert_eq!(events(p), vec![Event::Ready, first_view(3)]);
    }
    let t = Time::from_millis(1);
    peers[2].multicast(t, Bytes::from_static(b"c")).unwrap();
    peers[0].multicast(t, Bytes::from_static(b"a")).unwrap();
    for p in peers.iter_mut() {
        p.finish(t).unwrap();
    }
    exchange(&mut peers, t);
    let mut sequences = vec![];
    for p in peers.iter_mut() {
        let ev = events(p);
        assert_eq!(ev.last(), Some(&Event::Completed));
        let seq: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::Deliver(d) => Some((d.sender, d.seq)),
                _ => None,
            })
            .collect();
        sequences.push(seq);
    }
    assert_eq!(sequences[0].len(), 2);
    assert!(
        sequences.iter().all(|s| *s == sequences[0]),
        "{sequences:?}"
    );
    let later = t + Duration::from_secs(3);
    assert!(peers.iter().all(|p| p.may_leave(later)));
    assert_eq!(peers[0].stats().dropped(), 0);
}

/// Moves datagrams like [`exchange`], except between members `a` and
/// `b`, whose datagrams to each other are lost.
fn exchange_cut(peers: &mut [Peer], now: Time, a: MemberId, b: MemberId) {
    loop {
        let mut batch = vec![];
        for (from, p) in peers.iter_mut().enumerate() {
            let mut buf = [0u8; MAX_DATAGRAM];
            while let Some(t) = p.poll_transmit(now, &mut buf) {
                let from = from as MemberId;
                if (from, t.to) != (a, b) && (from, t.to) != (b, a) {
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

/// A member past its barrier may send data to one still in its
/// handshake. That data is kept, but delivered only after `Ready`: an
/// application that waits for `Ready` before it reads deliveries (as
/// `Group::join` does) would otherwise never read them, and a runtime
/// that stops reading its socket while deliveries go unread would never
/// finish the handshake. Seen as a rare `none` bench run that timed out.
#[test]
fn nothing_is_delivered_before_ready() {
    for order in [OrderKind::None, OrderKind::Fifo, OrderKind::Total] {
        let mut peers = group(3, order);
        let t = Time::ZERO;
        // 1 and 2 cannot hear each other; 0 hears both and gets going.
        exchange_cut(&mut peers, t, 1, 2);
        assert!(peers[0].is_ready() && !peers[1].is_ready(), "{order:?}");
        assert_eq!(events(&mut peers[0]), vec![Event::Ready, first_view(3)]);
        for k in 0..3 {
            peers[0].multicast(t, Bytes::from(vec![k as u8])).unwrap();
        }
        exchange_cut(&mut peers, t, 1, 2);
        for k in [1, 2] {
            assert_eq!(events(&mut peers[k]), vec![], "{order:?}: member {k}");
        }
        // The link heals: Ready first, then the kept messages.
        let t = Time::from_millis(60);
        exchange(&mut peers, t);
        for k in [1, 2] {
            let ev = events(&mut peers[k]);
            assert_eq!(ev.first(), Some(&Event::Ready), "{order:?}: {ev:?}");
            let delivered = ev
                .iter()
                .filter(|e| matches!(e, Event::Deliver(d) if d.sender == 0))
                .count();
            let expected = if order == OrderKind::Total {
                0..=3
            } else {
                3..=3
            };
            assert!(expected.contains(&delivered), "{order:?}: {ev:?}");
        }
    }
}

/// A receiver that holds a later record knows it misses an earlier one,
/// and asks for it with a NAK after half a round trip; the sender
/// resends at once, long before its own retransmission timer.
#[test]
fn a_known_gap_is_asked_for_and_repaired_promptly() {
    // The sender's retransmission timer is at least 50 ms; the
    // receiver's repairs may be spaced by 5 ms.
    let mut slow = Config::new(7, 0, 2, OrderKind::Fifo);
    slow.min_rto = Duration::from_millis(50);
    let mut peers = vec![
        Peer::new(slow, Time::ZERO).unwrap(),
        Peer::new(Config::new(7, 1, 2, OrderKind::Fifo), Time::ZERO).unwrap(),
    ];
    exchange(&mut peers, Time::ZERO);
    let mut buf = [0u8; MAX_DATAGRAM];
    // One round trip measured each way, so the spacing of repairs is
    // short (a receiver measures round trips with its own records).
    let t = Time::from_millis(1);
    peers[0].multicast(t, Bytes::from_static(b"a")).unwrap();
    peers[1].multicast(t, Bytes::from_static(b"z")).unwrap();
    exchange(&mut peers, t);
    // Record 1 is lost; record 2 arrives.
    peers[0].multicast(t, Bytes::from_static(b"b")).unwrap();
    while peers[0].poll_transmit(t, &mut buf).is_some() {}
    peers[0].multicast(t, Bytes::from_static(b"c")).unwrap();
    let sent = peers[0].poll_transmit(t, &mut buf).unwrap();
    peers[1].handle_datagram(t, Bytes::copy_from_slice(&buf[..sent.len]));
    while peers[1].poll_transmit(t, &mut buf).is_some() {} // plain ACK, lost
    let nak_at = peers[1].poll_timeout().unwrap();
    assert!(
        nak_at < t + Duration::from_millis(50),
        "asked within a few ms"
    );
    peers[1].handle_timeout(nak_at);
    let nak = peers[1].poll_transmit(nak_at, &mut buf).unwrap();
    peers[0].handle_datagram(nak_at, Bytes::copy_from_slice(&buf[..nak.len]));
    let resent = peers[0].poll_transmit(nak_at, &mut buf).unwrap();
    peers[1].handle_datagram(nak_at, Bytes::copy_from_slice(&buf[..resent.len]));
    assert_eq!(
        peers[0].stats().retransmissions,
        1,
        "resent on the NAK, not the timer"
    );
    assert_eq!(peers[1].stats().naks_sent, 1);
    let delivered: Vec<u64> = events(&mut peers[1])
        .into_iter()
        .filter_map(|e| match e {
            Event::Deliver(d) if d.sender == 0 => Some(d.seq),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, vec![0, 1, 2]);
}

#[test]
fn garbage_and_strangers_are_dropped_and_counted() {
    let mut p = Peer::new(Config::new(7, 0, 2, OrderKind::Total), Time::ZERO).unwrap();
    p.handle_datagram(Time::ZERO, Bytes::from_static(b"definitely not a datagram"));
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut other = Peer::new(Config::new(8, 1, 2, OrderKind::Total), Time::ZERO).unwrap();
    let t = other.poll_transmit(Time::ZERO, &mut buf).unwrap();
    p.handle_datagram(Time::ZERO, Bytes::copy_from_slice(&buf[..t.len])); // run 8, not 7
    assert_eq!(p.stats().dropped_malformed, 1);
    assert_eq!(p.stats().dropped_wrong_run, 1);
    assert!(!p.is_ready());
}

#[test]
fn handshake_timeout_names_the_silent_members() {
    let mut p = Peer::new(Config::new(7, 1, 4, OrderKind::Total), Time::ZERO).unwrap();
    let deadline = Time::ZERO + p.config().handshake_timeout;
    p.handle_timeout(deadline);
    match events(&mut p).as_slice() {
        [Event::Failed(PeerError::HandshakeTimeout { missing, .. })] => {
            assert_eq!(missing, &vec![0, 2, 3])
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(p.poll_timeout().is_none());
}

#[test]
fn a_group_of_one_completes_alone() {
    let mut p = Peer::new(Config::new(1, 0, 1, OrderKind::Total), Time::ZERO).unwrap();
    p.multicast(Time::ZERO, Bytes::from_static(b"solo"))
        .unwrap();
    p.finish(Time::ZERO).unwrap();
    let ev = events(&mut p);
    assert_eq!(ev.first(), Some(&Event::Ready));
    assert_eq!(ev.last(), Some(&Event::Completed));
    assert!(p.may_leave(Time::from_millis(1000)));
}

#[test]
fn window_full_is_backpressure() {
    let mut cfg = Config::new(7, 0, 2, OrderKind::Fifo);
    cfg.window = 2;
    let mut peers = vec![Peer::new(cfg.clone(), Time::ZERO).unwrap(), {
        let mut c = cfg;
        c.me = 1;
        Peer::new(c, Time::ZERO).unwrap()
    }];
    exchange(&mut peers, Time::ZERO);
    peers[0].multicast(Time::ZERO, Bytes::new()).unwrap();
    peers[0].multicast(Time::ZERO, Bytes::new()).unwrap();
    assert_eq!(
        peers[0].multicast(Time::ZERO, Bytes::new()),
        Err(SendError::WindowFull)
    );
    exchange(&mut peers, Time::ZERO);
    assert!(peers[0].can_send(), "acks freed the window");
}

//! Benchmarks of the protocol core alone: no sockets, no clock, no threads.
//!
//! * `total_order/N` — messages totally ordered per second by a whole group
//!   of N peers exchanging datagrams in memory (every datagram encoded,
//!   decoded, acknowledged; every message delivered at every peer);
//! * `orders/ORDER/N` — the same for `causal`, `sequencer` and `total`
//!   side by side, so their ratios come from one run;
//! * `codec` — encoding and decoding a full datagram of records;
//! * `hold_back_queue` — the `total` engine's queue alone;
//! * `link` — the reliable-link bookkeeping alone.
//!
//! Run with `cargo bench -p mpcomm-core`; see `docs/performance.md`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mpcomm_core::link::{AckInfo, RecvStream, RttEstimator, SendStream};
use mpcomm_core::order::Ordering;
use mpcomm_core::order::total::TotalOrder;
use mpcomm_core::wire::{
    Ack, Datagram, DatagramWriter, Frame, Header, MAX_DATAGRAM, Record, RecordKind, Sack,
};
use mpcomm_core::{Config, Event, OrderKind, Peer, Time};

/// A group of `n` peers past their handshake.
fn group(n: usize) -> Vec<Peer> {
    group_of(n, OrderKind::Total)
}

/// A group of `n` peers past their handshake, delivering in `order`.
fn group_of(n: usize, order: OrderKind) -> Vec<Peer> {
    let mut peers: Vec<Peer> = (0..n)
        .map(|i| Peer::new(Config::new(1, i as u16, n, order), Time::ZERO).unwrap())
        .collect();
    exchange(&mut peers, Time::ZERO);
    for p in &mut peers {
        while p.poll_event().is_some() {}
    }
    peers
}

/// Moves datagrams between peers until none is left; returns deliveries.
fn exchange(peers: &mut [Peer], now: Time) -> usize {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut delivered = 0;
    loop {
        let mut batch = Vec::new();
        for p in peers.iter_mut() {
            while let Some(t) = p.poll_transmit(now, &mut buf) {
                batch.push((t.to, Bytes::copy_from_slice(&buf[..t.len])));
            }
            while let Some(ev) = p.poll_event() {
                if matches!(ev, Event::Deliver(_)) {
                    delivered += 1;
                }
            }
        }
        if batch.is_empty() {
            return delivered;
        }
        for (to, bytes) in batch {
            peers[usize::from(to)].handle_datagram(now, bytes);
        }
    }
}

fn total_order(c: &mut Criterion) {
    let mut g = c.benchmark_group("total_order");
    const PER_PEER: usize = 256;
    for n in [3usize, 8] {
        // Elements = messages totally ordered (each delivered at all n peers).
        g.throughput(Throughput::Elements((PER_PEER * n) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            let mut peers = group(n);
            let payload = Bytes::from(vec![7u8; 64]);
            let mut t = 1u64;
            b.iter(|| {
                t += 1;
                let now = Time::from_micros(t);
                for p in peers.iter_mut() {
                    for _ in 0..PER_PEER {
                        p.multicast(now, payload.clone()).unwrap();
                    }
                }
                let delivered = exchange(&mut peers, now);
                assert_eq!(delivered, PER_PEER * n * n);
            });
        });
    }
    g.finish();
}

fn record(seq: u64) -> Record {
    Record {
        sender: 1,
        link_seq: seq,
        kind: RecordKind::Data { seq },
        stamp: seq + 1,
        ext: Bytes::new(),
        payload: Bytes::from(vec![1u8; 64]),
    }
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let header = Header {
        run_id: 9,
        from: 1,
        to: 2,
        incarnation: 1,
        view: 1,
    };
    let ack = Ack {
        cum: 5,
        sack: Sack::empty(),
        clock: 9,
        sent: 20,
        flow: 5,
        stable: 3,
        done: false,
        done_seen: false,
        want_reply: false,
        nak: false,
    };
    let records: Vec<Record> = (0..14).map(record).collect();
    g.throughput(Throughput::Elements(records.len() as u64));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    g.bench_function("encode_14_records", |b| {
        b.iter(|| {
            let mut w = DatagramWriter::new(&mut buf, header).unwrap();
            w.push_ack(&ack);
            for r in &records {
                w.push_record(black_box(r));
            }
            black_box(w.finish())
        })
    });
    let mut w = DatagramWriter::new(&mut buf, header).unwrap();
    w.push_ack(&ack);
    for r in &records {
        w.push_record(r);
    }
    let len = w.finish();
    let bytes = Bytes::copy_from_slice(&buf[..len]);
    g.bench_function("decode_14_records", |b| {
        b.iter(|| {
            let d = Datagram::parse(black_box(bytes.clone())).unwrap();
            black_box(d.frames().filter(|f| matches!(f, Frame::Record(_))).count())
        })
    });
    g.finish();
}

fn hold_back_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("hold_back_queue");
    const N: u64 = 1024;
    g.throughput(Throughput::Elements(N));
    g.bench_function("insert_and_deliver_1024", |b| {
        b.iter(|| {
            let mut q = TotalOrder::new(0, 3);
            for i in 0..N {
                let mut r = record(i);
                r.sender = (i % 3) as u16;
                r.stamp = i / 3 + 1;
                q.on_fifo(r);
            }
            q.on_bound(1, u64::MAX);
            q.on_bound(2, u64::MAX);
            let mut n = 0;
            while q.poll_deliver().is_some() {
                n += 1;
            }
            assert_eq!(n, N);
        })
    });
    g.finish();
}

fn link(c: &mut Criterion) {
    let mut g = c.benchmark_group("link");
    const N: u64 = 1024;
    g.throughput(Throughput::Elements(N));
    let rtt = RttEstimator::new(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_millis(1),
        std::time::Duration::from_secs(1),
    );
    g.bench_function("send_fill_ack_1024", |b| {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        b.iter(|| {
            let mut s = SendStream::new(0, 3, 4096, &rtt);
            for i in 0..N {
                s.push(record(i));
            }
            let now = Time::from_millis(1);
            for to in 1..3u16 {
                loop {
                    let mut w = DatagramWriter::new(
                        &mut buf,
                        Header {
                            run_id: 1,
                            from: 0,
                            to,
                            incarnation: 1,
                            view: 1,
                        },
                    )
                    .unwrap();
                    if s.fill(to, &mut w, now).new == 0 {
                        break;
                    }
                }
                s.on_ack(
                    to,
                    AckInfo {
                        cum: N,
                        sack: Sack::empty(),
                        flow: N,
                        nak: false,
                    },
                    now,
                )
                .unwrap();
            }
            assert!(s.all_acked());
        })
    });
    g.bench_function("receive_out_of_order_1024", |b| {
        b.iter(|| {
            let mut r = RecvStream::new(4096);
            let mut out = Vec::with_capacity(N as usize);
            // Every pair arrives swapped: half the records wait for a gap.
            for i in (0..N).step_by(2) {
                r.insert(record(i + 1), &mut out);
                r.insert(record(i), &mut out);
            }
            assert_eq!(out.len(), N as usize);
        })
    });
    g.finish();
}

fn orders(c: &mut Criterion) {
    let mut g = c.benchmark_group("orders");
    const PER_PEER: usize = 256;
    for order in [OrderKind::Causal, OrderKind::Sequencer, OrderKind::Total] {
        for n in [3usize, 8] {
            g.throughput(Throughput::Elements((PER_PEER * n) as u64));
            g.bench_with_input(BenchmarkId::new(order.as_str(), n), &n, |b, &n| {
                let mut peers = group_of(n, order);
                let payload = Bytes::from(vec![7u8; 64]);
                let mut t = 1u64;
                b.iter(|| {
                    t += 1;
                    let now = Time::from_micros(t);
                    for p in peers.iter_mut() {
                        for _ in 0..PER_PEER {
                            p.multicast(now, payload.clone()).unwrap();
                        }
                    }
                    let delivered = exchange(&mut peers, now);
                    assert_eq!(delivered, PER_PEER * n * n);
                    black_box(delivered)
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, total_order, orders, codec, hold_back_queue, link);
criterion_main!(benches);

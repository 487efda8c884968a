//! The runtime over real UDP sockets on loopback: several groups in one
//! process, each with its own socket and driver task.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use mpcomm::core::{MemberId, OrderKind};
use mpcomm::runtime::{Group, GroupEvent, GroupOptions, WanConfig, bind_udp};
use mpcomm_sim::NetProfile;

/// Runs `n` members that each multicast `m` messages; returns each member's
/// delivered `(sender, seq)` sequence.
async fn run_group(
    n: usize,
    m: u64,
    order: OrderKind,
    wan: Option<NetProfile>,
) -> Vec<Vec<(MemberId, u64)>> {
    let sockets: Vec<_> = (0..n)
        .map(|_| bind_udp("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut tasks = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let mut opts = GroupOptions::new(77, i as MemberId, addrs.clone(), order);
        if let Some(profile) = &wan {
            opts.wan = Some(WanConfig {
                profile: profile.clone(),
                regions: (0..n).map(|k| k * 2 / n).collect(),
                seed: 5,
            });
        }
        tasks.push(tokio::spawn(async move {
            let group = Group::join(opts, socket).await.expect("join");
            let (mut tx, mut rx, control) = group.split();
            let sender = tokio::spawn(async move {
                for k in 0..m {
                    tx.multicast(Bytes::from(format!("{i}:{k}")))
                        .await
                        .expect("multicast");
                    if k % 16 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                tx.finish().await.expect("finish");
            });
            let mut seen = Vec::new();
            while let Some(ev) = rx.next().await {
                match ev {
                    GroupEvent::Delivery(d) => {
                        assert_eq!(d.payload, Bytes::from(format!("{}:{}", d.sender, d.seq)));
                        seen.push((d.sender, d.seq));
                    }
                    GroupEvent::View { id, left, .. } => {
                        assert!(left.is_empty(), "view {id}: nobody leaves a clean run")
                    }
                    GroupEvent::Completed => break,
                    GroupEvent::Failed(e) => panic!("member {i} failed: {e}"),
                }
            }
            sender.await.expect("sender task");
            drop(rx);
            let stats = control.wait().await;
            assert_eq!(
                stats.dropped(),
                0,
                "nothing invalid on a clean loopback: {stats:?}"
            );
            seen
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("run finished in time")
                .expect("task"),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_order_over_loopback() {
    let logs = run_group(3, 2000, OrderKind::Total, None).await;
    assert_eq!(logs[0].len(), 6000);
    assert!(
        logs.iter().all(|l| *l == logs[0]),
        "every member delivered the same sequence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_order_over_emulated_lossy_wan() {
    let wan: NetProfile = "intra=1ms±1ms, inter=20ms±10ms, loss=5%, dup=2%"
        .parse()
        .unwrap();
    let logs = run_group(4, 100, OrderKind::Total, Some(wan)).await;
    assert_eq!(logs[0].len(), 400);
    assert!(logs.iter().all(|l| *l == logs[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_over_loopback_keeps_each_senders_order() {
    let logs = run_group(3, 500, OrderKind::Fifo, None).await;
    for log in &logs {
        assert_eq!(log.len(), 1500);
        for s in 0..3 {
            let seqs: Vec<u64> = log
                .iter()
                .filter(|(x, _)| *x == s)
                .map(|(_, q)| *q)
                .collect();
            assert_eq!(seqs, (0..500).collect::<Vec<_>>());
        }
    }
}

/// A member that stops dead (its driver aborted: no more datagrams, like a
/// `kill -9`) becomes a view change over real sockets: the other three
/// install a view without it, complete, and deliver the same sequence —
/// their own messages all, and the same prefix of the dead member's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_dies_becomes_a_view_change_over_loopback() {
    const N: usize = 4;
    const M: u64 = 300;
    let sockets: Vec<_> = (0..N)
        .map(|_| bind_udp("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap())
        .collect();
    let addrs: Vec<SocketAddr> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
    let mut tasks = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        let opts = GroupOptions::new(78, i as MemberId, addrs.clone(), OrderKind::Total);
        tasks.push(tokio::spawn(async move {
            let group = Group::join(opts, socket).await.expect("join");
            let (mut tx, mut rx, control) = group.split();
            let sender = tokio::spawn(async move {
                for k in 0..M {
                    if tx.multicast(Bytes::from(format!("{i}:{k}"))).await.is_err() {
                        return; // the victim's driver is gone
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                let _ = tx.finish().await;
            });
            let mut seen = Vec::new();
            let mut views = Vec::new();
            while let Some(ev) = rx.next().await {
                match ev {
                    GroupEvent::Delivery(d) => {
                        seen.push((d.sender, d.seq));
                        if i == N - 1 && seen.len() == 200 {
                            control.abort(); // dies mid-run
                            break;
                        }
                    }
                    GroupEvent::View {
                        id, members, left, ..
                    } => views.push((id, members, left)),
                    GroupEvent::Completed => break,
                    GroupEvent::Failed(e) => panic!("member {i} failed: {e}"),
                }
            }
            sender.abort();
            (seen, views)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            tokio::time::timeout(Duration::from_secs(60), t)
                .await
                .expect("the survivors finish long before the peer timeout would fail them")
                .expect("task"),
        );
    }
    let survivors = &out[..N - 1];
    for (i, (seen, views)) in survivors.iter().enumerate() {
        assert!(
            views
                .iter()
                .any(|(id, members, left)| *id >= 2 && left == &[3] && members == &[0, 1, 2]),
            "member {i} installed a view without member 3: {views:?}"
        );
        for s in 0..3u16 {
            assert_eq!(
                seen.iter().filter(|(x, _)| *x == s).count() as u64,
                M,
                "member {i} delivered every message of survivor {s}"
            );
        }
        assert_eq!(seen, &survivors[0].0, "the survivors agree on one sequence");
    }
    let of_victim = survivors[0].0.iter().filter(|(x, _)| *x == 3).count();
    assert!(
        of_victim > 0 && (of_victim as u64) < M,
        "a prefix of the dead member's messages: {of_victim}"
    );
}

//! Ordered multicast as a library: three members of a group in one program,
//! each on its own UDP socket, chatting over loopback. Every member prints
//! the messages in the same order — that is what `OrderKind::Total` promises.
//!
//! Run it with:
//!
//! ```sh
//! cargo run --release --example ordered_chat
//! ```
//!
//! In a real deployment each member is a separate process on its own host;
//! all it needs is the list of members' addresses and its own id.

use std::net::SocketAddr;

use bytes::Bytes;
use mpcomm::core::OrderKind;
use mpcomm::runtime::{Group, GroupEvent, GroupOptions, bind_udp};

const MEMBERS: usize = 3;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // 1. Every member binds a socket; together the addresses form the group.
    let mut sockets = Vec::new();
    for _ in 0..MEMBERS {
        sockets.push(bind_udp("127.0.0.1:0".parse()?)?);
    }
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<_, _>>()?;

    let mut members = Vec::new();
    for (id, socket) in sockets.into_iter().enumerate() {
        let addrs = addrs.clone();
        members.push(tokio::spawn(async move {
            // 2. Join: returns once every member has answered the handshake.
            let opts = GroupOptions::new(2026, id as u16, addrs, OrderKind::Total);
            let group = Group::join(opts, socket).await?;
            // 3. Send and receive on separate paths.
            let (mut tx, mut rx, control) = group.split();
            tokio::spawn(async move {
                for line in ["hello", "how are you?", "bye"] {
                    tx.multicast(Bytes::from(format!("member {id}: {line}")))
                        .await?;
                }
                tx.finish().await // no more messages from us
            });
            let mut transcript = Vec::new();
            while let Some(event) = rx.next().await {
                match event {
                    GroupEvent::Delivery(d) => {
                        transcript.push(String::from_utf8_lossy(&d.payload).into_owned())
                    }
                    GroupEvent::View {
                        id: view, members, ..
                    } => println!("[member {id}] view {view}: {members:?}"),
                    GroupEvent::Completed => break,
                    GroupEvent::Failed(e) => return Err(anyhow::Error::new(e)),
                }
            }
            drop(rx);
            control.wait().await; // linger until the others are done too
            anyhow::Ok((id, transcript))
        }));
    }

    let mut transcripts = Vec::new();
    for m in members {
        transcripts.push(m.await??);
    }
    for (id, t) in &transcripts {
        println!("member {id} delivered:");
        for line in t {
            println!("    {line}");
        }
    }
    let same = transcripts.windows(2).all(|w| w[0].1 == w[1].1);
    println!("\nall members delivered the same sequence: {same}");
    anyhow::ensure!(same, "total order violated");
    Ok(())
}

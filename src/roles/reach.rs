//! Reaching the group manager: wait for it, within a deadline, and say what
//! to do when it does not come.
//!
//! Processes are started in any order. A peer or a server started a moment
//! before the group manager (a script starting everything at once, a
//! group manager restarted after a crash) should not give up on the first
//! "connection refused": it retries, a few times a second, until its
//! timeout. If the group manager is still not there, the error says where
//! it was looked for and how to start one — once, without repeating the
//! operating system's message along a chain of causes.
//!
//! Only *connecting* is retried. An answer that refuses the request (an
//! invalid name, say) is the group manager's final word and is not asked
//! again.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long one connection attempt may take.
const ATTEMPT: Duration = Duration::from_secs(2);
/// The pause between two attempts.
const PAUSE: Duration = Duration::from_millis(200);

/// The hint that ends every "cannot reach the group manager" error.
pub fn hint(group_manager: &str) -> String {
    format!(
        "is the group manager running at {group_manager}? Start it with \
         `mpcomm group-manager --listen {group_manager}`, or give its address with --group-manager"
    )
}

/// Waits until a TCP connection to the group manager succeeds, trying
/// until `timeout` has passed. After the first failed attempt it says once,
/// on stderr, that it is waiting (so that the user knows why nothing
/// happens yet); the reason comes with the final error, if it comes to
/// that.
pub async fn wait_for_group_manager(group_manager: &str, timeout: Duration) -> anyhow::Result<()> {
    wait_and_tell(group_manager, timeout, |_| {
        eprintln!(
            "the group manager at {group_manager} does not answer yet; waiting up to {timeout:?} for it"
        );
    })
    .await
}

/// [`wait_for_group_manager`], with `waiting` called after the first
/// failed attempt instead of the note on stderr.
async fn wait_and_tell(
    group_manager: &str,
    timeout: Duration,
    waiting: impl FnOnce(&io::Error),
) -> anyhow::Result<()> {
    let until = Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        let error = match tokio::time::timeout(ATTEMPT, TcpStream::connect(group_manager)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "no answer to a connection attempt"),
        };
        if let Some(tell) = waiting.take() {
            tell(&error);
        }
        if Instant::now() + PAUSE >= until {
            anyhow::bail!(
                "cannot reach the group manager at {group_manager} (tried for {timeout:?}: {error}); {}",
                hint(group_manager)
            );
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn gives_up_with_a_hint_naming_the_address_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let gm = format!("127.0.0.1:{port}");
        let mut told = 0;
        let e = wait_and_tell(&gm, Duration::from_millis(300), |_| told += 1)
            .await
            .unwrap_err();
        let text = format!("{e:#}");
        assert_eq!(told, 1);
        assert!(text.contains(&format!("is the group manager running at {gm}?")));
        assert!(text.contains("mpcomm group-manager"));
        assert_eq!(text.matches("refused").count(), 1, "{text}");
    }

    #[tokio::test]
    async fn waits_for_a_group_manager_that_comes_late() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let gm = format!("127.0.0.1:{port}");
        let late = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            let _ = l.accept().await;
        });
        wait_and_tell(&gm, Duration::from_secs(10), |_| {})
            .await
            .unwrap();
        late.await.unwrap();
    }
}

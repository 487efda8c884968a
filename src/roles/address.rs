//! Which address the others must use to reach a process.
//!
//! A process binds one address and may have to be reached at another: bound
//! to `0.0.0.0`, it has no single address of its own; behind NAT or in a
//! cloud, its public address is not on any of its interfaces. Peers and the
//! comparison server answer the question the same way, here:
//!
//! 1. `--advertise HOST[:PORT]` wins: HOST is an IP or a name resolved once,
//!    through the system resolver (no internet service is asked); PORT, when
//!    given, is the port the outside world maps to ours.
//! 2. Otherwise a process bound to a specific IP advertises that IP.
//! 3. Otherwise it advertises the local end of a TCP connection to the group
//!    manager: the address this host uses on the way to the group, which is
//!    right on a LAN or inside one cloud network.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpStream;

/// How long the connection to the group manager (rule 3) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Splits `host`, `host:port`, `[v6]:port` or a bare IPv6 address into the
/// host and the port, if one is given.
pub(crate) fn parse_host_port(s: &str) -> (String, Option<u16>) {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.ip().to_string(), Some(addr.port()));
    }
    // A single colon separates a port; more than one is a bare IPv6 address.
    if let Some((host, port)) = s.rsplit_once(':')
        && !host.contains(':')
        && let Ok(port) = port.parse()
    {
        return (host.to_string(), Some(port));
    }
    (s.trim_matches(|c| c == '[' || c == ']').to_string(), None)
}

/// The address others must use for a socket bound to `bound`: the rules of
/// the module documentation. `group_manager` is only contacted for rule 3.
pub(crate) async fn advertised_addr(
    advertise: Option<&str>,
    bound: SocketAddr,
    group_manager: &str,
) -> anyhow::Result<SocketAddr> {
    if let Some(adv) = advertise {
        let (host, port) = parse_host_port(adv);
        let ip = match host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => tokio::net::lookup_host((host.as_str(), 0))
                .await
                .with_context(|| format!("cannot resolve --advertise host {host:?}"))?
                .next()
                .with_context(|| format!("--advertise host {host:?} has no address"))?
                .ip(),
        };
        return Ok(SocketAddr::new(ip, port.unwrap_or(bound.port())));
    }
    if !bound.ip().is_unspecified() {
        return Ok(bound);
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(group_manager))
        .await
        .map_err(|_| {
            anyhow::anyhow!("timed out connecting to the group manager at {group_manager}")
        })?
        .with_context(|| format!("cannot reach the group manager at {group_manager}"))?;
    Ok(SocketAddr::new(stream.local_addr()?.ip(), bound.port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        assert_eq!(
            parse_host_port("10.0.0.1:7000"),
            ("10.0.0.1".into(), Some(7000))
        );
        assert_eq!(parse_host_port("10.0.0.1"), ("10.0.0.1".into(), None));
        assert_eq!(
            parse_host_port("example.org:9"),
            ("example.org".into(), Some(9))
        );
        assert_eq!(parse_host_port("[::1]:5"), ("::1".into(), Some(5)));
        assert_eq!(parse_host_port("[::1]"), ("::1".into(), None));
        assert_eq!(parse_host_port("::1"), ("::1".into(), None));
    }

    #[tokio::test]
    async fn advertise_wins_and_keeps_the_bound_port_unless_mapped() {
        let bound: SocketAddr = "0.0.0.0:5678".parse().unwrap();
        // The group manager is never contacted when --advertise is given.
        let gm = "192.0.2.1:1";
        let a = advertised_addr(Some("203.0.113.7"), bound, gm)
            .await
            .unwrap();
        assert_eq!(a, "203.0.113.7:5678".parse().unwrap());
        let a = advertised_addr(Some("203.0.113.7:17000"), bound, gm)
            .await
            .unwrap();
        assert_eq!(a, "203.0.113.7:17000".parse().unwrap());
        let a = advertised_addr(Some("2001:db8::7"), bound, gm)
            .await
            .unwrap();
        assert_eq!(a, "[2001:db8::7]:5678".parse().unwrap());
        let a = advertised_addr(Some("[2001:db8::7]:9"), bound, gm)
            .await
            .unwrap();
        assert_eq!(a, "[2001:db8::7]:9".parse().unwrap());
    }

    #[tokio::test]
    async fn a_specific_bound_ip_is_advertised_as_is() {
        let bound: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let a = advertised_addr(None, bound, "192.0.2.1:1").await.unwrap();
        assert_eq!(a, bound);
    }

    #[tokio::test]
    async fn unspecified_bind_uses_the_route_to_the_group_manager() {
        let gm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gm_addr = gm.local_addr().unwrap().to_string();
        let bound: SocketAddr = "0.0.0.0:7000".parse().unwrap();
        let a = advertised_addr(None, bound, &gm_addr).await.unwrap();
        assert_eq!(a, "127.0.0.1:7000".parse().unwrap());
    }
}

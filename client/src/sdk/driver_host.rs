//! Which address a client-mode driver binds and advertises, so that executors on the cluster's
//! nodes can dial it: `SPINDLE_DRIVER_HOST` when set (Spark's `spark.driver.host`); loopback
//! when the RM is on loopback (the whole cluster is on this machine); otherwise this machine's
//! address on the route to the RM, which is the one the cluster can reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

/// The variable that names the driver's host in client mode.
pub const DRIVER_HOST_ENV: &str = "SPINDLE_DRIVER_HOST";

#[derive(Debug, thiserror::Error)]
pub enum DriverHostError {
    #[error("cannot resolve the resource manager's address {rm}: {reason}")]
    Resolve { rm: String, reason: String },
    #[error(
        "cannot find this machine's address on the route to the resource manager at {rm} \
         ({addr}): {source}; set {DRIVER_HOST_ENV} to an address the nodes can reach"
    )]
    NoRoute {
        rm: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The driver's host for an RM at `rm` (`HOST:PORT`); `override_host` is the value of
/// `SPINDLE_DRIVER_HOST`.
pub async fn choose(rm: &str, override_host: Option<&str>) -> Result<String, DriverHostError> {
    if let Some(host) = override_host.map(str::trim).filter(|h| !h.is_empty()) {
        return Ok(host.to_string());
    }
    let addr = tokio::net::lookup_host(rm)
        .await
        .map_err(|e| DriverHostError::Resolve {
            rm: rm.to_string(),
            reason: e.to_string(),
        })?
        .next()
        .ok_or_else(|| DriverHostError::Resolve {
            rm: rm.to_string(),
            reason: "no addresses".to_string(),
        })?;
    route_source(addr)
        .map(|ip| ip.to_string())
        .map_err(|source| DriverHostError::NoRoute {
            rm: rm.to_string(),
            addr,
            source,
        })
}

/// Loopback for a loopback RM; else the source address the kernel picks for packets to
/// `addr`. Connecting a UDP socket sends nothing: it only chooses the route.
pub fn route_source(addr: SocketAddr) -> std::io::Result<IpAddr> {
    if addr.ip().is_loopback() {
        return Ok(addr.ip());
    }
    let any: IpAddr = match addr {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind((any, 0))?;
    socket.connect(addr)?;
    Ok(socket.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_override_wins() {
        let host = choose("rm.invalid:8032", Some(" 10.1.2.3 ")).await.unwrap();
        assert_eq!(host, "10.1.2.3");
    }

    #[tokio::test]
    async fn a_loopback_rm_means_a_loopback_driver() {
        assert_eq!(choose("127.0.0.1:8032", None).await.unwrap(), "127.0.0.1");
        assert_eq!(choose("[::1]:8032", Some("")).await.unwrap(), "::1");
        let localhost = choose("localhost:8032", None).await.unwrap();
        assert!(
            localhost.parse::<IpAddr>().unwrap().is_loopback(),
            "{localhost}"
        );
    }

    #[tokio::test]
    async fn an_unresolvable_rm_is_named() {
        let err = choose("no-such-host.invalid:8032", None).await.unwrap_err();
        assert!(
            err.to_string().contains("no-such-host.invalid:8032"),
            "{err}"
        );
    }

    #[test]
    fn a_remote_rm_gets_a_non_loopback_source() {
        // A documentation address: packets to it would leave through a real interface, so
        // the route starts at a non-loopback address of this machine (if it has a route).
        let Ok(ip) = route_source("192.0.2.1:9".parse().unwrap()) else {
            eprintln!("no route to a documentation address here; nothing to check");
            return;
        };
        assert!(!ip.is_loopback(), "{ip}");
        assert!(!ip.is_unspecified(), "{ip}");
    }
}

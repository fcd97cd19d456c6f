//! Turns an address as users and the NM write it (`host:port`, `http://host:port`,
//! `spindle://host:port`) into a lazily connecting gRPC endpoint, so both clients of this crate
//! accept the same forms and report a bad one the same way.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

/// An address that cannot be dialled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "address {address:?} is not a gRPC endpoint ({reason}): expected host:port or http://host:port"
)]
pub struct AddressError {
    pub address: String,
    pub reason: String,
}

/// How long dialling a peer may take before the call fails; generous, as a hang guard only.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Keeps long-polled connections alive through idle periods and notices dead peers.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// The `http://host:port` URI for `address`.
pub fn uri(address: &str) -> Result<String, AddressError> {
    let bad = |reason: &str| AddressError {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = address.trim();
    let authority = match trimmed.split_once("://") {
        Some(("http" | "spindle" | "grpc", rest)) => rest,
        Some((scheme, _)) => return Err(bad(&format!("unsupported scheme {scheme:?}"))),
        None => trimmed,
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.is_empty() {
        return Err(bad("empty"));
    }
    if authority.contains('/') {
        return Err(bad("it has a path"));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(bad("no port"));
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if port.parse::<u16>().is_err() {
        return Err(bad(&format!(
            "port {port:?} is not a number from 0 to 65535"
        )));
    }
    Ok(format!("http://{authority}"))
}

/// A channel to `address` that connects on first use (and reconnects after a failure), so
/// creating one never blocks. Must be called inside a Tokio runtime.
pub fn lazy_channel(address: &str) -> Result<Channel, AddressError> {
    let uri = uri(address)?;
    let endpoint = Endpoint::from_shared(uri).map_err(|e| AddressError {
        address: address.to_string(),
        reason: e.to_string(),
    })?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEP_ALIVE)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_forms_users_write() {
        assert_eq!(uri("rm:8032").unwrap(), "http://rm:8032");
        assert_eq!(uri("http://10.0.0.1:8032").unwrap(), "http://10.0.0.1:8032");
        assert_eq!(uri("spindle://rm:8032/").unwrap(), "http://rm:8032");
        assert_eq!(uri("[::1]:8032").unwrap(), "http://[::1]:8032");
    }

    #[test]
    fn names_what_is_wrong() {
        for (bad, why) in [
            ("rm", "no port"),
            (":8032", "no host"),
            ("rm:port", "port \"port\""),
            ("ftp://rm:1", "unsupported scheme \"ftp\""),
            ("http://rm:1/x", "it has a path"),
            ("", "empty"),
        ] {
            let err = uri(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("expected host:port"), "{err}");
        }
    }
}

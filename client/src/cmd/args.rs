//! Parsers for the values people type after flags — sizes, core counts, durations, `K=V`
//! pairs, addresses — each refusing bad input with a message that quotes it and says what was
//! expected. They never panic, whatever they are given.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use spindle_containers::units;

/// `512m`, `2g`, `1024` (MB): at least 1 MB.
pub fn memory_mb(s: &str) -> Result<u64, String> {
    units::parse_memory_mb(s).map_err(|e| e.to_string())
}

/// A whole number of vcores, at least 1.
pub fn vcores(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid vcores {s:?}: expected a whole number of at least 1"
        )),
    }
}

/// Attempts per application: a whole number of at least 1.
pub fn max_attempts(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid max attempts {s:?}: expected a whole number of at least 1"
        )),
    }
}

/// `250ms`, `2s`, `10m`, `1h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    units::parse_duration(s).map_err(|e| e.to_string())
}

/// `NAME=VALUE` for a container's environment; the value may hold '=' and be empty, the name
/// must be a shell variable name (letters, digits, '_', not starting with a digit).
pub fn env_pair(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid --env {s:?}: expected NAME=VALUE"))?;
    let mut bytes = name.bytes();
    let valid = matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return Err(format!(
            "invalid --env name {name:?}: use letters, digits and '_', not starting with a digit"
        ));
    }
    if value.contains('\0') {
        return Err(format!(
            "invalid --env value for {name}: it contains a NUL byte"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// An address to bind: `IP:PORT`, or `HOST:PORT` resolved now (e.g. `localhost:0`).
pub fn bind_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = || format!("invalid address {s:?}: expected HOST:PORT, e.g. 0.0.0.0:8032");
    if !s.contains(':') {
        return Err(bad());
    }
    s.to_socket_addrs()
        .map_err(|e| format!("{}: {e}", bad()))?
        .next()
        .ok_or_else(bad)
}

/// An address to reach: `HOST:PORT`, checked but not resolved (the peer may not exist yet).
pub fn host_port(s: &str) -> Result<String, String> {
    crate::address::parse_host_port("", s)
        .map_err(|_| format!("invalid address {s:?}: expected HOST:PORT, e.g. 127.0.0.1:8032"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_and_counts() {
        assert_eq!(memory_mb("512m"), Ok(512));
        assert_eq!(memory_mb("2g"), Ok(2048));
        for bad in ["0", "-5", "-512m", "lots"] {
            let err = memory_mb(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(vcores("2"), Ok(2));
        for bad in ["0", "-1", "1.5", ""] {
            assert!(vcores(bad).unwrap_err().contains("at least 1"));
        }
        assert!(max_attempts("0").is_err());
        assert_eq!(duration("2s"), Ok(Duration::from_secs(2)));
        assert!(duration("2").is_err());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(env_pair("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(env_pair("_X="), Ok(("_X".into(), String::new())));
        assert!(env_pair("novalue").unwrap_err().contains("NAME=VALUE"));
        assert!(env_pair("1A=x").unwrap_err().contains("\"1A\""));
        assert!(env_pair("A-B=x").is_err());
        assert!(env_pair("=x").is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(bind_addr("127.0.0.1:0").unwrap().port(), 0);
        assert!(bind_addr("localhost:0").unwrap().ip().is_loopback());
        assert!(bind_addr("nonsense").is_err());
        assert!(bind_addr("127.0.0.1:99999").is_err());
        assert_eq!(host_port("rm:8032").unwrap(), "rm:8032");
        assert!(host_port("rm").is_err());
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = memory_mb(&s);
            let _ = vcores(&s);
            let _ = max_attempts(&s);
            let _ = duration(&s);
            let _ = env_pair(&s);
            let _ = host_port(&s);
        }

        #[test]
        fn env_pairs_keep_the_value_whole(name in "[A-Za-z_][A-Za-z0-9_]{0,12}", value in "[^\u{0}]*") {
            let parsed = env_pair(&format!("{name}={value}")).unwrap();
            prop_assert_eq!(parsed, (name, value));
        }

        #[test]
        fn memory_in_units(n in 1u64..1_000_000) {
            prop_assert_eq!(memory_mb(&format!("{n}m")), Ok(n));
            prop_assert_eq!(memory_mb(&format!("{n}g")), Ok(n * 1024));
        }
    }
}

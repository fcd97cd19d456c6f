//! Where the cluster is: `HOST:PORT` addresses as users type them, and Spark-style master URLs
//! (`spindle://HOST:PORT`, `local-cluster[NODES,VCORES,MEMORY_MB]`, `local[N]`) for
//! `spindle submit` and an SDK program's launcher.

use std::fmt;
use std::str::FromStr;

use spindle_app_master::sdk::LocalMaster;

use crate::error::ClientError;

/// Checks a `HOST:PORT` (or `[v6]:PORT`) address; `what` names it in the error.
pub fn parse_host_port(what: &'static str, value: &str) -> Result<String, ClientError> {
    let bad = || ClientError::BadAddress {
        what,
        value: value.to_string(),
    };
    let (host, port) = value.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
    match port.parse::<u16>() {
        Ok(port) if host_ok && port > 0 => Ok(value.to_string()),
        _ => Err(bad()),
    }
}

/// What `--master` names: a running RM, a cluster to start in this process, or no cluster at
/// all (the driver and its executor threads in one process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Master {
    /// `local`, `local[N]`, `local[*]`, `local[N,F]`: kept as written, with what it means.
    Local { url: String, parsed: LocalMaster },
    /// `spindle://HOST:PORT`: the RM at that gRPC address.
    Spindle(String),
    /// `local-cluster[N,C,M]`: an embedded RM and N NMs of C vcores and M MB each.
    LocalCluster {
        nodes: usize,
        vcores: u32,
        memory_mb: u64,
    },
}

impl FromStr for Master {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        let bad = || ClientError::BadMaster(s.to_string());
        if s == "local" || s.starts_with("local[") {
            return s
                .parse::<LocalMaster>()
                .map(|parsed| Master::Local {
                    url: s.to_string(),
                    parsed,
                })
                .map_err(|_| bad());
        }
        if let Some(addr) = s.strip_prefix("spindle://") {
            let addr = addr.strip_suffix('/').unwrap_or(addr);
            return parse_host_port("resource manager", addr)
                .map(Master::Spindle)
                .map_err(|_| bad());
        }
        let inner = s
            .strip_prefix("local-cluster[")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or_else(bad)?;
        match inner
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
            .as_slice()
        {
            [nodes, vcores, memory_mb] => {
                let nodes: usize = nodes.parse().map_err(|_| bad())?;
                let vcores: u32 = vcores.parse().map_err(|_| bad())?;
                let memory_mb: u64 = memory_mb.parse().map_err(|_| bad())?;
                if nodes == 0 || vcores == 0 || memory_mb == 0 {
                    return Err(bad());
                }
                Ok(Master::LocalCluster {
                    nodes,
                    vcores,
                    memory_mb,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Master {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Master::Local { url, .. } => f.write_str(url),
            Master::Spindle(addr) => write!(f, "spindle://{addr}"),
            Master::LocalCluster {
                nodes,
                vcores,
                memory_mb,
            } => write!(f, "local-cluster[{nodes},{vcores},{memory_mb}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_port_forms() {
        for ok in ["127.0.0.1:8032", "rm.example.com:1", "[::1]:8032"] {
            assert_eq!(parse_host_port("rm", ok).unwrap(), ok);
        }
        for bad in [
            "",
            "host",
            ":80",
            "host:",
            "host:0",
            "host:99999",
            "a b:80",
            "http://h:1",
        ] {
            let err = parse_host_port("resource manager", bad).unwrap_err();
            assert!(err.to_string().contains("HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn master_urls() {
        assert_eq!(
            "spindle://rm:8032".parse::<Master>().unwrap(),
            Master::Spindle("rm:8032".into())
        );
        assert_eq!(
            "local-cluster[2,2,2048]".parse::<Master>().unwrap(),
            Master::LocalCluster {
                nodes: 2,
                vcores: 2,
                memory_mb: 2048
            }
        );
        let local = "local[3,2]".parse::<Master>().unwrap();
        assert_eq!(local.to_string(), "local[3,2]");
        assert!(matches!(
            local,
            Master::Local {
                parsed: LocalMaster {
                    threads: 3,
                    max_failures: 2
                },
                ..
            }
        ));
        assert!(matches!(
            "local".parse::<Master>(),
            Ok(Master::Local { .. })
        ));
        for bad in [
            "local[0]",
            "local[",
            "rm:8032",
            "spindle://rm",
            "yarn",
            "local-cluster[2,2]",
            "local-cluster[0,1,1]",
            "local-cluster[1,1,-5]",
        ] {
            let err = bad.parse::<Master>().unwrap_err();
            assert!(err.to_string().contains("spindle://HOST:PORT"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in ".*") {
            let _ = parse_host_port("rm", &s);
            let _ = s.parse::<Master>();
        }

        #[test]
        fn master_round_trips(nodes in 1usize..100, vcores in 1u32..64, memory_mb in 1u64..1_000_000) {
            let master = Master::LocalCluster { nodes, vcores, memory_mb };
            prop_assert_eq!(master.to_string().parse::<Master>().unwrap(), master);
        }
    }
}

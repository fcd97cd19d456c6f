//! Durations (`250ms`, `2s`, `10m`, `1h`) and memory sizes (`512m`, `2g`, `1024` = MB) as people
//! write them on command lines and in `spindle.yaml`, with serde helpers for config structs.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "invalid duration {0:?}: expected a number with a unit ms, s, m or h (e.g. 500ms, 2s, 10m)"
    )]
    Duration(String),
    #[error(
        "invalid memory size {0:?}: expected a whole number of MB, or with a unit k, m, g or t (e.g. 512m, 2g)"
    )]
    Size(String),
}

fn split_number(s: &str) -> Option<(u64, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    Some((s[..digits].parse().ok()?, s[digits..].trim()))
}

pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let err = || UnitError::Duration(s.to_string());
    let (n, unit) = split_number(s.trim()).ok_or_else(err)?;
    let ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return Err(err()),
    };
    n.checked_mul(ms).map(Duration::from_millis).ok_or_else(err)
}

/// Renders a duration the way `parse_duration` reads it, in the largest exact unit.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    match ms {
        0 => "0s".to_string(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

/// A memory size in MB; a bare number is MB, as in `spark-submit --executor-memory`.
pub fn parse_memory_mb(s: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Size(s.to_string());
    let (n, unit) = split_number(s.trim()).ok_or_else(err)?;
    let mb = match unit.to_ascii_lowercase().as_str() {
        "" | "m" | "mb" => Some(n),
        "k" | "kb" => Some(n / 1024),
        "g" | "gb" => n.checked_mul(1024),
        "t" | "tb" => n.checked_mul(1024 * 1024),
        _ => None,
    };
    match mb {
        Some(mb) if mb > 0 => Ok(mb),
        _ => Err(err()),
    }
}

/// `#[serde(with = "spindle_containers::units::serde_duration")]` for config fields.
pub mod serde_duration {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_people_write() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_memory_mb("512m"), Ok(512));
        assert_eq!(parse_memory_mb("2g"), Ok(2048));
        assert_eq!(parse_memory_mb("1024"), Ok(1024));
        for bad in ["", "s", "2", "-1s", "1.5s", "2 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for bad in ["", "0", "-5m", "1.5g", "12q", "99999999999999999999g"] {
            assert!(parse_memory_mb(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(ms in 0u64..10_000_000_000) {
            let d = Duration::from_millis(ms);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_duration(&s);
            let _ = parse_memory_mb(&s);
        }
    }
}

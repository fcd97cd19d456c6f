//! The small pieces every page is written with: escaping (everything that came from a user, an
//! AM or an NM goes through `Esc`, in text and in attributes alike), links that are only ever
//! http(s), times in UTC, durations, sizes, state badges and usage bars.

use std::fmt;

/// Writes its text with HTML's special characters escaped: safe in element text and in quoted
/// attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A link to `url` showing `text`, if `url` is http(s); otherwise the text alone, so that an
/// AM's tracking URL can never be `javascript:`.
pub fn link(url: &str, text: &str) -> String {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        format!("<a href=\"{}\">{}</a>", Esc(url.trim_start()), Esc(text))
    } else {
        Esc(text).to_string()
    }
}

/// A link inside this UI (a path this server built, with escaped parts).
pub fn local_link(path: &str, text: &str) -> String {
    format!("<a href=\"{}\">{}</a>", Esc(path), Esc(text))
}

/// A time in ms since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC); 0 is "—".
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return "—".into();
    }
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (Howard
/// Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `1h 02m`, `3m 07s`, `12s`, `340 ms`.
pub fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms} ms"),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

/// Memory in MB as people read it: `512 MB`, `2 GB`, `1.5 GB`.
pub fn memory(mb: u64) -> String {
    if mb >= 1024 && mb.is_multiple_of(1024) {
        format!("{} GB", mb / 1024)
    } else if mb >= 1024 {
        format!("{:.1} GB", mb as f64 / 1024.0)
    } else {
        format!("{mb} MB")
    }
}

/// A state as a coloured badge; the class is derived from a fixed list, never from the text.
pub fn badge(state: &str) -> String {
    let class = match state {
        "RUNNING" | "SUCCEEDED" => "ok",
        "FINISHED" => "done",
        "FAILED" | "LOST" | "UNHEALTHY" => "bad",
        "KILLED" => "killed",
        "SUBMITTED" | "ACCEPTED" | "NEW" | "ALLOCATED" | "LAUNCHED" | "UNDEFINED" => "wait",
        _ => "plain",
    };
    format!("<span class=\"badge {class}\">{}</span>", Esc(state))
}

/// A bar showing `used` of `total`, with the numbers beside it.
pub fn usage_bar(used: u64, total: u64, label: &str) -> String {
    let percent = (used * 100).checked_div(total).unwrap_or(0).min(100);
    format!(
        "<div class=\"usage\"><div class=\"bar\"><div style=\"width:{percent}%\"></div></div>\
         <span>{} ({percent}%)</span></div>",
        Esc(label)
    )
}

/// An exit status with YARN's name for the negative ones: `0`, `1`, `-106 KILLED_BY_RESOURCEMANAGER`.
pub fn exit_status(status: i32) -> String {
    match spindle_containers::exit_status::name(status) {
        Some(name) => format!("{status} {name}"),
        None => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_special_is_escaped() {
        assert_eq!(
            Esc("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(Esc("plain ünïcode").to_string(), "plain ünïcode");
    }

    #[test]
    fn only_http_links_are_links() {
        assert_eq!(
            link("http://h:1/ui?a=1&b=\"2\"", "ui"),
            "<a href=\"http://h:1/ui?a=1&amp;b=&quot;2&quot;\">ui</a>"
        );
        assert_eq!(link("javascript:alert(1)", "<x>"), "&lt;x&gt;");
        assert_eq!(link(" JavaScript:alert(1)", "x"), "x");
        assert!(link("HTTPS://h/", "x").starts_with("<a href"));
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time(0), "—");
        assert_eq!(time(1_000), "1970-01-01 00:00:01");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(time(1_709_251_199_000), "2024-02-29 23:59:59");
        assert_eq!(time(4_102_444_800_000), "2100-01-01 00:00:00");
    }

    #[test]
    fn durations_sizes_and_statuses_read_naturally() {
        assert_eq!(duration(340), "340 ms");
        assert_eq!(duration(12_500), "12s");
        assert_eq!(duration(187_000), "3m 07s");
        assert_eq!(duration(3_720_000), "1h 02m");
        assert_eq!(memory(512), "512 MB");
        assert_eq!(memory(2048), "2 GB");
        assert_eq!(memory(1536), "1.5 GB");
        assert_eq!(exit_status(-106), "-106 KILLED_BY_RESOURCEMANAGER");
        assert_eq!(exit_status(3), "3");
        assert!(badge("<b>").contains("&lt;b&gt;"));
        assert!(usage_bar(1, 4, "1 of 4").contains("width:25%"));
    }
}

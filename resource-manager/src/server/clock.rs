//! The server's clock: milliseconds since the epoch, read once at start and advanced by a
//! monotonic clock, so that time handed to the core never runs backwards when the wall clock is
//! adjusted. The start time is also the RM's cluster timestamp.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    start_ms: u64,
}

impl Clock {
    pub fn start() -> Self {
        let start_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Clock {
            start: Instant::now(),
            start_ms,
        }
    }

    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    pub fn now_ms(&self) -> u64 {
        self.start_ms + self.start.elapsed().as_millis() as u64
    }
}

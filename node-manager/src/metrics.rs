//! What the node counts about itself since it started (YARN's NodeManagerMetrics): launches and
//! how long they took, completions by exit-status class, the containers' sampled memory, and log
//! aggregation. The launcher, the monitor and the log aggregator record here; `GET /metrics`
//! reads it (see `exposition`), together with what the container table and the localizer know.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use spindle_containers::exit_status;

/// Upper bounds of the launch-latency buckets, in seconds: localizing a large program from the
/// RM can take seconds, starting a cached one milliseconds.
pub const LAUNCH_BUCKETS_SECONDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A Prometheus histogram: how many observations fell at or below each bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); one more than `bounds` for what is above the last.
    counts: Vec<u64>,
    sum_seconds: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum_seconds: 0.0,
        }
    }

    pub fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
    }

    /// (bound, observations at or below it), ascending; `+Inf` is `count`.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(&self.counts)
            .map(|(bound, n)| {
                total += n;
                (*bound, total)
            })
            .collect()
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }
}

/// How one application's log aggregation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Uploaded { files: u64, bytes: u64 },
    Failed,
}

#[derive(Debug)]
pub struct NodeMetrics {
    launched: AtomicU64,
    launch_failures: AtomicU64,
    launch_latency: Mutex<Histogram>,
    completed: Mutex<BTreeMap<&'static str, u64>>,
    memory_used_bytes: AtomicU64,
    log_followers: AtomicU64,
    aggregations_uploaded: AtomicU64,
    aggregations_failed: AtomicU64,
    aggregated_files: AtomicU64,
    aggregated_bytes: AtomicU64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            launched: AtomicU64::new(0),
            launch_failures: AtomicU64::new(0),
            launch_latency: Mutex::new(Histogram::new(LAUNCH_BUCKETS_SECONDS)),
            completed: Mutex::new(exit_status::CLASSES.iter().map(|c| (*c, 0)).collect()),
            memory_used_bytes: AtomicU64::new(0),
            log_followers: AtomicU64::new(0),
            aggregations_uploaded: AtomicU64::new(0),
            aggregations_failed: AtomicU64::new(0),
            aggregated_files: AtomicU64::new(0),
            aggregated_bytes: AtomicU64::new(0),
        }
    }
}

/// One consistent-enough reading of the counters, for rendering.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub launched: u64,
    pub launch_failures: u64,
    pub launch_latency: Histogram,
    /// By exit-status class, every class present.
    pub completed: BTreeMap<&'static str, u64>,
    pub memory_used_bytes: u64,
    pub aggregations_uploaded: u64,
    pub aggregations_failed: u64,
    pub aggregated_files: u64,
    pub aggregated_bytes: u64,
}

impl NodeMetrics {
    /// A container's process was spawned `latency` after its start request arrived.
    pub fn launched(&self, latency: Duration) {
        self.launched.fetch_add(1, Ordering::Relaxed);
        self.launch_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(latency);
    }

    /// A start request ended without a process (refused, or its localization or spawn failed).
    pub fn launch_failed(&self) {
        self.launch_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn completed(&self, exit_status: i32) {
        *self
            .completed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(exit_status::class(exit_status))
            .or_default() += 1;
    }

    /// The running containers' resident memory, summed, at the monitor's last sample.
    pub fn set_memory_used(&self, bytes: u64) {
        self.memory_used_bytes.store(bytes, Ordering::Relaxed);
    }

    pub fn follower_attached(&self) {
        self.log_followers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn follower_detached(&self) {
        self.log_followers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Log streams open with `follow` now.
    pub fn log_followers(&self) -> u64 {
        self.log_followers.load(Ordering::Relaxed)
    }

    pub fn aggregated(&self, outcome: Aggregation) {
        match outcome {
            Aggregation::Uploaded { files, bytes } => {
                self.aggregations_uploaded.fetch_add(1, Ordering::Relaxed);
                self.aggregated_files.fetch_add(files, Ordering::Relaxed);
                self.aggregated_bytes.fetch_add(bytes, Ordering::Relaxed);
            }
            Aggregation::Failed => {
                self.aggregations_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            launched: self.launched.load(Ordering::Relaxed),
            launch_failures: self.launch_failures.load(Ordering::Relaxed),
            launch_latency: self
                .launch_latency
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            completed: self
                .completed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            memory_used_bytes: self.memory_used_bytes.load(Ordering::Relaxed),
            aggregations_uploaded: self.aggregations_uploaded.load(Ordering::Relaxed),
            aggregations_failed: self.aggregations_failed.load(Ordering::Relaxed),
            aggregated_files: self.aggregated_files.load(Ordering::Relaxed),
            aggregated_bytes: self.aggregated_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        for ms in [50, 100, 101, 1000, 5000] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(h.cumulative(), vec![(0.1, 2), (1.0, 4)]);
        assert_eq!(h.count(), 5);
        assert!((h.sum_seconds() - 6.251).abs() < 1e-9);
    }

    #[test]
    fn completions_count_by_class_and_every_class_shows() {
        let m = NodeMetrics::default();
        for status in [0, 0, 3, exit_status::KILLED_BY_APPMASTER] {
            m.completed(status);
        }
        m.launched(Duration::from_millis(20));
        m.launch_failed();
        m.aggregated(Aggregation::Uploaded {
            files: 2,
            bytes: 10,
        });
        m.aggregated(Aggregation::Failed);
        let s = m.snapshot();
        assert_eq!(s.completed["success"], 2);
        assert_eq!(s.completed["failed"], 1);
        assert_eq!(s.completed["killed_by_appmaster"], 1);
        assert_eq!(s.completed["aborted"], 0);
        assert_eq!(s.completed.len(), exit_status::CLASSES.len());
        assert_eq!((s.launched, s.launch_failures), (1, 1));
        assert_eq!(s.launch_latency.count(), 1);
        assert_eq!(
            (
                s.aggregations_uploaded,
                s.aggregations_failed,
                s.aggregated_files,
                s.aggregated_bytes
            ),
            (1, 1, 2, 10)
        );
    }
}

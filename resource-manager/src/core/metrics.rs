//! What the core counts for the RM's metrics that cannot be read back from its state later:
//! containers ever allocated and ended, and how long requests waited to be allocated. Gauges
//! (applications by state, nodes, capacity) are computed from the state when they are read.
//! Times are the core's (ms, passed in), so the latencies are testable without a clock; the
//! counts start at zero with every start of the RM, as Prometheus counters may.

/// Upper bounds (ms) of the allocation-latency buckets: from "at once" to minutes of waiting
/// for capacity.
pub const LATENCY_BUCKETS_MS: [u64; 14] = [
    1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 60_000, 300_000,
];

/// A histogram of durations in ms over `LATENCY_BUCKETS_MS` (plus everything above).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last slot counts those above every bound.
    counts: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum_ms: u64,
}

impl Histogram {
    /// Records `n` observations of `ms`.
    pub fn observe(&mut self, ms: u64, n: u64) {
        let slot = LATENCY_BUCKETS_MS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[slot] += n;
        self.sum_ms = self.sum_ms.saturating_add(ms.saturating_mul(n));
    }

    /// (upper bound in ms, observations at or below it), as Prometheus' cumulative buckets;
    /// the `+Inf` bucket is `count`.
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        LATENCY_BUCKETS_MS
            .iter()
            .zip(self.counts.iter().scan(0, |sum, n| {
                *sum += n;
                Some(*sum)
            }))
            .map(|(bound, count)| (*bound, count))
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_ms(&self) -> u64 {
        self.sum_ms
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metrics {
    /// AM containers allocated since this start.
    pub am_containers_allocated: u64,
    /// Other containers allocated since this start.
    pub containers_allocated: u64,
    /// Containers that ended since this start, however they ended.
    pub containers_ended: u64,
    /// From an attempt's start to its AM container's allocation.
    pub am_allocation_latency: Histogram,
    /// From an AM's ask to the allocation that served it.
    pub allocation_latency: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_overflow_counts_only_in_the_total() {
        let mut h = Histogram::default();
        h.observe(0, 2);
        h.observe(7, 1);
        h.observe(1_000, 1);
        h.observe(1_000_000, 1);
        let buckets: Vec<(u64, u64)> = h.cumulative().collect();
        assert_eq!(buckets[0], (1, 2));
        assert_eq!(buckets[1], (5, 2));
        assert_eq!(buckets[2], (10, 3));
        assert_eq!(buckets[8], (1_000, 4));
        assert_eq!(buckets.last(), Some(&(300_000, 4)));
        assert_eq!(h.count(), 5);
        assert_eq!(h.sum_ms(), 1_001_007);
    }
}

//! An attempt's outstanding container requests. Asks are increments and cancels decrements, as
//! the AM protocol says, so the RM (not the AM) owns the count: an ask that raced with an
//! allocation never turns into extra containers, and no count ever goes below zero.

use std::collections::BTreeMap;

use spindle_containers::Resource;

/// Where a request may be placed: anywhere, or preferably (or only) on the named nodes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    /// Node ids or host names, sorted and without duplicates; empty means anywhere.
    pub nodes: Vec<String>,
    /// When false, only `nodes` will do.
    pub relax: bool,
}

impl Locality {
    pub fn anywhere() -> Self {
        Locality {
            nodes: Vec::new(),
            relax: true,
        }
    }

    pub fn new(mut nodes: Vec<String>, relax: bool) -> Self {
        nodes.sort();
        nodes.dedup();
        let relax = relax || nodes.is_empty();
        Locality { nodes, relax }
    }
}

/// Requests are grouped by what they ask for; lower priority numbers are served first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKey {
    pub priority: i32,
    pub capability: Resource,
    pub locality: Locality,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requests {
    /// Only groups with a positive count are kept.
    groups: BTreeMap<RequestKey, u32>,
    outstanding: u64,
}

impl Requests {
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    pub fn groups(&self) -> impl Iterator<Item = (&RequestKey, u32)> {
        self.groups.iter().map(|(k, n)| (k, *n))
    }

    pub fn add(&mut self, key: RequestKey, n: u32) {
        if n == 0 {
            return;
        }
        let count = self.groups.entry(key).or_insert(0);
        let added = n.min(u32::MAX - *count);
        *count += added;
        self.outstanding += u64::from(added);
    }

    /// Withdraws up to `n` requests: first from `key`'s own group, then from any other group of
    /// the same priority and capability (an AM that cancels "two of these" rarely repeats the
    /// locality it asked with). Cancelling more than is outstanding stops at zero.
    pub fn cancel(&mut self, key: &RequestKey, n: u32) {
        let mut left = n;
        left -= self.take(key, left);
        let similar: Vec<RequestKey> = self
            .groups
            .keys()
            .filter(|k| k.priority == key.priority && k.capability == key.capability)
            .cloned()
            .collect();
        for k in similar {
            if left == 0 {
                break;
            }
            left -= self.take(&k, left);
        }
    }

    /// Removes up to `n` requests of `key`'s group; returns how many it removed.
    pub fn take(&mut self, key: &RequestKey, n: u32) -> u32 {
        let Some(count) = self.groups.get_mut(key) else {
            return 0;
        };
        let taken = n.min(*count);
        *count -= taken;
        if *count == 0 {
            self.groups.remove(key);
        }
        self.outstanding -= u64::from(taken);
        taken
    }

    pub fn clear(&mut self) {
        self.groups.clear();
        self.outstanding = 0;
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let sum: u64 = self.groups.values().map(|n| u64::from(*n)).sum();
        if sum != self.outstanding || self.groups.values().any(|n| *n == 0) {
            return Err(format!(
                "request groups {:?} do not add up to outstanding {}",
                self.groups, self.outstanding
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(priority: i32, memory_mb: u64, nodes: &[&str]) -> RequestKey {
        RequestKey {
            priority,
            capability: Resource::new(memory_mb, 1),
            locality: Locality::new(nodes.iter().map(|s| s.to_string()).collect(), true),
        }
    }

    #[test]
    fn asks_add_up_and_cancels_never_go_below_zero() {
        let mut r = Requests::default();
        r.add(key(1, 1024, &[]), 3);
        r.add(key(1, 1024, &[]), 2);
        assert_eq!(r.outstanding(), 5);
        r.cancel(&key(1, 1024, &[]), 7);
        assert_eq!(r.outstanding(), 0);
        assert_eq!(r.groups().count(), 0);
        r.check().unwrap();
    }

    #[test]
    fn cancel_falls_back_to_other_localities_of_the_same_shape() {
        let mut r = Requests::default();
        r.add(key(1, 1024, &["a"]), 2);
        r.add(key(1, 1024, &[]), 2);
        r.add(key(2, 1024, &[]), 2);
        r.cancel(&key(1, 1024, &["b"]), 3);
        assert_eq!(r.outstanding(), 3);
        let left: u32 = r
            .groups()
            .filter(|(k, _)| k.priority == 1)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(left, 1);
        r.check().unwrap();
    }

    #[test]
    fn locality_is_normalized() {
        assert_eq!(
            Locality::new(vec!["b".into(), "a".into(), "b".into()], false).nodes,
            vec!["a".to_string(), "b".to_string()]
        );
        assert!(Locality::new(vec![], false).relax);
    }
}

//! An attempt's outstanding container requests. Asks are increments and cancels decrements, as
//! the AM protocol says, so the RM (not the AM) owns the count: an ask that raced with an
//! allocation never turns into extra containers, and no count ever goes below zero. Each group
//! also remembers when its asks came, so that the time from request to allocation can be
//! measured (the oldest ask is served first, the newest cancelled first).

use std::collections::{BTreeMap, VecDeque};

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

/// The outstanding asks of one group, as (time asked in ms, how many), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
struct Group {
    count: u32,
    asked: VecDeque<(u64, u32)>,
}

impl Group {
    /// Removes up to `n` asks from the oldest end (served) or the newest (withdrawn).
    fn remove(&mut self, n: u32, oldest: bool) -> Vec<(u64, u32)> {
        let mut left = n.min(self.count);
        let mut removed = Vec::new();
        while left > 0 {
            let end = if oldest {
                self.asked.front_mut()
            } else {
                self.asked.back_mut()
            };
            let Some((asked_ms, count)) = end else { break };
            let taken = left.min(*count);
            removed.push((*asked_ms, taken));
            *count -= taken;
            left -= taken;
            self.count -= taken;
            if *count == 0 {
                if oldest {
                    self.asked.pop_front();
                } else {
                    self.asked.pop_back();
                }
            }
        }
        removed
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Requests {
    /// Only groups with a positive count are kept.
    groups: BTreeMap<RequestKey, Group>,
    outstanding: u64,
}

impl Requests {
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    pub fn groups(&self) -> impl Iterator<Item = (&RequestKey, u32)> {
        self.groups.iter().map(|(k, g)| (k, g.count))
    }

    /// Adds `n` asks of `key`, made at `now_ms`.
    pub fn add(&mut self, key: RequestKey, n: u32, now_ms: u64) {
        if n == 0 {
            return;
        }
        let group = self.groups.entry(key).or_default();
        let added = n.min(u32::MAX - group.count);
        if added == 0 {
            return;
        }
        group.count += added;
        match group.asked.back_mut() {
            Some((asked_ms, count)) if *asked_ms == now_ms => *count += added,
            _ => group.asked.push_back((now_ms, added)),
        }
        self.outstanding += u64::from(added);
    }

    /// Withdraws up to `n` requests: first from `key`'s own group, then from any other group of
    /// the same priority and capability (an AM that cancels "two of these" rarely repeats the
    /// locality it asked with). Cancelling more than is outstanding stops at zero.
    pub fn cancel(&mut self, key: &RequestKey, n: u32) {
        let mut left = n;
        left -= self.withdraw(key, left);
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
            left -= self.withdraw(&k, left);
        }
    }

    /// Removes up to `n` of the newest requests of `key`'s group; returns how many it removed.
    fn withdraw(&mut self, key: &RequestKey, n: u32) -> u32 {
        self.remove(key, n, false).iter().map(|(_, n)| n).sum()
    }

    /// Removes up to `n` of the oldest requests of `key`'s group, as they are served: returns
    /// when they were asked, as (time in ms, how many).
    pub fn take(&mut self, key: &RequestKey, n: u32) -> Vec<(u64, u32)> {
        self.remove(key, n, true)
    }

    fn remove(&mut self, key: &RequestKey, n: u32, oldest: bool) -> Vec<(u64, u32)> {
        let Some(group) = self.groups.get_mut(key) else {
            return Vec::new();
        };
        let removed = group.remove(n, oldest);
        if group.count == 0 {
            self.groups.remove(key);
        }
        let taken: u32 = removed.iter().map(|(_, n)| n).sum();
        self.outstanding -= u64::from(taken);
        removed
    }

    pub fn clear(&mut self) {
        self.groups.clear();
        self.outstanding = 0;
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let sum: u64 = self.groups.values().map(|g| u64::from(g.count)).sum();
        let asked_adds_up = self
            .groups
            .values()
            .all(|g| g.asked.iter().map(|(_, n)| u64::from(*n)).sum::<u64>() == u64::from(g.count));
        if sum != self.outstanding || self.groups.values().any(|g| g.count == 0) || !asked_adds_up {
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
        r.add(key(1, 1024, &[]), 3, 10);
        r.add(key(1, 1024, &[]), 2, 20);
        assert_eq!(r.outstanding(), 5);
        r.cancel(&key(1, 1024, &[]), 7);
        assert_eq!(r.outstanding(), 0);
        assert_eq!(r.groups().count(), 0);
        r.check().unwrap();
    }

    #[test]
    fn cancel_falls_back_to_other_localities_of_the_same_shape() {
        let mut r = Requests::default();
        r.add(key(1, 1024, &["a"]), 2, 10);
        r.add(key(1, 1024, &[]), 2, 10);
        r.add(key(2, 1024, &[]), 2, 10);
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
    fn the_oldest_asks_are_served_first_and_the_newest_cancelled_first() {
        let mut r = Requests::default();
        let k = key(1, 1024, &[]);
        r.add(k.clone(), 2, 10);
        r.add(k.clone(), 1, 10);
        r.add(k.clone(), 3, 20);
        r.add(k.clone(), 1, 30);
        r.cancel(&k, 2);
        r.check().unwrap();
        assert_eq!(r.take(&k, 4), vec![(10, 3), (20, 1)]);
        assert_eq!(r.take(&k, 9), vec![(20, 1)]);
        assert_eq!(r.outstanding(), 0);
        assert_eq!(r.take(&k, 1), vec![]);
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

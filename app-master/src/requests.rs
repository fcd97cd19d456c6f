//! The AM's table of container requests. On the wire asks are increments ("n more of this
//! shape"), so the table queues what changed since the last `Allocate` and keeps, per
//! (priority, capability), how many containers are still wanted: asked − allocated − cancelled,
//! never negative. A container the RM hands over beyond that count is surplus, to be released:
//! that is what keeps a cancel that raced with an allocation from leaving an extra container.
//!
//! The RM floors its outstanding count at zero, so an ask and a cancel of one key in the same
//! `Allocate` would mean different things in different orders. They never travel together: a
//! cancel first withdraws asks not yet sent, and an ask queued behind an unsent cancel waits
//! for the next call.

use std::collections::BTreeMap;

use spindle_containers::Resource;
use spindle_protocol as proto;

use crate::container::Container;

/// One container the AM wants: its shape, its priority, and where it would like it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRequest {
    pub capability: Resource,
    pub priority: i32,
    /// Preferred nodes (node ids or hostnames); empty means anywhere.
    pub nodes: Vec<String>,
    /// When false, only the preferred nodes will do.
    pub relax_locality: bool,
}

impl ContainerRequest {
    /// A request for a container of `capability` anywhere in the cluster.
    pub fn new(capability: Resource, priority: i32) -> Self {
        ContainerRequest {
            capability,
            priority,
            nodes: Vec::new(),
            relax_locality: true,
        }
    }

    /// The same request, preferring `nodes` (or insisting on them when `relax_locality` is false).
    pub fn on_nodes(mut self, nodes: Vec<String>, relax_locality: bool) -> Self {
        self.nodes = nodes;
        self.relax_locality = relax_locality;
        self
    }

    fn key(&self) -> Key {
        (self.priority, self.capability)
    }

    fn to_proto(&self, num_containers: u32) -> proto::ResourceRequest {
        proto::ResourceRequest {
            priority: self.priority,
            capability: Some(self.capability.to_proto()),
            num_containers: i32::try_from(num_containers).unwrap_or(i32::MAX),
            nodes: self.nodes.clone(),
            relax_locality: self.relax_locality,
        }
    }
}

/// (priority, capability): what the RM counts outstanding requests by.
type Key = (i32, Resource);

/// Changes not yet told to the RM, taken out for one `Allocate` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outgoing {
    pub asks: Vec<(ContainerRequest, u32)>,
    pub cancels: Vec<(ContainerRequest, u32)>,
}

impl Outgoing {
    pub fn is_empty(&self) -> bool {
        self.asks.is_empty() && self.cancels.is_empty()
    }

    /// The `asks` and `cancels` of an `AllocateRequest`.
    pub fn to_proto(&self) -> (Vec<proto::ResourceRequest>, Vec<proto::ResourceRequest>) {
        let convert = |list: &[(ContainerRequest, u32)]| {
            list.iter().map(|(r, n)| r.to_proto(*n)).collect::<Vec<_>>()
        };
        (convert(&self.asks), convert(&self.cancels))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    count: u32,
    /// The latest request of this key, re-sent in full if the RM loses its count.
    latest: ContainerRequest,
}

#[derive(Debug, Clone, Default)]
pub struct PendingRequests {
    pending: BTreeMap<Key, Pending>,
    /// Unsent increments, by the full request so that different localities go out apart.
    queued_asks: BTreeMap<ContainerRequest, u32>,
    /// Unsent decrements; the RM counts them by key, so locality does not matter.
    queued_cancels: BTreeMap<Key, u32>,
}

impl PendingRequests {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wants `count` more containers like `request`.
    pub fn add(&mut self, request: &ContainerRequest, count: u32) {
        if count == 0 {
            return;
        }
        let entry = self
            .pending
            .entry(request.key())
            .or_insert_with(|| Pending {
                count: 0,
                latest: request.clone(),
            });
        entry.count = entry.count.saturating_add(count);
        entry.latest = request.clone();
        *self.queued_asks.entry(request.clone()).or_default() += count;
    }

    /// Wants up to `count` fewer containers of `request`'s priority and capability; returns how
    /// many were withdrawn (never more than are pending).
    pub fn remove(&mut self, request: &ContainerRequest, count: u32) -> u32 {
        let key = request.key();
        let Some(entry) = self.pending.get_mut(&key) else {
            return 0;
        };
        let withdrawn = count.min(entry.count);
        entry.count -= withdrawn;
        if entry.count == 0 {
            self.pending.remove(&key);
        }
        // Asks the RM has not seen yet are withdrawn by not sending them.
        let mut to_cancel = withdrawn;
        let unsent: Vec<ContainerRequest> = self
            .queued_asks
            .keys()
            .filter(|r| r.key() == key)
            .cloned()
            .collect();
        for request in unsent.into_iter().rev() {
            let Some(asked) = self.queued_asks.get_mut(&request) else {
                continue;
            };
            let netted = to_cancel.min(*asked);
            *asked -= netted;
            to_cancel -= netted;
            if *asked == 0 {
                self.queued_asks.remove(&request);
            }
        }
        if to_cancel > 0 {
            *self.queued_cancels.entry(key).or_default() += to_cancel;
        }
        withdrawn
    }

    /// How many containers of this priority and capability are still wanted.
    pub fn pending(&self, priority: i32, capability: Resource) -> u32 {
        self.pending
            .get(&(priority, capability))
            .map_or(0, |p| p.count)
    }

    pub fn total_pending(&self) -> u32 {
        self.pending.values().map(|p| p.count).sum()
    }

    /// Whether there is something the RM has not been told yet.
    pub fn has_outgoing(&self) -> bool {
        !self.queued_asks.is_empty() || !self.queued_cancels.is_empty()
    }

    /// Takes the queued changes for the next `Allocate`. Asks of a key that also has a cancel
    /// queued stay behind for the call after.
    pub fn take_outgoing(&mut self) -> Outgoing {
        let (held, asks): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.queued_asks)
            .into_iter()
            .partition(|(r, _)| self.queued_cancels.contains_key(&r.key()));
        self.queued_asks = held;
        let asks = asks.into_iter().collect();
        let cancels = std::mem::take(&mut self.queued_cancels)
            .into_iter()
            .map(|((priority, capability), n)| (ContainerRequest::new(capability, priority), n))
            .collect();
        Outgoing { asks, cancels }
    }

    /// Puts back changes whose `Allocate` failed, so the next calls carry them. They are not
    /// netted against changes queued meanwhile: whether the RM saw the failed call is unknown,
    /// and if it did, the worst left is a surplus container, which is released.
    pub fn requeue(&mut self, outgoing: Outgoing) {
        for (request, n) in outgoing.asks {
            *self.queued_asks.entry(request).or_default() += n;
        }
        for (request, n) in outgoing.cancels {
            *self.queued_cancels.entry(request.key()).or_default() += n;
        }
    }

    /// Counts `container` against a pending request: true if it fills one, false if it is
    /// surplus. The RM rounds capabilities up to its minimum allocation, so a request matches a
    /// container of its priority that it fits in, the largest such request first.
    pub fn match_allocated(&mut self, container: &Container) -> bool {
        let key = self
            .pending
            .range(
                (container.priority, Resource::ZERO)
                    ..=(container.priority, Resource::new(u64::MAX, u32::MAX)),
            )
            .rev()
            .find(|((_, capability), p)| p.count > 0 && capability.fits_in(&container.resource))
            .map(|(key, _)| *key);
        let Some(key) = key else {
            return false;
        };
        if let Some(entry) = self.pending.get_mut(&key) {
            entry.count -= 1;
            if entry.count == 0 {
                self.pending.remove(&key);
            }
        }
        true
    }

    /// The RM lost its outstanding counts (it restarted): queue every pending container as a
    /// fresh ask, and drop the cancels, which have nothing left to cancel.
    pub fn resync(&mut self) {
        self.queued_cancels.clear();
        self.queued_asks = self
            .pending
            .values()
            .map(|p| (p.latest.clone(), p.count))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use spindle_containers::{ContainerId, NodeId};

    use super::*;

    const GB: Resource = Resource::new(1024, 1);

    fn container(id: u64, priority: i32, resource: Resource) -> Container {
        Container {
            id: ContainerId::new("appattempt_1_0001_000001".parse().unwrap(), 0, id),
            node_id: NodeId::new("n1:1").unwrap(),
            node_address: "n1:1".into(),
            node_http_address: String::new(),
            resource,
            priority,
            token: String::new(),
        }
    }

    #[test]
    fn asks_go_out_once_as_increments() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 2);
        table.add(&request, 1);
        let out = table.take_outgoing();
        assert_eq!(out.asks, vec![(request.clone(), 3)]);
        assert!(out.cancels.is_empty());
        assert!(table.take_outgoing().is_empty());
        assert_eq!(table.pending(1, GB), 3);
    }

    #[test]
    fn a_cancel_before_sending_just_shrinks_the_ask() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 3);
        assert_eq!(table.remove(&request, 2), 2);
        let out = table.take_outgoing();
        assert_eq!(out.asks, vec![(request, 1)]);
        assert!(out.cancels.is_empty());
    }

    #[test]
    fn cancels_never_exceed_what_is_pending() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 2);
        table.take_outgoing();
        assert!(table.match_allocated(&container(1, 1, GB)));
        assert_eq!(table.remove(&request, 5), 1);
        assert_eq!(table.pending(1, GB), 0);
        assert_eq!(table.take_outgoing().cancels, vec![(request.clone(), 1)]);
        assert_eq!(table.remove(&request, 1), 0);
        assert!(!table.has_outgoing());
    }

    #[test]
    fn a_container_beyond_the_pending_count_is_surplus() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 1);
        table.take_outgoing();
        // The RM allocated while our cancel was on its way.
        table.remove(&request, 1);
        assert!(!table.match_allocated(&container(1, 1, GB)));
    }

    #[test]
    fn matches_normalized_containers_by_priority_and_fit() {
        let mut table = PendingRequests::new();
        let small = ContainerRequest::new(Resource::new(1000, 1), 1);
        let other_priority = ContainerRequest::new(Resource::new(1000, 1), 2);
        table.add(&small, 1);
        table.add(&other_priority, 1);
        // 1000 MB rounded up to the 1024 MB minimum.
        assert!(table.match_allocated(&container(1, 1, GB)));
        assert_eq!(table.pending(1, Resource::new(1000, 1)), 0);
        assert_eq!(table.pending(2, Resource::new(1000, 1)), 1);
        // Too small for what priority 2 asked for.
        assert!(!table.match_allocated(&container(2, 2, Resource::new(512, 1))));
    }

    #[test]
    fn localities_go_out_as_separate_asks() {
        let mut table = PendingRequests::new();
        let anywhere = ContainerRequest::new(GB, 1);
        let on_n1 = anywhere.clone().on_nodes(vec!["n1".into()], false);
        table.add(&anywhere, 1);
        table.add(&on_n1, 2);
        assert_eq!(table.pending(1, GB), 3);
        let mut asks = table.take_outgoing().asks;
        asks.sort();
        assert_eq!(asks, vec![(anywhere, 1), (on_n1, 2)]);
    }

    #[test]
    fn an_ask_behind_an_unsent_cancel_waits_for_the_next_call() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 1);
        table.take_outgoing();
        table.remove(&request, 1);
        table.add(&request, 1);
        let first = table.take_outgoing();
        assert_eq!(first.cancels, vec![(request.clone(), 1)]);
        assert!(first.asks.is_empty());
        assert!(table.has_outgoing());
        let second = table.take_outgoing();
        assert_eq!(second.asks, vec![(request, 1)]);
        assert!(second.cancels.is_empty());
    }

    #[test]
    fn a_failed_call_is_sent_again() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1);
        table.add(&request, 2);
        let failed = table.take_outgoing();
        table.requeue(failed.clone());
        assert_eq!(table.take_outgoing(), failed);
        assert_eq!(table.pending(1, GB), 2);
    }

    #[test]
    fn resync_asks_again_for_everything_pending() {
        let mut table = PendingRequests::new();
        let request = ContainerRequest::new(GB, 1).on_nodes(vec!["n2".into()], true);
        table.add(&request, 3);
        table.take_outgoing();
        table.remove(&request, 1);
        table.resync();
        let out = table.take_outgoing();
        assert_eq!(out.asks, vec![(request, 2)]);
        assert!(out.cancels.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u32),
        Remove(u32),
        /// An `Allocate` reaches the RM, which applies cancels first or asks first.
        Send {
            cancels_first: bool,
        },
        /// An `Allocate` fails before reaching the RM.
        FailSend,
        /// The RM allocates up to n containers; they are on their way to the AM.
        Allocate(u32),
        /// The containers on their way reach the AM.
        Deliver,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..5).prop_map(Op::Add),
            (0u32..5).prop_map(Op::Remove),
            any::<bool>().prop_map(|cancels_first| Op::Send { cancels_first }),
            Just(Op::FailSend),
            (0u32..4).prop_map(Op::Allocate),
            Just(Op::Deliver),
        ]
    }

    /// An RM keeping the outstanding count as the contract says: asks add, cancels subtract
    /// but never below zero, allocations use it up.
    fn send(out: Outgoing, rm_outstanding: &mut u32, cancels_first: bool) {
        let asked: u32 = out.asks.iter().map(|(_, n)| n).sum();
        let cancelled: u32 = out.cancels.iter().map(|(_, n)| n).sum();
        if cancels_first {
            *rm_outstanding = rm_outstanding.saturating_sub(cancelled) + asked;
        } else {
            *rm_outstanding = (*rm_outstanding + asked).saturating_sub(cancelled);
        }
    }

    proptest! {
        /// Whatever the interleaving and whichever order the RM applies a call in, the AM never
        /// keeps more containers than it asked for net of cancels, its pending count is what it
        /// still wants, and once all is said and delivered the RM owes at least that many (an
        /// RM owing more only hands out surplus, which is released).
        #[test]
        fn the_table_never_over_keeps_nor_under_asks(ops in proptest::collection::vec(op(), 1..80)) {
            let request = ContainerRequest::new(GB, 1);
            let mut table = PendingRequests::new();
            let mut rm_outstanding: u32 = 0;
            let mut in_flight: u32 = 0;
            let (mut wanted, mut kept, mut next_id) = (0i64, 0i64, 0u64);
            let mut deliver = |table: &mut PendingRequests, in_flight: &mut u32, kept: &mut i64| {
                for _ in 0..std::mem::take(in_flight) {
                    next_id += 1;
                    if table.match_allocated(&container(next_id, 1, GB)) {
                        *kept += 1;
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Add(n) => { table.add(&request, n); wanted += i64::from(n); }
                    Op::Remove(n) => { wanted -= i64::from(table.remove(&request, n)); }
                    Op::Send { cancels_first } => {
                        let out = table.take_outgoing();
                        prop_assert!(out.asks.is_empty() || out.cancels.is_empty());
                        send(out, &mut rm_outstanding, cancels_first);
                    }
                    Op::FailSend => { let out = table.take_outgoing(); table.requeue(out); }
                    Op::Allocate(n) => {
                        let n = n.min(rm_outstanding);
                        rm_outstanding -= n;
                        in_flight += n;
                    }
                    Op::Deliver => deliver(&mut table, &mut in_flight, &mut kept),
                }
                prop_assert!(kept <= wanted);
                prop_assert_eq!(i64::from(table.pending(1, GB)), wanted - kept);
            }
            deliver(&mut table, &mut in_flight, &mut kept);
            while table.has_outgoing() {
                send(table.take_outgoing(), &mut rm_outstanding, false);
            }
            prop_assert!(rm_outstanding >= table.pending(1, GB));
        }
    }
}

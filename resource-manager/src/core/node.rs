//! The cluster's nodes and the placement index: every schedulable node keyed by its free memory,
//! so that the scheduler finds the node with the most (Spread) or least fitting (Pack) free
//! memory in O(log n) instead of scanning thousands of nodes per container.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use spindle_containers::{ContainerId, NodeId, Resource};

use crate::config::Placement;

/// A node's slot in the table. Slots are never reused: a restarted NM gets its old slot back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeIdx(u32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Running,
    /// The NM says it is unhealthy: it keeps its containers but gets no new ones.
    Unhealthy,
    /// No heartbeat within the expiry; its containers were aborted.
    Lost,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Running => "RUNNING",
            NodeState::Unhealthy => "UNHEALTHY",
            NodeState::Lost => "LOST",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: NodeId,
    pub hostname: String,
    pub http_address: String,
    pub capability: Resource,
    /// The sum of its live containers' resources.
    pub used: Resource,
    pub state: NodeState,
    pub registered_ms: u64,
    pub last_heartbeat_ms: u64,
    pub health_report: String,
    /// Containers holding capacity here (allocated or running).
    pub live: HashSet<ContainerId>,
}

impl Node {
    pub fn free_memory_mb(&self) -> u64 {
        self.capability
            .memory_mb
            .saturating_sub(self.used.memory_mb)
    }

    pub fn is_schedulable(&self) -> bool {
        self.state == NodeState::Running
    }
}

/// What a node registration says about the node itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub hostname: String,
    pub http_address: String,
    pub capability: Resource,
}

#[derive(Debug, Default)]
pub struct NodeTable {
    nodes: Vec<Node>,
    by_id: HashMap<NodeId, NodeIdx>,
    /// Host part of the node id and display hostname → nodes, for locality by host name.
    by_name: HashMap<String, Vec<NodeIdx>>,
    /// (free memory, node) of every schedulable node.
    by_free: BTreeSet<(u64, NodeIdx)>,
    /// Whether room was added (a node came, became schedulable, or got capacity back) since the
    /// scheduler last looked: if not, a waiting request cannot fit now if it did not before.
    capacity_grew: bool,
}

impl NodeTable {
    pub fn lookup(&self, id: &NodeId) -> Option<NodeIdx> {
        self.by_id.get(id).copied()
    }

    pub fn get(&self, idx: NodeIdx) -> &Node {
        &self.nodes[idx.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (NodeIdx, &Node)> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (NodeIdx(i as u32), n))
    }

    /// Nodes named `name`: the node whose id it is, else every node on that host.
    pub fn resolve(&self, name: &str) -> Vec<NodeIdx> {
        if let Some(idx) = name.parse().ok().and_then(|id| self.lookup(&id)) {
            return vec![idx];
        }
        self.by_name.get(name).cloned().unwrap_or_default()
    }

    pub fn schedulable_count(&self) -> usize {
        self.by_free.len()
    }

    pub fn max_free_memory_mb(&self) -> Option<u64> {
        self.by_free.last().map(|(free, _)| *free)
    }

    /// Free capacity of the schedulable nodes (vcores are not enforced, so they may be short).
    pub fn available(&self) -> Resource {
        self.by_free
            .iter()
            .map(|(_, idx)| {
                let n = self.get(*idx);
                n.capability.saturating_sub(&n.used)
            })
            // Saturating: capabilities come from the wire, and a few absurd ones must not
            // overflow the sum (an AM only reads it as a hint).
            .fold(Resource::ZERO, |a, b| {
                Resource::new(
                    a.memory_mb.saturating_add(b.memory_mb),
                    a.vcores.saturating_add(b.vcores),
                )
            })
    }

    /// The node a container of `memory_mb` goes to under `placement`, if any has room.
    pub fn pick(&self, memory_mb: u64, placement: Placement) -> Option<NodeIdx> {
        let found = match placement {
            Placement::Spread => self.by_free.last().filter(|(free, _)| *free >= memory_mb),
            Placement::Pack => self.by_free.range((memory_mb, NodeIdx(0))..).next(),
        };
        found.map(|(_, idx)| *idx)
    }

    /// Like `pick`, but only among `candidates` (a locality preference: a short list).
    pub fn pick_among(
        &self,
        memory_mb: u64,
        placement: Placement,
        candidates: &[NodeIdx],
    ) -> Option<NodeIdx> {
        let fitting = candidates.iter().copied().filter(|idx| {
            let n = self.get(*idx);
            n.is_schedulable() && n.free_memory_mb() >= memory_mb
        });
        let key = |idx: &NodeIdx| (self.get(*idx).free_memory_mb(), *idx);
        match placement {
            Placement::Spread => fitting.max_by_key(key),
            Placement::Pack => fitting.min_by_key(key),
        }
    }

    /// Adds a node, or resets a known one to `info` (a restarted NM keeps its slot and whatever
    /// live containers the caller has not completed). Either way it is RUNNING afterwards.
    pub(crate) fn register(&mut self, info: NodeInfo, now: u64) -> NodeIdx {
        self.capacity_grew = true;
        match self.lookup(&info.id) {
            Some(idx) => {
                self.unname(idx);
                self.update(idx, |n| {
                    n.hostname = info.hostname;
                    n.http_address = info.http_address;
                    n.capability = info.capability;
                    n.state = NodeState::Running;
                    n.registered_ms = now;
                    n.last_heartbeat_ms = now;
                    n.health_report.clear();
                });
                self.name(idx);
                idx
            }
            None => {
                let idx = NodeIdx(self.nodes.len() as u32);
                self.nodes.push(Node {
                    id: info.id.clone(),
                    hostname: info.hostname,
                    http_address: info.http_address,
                    capability: info.capability,
                    used: Resource::ZERO,
                    state: NodeState::Running,
                    registered_ms: now,
                    last_heartbeat_ms: now,
                    health_report: String::new(),
                    live: HashSet::new(),
                });
                self.by_id.insert(info.id, idx);
                self.name(idx);
                self.by_free.insert((self.get(idx).free_memory_mb(), idx));
                idx
            }
        }
    }

    /// Whether capacity grew since the last call.
    pub(crate) fn take_capacity_grew(&mut self) -> bool {
        std::mem::take(&mut self.capacity_grew)
    }

    pub(crate) fn charge(&mut self, idx: NodeIdx, container: ContainerId, resource: Resource) {
        self.update(idx, |n| {
            n.used += resource;
            n.live.insert(container);
        });
    }

    pub(crate) fn credit(&mut self, idx: NodeIdx, container: ContainerId, resource: Resource) {
        self.capacity_grew = true;
        self.update(idx, |n| {
            if n.live.remove(&container) {
                n.used -= resource;
            }
        });
    }

    pub(crate) fn set_state(&mut self, idx: NodeIdx, state: NodeState, health_report: &str) {
        self.capacity_grew |= state == NodeState::Running;
        self.update(idx, |n| {
            n.state = state;
            n.health_report = health_report.to_string();
        });
    }

    pub(crate) fn heard_from(&mut self, idx: NodeIdx, now: u64) {
        let n = &mut self.nodes[idx.0 as usize];
        n.last_heartbeat_ms = n.last_heartbeat_ms.max(now);
    }

    /// Changes a node and keeps the placement index in step with it.
    fn update(&mut self, idx: NodeIdx, change: impl FnOnce(&mut Node)) {
        let n = &mut self.nodes[idx.0 as usize];
        if n.is_schedulable() {
            self.by_free.remove(&(n.free_memory_mb(), idx));
        }
        change(n);
        if n.is_schedulable() {
            self.by_free.insert((n.free_memory_mb(), idx));
        }
    }

    fn names(&self, idx: NodeIdx) -> Vec<String> {
        let n = self.get(idx);
        let mut names = vec![n.id.host().to_string()];
        if !n.hostname.is_empty() && n.hostname != names[0] {
            names.push(n.hostname.clone());
        }
        names
    }

    fn name(&mut self, idx: NodeIdx) {
        for name in self.names(idx) {
            self.by_name.entry(name).or_default().push(idx);
        }
    }

    fn unname(&mut self, idx: NodeIdx) {
        for name in self.names(idx) {
            if let Some(list) = self.by_name.get_mut(&name) {
                list.retain(|i| *i != idx);
                if list.is_empty() {
                    self.by_name.remove(&name);
                }
            }
        }
    }

    /// Checks the index against the records; used by tests after every event.
    pub(crate) fn check_index(&self) -> Result<(), String> {
        let expected: BTreeSet<(u64, NodeIdx)> = self
            .iter()
            .filter(|(_, n)| n.is_schedulable())
            .map(|(idx, n)| (n.free_memory_mb(), idx))
            .collect();
        if expected != self.by_free {
            return Err(format!(
                "placement index {:?} does not match the nodes {:?}",
                self.by_free, expected
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, memory_mb: u64) -> NodeInfo {
        NodeInfo {
            id: id.parse().unwrap(),
            hostname: format!("display-{id}"),
            http_address: String::new(),
            capability: Resource::new(memory_mb, 8),
        }
    }

    fn cid(n: u64) -> ContainerId {
        let app = spindle_containers::ApplicationId::new(1, 1);
        ContainerId::new(spindle_containers::AttemptId::new(app, 1), 0, n)
    }

    #[test]
    fn spread_picks_the_node_with_most_free_memory_and_pack_the_tightest_fit() {
        let mut t = NodeTable::default();
        let a = t.register(info("a:1", 4096), 0);
        let b = t.register(info("b:1", 8192), 0);
        let c = t.register(info("c:1", 2048), 0);
        assert_eq!(t.pick(1024, Placement::Spread), Some(b));
        assert_eq!(t.pick(1024, Placement::Pack), Some(c));
        assert_eq!(t.pick(3000, Placement::Pack), Some(a));
        assert_eq!(t.pick(9000, Placement::Spread), None);
        assert_eq!(t.pick(9000, Placement::Pack), None);
        t.charge(b, cid(1), Resource::new(6144, 1));
        assert_eq!(t.pick(1024, Placement::Spread), Some(a));
        t.check_index().unwrap();
    }

    #[test]
    fn unschedulable_nodes_leave_the_index() {
        let mut t = NodeTable::default();
        let a = t.register(info("a:1", 4096), 0);
        t.set_state(a, NodeState::Unhealthy, "disk full");
        assert_eq!(t.pick(1, Placement::Spread), None);
        assert_eq!(t.pick_among(1, Placement::Spread, &[a]), None);
        t.set_state(a, NodeState::Running, "");
        assert_eq!(t.pick(1, Placement::Spread), Some(a));
        t.check_index().unwrap();
    }

    #[test]
    fn resolves_node_ids_and_host_names() {
        let mut t = NodeTable::default();
        let a = t.register(info("h1:1", 4096), 0);
        let b = t.register(info("h1:2", 4096), 0);
        assert_eq!(t.resolve("h1:2"), vec![b]);
        assert_eq!(t.resolve("h1"), vec![a, b]);
        assert_eq!(t.resolve("display-h1:1"), vec![a]);
        assert!(t.resolve("elsewhere").is_empty());
    }

    #[test]
    fn re_registration_keeps_the_slot_and_live_containers() {
        let mut t = NodeTable::default();
        let a = t.register(info("a:1", 4096), 0);
        t.charge(a, cid(1), Resource::new(1024, 1));
        t.set_state(a, NodeState::Lost, "");
        assert_eq!(t.register(info("a:1", 8192), 5), a);
        let n = t.get(a);
        assert_eq!(
            (n.state, n.used.memory_mb, n.free_memory_mb()),
            (NodeState::Running, 1024, 7168)
        );
        t.credit(a, cid(1), Resource::new(1024, 1));
        t.credit(a, cid(1), Resource::new(1024, 1));
        assert_eq!(t.get(a).used, Resource::ZERO);
        t.check_index().unwrap();
    }
}

//! The allocator's decisions as plain data, fed with what the RM and the NMs report and
//! answering with what to do next: ask for or withdraw containers, launch an executor, release
//! a container, report an event. No I/O and no clocks, so every rule is tested directly.

use std::collections::BTreeMap;

use spindle_containers::{ContainerId, exit_status};

use crate::container::{Container, ContainerStatus};

/// Executors are numbered from 1 in the order they are launched, as Spark numbers them.
pub type ExecutorId = u64;

/// What the allocator tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum AllocatorEvent {
    /// The node accepted the executor's container and started it.
    ExecutorLaunched {
        executor_id: ExecutorId,
        container: Container,
    },
    /// The node would not start the executor's container; it counts as a failure.
    ExecutorLaunchFailed {
        executor_id: ExecutorId,
        container: Container,
        error: String,
    },
    /// The executor's container completed; `failure` says whether it counts against the limit.
    ExecutorExited {
        executor_id: ExecutorId,
        container: Container,
        status: ContainerStatus,
        failure: bool,
    },
    /// The allocator stopped for good; the application should finish FAILED with these
    /// diagnostics.
    GaveUp { diagnostics: String },
    /// The RM ended this attempt (AM_COMMAND_SHUTDOWN): the AM should exit.
    Shutdown,
}

/// One step for the loop around the state to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Ask the RM for this many more containers.
    Request(u32),
    /// Withdraw this many pending asks.
    Cancel(u32),
    /// Start executor `executor_id` in `container`.
    Launch {
        executor_id: ExecutorId,
        container: Container,
    },
    /// Give the container back to the RM.
    Release(ContainerId),
    Report(AllocatorEvent),
}

/// Whether a container that ended this way counts as an executor failure. As in Spark, a
/// clean exit, preemption, a lost node or disk, and containers stopped by the RM or the AM are
/// the cluster's doing, not the application's.
pub fn is_executor_failure(status: i32) -> bool {
    !matches!(
        status,
        exit_status::SUCCESS
            | exit_status::PREEMPTED
            | exit_status::ABORTED
            | exit_status::DISKS_FAILED
            | exit_status::KILLED_BY_APPMASTER
            | exit_status::KILLED_BY_RESOURCEMANAGER
            | exit_status::KILLED_AFTER_APP_COMPLETION
    )
}

#[derive(Debug, Clone)]
struct Executor {
    id: ExecutorId,
    container: Container,
    /// False while its NM call is in flight.
    running: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AllocatorState {
    target: u32,
    /// The failure limit follows the largest target asked for, so lowering the target late in
    /// a job does not make it give up sooner.
    highest_target: u32,
    max_failures_override: Option<u32>,
    /// Asked for and neither allocated nor withdrawn; mirrors the client's pending table.
    pending: u32,
    executors: BTreeMap<ContainerId, Executor>,
    last_executor_id: ExecutorId,
    failures: u32,
    gave_up: bool,
}

impl AllocatorState {
    /// A state with no target yet; `max_executor_failures` overrides max(2 × target, 3).
    pub fn new(max_executor_failures: Option<u32>) -> Self {
        AllocatorState {
            max_failures_override: max_executor_failures,
            ..Self::default()
        }
    }

    pub fn target(&self) -> u32 {
        self.target
    }
    pub fn pending(&self) -> u32 {
        self.pending
    }
    pub fn running(&self) -> u32 {
        self.count(true)
    }
    pub fn launching(&self) -> u32 {
        self.count(false)
    }
    pub fn failures(&self) -> u32 {
        self.failures
    }
    pub fn gave_up(&self) -> bool {
        self.gave_up
    }

    /// How many executor failures end the application.
    pub fn max_failures(&self) -> u32 {
        self.max_failures_override
            .unwrap_or_else(|| self.highest_target.saturating_mul(2).max(3))
    }

    /// Wants `target` executors: asks for the missing ones or withdraws asks no longer needed.
    /// Executors already running are left alone when the target drops.
    pub fn set_target(&mut self, target: u32) -> Vec<Action> {
        self.target = target;
        self.highest_target = self.highest_target.max(target);
        self.reconcile()
    }

    /// Containers from an `Allocate`: those filling a pending ask start executors while the
    /// target is not met; the rest, and the surplus, go back.
    pub fn on_allocated(
        &mut self,
        allocated: Vec<Container>,
        surplus: Vec<Container>,
    ) -> Vec<Action> {
        self.pending = self.pending.saturating_sub(saturating_u32(allocated.len()));
        let mut actions = Vec::new();
        for container in allocated {
            if self.gave_up || self.live() >= self.target {
                actions.push(Action::Release(container.id));
                continue;
            }
            self.last_executor_id += 1;
            let executor_id = self.last_executor_id;
            self.executors.insert(
                container.id,
                Executor {
                    id: executor_id,
                    container: container.clone(),
                    running: false,
                },
            );
            actions.push(Action::Launch {
                executor_id,
                container,
            });
        }
        actions.extend(surplus.into_iter().map(|c| Action::Release(c.id)));
        actions.extend(self.reconcile());
        actions
    }

    /// The outcome of starting a container; a refusal counts as a failure and is replaced.
    pub fn on_launched(
        &mut self,
        container: ContainerId,
        outcome: Result<(), String>,
    ) -> Vec<Action> {
        let Some(executor) = self.executors.get_mut(&container) else {
            // Already completed (a fast exit can be reported before the start answer).
            return Vec::new();
        };
        match outcome {
            Ok(()) => {
                executor.running = true;
                vec![Action::Report(AllocatorEvent::ExecutorLaunched {
                    executor_id: executor.id,
                    container: executor.container.clone(),
                })]
            }
            Err(error) => {
                let Some(executor) = self.executors.remove(&container) else {
                    return Vec::new();
                };
                let last = format!(
                    "executor {} in {} on node {} could not start: {error}",
                    executor.id, executor.container.id, executor.container.node_id
                );
                let mut actions = vec![
                    Action::Release(container),
                    Action::Report(AllocatorEvent::ExecutorLaunchFailed {
                        executor_id: executor.id,
                        container: executor.container,
                        error,
                    }),
                ];
                actions.extend(self.count_failure(&last));
                actions.extend(self.reconcile());
                actions
            }
        }
    }

    /// A completed container: if it held an executor, report it, count a failure if it was one,
    /// and ask for a replacement.
    pub fn on_completed(&mut self, status: &ContainerStatus) -> Vec<Action> {
        let Some(executor) = self.executors.remove(&status.id) else {
            return Vec::new();
        };
        let failure = is_executor_failure(status.exit_status);
        let last = format!(
            "executor {} in {} on node {} ended with {}",
            executor.id,
            executor.container.id,
            executor.container.node_id,
            status.describe()
        );
        let mut actions = vec![Action::Report(AllocatorEvent::ExecutorExited {
            executor_id: executor.id,
            container: executor.container,
            status: status.clone(),
            failure,
        })];
        if failure {
            actions.extend(self.count_failure(&last));
        }
        actions.extend(self.reconcile());
        actions
    }

    /// Stops for good (for a reason of the loop's, such as the RM being unreachable): withdraw
    /// every ask and report `diagnostics`.
    pub fn give_up(&mut self, diagnostics: String) -> Vec<Action> {
        if self.gave_up {
            return Vec::new();
        }
        self.gave_up = true;
        let mut actions = Vec::new();
        if self.pending > 0 {
            actions.push(Action::Cancel(self.pending));
            self.pending = 0;
        }
        actions.push(Action::Report(AllocatorEvent::GaveUp { diagnostics }));
        actions
    }

    fn count_failure(&mut self, last: &str) -> Vec<Action> {
        self.failures += 1;
        let max = self.max_failures();
        if self.failures < max {
            return Vec::new();
        }
        self.give_up(format!(
            "max number of executor failures ({max}) reached; the last: {last}"
        ))
    }

    /// Keeps live executors plus pending asks equal to the target.
    fn reconcile(&mut self) -> Vec<Action> {
        if self.gave_up {
            return Vec::new();
        }
        let wanted = self.target.saturating_sub(self.live());
        let action = match self.pending.cmp(&wanted) {
            std::cmp::Ordering::Less => Action::Request(wanted - self.pending),
            std::cmp::Ordering::Greater => Action::Cancel(self.pending - wanted),
            std::cmp::Ordering::Equal => return Vec::new(),
        };
        self.pending = wanted;
        vec![action]
    }

    fn live(&self) -> u32 {
        saturating_u32(self.executors.len())
    }

    fn count(&self, running: bool) -> u32 {
        saturating_u32(
            self.executors
                .values()
                .filter(|e| e.running == running)
                .count(),
        )
    }
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use spindle_containers::{NodeId, Resource};

    use super::*;
    use crate::container::ContainerState;

    fn container(id: u64) -> Container {
        Container {
            id: ContainerId::new(
                "appattempt_1700000000000_0001_000001".parse().unwrap(),
                0,
                id,
            ),
            node_id: NodeId::new("n1:8041").unwrap(),
            node_address: "n1:8041".into(),
            node_http_address: String::new(),
            resource: Resource::new(1024, 1),
            priority: 0,
            token: String::new(),
        }
    }

    fn exited(id: u64, exit_status: i32) -> ContainerStatus {
        ContainerStatus {
            id: container(id).id,
            state: ContainerState::Complete,
            exit_status,
            diagnostics: String::new(),
        }
    }

    fn launches(actions: &[Action]) -> Vec<ExecutorId> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Launch { executor_id, .. } => Some(*executor_id),
                _ => None,
            })
            .collect()
    }

    fn releases(actions: &[Action]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Release(id) => Some(id.id),
                _ => None,
            })
            .collect()
    }

    fn gave_up(actions: &[Action]) -> Option<String> {
        actions.iter().find_map(|a| match a {
            Action::Report(AllocatorEvent::GaveUp { diagnostics }) => Some(diagnostics.clone()),
            _ => None,
        })
    }

    /// A state with `n` executors launched and running in containers 1..=n.
    fn running(n: u32) -> AllocatorState {
        let mut state = AllocatorState::new(None);
        state.set_target(n);
        state.on_allocated((1..=u64::from(n)).map(container).collect(), vec![]);
        for id in 1..=u64::from(n) {
            state.on_launched(container(id).id, Ok(()));
        }
        state
    }

    #[test]
    fn asks_for_the_missing_executors_once() {
        let mut state = AllocatorState::new(None);
        assert_eq!(state.set_target(3), vec![Action::Request(3)]);
        assert_eq!(state.set_target(3), vec![]);
        assert_eq!(state.set_target(5), vec![Action::Request(2)]);
        assert_eq!(state.pending(), 5);
    }

    #[test]
    fn withdraws_asks_it_no_longer_needs_but_keeps_running_executors() {
        let mut state = running(2);
        assert_eq!(state.set_target(4), vec![Action::Request(2)]);
        assert_eq!(state.set_target(1), vec![Action::Cancel(2)]);
        assert_eq!(state.running(), 2);
        assert_eq!(state.pending(), 0);
    }

    #[test]
    fn launches_allocated_containers_numbering_executors_from_one() {
        let mut state = AllocatorState::new(None);
        state.set_target(2);
        let actions = state.on_allocated(vec![container(7), container(8)], vec![]);
        assert_eq!(launches(&actions), vec![1, 2]);
        assert_eq!(state.launching(), 2);
        assert_eq!(state.pending(), 0);
        let actions = state.on_launched(container(7).id, Ok(()));
        assert!(matches!(
            &actions[..],
            [Action::Report(AllocatorEvent::ExecutorLaunched {
                executor_id: 1,
                ..
            })]
        ));
        assert_eq!(state.running(), 1);
    }

    #[test]
    fn releases_surplus_and_containers_beyond_the_target() {
        let mut state = AllocatorState::new(None);
        state.set_target(1);
        let actions = state.on_allocated(vec![container(1), container(2)], vec![container(3)]);
        assert_eq!(launches(&actions), vec![1]);
        assert_eq!(releases(&actions), vec![2, 3]);
        // A target lowered while containers were on their way.
        let mut state = AllocatorState::new(None);
        state.set_target(2);
        state.set_target(0);
        let actions = state.on_allocated(vec![container(4)], vec![]);
        assert_eq!(releases(&actions), vec![4]);
        assert!(launches(&actions).is_empty());
    }

    #[test]
    fn replaces_an_executor_that_exits() {
        let mut state = running(2);
        let actions = state.on_completed(&exited(1, 1));
        assert!(matches!(
            &actions[0],
            Action::Report(AllocatorEvent::ExecutorExited {
                executor_id: 1,
                failure: true,
                ..
            })
        ));
        assert_eq!(actions[1..], [Action::Request(1)]);
        assert_eq!(state.failures(), 1);
        let actions = state.on_allocated(vec![container(9)], vec![]);
        assert_eq!(launches(&actions), vec![3]);
    }

    #[test]
    fn cluster_caused_exits_are_replaced_without_counting_as_failures() {
        let mut state = running(3);
        for (id, status) in [
            (1, exit_status::PREEMPTED),
            (2, exit_status::ABORTED),
            (3, exit_status::SUCCESS),
        ] {
            let actions = state.on_completed(&exited(id, status));
            assert!(actions.contains(&Action::Request(1)), "{actions:?}");
        }
        assert_eq!(state.failures(), 0);
        assert!(is_executor_failure(exit_status::KILLED_EXCEEDED_PMEM));
        assert!(is_executor_failure(137));
    }

    #[test]
    fn ignores_containers_that_held_no_executor() {
        let mut state = running(1);
        assert_eq!(state.on_completed(&exited(99, 1)), vec![]);
        assert_eq!(state.on_launched(container(99).id, Err("x".into())), vec![]);
        assert_eq!(state.failures(), 0);
    }

    #[test]
    fn a_refused_launch_is_released_counted_and_replaced() {
        let mut state = AllocatorState::new(None);
        state.set_target(1);
        state.on_allocated(vec![container(1)], vec![]);
        let actions = state.on_launched(container(1).id, Err("no such file".into()));
        assert_eq!(releases(&actions), vec![1]);
        assert!(actions.iter().any(|a| matches!(
            a,
            Action::Report(AllocatorEvent::ExecutorLaunchFailed { error, .. }) if error == "no such file"
        )));
        assert_eq!(actions.last(), Some(&Action::Request(1)));
        assert_eq!(state.failures(), 1);
    }

    #[test]
    fn an_exit_reported_before_the_start_answer_is_not_launched_later() {
        let mut state = AllocatorState::new(None);
        state.set_target(1);
        state.on_allocated(vec![container(1)], vec![]);
        state.on_completed(&exited(1, 2));
        assert_eq!(state.on_launched(container(1).id, Ok(())), vec![]);
        assert_eq!(state.running(), 0);
    }

    #[test]
    fn gives_up_after_twice_the_target_failures() {
        let mut state = running(2);
        assert_eq!(state.max_failures(), 4);
        for id in [1, 2] {
            assert_eq!(gave_up(&state.on_completed(&exited(id, 3))), None);
        }
        state.on_allocated(vec![container(3), container(4)], vec![]);
        assert_eq!(gave_up(&state.on_completed(&exited(3, 3))), None);
        let diagnostics = gave_up(&state.on_completed(&exited(4, 3))).expect("gave up");
        assert!(
            diagnostics.starts_with("max number of executor failures (4) reached"),
            "{diagnostics}"
        );
        assert!(diagnostics.contains("exit status 3"), "{diagnostics}");
        assert!(state.gave_up());
        // Nothing more is asked for or launched.
        let actions = state.on_allocated(vec![container(500)], vec![]);
        assert_eq!(actions, vec![Action::Release(container(500).id)]);
        assert_eq!(state.set_target(10), vec![]);
    }

    #[test]
    fn tolerates_at_least_three_failures_and_honours_an_override() {
        let mut state = running(1);
        assert_eq!(state.max_failures(), 3);
        state.set_target(0);
        assert_eq!(state.max_failures(), 3);
        assert_eq!(AllocatorState::new(Some(1)).max_failures(), 1);
    }

    #[test]
    fn giving_up_withdraws_pending_asks() {
        let mut state = AllocatorState::new(None);
        state.set_target(3);
        let actions = state.give_up("the RM is gone".into());
        assert_eq!(actions[0], Action::Cancel(3));
        assert_eq!(gave_up(&actions).as_deref(), Some("the RM is gone"));
        assert_eq!(state.give_up("again".into()), vec![]);
    }
}

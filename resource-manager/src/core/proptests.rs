//! Property tests: random sequences of node registrations, heartbeats (completions), losses,
//! submissions, AM launches, asks, cancels, releases, finishes, kills and RM restarts. After
//! every event the core's invariants must hold: no node over-committed, every container in
//! exactly one state and on the node that holds it, every app's counters adding up, no
//! outstanding count below zero, and news delivered exactly once. And the records the core
//! emitted must add up to exactly the state it holds (`Core::image`), so a restart loses nothing.

use proptest::prelude::*;
use spindle_containers::{AttemptId, ContainerId};

use super::testkit::{call, config, heartbeat, info, submission};
use super::{
    AllocateCall, Ask, AttemptState, Core, Effect, FinishCall, Image, RegisterCall,
    ReportedContainer, ReportedState,
};

#[derive(Debug, Clone)]
enum Op {
    /// A node (re-)registers; after a restart it reports the recovered containers that `mask`
    /// picks as still running.
    RegisterNode(u8, u8),
    /// A node reports some of its containers: (which, completed?, exit status).
    Heartbeat(u8, Vec<(u16, bool, i32)>),
    Tick(u32),
    Submit(u16, bool),
    LaunchResult(u8, bool),
    RegisterAm(u8),
    Allocate {
        app: u8,
        asks: Vec<(i32, i64, i32)>,
        cancels: Vec<(i32, i64, i32)>,
        releases: Vec<u16>,
    },
    Finish(u8, i32),
    Kill(u8),
    TakeNews(u8),
    /// The RM restarts from what it recorded.
    Restart,
}

/// Mostly valid asks (so that containers get allocated), sometimes invalid ones.
fn asks() -> impl Strategy<Value = Vec<(i32, i64, i32)>> {
    let memory_mb = prop_oneof![10 => 1..3000i64, 1 => -100..10_000i64];
    let n = prop_oneof![10 => 0..5i32, 1 => Just(-1)];
    prop::collection::vec((0..3i32, memory_mb, n), 0..3)
}

fn op() -> impl Strategy<Value = Op> {
    let tick = prop_oneof![9 => 0..5_000u32, 1 => 0..150_000u32];
    let reports = prop::collection::vec((any::<u16>(), any::<bool>(), -110..3i32), 0..4);
    prop_oneof![
        2 => (0..5u8, any::<u8>()).prop_map(|(n, mask)| Op::RegisterNode(n, mask)),
        4 => (0..5u8, reports).prop_map(|(n, r)| Op::Heartbeat(n, r)),
        1 => tick.prop_map(Op::Tick),
        2 => (1..5000u16, prop::bool::weighted(0.1)).prop_map(|(m, u)| Op::Submit(m, u)),
        3 => (any::<u8>(), prop::bool::weighted(0.8)).prop_map(|(a, ok)| Op::LaunchResult(a, ok)),
        3 => any::<u8>().prop_map(Op::RegisterAm),
        6 => (any::<u8>(), asks(), asks(), prop::collection::vec(any::<u16>(), 0..2))
            .prop_map(|(app, asks, cancels, releases)| Op::Allocate { app, asks, cancels, releases }),
        1 => (any::<u8>(), 0..4i32).prop_map(|(a, s)| Op::Finish(a, s)),
        1 => any::<u8>().prop_map(Op::Kill),
        2 => any::<u8>().prop_map(Op::TakeNews),
        1 => Just(Op::Restart),
    ]
}

/// The current attempt of the `pick`-th application, if there is any application.
fn attempt_of(core: &Core, pick: u8) -> Option<AttemptId> {
    let apps: Vec<_> = core.apps().collect();
    let app = apps.get(pick as usize % apps.len().max(1))?;
    Some(app.current_attempt()?.id)
}

fn to_asks(raw: &[(i32, i64, i32)]) -> Vec<Ask> {
    raw.iter()
        .map(|(priority, memory_mb, n)| Ask {
            priority: *priority,
            memory_mb: *memory_mb,
            vcores: 1,
            num_containers: *n,
            nodes: vec![],
            relax_locality: true,
        })
        .collect()
}

fn ok_or_none(result: Result<Vec<Effect>, super::CoreError>) -> Vec<Effect> {
    result.unwrap_or_default()
}

/// Applies `op`; returns the effects it had.
fn apply(core: &mut Core, now: u64, op: Op) -> Vec<Effect> {
    match op {
        Op::RegisterNode(n, mask) => {
            // Each node always offers the same capability, so "never over-committed" is exact.
            let id = format!("node{n}:8041");
            let node: spindle_containers::NodeId = id.parse().unwrap();
            let mut still_running: Vec<ContainerId> = core
                .nodes()
                .lookup(&node)
                .map(|idx| core.node(idx).live.iter().take(1).copied().collect())
                .unwrap_or_default();
            let recovered = core.awaiting().filter(|r| r.node == node).map(|r| r.id);
            still_running.extend(
                recovered
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (i % 8)) != 0)
                    .map(|(_, id)| id),
            );
            let running: Vec<ReportedContainer> = still_running
                .into_iter()
                .map(|id| ReportedContainer {
                    id,
                    state: ReportedState::Running,
                    exit_status: 0,
                    diagnostics: String::new(),
                })
                .collect();
            core.on_node_register(now, info(&id, 2048 * (u64::from(n) + 1)), running)
        }
        Op::Heartbeat(n, picks) => {
            let id = format!("node{n}:8041");
            let Some(idx) = core.nodes().lookup(&id.parse().unwrap()) else {
                return vec![];
            };
            let mut live: Vec<ContainerId> = core.node(idx).live.iter().copied().collect();
            live.sort();
            let reports = picks
                .iter()
                .filter(|_| !live.is_empty())
                .map(|(pick, done, exit)| ReportedContainer {
                    id: live[*pick as usize % live.len()],
                    state: if *done {
                        ReportedState::Complete
                    } else {
                        ReportedState::Running
                    },
                    exit_status: *exit,
                    diagnostics: String::new(),
                })
                .collect();
            core.on_node_heartbeat(now, heartbeat(&id, reports))
                .map(|outcome| outcome.effects)
                .unwrap_or_default()
        }
        Op::Tick(_) => core.on_tick(now),
        Op::Submit(am_mb, unmanaged) => {
            let (id, mut fx) = core.new_application();
            let mut s = submission(id, i64::from(am_mb));
            s.unmanaged = unmanaged;
            let (_, more) = core
                .submit(now, s)
                .expect("a fresh id within limits is accepted");
            fx.extend(more);
            fx
        }
        Op::LaunchResult(pick, ok) => {
            let Some(attempt) = attempt_of(core, pick) else {
                return vec![];
            };
            let a = core
                .app(attempt.application)
                .and_then(|a| a.attempt(attempt));
            let Some(container) = a
                .filter(|a| a.state == AttemptState::Allocated)
                .and_then(|a| a.am_container)
            else {
                return vec![];
            };
            if ok {
                core.on_am_launched(now, container)
            } else {
                core.on_am_launch_failed(now, container, "refused")
            }
        }
        Op::RegisterAm(pick) => {
            let Some(attempt) = attempt_of(core, pick) else {
                return vec![];
            };
            ok_or_none(core.on_register_am(
                now,
                RegisterCall {
                    attempt,
                    host: "h".into(),
                    rpc_port: 1,
                    tracking_url: String::new(),
                },
            ))
        }
        Op::Allocate {
            app,
            asks,
            cancels,
            releases,
        } => {
            let Some(attempt) = attempt_of(core, app) else {
                return vec![];
            };
            let held: Vec<ContainerId> = core
                .app(attempt.application)
                .map(|a| a.containers.clone())
                .unwrap_or_default();
            let releases = releases
                .iter()
                .filter(|_| !held.is_empty())
                .map(|pick| held[*pick as usize % held.len()])
                .collect();
            let c = AllocateCall {
                asks: to_asks(&asks),
                cancels: to_asks(&cancels),
                releases,
                ..call(attempt, vec![])
            };
            ok_or_none(core.on_allocate(now, c))
        }
        Op::Finish(pick, status) => {
            let Some(attempt) = attempt_of(core, pick) else {
                return vec![];
            };
            ok_or_none(core.on_finish_am(
                now,
                FinishCall {
                    attempt,
                    final_status: status,
                    diagnostics: String::new(),
                    tracking_url: String::new(),
                },
            ))
        }
        Op::Kill(pick) => {
            let Some(attempt) = attempt_of(core, pick) else {
                return vec![];
            };
            core.kill(now, attempt.application, "").expect("known app")
        }
        Op::TakeNews(pick) => {
            let Some(attempt) = attempt_of(core, pick) else {
                return vec![];
            };
            core.take_news(now, attempt);
            let again = core.take_news(now, attempt).expect("known attempt");
            assert!(
                again.allocated.is_empty() && again.completed.is_empty(),
                "news twice"
            );
            vec![]
        }
        Op::Restart => unreachable!("restarts replace the core; see the test"),
    }
}

fn persist(store: &mut Image, effects: Vec<Effect>) {
    for effect in effects {
        if let Effect::Persist(record) = effect {
            store.apply(record);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn invariants_hold_and_nothing_is_lost_under_random_events(
        ops in prop::collection::vec(op(), 1..150)
    ) {
        let mut store = Image::default();
        let (mut core, fx) = Core::recover(config(), 0, vec![]);
        persist(&mut store, fx);
        let mut now = 0u64;
        for op in ops {
            now += match op {
                Op::Tick(advance) => u64::from(advance),
                _ => 10,
            };
            let shown = format!("{op:?}");
            let fx = match op {
                Op::Restart => {
                    let (recovered, fx) =
                        Core::recover(config(), now, store.clone().into_records());
                    core = recovered;
                    fx
                }
                op => apply(&mut core, now, op),
            };
            persist(&mut store, fx);
            if let Err(broken) = core.check_invariants() {
                prop_assert!(false, "after {shown}: {broken}");
            }
            prop_assert_eq!(&core.image(), &store, "after {}: the store is not the state", shown);
        }
    }
}

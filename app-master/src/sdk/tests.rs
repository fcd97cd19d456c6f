//! The SDK end to end on one machine: a real driver endpoint, real executors on loopback gRPC,
//! real tasks. No cluster is needed; timeouts here are only hang guards.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use spindle_protocol::driver_client::DriverClient;
use spindle_protocol::{
    DriverMessage, ExecutorMessage, ExecutorTarget, RegisterExecutor, driver_message,
    executor_message,
};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;

use super::*;

/// Generous: a loaded 2-core machine must never trip it; a hang must.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn guarded<F: Future>(rt: &Runtime, what: &str, future: F) -> F::Output {
    rt.block_on(async {
        tokio::time::timeout(HANG_GUARD, future)
            .await
            .unwrap_or_else(|_| panic!("hang guard: {what} did not finish"))
    })
}

fn config(max_task_failures: u32) -> DriverConfig {
    DriverConfig {
        host: "127.0.0.1".into(),
        max_task_failures,
        app_id: Some("app-test".into()),
        ..DriverConfig::default()
    }
}

fn executor_args(url: &str, id: &str, cores: u32) -> ExecutorArgs {
    ExecutorArgs {
        driver_url: url.to_string(),
        executor_id: id.to_string(),
        hostname: "localhost".into(),
        cores,
        app_id: "app-test".into(),
        container_id: None,
    }
}

type ExecutorTask = tokio::task::JoinHandle<Result<(), ExecutorError>>;

fn start_executors(
    rt: &Runtime,
    app: &App,
    url: &str,
    ids: &[&str],
    cores: u32,
) -> Vec<ExecutorTask> {
    ids.iter()
        .map(|id| {
            rt.spawn(run_executor(
                app.tasks().clone(),
                executor_args(url, id, cores),
            ))
        })
        .collect()
}

/// A protocol-level executor the test drives by hand, to lose a session at a chosen moment.
struct HandDrivenExecutor {
    /// Held so the session stays open until the test drops it.
    _outbox: mpsc::UnboundedSender<ExecutorMessage>,
    inbound: Streaming<DriverMessage>,
}

impl HandDrivenExecutor {
    async fn register(url: &str, id: &str, cores: u32, app_id: &str) -> HandDrivenExecutor {
        let (outbox, outbound) = mpsc::unbounded_channel();
        outbox
            .send(ExecutorMessage {
                message: Some(executor_message::Message::Register(RegisterExecutor {
                    executor_id: id.into(),
                    hostname: "hand".into(),
                    cores,
                    container_id: String::new(),
                    app_id: app_id.into(),
                })),
            })
            .unwrap();
        let mut client = DriverClient::connect(url.to_string()).await.unwrap();
        let inbound = client
            .session(UnboundedReceiverStream::new(outbound))
            .await
            .unwrap()
            .into_inner();
        HandDrivenExecutor {
            _outbox: outbox,
            inbound,
        }
    }

    async fn next(&mut self) -> driver_message::Message {
        self.inbound
            .message()
            .await
            .unwrap()
            .unwrap()
            .message
            .unwrap()
    }
}

/// Blocks until `n` callers are inside at once (or gives up after the hang guard): proves that
/// `n` tasks ran concurrently.
struct Rendezvous {
    inside: Mutex<usize>,
    all_in: Condvar,
    n: usize,
}

impl Rendezvous {
    fn new(n: usize) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            inside: Mutex::new(0),
            all_in: Condvar::new(),
            n,
        })
    }

    fn meet(&self) -> bool {
        let mut inside = self.inside.lock().unwrap();
        *inside += 1;
        self.all_in.notify_all();
        let (inside, timeout) = self
            .all_in
            .wait_timeout_while(inside, HANG_GUARD, |inside| *inside < self.n)
            .unwrap();
        drop(inside);
        !timeout.timed_out()
    }
}

#[test]
fn a_job_across_two_executors_returns_results_in_input_order() {
    let rt = runtime();
    let meeting = Rendezvous::new(4);
    let app = {
        let meeting = meeting.clone();
        App::new("order")
            .task("square", |x: u64| -> Result<u64, String> { Ok(x * x) })
            .task("meet", move |_: u8| -> Result<bool, String> {
                Ok(meeting.meet())
            })
            .driver(|_| Ok(()))
    };
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let executors = start_executors(&rt, &app, endpoint.url(), &["1", "2"], 2);
    let ctx = endpoint.context();
    ctx.wait_for_executors(2, HANG_GUARD).unwrap();
    let ids: Vec<String> = ctx.executors().into_iter().map(|e| e.executor_id).collect();
    assert_eq!(ids.len(), 2);

    let inputs: Vec<u64> = (0..50).collect();
    let squares: Vec<u64> = guarded(&rt, "square job", ctx.run_async("square", inputs)).unwrap();
    assert_eq!(squares, (0..50).map(|x| x * x).collect::<Vec<u64>>());

    // Four tasks inside at once need both executors: each runs at most its 2 cores.
    let met: Vec<bool> = guarded(&rt, "meet job", ctx.run_async("meet", vec![0u8; 4])).unwrap();
    assert_eq!(
        met,
        vec![true; 4],
        "4 tasks must run at once across 2×2 cores"
    );

    ctx.shutdown();
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
    for executor in executors {
        let outcome = guarded(&rt, "executor exit", executor).unwrap();
        assert!(
            outcome.is_ok(),
            "executor should exit cleanly on Shutdown: {outcome:?}"
        );
    }
}

#[test]
fn a_task_that_always_panics_fails_the_job_with_its_panic_message() {
    let rt = runtime();
    let attempts = Arc::new(AtomicUsize::new(0));
    let app = {
        let attempts = attempts.clone();
        App::new("panics")
            .task("check", move |x: u32| -> Result<u32, String> {
                if x == 3 {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    panic!("cannot handle input {x}");
                }
                Ok(x)
            })
            .driver(|_| Ok(()))
    };
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(3), app.tasks().clone()),
    )
    .unwrap();
    let _executors = start_executors(&rt, &app, endpoint.url(), &["1", "2"], 1);
    let ctx = endpoint.context();
    let err = guarded(
        &rt,
        "job",
        ctx.run_async::<u32, u32>("check", (0..6).collect()),
    )
    .unwrap_err();
    let JobError::TaskFailed(failure) = &err else {
        panic!("expected a task failure, got {err:?}");
    };
    assert_eq!(failure.index, 3);
    assert_eq!(failure.failures, 3);
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "one run per allowed failure"
    );
    let text = err.to_string();
    assert!(
        text.contains("task 'check' panicked: cannot handle input 3"),
        "{text}"
    );
    assert!(text.contains("failed 3 time(s)"), "{text}");
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

#[test]
fn a_task_that_panics_once_is_retried_elsewhere_and_the_job_succeeds() {
    let rt = runtime();
    let panicked = Arc::new(AtomicBool::new(false));
    let app = {
        let panicked = panicked.clone();
        App::new("flaky")
            .task("inc", move |x: i32| -> Result<i32, String> {
                if x == 5 && !panicked.swap(true, Ordering::SeqCst) {
                    panic!("transient failure on {x}");
                }
                Ok(x + 1)
            })
            .driver(|_| Ok(()))
    };
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let _executors = start_executors(&rt, &app, endpoint.url(), &["1", "2"], 2);
    let ctx = endpoint.context();
    let out: Vec<i32> = guarded(&rt, "job", ctx.run_async("inc", (0..10).collect())).unwrap();
    assert_eq!(out, (1..11).collect::<Vec<i32>>());
    assert!(
        panicked.load(Ordering::SeqCst),
        "the panic must have happened"
    );
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

#[test]
fn tasks_of_an_executor_whose_session_drops_rerun_elsewhere() {
    let rt = runtime();
    let app = App::new("lost")
        .task("neg", |x: i64| -> Result<i64, String> { Ok(-x) })
        .driver(|_| Ok(()));
    // One allowed failure: if losing the executor counted as a failure, the job would fail.
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(1), app.tasks().clone()),
    )
    .unwrap();
    let ctx = endpoint.context();
    let url = endpoint.url().to_string();

    let mut doomed = guarded(
        &rt,
        "register",
        HandDrivenExecutor::register(&url, "doomed", 2, "app-test"),
    );
    assert!(matches!(
        guarded(&rt, "registered", doomed.next()),
        driver_message::Message::Registered(_)
    ));
    let job = {
        let ctx = ctx.clone();
        rt.spawn(async move { ctx.run_async::<i64, i64>("neg", (0..8).collect()).await })
    };
    // The doomed executor holds two tasks and never answers them.
    for _ in 0..2 {
        let got = guarded(&rt, "launch", doomed.next());
        assert!(
            matches!(got, driver_message::Message::LaunchTask(_)),
            "{got:?}"
        );
    }
    let _executors = start_executors(&rt, &app, &url, &["survivor"], 2);
    ctx.wait_for_executors(2, HANG_GUARD).unwrap();
    drop(doomed);

    let out = guarded(&rt, "job", job).unwrap().unwrap();
    assert_eq!(out, (0..8).map(|x| -x).collect::<Vec<i64>>());
    let ids: Vec<String> = ctx.executors().into_iter().map(|e| e.executor_id).collect();
    assert_eq!(ids, vec!["survivor".to_string()]);
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

#[test]
fn an_executor_whose_container_ended_is_dropped_though_its_session_stays_open() {
    let rt = runtime();
    let app = App::new("cut-off")
        .task("neg", |x: i64| -> Result<i64, String> { Ok(-x) })
        .driver(|_| Ok(()));
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(1), app.tasks().clone()),
    )
    .unwrap();
    let ctx = endpoint.context();
    let url = endpoint.url().to_string();

    // Behind a partition, or on a node whose manager died: its session stays open, silent.
    let mut cut_off = guarded(
        &rt,
        "register",
        HandDrivenExecutor::register(&url, "cut-off", 2, "app-test"),
    );
    assert!(matches!(
        guarded(&rt, "registered", cut_off.next()),
        driver_message::Message::Registered(_)
    ));
    let job = {
        let ctx = ctx.clone();
        rt.spawn(async move { ctx.run_async::<i64, i64>("neg", (0..8).collect()).await })
    };
    for _ in 0..2 {
        let got = guarded(&rt, "launch", cut_off.next());
        assert!(
            matches!(got, driver_message::Message::LaunchTask(_)),
            "{got:?}"
        );
    }
    let _executors = start_executors(&rt, &app, &url, &["survivor"], 2);
    ctx.wait_for_executors(2, HANG_GUARD).unwrap();
    ctx.executor_container_ended("cut-off", "exit status -100 (ABORTED)".into());

    let out = guarded(&rt, "job", job).unwrap().unwrap();
    assert_eq!(out, (0..8).map(|x| -x).collect::<Vec<i64>>());
    let ids: Vec<String> = ctx.executors().into_iter().map(|e| e.executor_id).collect();
    assert_eq!(ids, vec!["survivor".to_string()]);
    // Told to shut down with the others when the driver ends.
    let shutdown = rt.spawn(endpoint.shutdown());
    let last = guarded(&rt, "shutdown message", cut_off.next());
    assert!(
        matches!(last, driver_message::Message::Shutdown(_)),
        "{last:?}"
    );
    drop(cut_off);
    guarded(&rt, "endpoint shutdown", shutdown).unwrap();
}

#[test]
fn a_duplicate_or_foreign_executor_is_refused() {
    let rt = runtime();
    let app = App::new("dup")
        .task("id", |x: u8| -> Result<u8, String> { Ok(x) })
        .driver(|_| Ok(()));
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let url = endpoint.url().to_string();
    let _first = start_executors(&rt, &app, &url, &["7"], 1);
    endpoint
        .context()
        .wait_for_executors(1, HANG_GUARD)
        .unwrap();

    let second = guarded(
        &rt,
        "duplicate",
        run_executor(app.tasks().clone(), executor_args(&url, "7", 1)),
    );
    let Err(ExecutorError::Refused { reason, .. }) = &second else {
        panic!("expected a refusal, got {second:?}");
    };
    assert!(reason.contains("duplicate executor id \"7\""), "{reason}");
    assert_eq!(second.as_ref().unwrap_err().exit_code(), 1);

    let mut foreign = executor_args(&url, "8", 1);
    foreign.app_id = "some-other-app".into();
    let refused = guarded(&rt, "foreign", run_executor(app.tasks().clone(), foreign));
    let text = refused.unwrap_err().to_string();
    assert!(
        text.contains("belongs to app_id=\"some-other-app\""),
        "{text}"
    );
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

#[test]
fn unknown_tasks_timeouts_and_executor_requests_are_reported_without_executors() {
    let rt = runtime();
    let app = App::new("empty")
        .task("known", |x: u8| -> Result<u8, String> { Ok(x) })
        .driver(|_| Ok(()));
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let ctx = endpoint.context();

    let err = ctx.run::<u8, u8>("unknown", vec![1]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no task named 'unknown' is registered; registered tasks: known"
    );
    let none: Vec<u8> = ctx.run("known", Vec::<u8>::new()).unwrap();
    assert!(none.is_empty());

    let waited = ctx
        .wait_for_executors(1, Duration::from_millis(20))
        .unwrap_err();
    assert_eq!(
        waited,
        WaitError::Timeout {
            wanted: 1,
            registered: 0,
            waited: Duration::from_millis(20)
        }
    );

    let target = endpoint.executor_target();
    assert_eq!(*target.borrow(), None);
    ctx.request_total_executors(6);
    assert_eq!(*target.borrow(), Some(6));
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

#[test]
fn executors_pass_over_the_executor_target_a_watching_am_is_sent() {
    let rt = runtime();
    let app = App::new("target")
        .task("square", |x: u64| -> Result<u64, String> { Ok(x * x) })
        .driver(|_| Ok(()));
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let ctx = endpoint.context();
    // Every session hears the target before its first message is read, executors too.
    ctx.request_total_executors(2);

    let url = endpoint.url().to_string();
    let mut hand = guarded(
        &rt,
        "register",
        HandDrivenExecutor::register(&url, "h", 1, "app-test"),
    );
    assert!(matches!(
        guarded(&rt, "target", hand.next()),
        driver_message::Message::ExecutorTarget(ExecutorTarget { total: 2 })
    ));
    assert!(matches!(
        guarded(&rt, "registered", hand.next()),
        driver_message::Message::Registered(_)
    ));

    let executors = start_executors(&rt, &app, endpoint.url(), &["1"], 2);
    ctx.wait_for_executors(2, HANG_GUARD).unwrap();
    // A registered session is an executor: later totals are not its business.
    ctx.request_total_executors(4);
    ctx.shutdown();
    assert!(matches!(
        guarded(&rt, "shutdown", hand.next()),
        driver_message::Message::Shutdown(_)
    ));
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
    for executor in executors {
        let outcome = guarded(&rt, "executor exit", executor).unwrap();
        assert!(
            outcome.is_ok(),
            "an executor told the target registers and exits cleanly: {outcome:?}"
        );
    }
}

#[test]
fn shutdown_fails_waiting_jobs_and_releases_executors() {
    let rt = runtime();
    let app = App::new("stop")
        .task("id", |x: u8| -> Result<u8, String> { Ok(x) })
        .driver(|_| Ok(()));
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(config(4), app.tasks().clone()),
    )
    .unwrap();
    let ctx = endpoint.context();
    // No executor: this job can only end by the shutdown.
    let waiting = {
        let ctx = ctx.clone();
        rt.spawn(async move { ctx.run_async::<u8, u8>("id", vec![1, 2]).await })
    };
    let executors = {
        let url = endpoint.url().to_string();
        let mut hand = guarded(
            &rt,
            "register",
            HandDrivenExecutor::register(&url, "h", 1, "app-test"),
        );
        assert!(matches!(
            guarded(&rt, "registered", hand.next()),
            driver_message::Message::Registered(_)
        ));
        assert!(matches!(
            guarded(&rt, "launch", hand.next()),
            driver_message::Message::LaunchTask(_)
        ));
        ctx.shutdown();
        assert!(matches!(
            guarded(&rt, "shutdown", hand.next()),
            driver_message::Message::Shutdown(_)
        ));
        hand
    };
    let err = guarded(&rt, "waiting job", waiting).unwrap().unwrap_err();
    assert_eq!(
        err,
        JobError::DriverStopped {
            task_name: "id".into()
        }
    );
    let late = ctx.run::<u8, u8>("id", vec![1]).unwrap_err();
    assert_eq!(
        late,
        JobError::DriverStopped {
            task_name: "id".into()
        }
    );
    drop(executors);
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

/// Counts the points of a deterministic pseudo-random sample that fall inside the unit circle.
fn sample_inside(seed: u64, points: u32) -> u32 {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..points)
        .filter(|_| {
            let (x, y) = (next() * 2.0 - 1.0, next() * 2.0 - 1.0);
            x * x + y * y <= 1.0
        })
        .count() as u32
}

fn pi_app(estimate: Arc<Mutex<Option<f64>>>) -> App {
    App::new("pi")
        .task(
            "sample",
            |(seed, points): (u64, u32)| -> Result<u32, String> { Ok(sample_inside(seed, points)) },
        )
        .driver(move |ctx| {
            let slices: Vec<(u64, u32)> = (0..16).map(|seed| (seed, 20_000)).collect();
            let inside: Vec<u32> = ctx.run("sample", slices).map_err(|e| e.to_string())?;
            let total: u32 = inside.iter().sum();
            *estimate.lock().unwrap() = Some(4.0 * f64::from(total) / (16.0 * 20_000.0));
            Ok(())
        })
}

#[test]
fn local_4_runs_a_pi_job() {
    let estimate = Arc::new(Mutex::new(None));
    let master: LocalMaster = "local[4]".parse().unwrap();
    run_local(
        &pi_app(estimate.clone()),
        master.threads,
        master.max_failures,
    )
    .unwrap();
    let pi = estimate
        .lock()
        .unwrap()
        .expect("the driver stored its estimate");
    assert!((pi - std::f64::consts::PI).abs() < 0.05, "pi estimate {pi}");
}

#[test]
fn local_mode_reports_the_drivers_error_and_panic() {
    let failing = App::new("f").driver(|_| Err("no input file".to_string()));
    assert_eq!(run_local(&failing, 2, 1), Err("no input file".to_string()));
    let panicking = App::new("p").driver(|_| panic!("driver bug"));
    assert_eq!(
        run_local(&panicking, 1, 1),
        Err("the driver panicked: driver bug".to_string())
    );
}

#[test]
fn local_n_f_retries_a_flaky_task_up_to_f_times() {
    let failures_left = Arc::new(Mutex::new(HashMap::from([(2u32, 2usize)])));
    let app = {
        let failures_left = failures_left.clone();
        App::new("retry")
            .task("flaky", move |x: u32| -> Result<u32, String> {
                let mut left = failures_left.lock().unwrap();
                match left.get_mut(&x) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        Err(format!("input {x} not ready"))
                    }
                    _ => Ok(x * 10),
                }
            })
            .driver(|ctx| {
                let out: Vec<u32> = ctx.run("flaky", vec![1, 2, 3]).map_err(|e| e.to_string())?;
                if out == vec![10, 20, 30] {
                    Ok(())
                } else {
                    Err(format!("wrong outputs {out:?}"))
                }
            })
    };
    // Two failures then success: local[2,3] allows it, local[2] (one attempt) does not.
    run_local(&app, 2, 3).unwrap();
    failures_left.lock().unwrap().insert(2, 2);
    let err = run_local(&app, 2, 1).unwrap_err();
    assert!(err.contains("input 2 not ready"), "{err}");
    assert!(err.contains("failed 1 time(s)"), "{err}");
}

#[test]
fn cluster_style_driver_thread_waits_for_resume_then_runs_the_job() {
    let rt = runtime();
    let result = Arc::new(Mutex::new(None));
    let app = {
        let result = result.clone();
        App::new("cluster")
            .task("len", |s: String| -> Result<usize, String> { Ok(s.len()) })
            .driver(move |ctx| {
                ctx.request_total_executors(1);
                let lens: Vec<usize> = ctx
                    .run("len", vec!["a".to_string(), "bbb".to_string()])
                    .map_err(|e| e.to_string())?;
                *result.lock().unwrap() = Some(lens);
                Ok(())
            })
    };
    let (promise, waiter) = context_promise();
    let driver = spawn_driver(&app, config(4), rt.handle().clone(), promise).unwrap();
    let (ready, resume) = guarded(&rt, "context", waiter.wait(HANG_GUARD)).unwrap();
    assert!(
        ready.driver_url.starts_with("http://127.0.0.1:"),
        "{}",
        ready.driver_url
    );
    let mut target = ready.executor_target.clone();
    assert_eq!(*target.borrow(), None, "the driver is paused until resumed");
    resume.resume();
    guarded(&rt, "executor request", target.wait_for(|t| t.is_some())).unwrap();
    let executor = start_executors(&rt, &app, &ready.driver_url, &["1"], 1).remove(0);
    guarded(&rt, "driver", driver.wait()).unwrap();
    assert_eq!(*result.lock().unwrap(), Some(vec![1, 3]));
    assert!(guarded(&rt, "executor exit", executor).unwrap().is_ok());
}

#[test]
fn the_driver_sees_its_program_arguments_and_executors_dial_the_advertised_host() {
    let seen = Arc::new(Mutex::new(None));
    let app = {
        let seen = seen.clone();
        App::new("args").driver(move |ctx| {
            *seen.lock().unwrap() = Some((ctx.args().to_vec(), ctx.driver_url().to_string()));
            Ok(())
        })
    };
    let rt = runtime();
    let advertised = DriverConfig {
        host: "127.0.0.1".into(),
        advertise_host: Some("localhost".into()),
        args: vec!["800000".into(), "--verbose".into()],
        ..config(4)
    };
    let (promise, waiter) = context_promise();
    let driver = spawn_driver(&app, advertised, rt.handle().clone(), promise).unwrap();
    let (ready, resume) = guarded(&rt, "context", waiter.wait(HANG_GUARD)).unwrap();
    assert!(
        ready.driver_url.starts_with("http://localhost:"),
        "{}",
        ready.driver_url
    );
    resume.resume();
    guarded(&rt, "driver", driver.wait()).unwrap();
    let (args, url) = seen.lock().unwrap().take().expect("the driver ran");
    assert_eq!(args, ["800000", "--verbose"]);
    assert_eq!(url, ready.driver_url);

    let mut with_empty_advertise = DriverConfig {
        advertise_host: Some(String::new()),
        ..config(4)
    };
    let err = guarded(
        &rt,
        "start",
        DriverEndpoint::start(with_empty_advertise.clone(), TaskRegistry::default()),
    )
    .err()
    .expect("an empty advertise_host is refused");
    assert!(err.to_string().contains("advertise_host"), "{err}");
    with_empty_advertise.advertise_host = None;
    let endpoint = guarded(
        &rt,
        "start",
        DriverEndpoint::start(with_empty_advertise, TaskRegistry::default()),
    )
    .unwrap();
    assert!(endpoint.url().starts_with("http://127.0.0.1:"));
    guarded(&rt, "endpoint shutdown", endpoint.shutdown());
}

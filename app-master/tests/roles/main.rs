//! The Spark-style AM roles end to end: a real resource manager and node manager on loopback,
//! and this test program itself staged as the application, so that the node manager starts it
//! as the AM (`SPINDLE_ROLE=am`) and as executors (`executor --driver-url …`). The test has no
//! harness: `main` dispatches those roles first, and otherwise runs the scenarios in order on
//! one cluster (a name given on the command line runs only the scenarios containing it).

mod cluster;

use std::process::ExitCode;
use std::time::Duration;

use spindle_app_master::am::app_config::{ROLE_AM, ROLE_ENV};
use spindle_app_master::run_application_master;
use spindle_app_master::sdk::{
    App, DriverConfig, DriverEndpoint, context_promise, executor_main, spawn_driver,
};
use spindle_protocol::{ApplicationState, FinalStatus};
use tokio::runtime::Handle;

use cluster::{Cluster, MAXIMUM_MB, guarded};

/// The application every scenario runs; its first argument picks what the driver does.
fn app() -> App {
    App::new("roles-test")
        .task("square", |x: u64| -> Result<u64, String> { Ok(x * x) })
        .driver(|ctx| {
            let args = ctx.args();
            let number = |i: usize| -> Result<u64, String> {
                let text = args.get(i).ok_or(format!("argument {i} is missing"))?;
                text.parse()
                    .map_err(|e| format!("argument {i}={text:?}: {e}"))
            };
            match args.first().map(String::as_str) {
                Some("sum") => {
                    let n = number(1)?;
                    let squares: Vec<u64> = ctx
                        .run("square", (1..=n).collect())
                        .map_err(|e| e.to_string())?;
                    let sum: u64 = squares.iter().sum();
                    if sum != n * (n + 1) * (2 * n + 1) / 6 {
                        return Err(format!("wrong sum of squares {sum}"));
                    }
                    println!("sum of squares 1..={n} = {sum}");
                    Ok(())
                }
                Some("grow") => {
                    let total = number(1)?;
                    ctx.request_total_executors(total as u32);
                    ctx.wait_for_executors(total as usize, Duration::from_secs(90))
                        .map_err(|e| e.to_string())?;
                    println!("{total} executors registered");
                    Ok(())
                }
                Some("fail") => Err("the driver was asked to fail".to_string()),
                other => Err(format!("unknown driver command {other:?}")),
            }
        })
}

fn main() -> ExitCode {
    if std::env::var(ROLE_ENV).as_deref() == Ok(ROLE_AM) {
        init_tracing();
        return exit_code(run_application_master(&app()));
    }
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("executor") {
        init_tracing();
        return match executor_main(&app(), &argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("executor: {e}");
                exit_code(e.exit_code())
            }
        };
    }
    let filter = argv.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    run_scenarios(filter.as_deref());
    ExitCode::SUCCESS
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run_scenarios(filter: Option<&str>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cluster = Cluster::start().await;
        let selected = |name: &str| filter.is_none_or(|f| name.contains(f));
        macro_rules! scenario {
            ($name:ident) => {
                if selected(stringify!($name)) {
                    eprintln!("scenario {} ...", stringify!($name));
                    $name(&cluster).await;
                    eprintln!("scenario {} ok", stringify!($name));
                }
            };
        }
        scenario!(cluster_mode_runs_the_driver_with_its_arguments_and_succeeds);
        scenario!(cluster_mode_grows_to_the_executors_the_driver_requests);
        scenario!(cluster_mode_finishes_failed_with_the_drivers_error);
        scenario!(executors_above_the_maximum_allocation_fail_the_application);
        scenario!(a_bad_app_config_fails_the_application_naming_the_field);
        scenario!(client_mode_launches_executors_for_a_driver_in_this_process);
        scenario!(client_mode_grows_to_the_executors_the_driver_requests);
        scenario!(client_mode_fails_when_the_driver_is_lost);
        cluster.shutdown().await;
    });
}

/// The final report, which must be in `state` with `final_status`; the containers' logs are
/// printed first when it is not.
async fn expect_final(
    cluster: &Cluster,
    app: &str,
    state: ApplicationState,
    final_status: FinalStatus,
) -> spindle_protocol::ApplicationReport {
    let report = cluster.final_report(app).await;
    if report.state != state as i32 || report.final_status != final_status as i32 {
        cluster.print_logs(app);
        panic!(
            "{app}: expected {state:?}/{final_status:?}, got {:?}/{:?}: {}",
            ApplicationState::try_from(report.state),
            FinalStatus::try_from(report.final_status),
            report.diagnostics
        );
    }
    report
}

fn logs_contain(cluster: &Cluster, app: &str, text: &str) -> bool {
    cluster.logs(app).iter().any(|(_, log)| log.contains(text))
}

async fn cluster_mode_runs_the_driver_with_its_arguments_and_succeeds(cluster: &Cluster) {
    let app = cluster
        .submit(
            "sum",
            &["sum", "30"],
            r#"{"num_executors":2,"executor_memory_mb":256}"#,
        )
        .await;
    let report = expect_final(
        cluster,
        &app,
        ApplicationState::Finished,
        FinalStatus::Succeeded,
    )
    .await;
    assert!(
        logs_contain(cluster, &app, "sum of squares 1..=30 = 9455"),
        "the driver printed its result"
    );
    // Registered at the driver's address, which is also the tracking URL.
    let attempt = &report.attempts[0];
    assert!(
        report.tracking_url.starts_with("http://127.0.0.1:"),
        "{}",
        report.tracking_url
    );
    assert_eq!(
        report.tracking_url,
        format!("http://127.0.0.1:{}", attempt.rpc_port)
    );
    // The AM and its two executors.
    assert!(report.containers.len() >= 3, "{:?}", report.containers);
    assert!(logs_contain(cluster, &app, "registered with the driver"));
}

async fn cluster_mode_grows_to_the_executors_the_driver_requests(cluster: &Cluster) {
    let app = cluster
        .submit(
            "grow",
            &["grow", "3"],
            r#"{"num_executors":1,"executor_memory_mb":256}"#,
        )
        .await;
    let report = expect_final(
        cluster,
        &app,
        ApplicationState::Finished,
        FinalStatus::Succeeded,
    )
    .await;
    assert!(logs_contain(cluster, &app, "3 executors registered"));
    assert!(report.containers.len() >= 4, "{:?}", report.containers);
}

async fn cluster_mode_finishes_failed_with_the_drivers_error(cluster: &Cluster) {
    let app = cluster.submit("fail", &["fail"], "{}").await;
    let report = expect_final(
        cluster,
        &app,
        ApplicationState::Finished,
        FinalStatus::Failed,
    )
    .await;
    assert!(
        report.diagnostics.contains("the driver was asked to fail"),
        "{}",
        report.diagnostics
    );
}

async fn executors_above_the_maximum_allocation_fail_the_application(cluster: &Cluster) {
    let too_big = MAXIMUM_MB * 2;
    let config = format!(r#"{{"num_executors":1,"executor_memory_mb":{too_big}}}"#);
    let app = cluster.submit("too-big", &["sum", "5"], &config).await;
    let report = expect_final(
        cluster,
        &app,
        ApplicationState::Finished,
        FinalStatus::Failed,
    )
    .await;
    let wanted = format!("memory_mb={too_big} exceeds the maximum allocation of {MAXIMUM_MB} MB");
    assert!(
        report.diagnostics.contains(&wanted),
        "{}",
        report.diagnostics
    );
}

async fn a_bad_app_config_fails_the_application_naming_the_field(cluster: &Cluster) {
    let app = cluster
        .submit("bad-config", &["sum", "5"], r#"{"executor_cores":0}"#)
        .await;
    let report = expect_final(
        cluster,
        &app,
        ApplicationState::Finished,
        FinalStatus::Failed,
    )
    .await;
    assert!(
        report
            .diagnostics
            .contains("executor_cores=0 is not allowed"),
        "{}",
        report.diagnostics
    );
}

/// Runs `app`'s driver in this process with `args`, submits a client-mode AM for it that
/// starts with `num_executors`, and returns the application id, the driver's URL and the
/// final report, which must be FINISHED/SUCCEEDED.
async fn run_in_client_mode(
    cluster: &Cluster,
    args: &[&str],
    num_executors: u32,
) -> (String, String, spindle_protocol::ApplicationReport) {
    let app_id = cluster.new_application().await;
    let (promise, waiter) = context_promise();
    let config = DriverConfig {
        host: "127.0.0.1".into(),
        app_id: Some(app_id.clone()),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..DriverConfig::default()
    };
    let driver = spawn_driver(&app(), config, Handle::current(), promise).unwrap();
    let (ready, resume) = guarded("the driver's context", waiter.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    let app_config = format!(
        r#"{{"deploy_mode":"client","driver_url":"{}","num_executors":{num_executors},"executor_memory_mb":256}}"#,
        ready.driver_url
    );
    cluster
        .submit_as(&app_id, "client", &["ignored-in-client-mode"], &app_config)
        .await;
    resume.resume();
    let outcome = guarded("the driver", driver.wait()).await;
    if let Err(e) = outcome {
        cluster.print_logs(&app_id);
        panic!("the driver in this process failed: {e}");
    }
    let report = expect_final(
        cluster,
        &app_id,
        ApplicationState::Finished,
        FinalStatus::Succeeded,
    )
    .await;
    (app_id, ready.driver_url, report)
}

async fn client_mode_launches_executors_for_a_driver_in_this_process(cluster: &Cluster) {
    let (app_id, driver_url, report) = run_in_client_mode(cluster, &["sum", "12"], 2).await;
    assert_eq!(report.tracking_url, driver_url);
    assert!(logs_contain(cluster, &app_id, "registered with the driver"));
}

async fn client_mode_grows_to_the_executors_the_driver_requests(cluster: &Cluster) {
    // The driver's "grow 3" waits until 3 executors registered; the AM starts with 1 and
    // hears the new total over its watch of the driver.
    let (app_id, _, report) = run_in_client_mode(cluster, &["grow", "3"], 1).await;
    assert!(
        logs_contain(
            cluster,
            &app_id,
            "the driver requested a new total of executors"
        ),
        "the AM followed the driver's request"
    );
    // The AM and its three executors.
    assert!(report.containers.len() >= 4, "{:?}", report.containers);
}

async fn client_mode_fails_when_the_driver_is_lost(cluster: &Cluster) {
    // The driver gets a runtime of its own, so that it can die as abruptly as a process.
    let driver_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let app_id = cluster.new_application().await;
    let config = DriverConfig {
        host: "127.0.0.1".into(),
        app_id: Some(app_id.clone()),
        ..DriverConfig::default()
    };
    let endpoint = driver_runtime
        .spawn(DriverEndpoint::start(config, app().tasks().clone()))
        .await
        .unwrap()
        .unwrap();
    let driver_url = endpoint.url().to_string();
    let app_config = format!(
        r#"{{"deploy_mode":"client","driver_url":"{driver_url}","num_executors":1,"executor_memory_mb":256}}"#
    );
    cluster.submit_as(&app_id, "lost", &[], &app_config).await;
    // An executor registered: the AM, which opens its watch before asking for executors,
    // is watching.
    let mut executors = endpoint.executors();
    guarded("an executor", executors.wait_for(|e| !e.is_empty()))
        .await
        .unwrap();
    drop(endpoint);
    driver_runtime.shutdown_background();
    let report = expect_final(
        cluster,
        &app_id,
        ApplicationState::Finished,
        FinalStatus::Failed,
    )
    .await;
    assert!(
        report
            .diagnostics
            .contains(&format!("lost the driver at {driver_url}")),
        "{}",
        report.diagnostics
    );
}

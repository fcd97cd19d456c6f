//! Client mode, Spark's `yarn-client`: the driver runs in this process and prints on this
//! terminal, while the application's AM (the same program in its AM role) only launches
//! executors that dial back to the driver. The order matters: the application id first (the
//! driver serves only its own executors), then the driver endpoint (its URL goes into the AM's
//! config), then the submission, then the AM's registration, and only then the user's driver
//! function.

use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use spindle_app_master::am::app_config::{APP_CONFIG_ENV, AppConfig};
use spindle_app_master::sdk::{App, DriverConfig, context_promise, spawn_driver};
use spindle_containers::{ApplicationId, Resource};
use spindle_protocol::{ApplicationReport, ApplicationState};
use spindle_security::CallCredentials;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tracing::{info, warn};

use super::driver_host;
use crate::cmd::submit::outcome;
use crate::report::{final_status_name, state_name};
use crate::rm_client::RmClient;
use crate::submit::{PreparedSubmission, submit_as};
use crate::watch::follow;

/// A hang guard for the driver endpoint's start, which takes milliseconds.
const DRIVER_START_GUARD: Duration = Duration::from_secs(60);
/// How long a registered AM may take to end the application once the driver stopped; it
/// normally takes milliseconds (the driver's Shutdown reaches it at once).
const AM_END_GRACE: Duration = Duration::from_secs(30);
/// How long a driver whose application ended under it may take to return once its jobs
/// were failed; user code may not notice.
const DRIVER_STOP_GRACE: Duration = Duration::from_secs(10);

/// Where and how to run the driver.
pub struct ClientLaunch {
    pub rm_addr: String,
    /// The client's user and its proof of the cluster's client secret.
    pub credentials: CallCredentials,
    pub connect_timeout: Duration,
    /// `SPINDLE_DRIVER_HOST`, if set.
    pub driver_host: Option<String>,
    /// The program's own arguments, for the driver.
    pub args: Vec<String>,
    /// Client mode, every setting resolved; the driver URL is filled in here.
    pub config: AppConfig,
}

/// Runs `app`'s driver here and its executors on the cluster; returns the exit code: 0 when
/// the driver returned Ok and the application FINISHED with SUCCEEDED.
pub async fn run(
    app: &App,
    launch: ClientLaunch,
    mut prepared: PreparedSubmission,
) -> anyhow::Result<ExitCode> {
    let ClientLaunch {
        rm_addr,
        credentials,
        connect_timeout,
        driver_host,
        args,
        mut config,
    } = launch;
    let mut rm = RmClient::connect_with_timeout(&rm_addr, connect_timeout, credentials).await?;
    let killer = rm.clone();
    let new_app = rm.new_application().await?;
    let id = new_app.id;
    check_executor_resource(config.executor_resource(), new_app.maximum)?;
    let host = driver_host::choose(&rm_addr, driver_host.as_deref()).await?;

    let (promise, waiter) = context_promise();
    let driver_config = DriverConfig {
        host,
        advertise_host: None,
        max_task_failures: config.max_task_failures,
        app_id: Some(id.to_string()),
        args,
    };
    let driver = spawn_driver(app, driver_config, Handle::current(), promise)?;
    let (ready, resume) = match waiter.wait(DRIVER_START_GUARD).await {
        Ok(pair) => pair,
        Err(e) => {
            let why = driver.wait().await.err().unwrap_or_else(|| e.to_string());
            bail!("the driver did not start: {why}");
        }
    };
    config.driver_url = Some(ready.driver_url.clone());
    prepared.set_env(APP_CONFIG_ENV, config.to_json());
    if let Err(e) = submit_as(&mut rm, &prepared, &new_app).await {
        // Released unresumed, the driver shuts its endpoint down and ends.
        drop(resume);
        let _ = driver.wait().await;
        return Err(e.into());
    }
    info!(app = %id, driver_url = %ready.driver_url, "submitted; the driver runs in this process");

    let (state_tx, mut state) = watch::channel(ApplicationState::Submitted);
    let mut app_end = pin!(follow(&mut rm, id, |report| {
        state_tx.send_replace(report.state());
    }));
    // As Spark's client mode, the user's driver starts only once the AM has registered (the
    // application is RUNNING): an AM that never comes up fails the launch with its reason
    // rather than leave the driver waiting for executors.
    let ended_early = tokio::select! {
        report = &mut app_end => Some(report),
        _ = state.wait_for(|s| *s == ApplicationState::Running) => None,
    };
    if let Some(report) = ended_early {
        drop(resume);
        let _ = driver.wait().await;
        let report = report.with_context(|| format!("following application {id}"))?;
        bail!(
            "application {id} {} before its application master registered",
            describe(&report)
        );
    }
    resume.resume();

    let mut driver_done = pin!(driver.wait());
    let (driver_outcome, report) = tokio::select! {
        outcome = &mut driver_done => {
            let report = after_the_driver(killer, id, &mut app_end).await?;
            (outcome, report)
        }
        report = &mut app_end => {
            let report = report.with_context(|| format!("following application {id}"))?;
            // An AM unregisters SUCCEEDED only once the driver stopped in order, so the
            // driver's own outcome is on its way. Any other end came under a running driver:
            // fail its jobs so it returns.
            if !succeeded(&report) {
                warn!(app = %id, ended = %describe(&report), "the application ended under the running driver");
                ready.context.shutdown_async().await;
            }
            let outcome = tokio::time::timeout(DRIVER_STOP_GRACE, driver_done)
                .await
                .unwrap_or_else(|_| Err(format!(
                    "the driver did not return within {DRIVER_STOP_GRACE:?} after its \
                     application ended"
                )));
            (outcome, report)
        }
    };
    match driver_outcome {
        Ok(()) => outcome(id, &report),
        Err(e) => {
            let app_end = describe(&report);
            bail!("the driver failed: {e}\n(application {id} {app_end})")
        }
    }
}

/// Waits for the AM to end the application once the driver stopped (the driver's endpoint
/// told it); an AM that does not within [`AM_END_GRACE`] has its application killed.
async fn after_the_driver(
    mut killer: RmClient,
    id: ApplicationId,
    app_end: &mut (impl Future<Output = Result<ApplicationReport, crate::ClientError>> + Unpin),
) -> anyhow::Result<ApplicationReport> {
    if let Ok(report) = tokio::time::timeout(AM_END_GRACE, &mut *app_end).await {
        return report.with_context(|| format!("following application {id}"));
    }
    let diagnostics = format!(
        "the driver in the submitting process stopped, and the application master did not end \
         the application within {AM_END_GRACE:?}"
    );
    warn!(app = %id, %diagnostics, "killing the application");
    killer.kill_application(id, &diagnostics).await?;
    app_end
        .await
        .with_context(|| format!("following application {id}"))
}

fn succeeded(report: &ApplicationReport) -> bool {
    report.state() == ApplicationState::Finished
        && report.final_status() == spindle_protocol::FinalStatus::Succeeded
}

/// `ended FINISHED (FAILED): diagnostics`, for messages about an application.
fn describe(report: &ApplicationReport) -> String {
    let diagnostics = report.diagnostics.trim();
    let mut text = format!(
        "ended {} ({})",
        state_name(report.state()),
        final_status_name(report.final_status())
    );
    if !diagnostics.is_empty() {
        text.push_str(": ");
        text.push_str(diagnostics);
    }
    text
}

/// Executors larger than the scheduler's maximum would never be allocated: say so before
/// anything runs (the AM would only give up later).
fn check_executor_resource(executor: Resource, maximum: Resource) -> anyhow::Result<()> {
    if executor.memory_mb > maximum.memory_mb {
        bail!(
            "executor memory_mb={} exceeds the maximum allocation of {} MB",
            executor.memory_mb,
            maximum.memory_mb
        );
    }
    if executor.vcores > maximum.vcores {
        bail!(
            "executor vcores={} exceeds the maximum allocation of {} vcores",
            executor.vcores,
            maximum.vcores
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_above_the_maximum_name_both_numbers() {
        let max = Resource::new(2048, 4);
        assert!(check_executor_resource(Resource::new(2048, 4), max).is_ok());
        let err = check_executor_resource(Resource::new(4096, 1), max).unwrap_err();
        assert_eq!(
            err.to_string(),
            "executor memory_mb=4096 exceeds the maximum allocation of 2048 MB"
        );
        let err = check_executor_resource(Resource::new(512, 8), max).unwrap_err();
        assert!(err.to_string().contains("vcores=8"), "{err}");
    }

    #[test]
    fn an_application_end_reads_as_one_phrase() {
        let report = ApplicationReport {
            state: ApplicationState::Killed as i32,
            final_status: spindle_protocol::FinalStatus::Killed as i32,
            diagnostics: "killed by user\n".into(),
            ..Default::default()
        };
        assert_eq!(describe(&report), "ended KILLED (KILLED): killed by user");
    }
}

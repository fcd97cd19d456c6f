//! Client mode, Spark's `runExecutorLauncher`: the driver runs in the submitting process, so
//! this AM only registers, keeps executors running that connect back to the driver's URL,
//! follows the executor total the driver requests, and unregisters when the driver goes away
//! (both heard through [`DriverWatch`]) or the RM shuts the attempt down.
//!
//! The final status says how the driver went: SUCCEEDED when it shut down in order (the AM
//! cannot know whether the user's driver function succeeded; the submitting process does, as
//! in Spark), FAILED when its connection was lost or the executors could not be kept.

use tracing::{error, info, warn};

use super::driver_watch::{DriverEnd, DriverEvent, DriverWatch};
use super::executors::{Executors, ExecutorsEnd};
use super::{AmSetup, EXIT_FAILURE, fail_unstarted, unregister};
use crate::amrm_client::FinalStatus;

enum End {
    Driver(DriverEnd),
    Executors(ExecutorsEnd),
}

/// Launches executors for the driver at the configured URL; returns the process exit code.
pub(crate) async fn run_executor_launcher(setup: AmSetup) -> i32 {
    let AmSetup {
        env,
        client,
        config,
        program,
        args: _,
    } = setup;
    let Some(driver_url) = config.driver_url.clone() else {
        // AppConfig's validation refuses this already; kept so no path can panic.
        let diagnostics = "deploy_mode=client needs driver_url";
        return fail_unstarted(&client, &env, diagnostics).await;
    };
    let registration = match client.register(&env.nm_host, 0, &driver_url).await {
        Ok(registration) => registration,
        Err(e) => {
            error!("cannot register with the resource manager: {e}");
            eprintln!("application master: cannot register with the resource manager: {e}");
            return EXIT_FAILURE;
        }
    };
    // Watch first: executors for a driver that is not there would only fail one by one.
    let mut watch = match DriverWatch::open(&driver_url).await {
        Ok(watch) => watch,
        Err(e) => {
            return unregister(&client, FinalStatus::Failed, &e.to_string(), &driver_url).await;
        }
    };
    info!(%driver_url, "watching the driver");

    let launch = program.for_driver(&driver_url, config.executor_cores, env.application_id);
    let mut executors = Executors::start(client.clone(), &registration, &config, launch);
    let end = loop {
        tokio::select! {
            event = watch.next_event() => match event {
                DriverEvent::ExecutorTarget(total) => {
                    info!(total, "the driver requested a new total of executors");
                    executors.set_target(total);
                }
                DriverEvent::Ended(end) => break End::Driver(end),
            },
            end = executors.ended() => break End::Executors(end),
        }
    };
    executors.stop().await;

    match end {
        End::Driver(DriverEnd::Stopped) => {
            info!("the driver shut down");
            unregister(&client, FinalStatus::Succeeded, "", &driver_url).await
        }
        End::Driver(DriverEnd::Lost(reason)) => {
            let diagnostics = format!("lost the driver at {driver_url}: {reason}");
            unregister(&client, FinalStatus::Failed, &diagnostics, &driver_url).await
        }
        End::Executors(ExecutorsEnd::GaveUp(diagnostics)) => {
            unregister(&client, FinalStatus::Failed, &diagnostics, &driver_url).await
        }
        End::Executors(ExecutorsEnd::Shutdown) => {
            warn!("the resource manager shut this attempt down");
            EXIT_FAILURE
        }
    }
}

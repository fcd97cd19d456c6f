//! The launcher's command line: `PROGRAM [LAUNCHER FLAGS] [--] [ARGS...]`, Spark's
//! `spark-submit` flags in front and the program's own arguments after them, and what they
//! resolve to: which master, which deploy mode, which application config.

use spindle_app_master::am::DeployMode;
use spindle_app_master::am::app_config::AppConfig;

use crate::address::Master;
use crate::cmd::app_flags::{AppArgs, SparkArgs};
use crate::error::ClientError;

/// The master when neither `--master` nor `SPINDLE_MASTER` names one: an embedded cluster of
/// two nodes that holds an AM and four executors of 512 MB, so a program runs as a real
/// application with nothing set up.
pub const DEFAULT_MASTER: &str = "local-cluster[2,2,2048]";

/// The variable that names the master when `--master` is not given.
pub const MASTER_ENV: &str = crate::cmd::MASTER_ENV;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    about = "Runs this program's driver and executors: locally, on an embedded cluster, or on a \
             Spindle cluster",
    disable_version_flag = true,
    after_help = "Every argument after the launcher's flags (or after --) goes to the program's \
                  driver. Run as `PROGRAM executor ...` (by the AM) it is an executor; with \
                  SPINDLE_ROLE=am (set by the launcher or `spindle submit`) it is the AM."
)]
pub struct LaunchArgs {
    /// Where to run: local, local[N], local[*], local[N,F], local-cluster[NODES,VCORES,MB] or
    /// spindle://HOST:PORT (default: $SPINDLE_MASTER, else local-cluster[2,2,2048]).
    #[arg(long, value_name = "URL")]
    pub master: Option<String>,
    #[command(flatten)]
    pub app: AppArgs,
    #[command(flatten)]
    pub spark: SparkArgs,
    /// The program's own arguments, for its driver.
    #[arg(trailing_var_arg = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// What the launcher was asked to do, every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchPlan {
    /// Driver and executor threads in this process, no daemons.
    Local {
        url: String,
        threads: usize,
        max_task_failures: u32,
    },
    /// A real application, on a running RM or an embedded cluster.
    OnCluster {
        master: Master,
        deploy_mode: DeployMode,
        config: AppConfig,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{source}{}", from_env.then_some(" (from SPINDLE_MASTER)").unwrap_or(""))]
    Master { source: ClientError, from_env: bool },
    #[error(
        "--deploy-mode cluster cannot be used with --master {master}: a local master runs the \
         driver in this process; use spindle://HOST:PORT or local-cluster[...] for cluster mode"
    )]
    ClusterModeLocally { master: String },
}

impl LaunchArgs {
    /// Resolves the master (flag, then `master_env`, then [`DEFAULT_MASTER`]), the deploy
    /// mode (client unless asked, as in Spark), and the application config: `defaults` are
    /// the program's own, the flags win over them.
    pub fn plan(
        &self,
        master_env: Option<&str>,
        defaults: &AppConfig,
    ) -> Result<LaunchPlan, PlanError> {
        let (text, from_env) = match (&self.master, master_env.filter(|m| !m.is_empty())) {
            (Some(flag), _) => (flag.as_str(), false),
            (None, Some(env)) => (env, true),
            (None, None) => (DEFAULT_MASTER, false),
        };
        let master: Master = text
            .parse()
            .map_err(|source| PlanError::Master { source, from_env })?;
        let deploy_mode = self.spark.deploy_mode.unwrap_or(DeployMode::Client);
        match master {
            Master::Local { url, parsed } => {
                if deploy_mode == DeployMode::Cluster {
                    return Err(PlanError::ClusterModeLocally { master: url });
                }
                Ok(LaunchPlan::Local {
                    url,
                    threads: parsed.threads,
                    // local[N,F] says how often a task may fail; the flag, when given, wins.
                    max_task_failures: self.spark.max_task_failures.unwrap_or(parsed.max_failures),
                })
            }
            master => Ok(LaunchPlan::OnCluster {
                master,
                deploy_mode,
                config: AppConfig {
                    deploy_mode,
                    driver_url: None,
                    ..self.spark.app_config(defaults.clone())
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(line: &[&str]) -> Result<LaunchArgs, clap::Error> {
        LaunchArgs::try_parse_from(std::iter::once("pi").chain(line.iter().copied()))
    }

    fn plan(line: &[&str], env: Option<&str>) -> Result<LaunchPlan, PlanError> {
        let defaults = AppConfig {
            num_executors: 4,
            ..AppConfig::default()
        };
        parse(line).unwrap().plan(env, &defaults)
    }

    #[test]
    fn flags_come_first_and_the_rest_is_the_programs() {
        let args = parse(&["--master", "local[2]", "1000", "--master", "x"]).unwrap();
        assert_eq!(args.master.as_deref(), Some("local[2]"));
        assert_eq!(args.args, ["1000", "--master", "x"]);
        let args = parse(&["--num-executors", "3", "--", "--verbose", "7"]).unwrap();
        assert_eq!(args.spark.num_executors, Some(3));
        assert_eq!(args.args, ["--verbose", "7"]);
        assert!(parse(&[]).unwrap().args.is_empty());
    }

    #[test]
    fn a_mistyped_launcher_flag_is_a_usage_error_not_an_argument() {
        let err = parse(&["--num-executor", "3", "100"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--num-executor"), "{err}");
    }

    #[test]
    fn the_default_master_is_an_embedded_cluster_in_client_mode() {
        let LaunchPlan::OnCluster {
            master,
            deploy_mode,
            config,
        } = plan(&[], None).unwrap()
        else {
            panic!("not on a cluster")
        };
        assert_eq!(master.to_string(), DEFAULT_MASTER);
        assert_eq!(deploy_mode, DeployMode::Client);
        assert_eq!(config.deploy_mode, DeployMode::Client);
        assert_eq!(config.num_executors, 4, "the program's default");
    }

    #[test]
    fn the_flag_beats_the_environment_and_the_environment_the_default() {
        let from_env = plan(&[], Some("spindle://rm:8032")).unwrap();
        assert!(matches!(
            from_env,
            LaunchPlan::OnCluster { master: Master::Spindle(ref a), .. } if a == "rm:8032"
        ));
        let flag = plan(&["--master", "local[3]"], Some("spindle://rm:8032")).unwrap();
        assert_eq!(
            flag,
            LaunchPlan::Local {
                url: "local[3]".into(),
                threads: 3,
                max_task_failures: 1
            }
        );
        let err = plan(&[], Some("yarn")).unwrap_err().to_string();
        assert!(err.contains("\"yarn\""), "{err}");
        assert!(err.ends_with("(from SPINDLE_MASTER)"), "{err}");
    }

    #[test]
    fn cluster_mode_needs_a_cluster() {
        let err = plan(&["--master", "local[2]", "--deploy-mode", "cluster"], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--master local[2]"), "{err}");
        let on_rm = plan(
            &[
                "--master",
                "spindle://rm:8032",
                "--deploy-mode",
                "cluster",
                "--num-executors",
                "6",
            ],
            None,
        )
        .unwrap();
        let LaunchPlan::OnCluster { config, .. } = on_rm else {
            panic!("not on a cluster")
        };
        assert_eq!(config.deploy_mode, DeployMode::Cluster);
        assert_eq!(
            config.num_executors, 6,
            "the flag beats the program's default"
        );
        config.validate().unwrap();
    }

    #[test]
    fn local_task_failures_come_from_the_url_unless_the_flag_says() {
        let url = plan(&["--master", "local[2,3]"], None).unwrap();
        assert!(matches!(
            url,
            LaunchPlan::Local {
                max_task_failures: 3,
                ..
            }
        ));
        let flag = plan(
            &["--master", "local[2,3]", "--max-task-failures", "5"],
            None,
        )
        .unwrap();
        assert!(matches!(
            flag,
            LaunchPlan::Local {
                max_task_failures: 5,
                ..
            }
        ));
    }
}

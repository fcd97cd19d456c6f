//! The RM and the NM under test run as processes of their own (this same binary in a hidden
//! `serve-rm` / `serve-nm` role), so that the memory the kernel reports for them is theirs alone.
//! A daemon prints `ready <address>` once it serves, and stops when its stdin closes: should the
//! bench die, its daemons go with it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::cpu::CpuTimes;

/// Hang guards only: a daemon starts in milliseconds and stops in well under a second.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// What the daemon prints before its address once it serves.
pub const READY: &str = "ready";

/// A daemon process; killed if dropped without `stop`.
pub struct Daemon {
    role: &'static str,
    child: Child,
    /// Closing it is the signal to stop.
    stdin: Option<ChildStdin>,
    /// Kept open so that the daemon never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
    address: String,
}

/// A process's memory as the kernel counts it (`/proc/<pid>/status`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    /// Resident set size now (VmRSS).
    pub rss_mb: f64,
    /// The highest resident set size so far (VmHWM).
    pub peak_rss_mb: f64,
}

impl Daemon {
    /// A resource manager on an ephemeral loopback port, its state under `state_dir`.
    pub async fn resource_manager(
        state_dir: &Path,
        minimum_memory_mb: u64,
    ) -> anyhow::Result<Self> {
        let args = [
            "--bind".to_string(),
            "127.0.0.1:0".to_string(),
            "--state-dir".to_string(),
            path_arg(state_dir)?,
            "--min-memory-mb".to_string(),
            minimum_memory_mb.to_string(),
        ];
        Daemon::spawn("serve-rm", &args).await
    }

    /// A node manager on an ephemeral loopback port offering `memory_mb` and `vcores`, joining
    /// with the daemon secret in `daemon_secret_file`.
    pub async fn node_manager(
        rm: &str,
        daemon_secret_file: &Path,
        work_dir: &Path,
        memory_mb: u64,
        vcores: u32,
    ) -> anyhow::Result<Self> {
        let args = [
            "--rm".to_string(),
            rm.to_string(),
            "--daemon-secret-file".to_string(),
            path_arg(daemon_secret_file)?,
            "--bind".to_string(),
            "127.0.0.1:0".to_string(),
            "--work-dir".to_string(),
            path_arg(work_dir)?,
            "--memory-mb".to_string(),
            memory_mb.to_string(),
            "--vcores".to_string(),
            vcores.to_string(),
        ];
        Daemon::spawn("serve-nm", &args).await
    }

    async fn spawn(role: &'static str, args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding this program to start a daemon")?;
        let mut child = Command::new(&exe)
            .arg(role)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} {role}", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("{role} has no stdout"))?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, stdout.read_line(&mut line)).await;
        let address = match read {
            Err(_) => bail!("{role} did not say it was ready within {START_TIMEOUT:?}"),
            Ok(Err(e)) => bail!("reading {role}'s first line: {e}"),
            Ok(Ok(0)) => {
                let status = child.wait().await?;
                bail!("{role} exited ({status}) before it was ready; its errors are above");
            }
            Ok(Ok(_)) => match line.trim().split_once(' ') {
                Some((READY, address)) => address.to_string(),
                _ => bail!("{role} said {line:?}, expected \"{READY} <address>\""),
            },
        };
        Ok(Daemon {
            role,
            child,
            stdin,
            _stdout: stdout,
            address,
        })
    }

    /// The address it serves on (for a node manager, also its node id).
    pub fn address(&self) -> &str {
        &self.address
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has already exited", self.role))
    }

    /// The CPU time it (and the children it waited for) used so far.
    pub fn cpu(&self) -> anyhow::Result<CpuTimes> {
        CpuTimes::of(&self.pid()?.to_string())
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        let pid = self.pid()?;
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse_memory(&status).with_context(|| format!("{path} has no VmRSS and VmHWM lines"))
    }

    /// Asks the daemon to stop (closes its stdin) and waits for it; kills it if it hangs.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if !status.success() {
                    bail!("{} exited with {status}", self.role);
                }
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                bail!(
                    "{} did not stop within {STOP_TIMEOUT:?}; killed it",
                    self.role
                )
            }
        }
    }
}

fn path_arg(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_string)
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// VmRSS and VmHWM (in kB in the file) as MB.
fn parse_memory(status: &str) -> Option<Memory> {
    let kb = |field: &str| -> Option<f64> {
        let line = status.lines().find(|l| l.starts_with(field))?;
        let value = line[field.len()..].trim().strip_suffix("kB")?;
        value.trim().parse::<f64>().ok()
    };
    Some(Memory {
        rss_mb: kb("VmRSS:")? / 1024.0,
        peak_rss_mb: kb("VmHWM:")? / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_its_peak_in_mb() {
        let status = "Name:\tspindle-bench\nVmPeak:\t  900000 kB\nVmHWM:\t   20480 kB\n\
                      VmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_mb: 10.0,
                peak_rss_mb: 20.0
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let memory = parse_memory(&status).unwrap();
        assert!(memory.rss_mb > 0.0 && memory.peak_rss_mb >= memory.rss_mb);
    }
}

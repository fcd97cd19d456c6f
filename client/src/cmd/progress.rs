//! What `spindle submit` shows while it follows an application: on a terminal, one spinner line
//! (state, containers running, time since submission) redrawn on every report the RM pushes;
//! elsewhere (a pipe, a file, CI) a plain line per state change, which logs read well.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use spindle_containers::ApplicationId;
use spindle_protocol::{ApplicationReport, ApplicationState};

use crate::report::state_name;

/// How often the spinner redraws itself so the elapsed time moves; drawing only, the RM is
/// never asked anything on this clock.
const REDRAW_EVERY: Duration = Duration::from_millis(120);

pub enum Progress {
    Spinner(ProgressBar),
    Lines {
        id: ApplicationId,
        last: Option<ApplicationState>,
    },
}

impl Progress {
    /// A spinner when both stdout and stderr are terminals (a person is watching); plain
    /// lines when either is redirected (a script is).
    pub fn for_this_terminal(id: ApplicationId) -> Progress {
        let interactive = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        if interactive {
            let bar = Progress::spinner(id, ProgressBar::new_spinner());
            bar.enable_steady_tick(REDRAW_EVERY);
            Progress::Spinner(bar)
        } else {
            Progress::Lines { id, last: None }
        }
    }

    fn spinner(id: ApplicationId, bar: ProgressBar) -> ProgressBar {
        // The template is a constant; were it ever wrong, the default style still shows the line.
        if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix} {msg} · {elapsed}") {
            bar.set_style(style);
        }
        bar.set_prefix(id.to_string());
        bar.set_message("submitted");
        bar
    }

    /// Shows what a new report says.
    pub fn update(&mut self, report: &ApplicationReport) {
        match self {
            Progress::Spinner(bar) => bar.set_message(spinner_message(report)),
            Progress::Lines { id, last } => {
                if let Some(line) = state_change_line(*id, last, report) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// Clears the spinner, so the final line the caller prints stands alone.
    pub fn finish(self) {
        if let Progress::Spinner(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// `RUNNING · 5 containers running`.
fn spinner_message(report: &ApplicationReport) -> String {
    let n = report.running_containers;
    let noun = if n == 1 { "container" } else { "containers" };
    format!("{} · {n} {noun} running", state_name(report.state()))
}

/// `application_…: RUNNING`, only when the state differs from the last one shown.
fn state_change_line(
    id: ApplicationId,
    last: &mut Option<ApplicationState>,
    report: &ApplicationReport,
) -> Option<String> {
    let state = report.state();
    if *last == Some(state) {
        return None;
    }
    *last = Some(state);
    Some(format!("{id}: {}", state_name(state)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(state: ApplicationState, running: u32) -> ApplicationReport {
        ApplicationReport {
            state: state as i32,
            running_containers: running,
            ..ApplicationReport::default()
        }
    }

    fn id() -> ApplicationId {
        "application_1700000000000_0001".parse().unwrap()
    }

    #[test]
    fn the_spinner_shows_state_and_running_containers_of_each_report() {
        let mut progress = Progress::Spinner(Progress::spinner(id(), ProgressBar::hidden()));
        progress.update(&report(ApplicationState::Accepted, 1));
        let Progress::Spinner(bar) = &progress else {
            unreachable!()
        };
        assert_eq!(bar.message(), "ACCEPTED · 1 container running");
        progress.update(&report(ApplicationState::Running, 5));
        let Progress::Spinner(bar) = &progress else {
            unreachable!()
        };
        assert_eq!(bar.message(), "RUNNING · 5 containers running");
        assert_eq!(bar.prefix(), "application_1700000000000_0001");
        progress.finish();
    }

    #[test]
    fn plain_lines_come_only_on_a_change_of_state() {
        let mut last = None;
        let lines: Vec<String> = [
            report(ApplicationState::Accepted, 1),
            report(ApplicationState::Running, 1),
            report(ApplicationState::Running, 4),
            report(ApplicationState::Finished, 0),
        ]
        .iter()
        .filter_map(|r| state_change_line(id(), &mut last, r))
        .collect();
        assert_eq!(
            lines,
            [
                "application_1700000000000_0001: ACCEPTED",
                "application_1700000000000_0001: RUNNING",
                "application_1700000000000_0001: FINISHED",
            ]
        );
    }
}

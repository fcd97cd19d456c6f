//! The filters of YARN's application list (`/ws/v1/cluster/apps?states=RUNNING&user=…`), also
//! used by the UI's list. Parsed strictly: a state, number or range that makes no sense is a
//! refusal naming the parameter and what is allowed, never a silently empty list. An empty
//! value (`?queue=`) means the filter is not given, as in YARN.

use std::collections::HashMap;

use crate::core::App;

/// The states YARN's `states` filter may name. NEW and NEW_SAVING are valid but match nothing:
/// an application is recorded only once it is submitted.
pub const YARN_APP_STATES: [&str; 8] = [
    "NEW",
    "NEW_SAVING",
    "SUBMITTED",
    "ACCEPTED",
    "RUNNING",
    "FINISHED",
    "FAILED",
    "KILLED",
];

const FINAL_STATUSES: [&str; 4] = ["UNDEFINED", "SUCCEEDED", "FAILED", "KILLED"];

/// An inclusive range of times in ms since the epoch; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub begin: Option<u64>,
    pub end: Option<u64>,
}

impl TimeRange {
    fn contains(&self, ms: u64) -> bool {
        self.begin.is_none_or(|b| ms >= b) && self.end.is_none_or(|e| ms <= e)
    }

    fn is_open(&self) -> bool {
        self.begin.is_none() && self.end.is_none()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AppFilter {
    /// Upper-case state names; empty: any state.
    pub states: Vec<String>,
    pub final_status: Option<String>,
    pub user: Option<String>,
    pub queue: Option<String>,
    /// Lower-case application types; empty: any.
    pub application_types: Vec<String>,
    /// Any of these tags; empty: any.
    pub application_tags: Vec<String>,
    pub limit: Option<usize>,
    pub started: TimeRange,
    /// An application that has not finished matches no finished-time range.
    pub finished: TimeRange,
}

impl AppFilter {
    /// Reads YARN's query parameters: `states` (and the older `state`), `finalStatus`, `user`,
    /// `queue`, `applicationTypes`, `applicationTags`, `limit`, `startedTimeBegin`,
    /// `startedTimeEnd`, `finishedTimeBegin`, `finishedTimeEnd`. Others are ignored.
    pub fn parse(query: &HashMap<String, String>) -> Result<AppFilter, String> {
        let given = |name: &str| query.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let list = |name: &str| -> Vec<String> {
            given(name)
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut states: Vec<String> = list("states");
        states.extend(list("state"));
        let mut filter = AppFilter::default();
        for state in states {
            let state = state.to_ascii_uppercase();
            if !YARN_APP_STATES.contains(&state.as_str()) {
                return Err(format!(
                    "Invalid application-state {state} specified: it should be one of {}",
                    YARN_APP_STATES.join(", ")
                ));
            }
            if !filter.states.contains(&state) {
                filter.states.push(state);
            }
        }
        if let Some(status) = given("finalStatus") {
            let status = status.to_ascii_uppercase();
            if !FINAL_STATUSES.contains(&status.as_str()) {
                return Err(format!(
                    "Invalid finalStatus {status} specified: it should be one of {}",
                    FINAL_STATUSES.join(", ")
                ));
            }
            filter.final_status = Some(status);
        }
        filter.user = given("user").map(String::from);
        filter.queue = given("queue").map(String::from);
        filter.application_types = list("applicationTypes")
            .into_iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        filter.application_tags = list("applicationTags");
        if let Some(limit) = given("limit") {
            match limit.parse::<usize>() {
                Ok(n) if n > 0 => filter.limit = Some(n),
                _ => {
                    return Err(format!(
                        "limit={limit} is not allowed: it must be a whole number greater than 0"
                    ));
                }
            }
        }
        filter.started = range(
            given("startedTimeBegin"),
            given("startedTimeEnd"),
            "startedTime",
        )?;
        filter.finished = range(
            given("finishedTimeBegin"),
            given("finishedTimeEnd"),
            "finishedTime",
        )?;
        Ok(filter)
    }

    pub fn matches(&self, app: &App) -> bool {
        let state = app.state.to_string();
        (self.states.is_empty() || self.states.contains(&state))
            && self
                .final_status
                .as_ref()
                .is_none_or(|s| *s == app.final_status.to_string())
            && self.user.as_ref().is_none_or(|u| *u == app.user)
            && self.queue.as_ref().is_none_or(|q| *q == app.queue)
            && (self.application_types.is_empty()
                || self
                    .application_types
                    .contains(&app.application_type.to_ascii_lowercase()))
            && (self.application_tags.is_empty()
                || app.tags.iter().any(|t| self.application_tags.contains(t)))
            && self.started.contains(app.submit_ms)
            && (self.finished.is_open() || app.finish_ms.is_some_and(|f| self.finished.contains(f)))
    }

    /// The matching applications, in the order given, at most `limit` of them.
    pub fn select<'a>(&self, apps: impl Iterator<Item = &'a App>) -> Vec<&'a App> {
        apps.filter(|a| self.matches(a))
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
}

fn range(begin: Option<&str>, end: Option<&str>, name: &str) -> Result<TimeRange, String> {
    let time = |value: Option<&str>, which: &str| -> Result<Option<u64>, String> {
        value
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    format!(
                        "{name}{which}={v} is not allowed: it must be a time in ms since the \
                         epoch, 0 or greater"
                    )
                })
            })
            .transpose()
    };
    let range = TimeRange {
        begin: time(begin, "Begin")?,
        end: time(end, "End")?,
    };
    if let (Some(b), Some(e)) = (range.begin, range.end)
        && e < b
    {
        return Err(format!("{name}End={e} must not be before {name}Begin={b}"));
    }
    Ok(range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::*;
    use crate::core::{AppState, FinalStatus};

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<AppFilter, String> {
        AppFilter::parse(&query(pairs))
    }

    #[test]
    fn nonsense_is_refused_naming_the_parameter() {
        let err = parse(&[("states", "RUNNING,SLEEPING")]).unwrap_err();
        assert!(
            err.contains("SLEEPING") && err.contains("ACCEPTED"),
            "{err}"
        );
        for (name, value) in [
            ("limit", "0"),
            ("limit", "-1"),
            ("limit", "many"),
            ("startedTimeBegin", "-5"),
            ("finishedTimeEnd", "yesterday"),
            ("finalStatus", "GREAT"),
        ] {
            let err = parse(&[(name, value)]).unwrap_err();
            assert!(err.contains(value), "{name}={value}: {err}");
        }
        let err = parse(&[("startedTimeBegin", "10"), ("startedTimeEnd", "5")]).unwrap_err();
        assert!(err.contains("startedTimeEnd=5"), "{err}");
    }

    #[test]
    fn empty_values_mean_no_filter_and_states_are_case_insensitive() {
        assert_eq!(
            parse(&[("queue", ""), ("states", "")]),
            Ok(AppFilter::default())
        );
        let f = parse(&[("states", "running, Finished"), ("state", "KILLED")]).unwrap();
        assert_eq!(f.states, ["RUNNING", "FINISHED", "KILLED"]);
    }

    #[test]
    fn every_filter_selects_what_it_names() {
        let mut t = Harness::new();
        t.node("n:1", 8192);
        let first = t.running_app(512).application;
        let (second, _) = t.submit_app(512);
        let (third, _) = t.submit_app(512);
        t.core.kill(t.now + 1, third, "").unwrap();
        let submitted = |id| t.core.app(id).unwrap().submit_ms;
        let ids =
            |f: AppFilter| -> Vec<_> { f.select(t.core.apps()).iter().map(|a| a.id).collect() };

        assert_eq!(ids(parse(&[]).unwrap()), [first, second, third]);
        assert_eq!(
            ids(parse(&[("states", "RUNNING,KILLED")]).unwrap()),
            [first, third]
        );
        assert_eq!(ids(parse(&[("finalStatus", "killed")]).unwrap()), [third]);
        assert_eq!(ids(parse(&[("limit", "2")]).unwrap()), [first, second]);
        assert_eq!(ids(parse(&[("user", "nobody")]).unwrap()), []);
        assert_eq!(ids(parse(&[("queue", "default")]).unwrap()).len(), 3);
        assert_eq!(
            ids(parse(&[("applicationTypes", "spindle,other")]).unwrap()).len(),
            3
        );
        let from_second = submitted(second).to_string();
        assert_eq!(
            ids(parse(&[("startedTimeBegin", from_second.as_str())]).unwrap()),
            [second, third]
        );
        assert_eq!(
            ids(parse(&[("startedTimeEnd", from_second.as_str())]).unwrap()),
            [first, second]
        );
        // Only the killed one has finished: unfinished applications match no finished range.
        assert_eq!(
            ids(parse(&[("finishedTimeEnd", "99999999")]).unwrap()),
            [third]
        );
        assert_eq!(
            ids(parse(&[("finishedTimeBegin", "99999999")]).unwrap()),
            []
        );

        let killed = t.core.app(third).unwrap();
        assert_eq!(
            (killed.state, killed.final_status),
            (AppState::Killed, FinalStatus::Killed)
        );
    }
}

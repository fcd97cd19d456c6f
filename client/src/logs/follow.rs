//! `spindle logs --follow`: tails every container of a running application, like `tail -f` on
//! many files, until the application has ended and each container's logs have been read to
//! their end.
//!
//! The application's end comes from its watch (`WatchApplication`); each container's stdout and
//! stderr stream from its node with `follow` (the node ends the stream when the container
//! completes). New containers are found in the application's report, which the watch sends on
//! each change of state and which is also asked for every `REFRESH` while following (the RM's
//! watch does not announce each allocation). Output is line by line, under a `==> … <==` header
//! whenever the file shown changes; a container whose node is gone by the end is read from the
//! RM's log store.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use futures::future::join_all;
use spindle_protocol as proto;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::sources::{LogAccess, NodeLogs};
use super::{LogEntry, LogSelection, LogsOutcome, Origin, stdout_error, write_out, write_selected};
use crate::error::ClientError;
use crate::rm_client::RmClient;
use crate::watch::is_final;

/// How often the report is asked for, to find containers allocated since.
const REFRESH: Duration = Duration::from_secs(1);
/// Containers the node has not started yet are looked for again after this, then less often.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);
/// A hang guard: a container still streaming this long after its application ended (the RM
/// stops left-over containers at once) is not waited for any longer.
const AFTER_END: Duration = Duration::from_secs(120);

enum Event {
    Report(proto::ApplicationReport),
    /// The application's watch ended: with its final report, or lost.
    Over(Result<proto::ApplicationReport, ClientError>),
    Chunk(LogEntry, Vec<u8>),
    Done(LogEntry),
    Problem(ClientError),
}

type Events = mpsc::UnboundedSender<Event>;

/// Tails the selected logs of a running application to `out` until it has ended; an
/// application already over (or forgotten by the RM) is shown as `write_selected` shows it.
pub async fn follow_logs(
    rm: &mut RmClient,
    selection: &LogSelection,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<LogsOutcome, ClientError> {
    let report = match rm.application_report(selection.app).await {
        Ok(report) if !is_final(report.state()) => report,
        // Over, or forgotten by the RM: nothing runs, what is left is shown once.
        Ok(_)
        | Err(ClientError::Rpc {
            code: tonic::Code::NotFound,
            ..
        }) => return write_selected(rm, selection, out).await,
        Err(e) => return Err(e),
    };
    let access = LogAccess::fetch(rm, selection.app).await?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (over_tx, over) = watch::channel(false);
    let watcher = spawn_watch(rm.clone(), selection, events_tx.clone());
    let mut followers = Followers {
        selection: selection.clone(),
        access,
        events: events_tx,
        over,
        started: HashSet::new(),
        tasks: JoinSet::new(),
    };
    followers.start_new(&report);

    let mut printer = Printer::default();
    let mut outcome = LogsOutcome::default();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut after_end: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        if after_end.is_some() && followers.tasks.is_empty() {
            break;
        }
        tokio::select! {
            Some(event) = events.recv() => match event {
                Event::Report(report) => followers.start_new(&report),
                Event::Over(last) => {
                    match last {
                        Ok(report) => followers.start_new(&report),
                        Err(lost) => outcome.problems.push(lost),
                    }
                    over_tx.send_replace(true);
                    after_end = Some(Box::pin(tokio::time::sleep(AFTER_END)));
                }
                Event::Chunk(entry, data) => printer.push(&entry, &data, out).await?,
                Event::Done(entry) => {
                    printer.finish(&entry, out).await?;
                    outcome.files += 1;
                }
                Event::Problem(problem) => outcome.problems.push(problem),
            },
            _ = refresh.tick(), if after_end.is_none() => {
                if let Ok(report) = rm.application_report(selection.app).await {
                    followers.start_new(&report);
                }
            }
            Some(_) = followers.tasks.join_next() => {}
            () = async { after_end.as_mut().expect("guarded").await }, if after_end.is_some() => {
                followers.tasks.abort_all();
                outcome.problems.push(ClientError::Rpc {
                    call: "ReadContainerLog",
                    code: tonic::Code::DeadlineExceeded,
                    message: format!(
                        "stopped following: logs were still streaming {AFTER_END:?} after the \
                         application ended"
                    ),
                });
                break;
            }
        }
    }
    watcher.abort();
    // The followers are done: what they sent last is still queued.
    while let Ok(event) = events.try_recv() {
        match event {
            Event::Chunk(entry, data) => printer.push(&entry, &data, out).await?,
            Event::Done(entry) => {
                printer.finish(&entry, out).await?;
                outcome.files += 1;
            }
            Event::Problem(problem) => outcome.problems.push(problem),
            Event::Report(_) | Event::Over(_) => {}
        }
    }
    printer.finish_all(out).await?;
    out.flush().await.map_err(stdout_error)?;
    Ok(outcome)
}

fn spawn_watch(
    mut rm: RmClient,
    selection: &LogSelection,
    events: Events,
) -> tokio::task::JoinHandle<()> {
    let app = selection.app;
    tokio::spawn(async move {
        let reports = events.clone();
        let last = crate::watch::follow(&mut rm, app, move |report| {
            let _ = reports.send(Event::Report(report.clone()));
        })
        .await;
        let _ = events.send(Event::Over(last));
    })
}

/// The containers being followed, one task each.
struct Followers {
    selection: LogSelection,
    access: LogAccess,
    events: Events,
    over: watch::Receiver<bool>,
    started: HashSet<String>,
    tasks: JoinSet<()>,
}

impl Followers {
    /// Starts following the report's containers that are not followed yet.
    fn start_new(&mut self, report: &proto::ApplicationReport) {
        let wanted = self.selection.container.map(|c| c.to_string());
        for c in &report.containers {
            if c.node_id.is_empty()
                || wanted.as_ref().is_some_and(|w| *w != c.container_id)
                || !self.started.insert(c.container_id.clone())
            {
                continue;
            }
            let Ok(id) = c.container_id.parse() else {
                continue;
            };
            let selection = LogSelection {
                container: Some(id),
                ..self.selection.clone()
            };
            self.tasks.spawn(follow_container(
                c.node_id.clone(),
                selection,
                self.events.clone(),
                self.over.clone(),
                self.access.clone(),
            ));
        }
    }
}

/// Follows one container's files on its node; one not started yet is looked for again until
/// the application ends; one whose node is gone by then is read from the RM's log store.
async fn follow_container(
    node: String,
    selection: LogSelection,
    events: Events,
    mut over: watch::Receiver<bool>,
    access: LogAccess,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let ended = *over.borrow_and_update();
        let problem = match NodeLogs::list(&node, &access, &selection).await {
            Ok((logs, entries)) if !entries.is_empty() => {
                join_all(
                    entries
                        .into_iter()
                        .map(|entry| follow_file(logs.clone(), entry, &events, &access)),
                )
                .await;
                return;
            }
            Ok(_) => None,
            Err(problem) => Some(problem),
        };
        if ended {
            from_store(&access, &selection, &events, problem).await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = over.changed() => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

async fn follow_file(mut logs: NodeLogs, entry: LogEntry, events: &Events, access: &LogAccess) {
    match logs.open(&entry, 0, true).await {
        Ok(Some(mut stream)) => loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    let _ = events.send(Event::Chunk(entry.clone(), chunk.data));
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = events.send(Event::Problem(ClientError::NodeUnreachable {
                        addr: logs.node().to_string(),
                        reason: format!(
                            "the log stream of {} {} broke: {}",
                            entry.container,
                            entry.file,
                            status.message()
                        ),
                    }));
                    break;
                }
            }
        },
        // Aggregated and deleted on the node since it was listed.
        Ok(None) => {
            let stored = LogEntry {
                origin: Origin::Store,
                ..entry
            };
            return copy_from_store(access, stored, events).await;
        }
        Err(problem) => {
            let _ = events.send(Event::Problem(problem));
        }
    }
    let _ = events.send(Event::Done(entry));
}

/// Reads the selection's files from the RM's log store; if it has none, `problem` (why the node
/// could not tell) is the answer.
async fn from_store(
    access: &LogAccess,
    selection: &LogSelection,
    events: &Events,
    problem: Option<ClientError>,
) {
    let listed = match access.store().await {
        Ok(mut store) => store.list(selection).await,
        Err(e) => Err(e),
    };
    match listed {
        Ok(entries) if !entries.is_empty() => {
            for entry in entries {
                copy_from_store(access, entry, events).await;
            }
        }
        Ok(_) => {
            if let Some(problem) = problem {
                let _ = events.send(Event::Problem(problem));
            }
        }
        Err(e) => {
            let _ = events.send(Event::Problem(problem.unwrap_or(e)));
        }
    }
}

async fn copy_from_store(access: &LogAccess, entry: LogEntry, events: &Events) {
    let opened = match access.store().await {
        Ok(mut store) => store.open(&entry, 0).await,
        Err(e) => Err(e),
    };
    match opened {
        Ok(Some(mut stream)) => loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    let _ = events.send(Event::Chunk(entry.clone(), chunk.data));
                }
                Ok(None) => break,
                Err(status) => {
                    let _ = events.send(Event::Problem(ClientError::from_status(
                        "ReadLog",
                        access.rm_addr(),
                        status,
                    )));
                    break;
                }
            }
        },
        Ok(None) => {}
        Err(problem) => {
            let _ = events.send(Event::Problem(problem));
        }
    }
    let _ = events.send(Event::Done(entry));
}

/// Interleaves many files' output line by line, with a header whenever the file shown changes.
#[derive(Default)]
struct Printer {
    last: Option<LogEntry>,
    /// What came after each file's last newline, held until its line is complete.
    pending: HashMap<LogEntry, Vec<u8>>,
}

impl Printer {
    async fn push(
        &mut self,
        entry: &LogEntry,
        data: &[u8],
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), ClientError> {
        let pending = self.pending.entry(entry.clone()).or_default();
        pending.extend_from_slice(data);
        let Some(last_newline) = pending.iter().rposition(|b| *b == b'\n') else {
            return Ok(());
        };
        let lines: Vec<u8> = pending.drain(..=last_newline).collect();
        self.emit(entry, &lines, out).await
    }

    /// The file has ended: its last line, complete or not.
    async fn finish(
        &mut self,
        entry: &LogEntry,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), ClientError> {
        match self.pending.remove(entry) {
            Some(rest) if !rest.is_empty() => self.emit(entry, &rest, out).await,
            _ => Ok(()),
        }
    }

    async fn finish_all(&mut self, out: &mut (impl AsyncWrite + Unpin)) -> Result<(), ClientError> {
        let entries: Vec<LogEntry> = self.pending.keys().cloned().collect();
        for entry in entries {
            self.finish(&entry, out).await?;
        }
        Ok(())
    }

    async fn emit(
        &mut self,
        entry: &LogEntry,
        bytes: &[u8],
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<(), ClientError> {
        if self.last.as_ref() != Some(entry) {
            let separator = if self.last.is_none() { "" } else { "\n" };
            write_out(out, format!("{separator}{}", entry.header()).as_bytes()).await?;
            self.last = Some(entry.clone());
        }
        write_out(out, bytes).await?;
        // Each line shows as it comes, not when a buffer fills.
        out.flush().await.map_err(stdout_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(container: &str, file: &str) -> LogEntry {
        LogEntry {
            container: container.into(),
            node: "n:1".into(),
            file: file.into(),
            origin: Origin::Node,
        }
    }

    #[tokio::test]
    async fn lines_of_many_files_interleave_whole_under_headers() {
        let (a, b) = (entry("c1", "stdout"), entry("c2", "stderr"));
        let mut printer = Printer::default();
        let mut out = Vec::new();
        printer.push(&a, b"one\ntw", &mut out).await.unwrap();
        printer.push(&b, b"x", &mut out).await.unwrap();
        printer.push(&b, b"y\n", &mut out).await.unwrap();
        printer.push(&a, b"o\n", &mut out).await.unwrap();
        printer.push(&a, b"three", &mut out).await.unwrap();
        printer.push(&a, b"\nfour\n", &mut out).await.unwrap();
        printer.push(&b, b"no newline", &mut out).await.unwrap();
        printer.finish_all(&mut out).await.unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "==> c1 on node n:1: stdout <==\none\n\
             \n==> c2 on node n:1: stderr <==\nxy\n\
             \n==> c1 on node n:1: stdout <==\ntwo\nthree\nfour\n\
             \n==> c2 on node n:1: stderr <==\nno newline"
        );
    }
}

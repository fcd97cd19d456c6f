//! The driver's task scheduler as a plain value: which executors are registered, which tasks
//! wait, which run where. Each method takes one event (an executor registers or is lost, a job
//! is submitted, a task reports) and returns the effects to carry out; no sockets, no clocks,
//! so every scheduling rule is tested without a network. `driver.rs` owns one of these in a
//! single task and performs its effects.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;

use spindle_protocol::LaunchTask;

/// Spark's `spark.task.maxFailures`: a task may fail this many times before its job fails.
pub const DEFAULT_MAX_TASK_FAILURES: u32 = 4;

/// Names one job (one `DriverContext::run` call) within a driver.
pub type JobId = u64;

/// What the driver knows of a registered executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorInfo {
    pub executor_id: String,
    pub hostname: String,
    pub cores: u32,
    /// The container the executor runs in, when it runs in one (cluster mode).
    pub container_id: Option<String>,
}

/// Why an executor's registration was refused (sent back as `RegisterExecutorFailed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("duplicate executor id {0:?}: an executor with this id is already registered")]
    Duplicate(String),
    #[error("executor_id must not be empty")]
    EmptyId,
    #[error("executor {0:?} offered cores=0; an executor needs at least 1 core")]
    NoCores(String),
}

/// A status update that matches no task the named executor is running (already re-run
/// elsewhere, or never launched there). It is dropped; the driver logs it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "status update from executor {executor_id:?} for task_id={task_id}, which it is not running"
)]
pub struct StaleStatus {
    pub executor_id: String,
    pub task_id: u64,
}

/// A task that used up its failures, failing its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskFailure {
    pub task_name: String,
    /// The task's position in the job's inputs.
    pub index: usize,
    pub failures: u32,
    pub max_task_failures: u32,
    /// Where it failed last, and how.
    pub executor_id: String,
    pub error: String,
}

impl fmt::Display for TaskFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task '{}' input #{} failed {} time(s) (max_task_failures={}); most recent failure on executor {}: {}",
            self.task_name,
            self.index,
            self.failures,
            self.max_task_failures,
            self.executor_id,
            self.error
        )
    }
}

impl std::error::Error for TaskFailure {}

/// What the server must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send this task to this executor.
    Launch {
        executor_id: String,
        launch: LaunchTask,
    },
    /// The job is over: every output in input order, or the failure that ended it.
    JobFinished {
        job: JobId,
        outcome: Result<Vec<Vec<u8>>, TaskFailure>,
    },
}

struct Executor {
    info: ExecutorInfo,
    free_cores: u32,
    /// Registration order, so ties between equally free executors break the same way each time.
    order: u64,
}

#[derive(Default)]
struct TaskState {
    failures: u32,
    launches: u32,
    /// Executors this task failed on; a retry goes elsewhere while another executor exists.
    failed_on: HashSet<String>,
}

struct Job {
    task_name: String,
    inputs: Vec<Vec<u8>>,
    outputs: Vec<Option<Vec<u8>>>,
    remaining: usize,
    tasks: Vec<TaskState>,
}

struct Running {
    job: JobId,
    index: usize,
    executor_id: String,
}

/// The driver's scheduler: jobs of tasks, spread over executors, at most `cores` at once each.
pub struct TaskScheduler {
    max_task_failures: u32,
    executors: HashMap<String, Executor>,
    next_order: u64,
    jobs: HashMap<JobId, Job>,
    next_job: JobId,
    /// Tasks waiting for a core, as (job, index); retries go to the front.
    pending: VecDeque<(JobId, usize)>,
    /// Launched task attempts by task id. An attempt of an aborted job stays here until its
    /// executor answers or is lost, because it still occupies a core.
    running: HashMap<u64, Running>,
    next_task_id: u64,
}

impl TaskScheduler {
    /// `max_task_failures` below 1 is taken as 1 (no retries).
    pub fn new(max_task_failures: u32) -> TaskScheduler {
        TaskScheduler {
            max_task_failures: max_task_failures.max(1),
            executors: HashMap::new(),
            next_order: 0,
            jobs: HashMap::new(),
            next_job: 0,
            pending: VecDeque::new(),
            running: HashMap::new(),
            next_task_id: 0,
        }
    }

    pub fn max_task_failures(&self) -> u32 {
        self.max_task_failures
    }

    /// The registered executors, in registration order.
    pub fn executors(&self) -> Vec<ExecutorInfo> {
        let mut executors: Vec<&Executor> = self.executors.values().collect();
        executors.sort_by_key(|e| e.order);
        executors.into_iter().map(|e| e.info.clone()).collect()
    }

    /// How many task attempts are running on `executor_id`.
    pub fn running_on(&self, executor_id: &str) -> usize {
        self.running
            .values()
            .filter(|r| r.executor_id == executor_id)
            .count()
    }

    pub fn register_executor(&mut self, info: ExecutorInfo) -> Result<Vec<Effect>, RegisterError> {
        if info.executor_id.is_empty() {
            return Err(RegisterError::EmptyId);
        }
        if info.cores == 0 {
            return Err(RegisterError::NoCores(info.executor_id));
        }
        if self.executors.contains_key(&info.executor_id) {
            return Err(RegisterError::Duplicate(info.executor_id));
        }
        let order = self.next_order;
        self.next_order += 1;
        self.executors.insert(
            info.executor_id.clone(),
            Executor {
                free_cores: info.cores,
                info,
                order,
            },
        );
        Ok(self.schedule())
    }

    /// The executor's session ended: its running tasks go back to the front of the queue
    /// without counting as failures (the executor was lost, not the task).
    pub fn executor_lost(&mut self, executor_id: &str) -> Vec<Effect> {
        if self.executors.remove(executor_id).is_none() {
            return Vec::new();
        }
        let lost: Vec<u64> = self
            .running
            .iter()
            .filter(|(_, r)| r.executor_id == executor_id)
            .map(|(task_id, _)| *task_id)
            .collect();
        let mut requeue: Vec<(JobId, usize)> = lost
            .into_iter()
            .filter_map(|task_id| self.running.remove(&task_id))
            .filter(|r| self.jobs.contains_key(&r.job))
            .map(|r| (r.job, r.index))
            .collect();
        requeue.sort_unstable();
        for entry in requeue.into_iter().rev() {
            self.pending.push_front(entry);
        }
        self.schedule()
    }

    /// Queues one task per input. A job without inputs is finished at once.
    pub fn submit_job(&mut self, task_name: String, inputs: Vec<Vec<u8>>) -> (JobId, Vec<Effect>) {
        let job = self.next_job;
        self.next_job += 1;
        if inputs.is_empty() {
            let finished = Effect::JobFinished {
                job,
                outcome: Ok(Vec::new()),
            };
            return (job, vec![finished]);
        }
        let n = inputs.len();
        self.jobs.insert(
            job,
            Job {
                task_name,
                inputs,
                outputs: vec![None; n],
                remaining: n,
                tasks: (0..n).map(|_| TaskState::default()).collect(),
            },
        );
        self.pending.extend((0..n).map(|index| (job, index)));
        (job, self.schedule())
    }

    /// A task attempt reported. A success fills its output; a failure is retried (on another
    /// executor when there is one) until it has failed `max_task_failures` times, which fails
    /// the job and drops its other waiting tasks.
    pub fn status_update(
        &mut self,
        executor_id: &str,
        task_id: u64,
        result: Result<Vec<u8>, String>,
    ) -> Result<Vec<Effect>, StaleStatus> {
        let stale = || StaleStatus {
            executor_id: executor_id.to_string(),
            task_id,
        };
        if self.running.get(&task_id).map(|r| r.executor_id.as_str()) != Some(executor_id) {
            return Err(stale());
        }
        let running = self.running.remove(&task_id).ok_or_else(stale)?;
        if let Some(executor) = self.executors.get_mut(executor_id) {
            executor.free_cores += 1;
        }
        let mut effects = Vec::new();
        if let Some(job) = self.jobs.get_mut(&running.job) {
            match result {
                Ok(output) => {
                    let slot = &mut job.outputs[running.index];
                    if slot.is_none() {
                        *slot = Some(output);
                        job.remaining -= 1;
                    }
                    if job.remaining == 0 {
                        effects.push(self.finish_job(running.job));
                    }
                }
                Err(error) => {
                    let task = &mut job.tasks[running.index];
                    task.failures += 1;
                    task.failed_on.insert(executor_id.to_string());
                    if task.failures >= self.max_task_failures {
                        let failure = TaskFailure {
                            task_name: job.task_name.clone(),
                            index: running.index,
                            failures: task.failures,
                            max_task_failures: self.max_task_failures,
                            executor_id: executor_id.to_string(),
                            error,
                        };
                        effects.push(self.abort_job(running.job, failure));
                    } else {
                        self.pending.push_front((running.job, running.index));
                    }
                }
            }
        }
        effects.extend(self.schedule());
        Ok(effects)
    }

    fn finish_job(&mut self, job_id: JobId) -> Effect {
        let outputs = self
            .jobs
            .remove(&job_id)
            .map(|job| job.outputs.into_iter().flatten().collect())
            .unwrap_or_default();
        Effect::JobFinished {
            job: job_id,
            outcome: Ok(outputs),
        }
    }

    fn abort_job(&mut self, job_id: JobId, failure: TaskFailure) -> Effect {
        self.jobs.remove(&job_id);
        self.pending.retain(|(job, _)| *job != job_id);
        Effect::JobFinished {
            job: job_id,
            outcome: Err(failure),
        }
    }

    /// Hands waiting tasks to free cores, in queue order; a task that may not run on any free
    /// executor (it failed on each of them while others exist) keeps its place.
    fn schedule(&mut self) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut position = 0;
        while position < self.pending.len() {
            if !self.executors.values().any(|e| e.free_cores > 0) {
                break;
            }
            let (job, index) = self.pending[position];
            match self.pick_executor(job, index) {
                Some(executor_id) => {
                    self.pending.remove(position);
                    if let Some(effect) = self.launch(job, index, executor_id) {
                        effects.push(effect);
                    }
                }
                None => position += 1,
            }
        }
        effects
    }

    /// The free executor with the most free cores (spreading the work), avoiding executors the
    /// task already failed on as long as some live executor has not failed it.
    fn pick_executor(&self, job: JobId, index: usize) -> Option<String> {
        let failed_on = &self.jobs.get(&job)?.tasks.get(index)?.failed_on;
        let avoid_failed = self.executors.keys().any(|id| !failed_on.contains(id));
        self.executors
            .values()
            .filter(|e| e.free_cores > 0)
            .filter(|e| !(avoid_failed && failed_on.contains(&e.info.executor_id)))
            .max_by(|a, b| {
                a.free_cores
                    .cmp(&b.free_cores)
                    .then_with(|| b.order.cmp(&a.order))
            })
            .map(|e| e.info.executor_id.clone())
    }

    fn launch(&mut self, job_id: JobId, index: usize, executor_id: String) -> Option<Effect> {
        let job = self.jobs.get_mut(&job_id)?;
        let executor = self.executors.get_mut(&executor_id)?;
        let task = job.tasks.get_mut(index)?;
        executor.free_cores -= 1;
        let attempt = task.launches;
        task.launches += 1;
        let task_id = self.next_task_id;
        self.next_task_id += 1;
        self.running.insert(
            task_id,
            Running {
                job: job_id,
                index,
                executor_id: executor_id.clone(),
            },
        );
        Some(Effect::Launch {
            executor_id,
            launch: LaunchTask {
                task_id,
                task_name: job.task_name.clone(),
                input: job.inputs[index].clone(),
                attempt,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executor(id: &str, cores: u32) -> ExecutorInfo {
        ExecutorInfo {
            executor_id: id.into(),
            hostname: "host".into(),
            cores,
            container_id: None,
        }
    }

    fn launches(effects: &[Effect]) -> Vec<(String, u64, Vec<u8>, u32)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Launch {
                    executor_id,
                    launch,
                } => Some((
                    executor_id.clone(),
                    launch.task_id,
                    launch.input.clone(),
                    launch.attempt,
                )),
                Effect::JobFinished { .. } => None,
            })
            .collect()
    }

    fn finished(effects: &[Effect]) -> Option<Result<Vec<Vec<u8>>, TaskFailure>> {
        effects.iter().find_map(|e| match e {
            Effect::JobFinished { outcome, .. } => Some(outcome.clone()),
            Effect::Launch { .. } => None,
        })
    }

    fn inputs(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i]).collect()
    }

    #[test]
    fn registration_rejects_duplicates_empty_ids_and_zero_cores() {
        let mut s = TaskScheduler::new(4);
        assert!(s.register_executor(executor("1", 2)).is_ok());
        assert_eq!(
            s.register_executor(executor("1", 2)),
            Err(RegisterError::Duplicate("1".into()))
        );
        assert_eq!(
            s.register_executor(executor("", 2)),
            Err(RegisterError::EmptyId)
        );
        assert_eq!(
            s.register_executor(executor("2", 0)),
            Err(RegisterError::NoCores("2".into()))
        );
        assert_eq!(s.executors().len(), 1);
    }

    #[test]
    fn tasks_spread_over_executors_and_never_exceed_cores() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 2)).unwrap();
        s.register_executor(executor("b", 1)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(5));
        let launched = launches(&effects);
        assert_eq!(launched.len(), 3, "only 3 cores exist");
        assert_eq!(s.running_on("a"), 2);
        assert_eq!(s.running_on("b"), 1);
        // The most free executor goes first: a (2 free), then the tie a/b goes to a (earlier).
        assert_eq!(launched[0].0, "a");
        assert_eq!(launched[0].2, vec![0]);
    }

    #[test]
    fn outputs_come_back_in_input_order_whatever_the_completion_order() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 3)).unwrap();
        let (job, effects) = s.submit_job("t".into(), inputs(3));
        let launched = launches(&effects);
        let mut last = Vec::new();
        for (executor_id, task_id, input, _) in launched.into_iter().rev() {
            let output = vec![input[0] + 10];
            last = s.status_update(&executor_id, task_id, Ok(output)).unwrap();
        }
        assert_eq!(
            last,
            vec![Effect::JobFinished {
                job,
                outcome: Ok(vec![vec![10], vec![11], vec![12]])
            }]
        );
    }

    #[test]
    fn an_empty_job_finishes_at_once() {
        let mut s = TaskScheduler::new(4);
        let (_, effects) = s.submit_job("t".into(), Vec::new());
        assert_eq!(finished(&effects), Some(Ok(Vec::new())));
    }

    #[test]
    fn a_failed_task_is_retried_on_another_executor() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 1)).unwrap();
        s.register_executor(executor("b", 1)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(1));
        let (first, task_id, _, attempt) = launches(&effects)[0].clone();
        assert_eq!(attempt, 0);
        let effects = s
            .status_update(&first, task_id, Err("broke".into()))
            .unwrap();
        let retry = launches(&effects);
        assert_eq!(retry.len(), 1);
        assert_ne!(
            retry[0].0, first,
            "the retry must avoid the executor it failed on"
        );
        assert_eq!(retry[0].3, 1, "second attempt");
        assert_ne!(retry[0].1, task_id, "every attempt has its own task id");
    }

    #[test]
    fn a_retry_waits_for_another_executor_rather_than_reuse_the_failed_one() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 1)).unwrap();
        s.register_executor(executor("b", 1)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(2));
        let launched = launches(&effects);
        let on_a = launched.iter().find(|l| l.0 == "a").unwrap().clone();
        let on_b = launched.iter().find(|l| l.0 == "b").unwrap().clone();
        let effects = s.status_update("a", on_a.1, Err("x".into())).unwrap();
        assert!(
            launches(&effects).is_empty(),
            "a is free but the task failed there"
        );
        let effects = s.status_update("b", on_b.1, Ok(vec![1])).unwrap();
        assert_eq!(launches(&effects)[0].0, "b");
    }

    #[test]
    fn with_one_executor_a_retry_runs_where_it_failed() {
        let mut s = TaskScheduler::new(2);
        s.register_executor(executor("a", 1)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(1));
        let (_, task_id, _, _) = launches(&effects)[0].clone();
        let effects = s.status_update("a", task_id, Err("x".into())).unwrap();
        assert_eq!(launches(&effects)[0].0, "a");
    }

    #[test]
    fn the_job_fails_after_max_task_failures_with_the_last_error() {
        let mut s = TaskScheduler::new(3);
        s.register_executor(executor("a", 1)).unwrap();
        s.register_executor(executor("b", 1)).unwrap();
        let (job, mut effects) = s.submit_job("t".into(), inputs(1));
        for n in 1..=3 {
            let (executor_id, task_id, _, _) = launches(&effects)[0].clone();
            effects = s
                .status_update(&executor_id, task_id, Err(format!("failure {n}")))
                .unwrap();
        }
        let Some(Err(failure)) = finished(&effects) else {
            panic!("the job should have failed: {effects:?}");
        };
        assert_eq!(failure.failures, 3);
        assert_eq!(failure.error, "failure 3");
        assert_eq!(failure.index, 0);
        assert!(!s.jobs.contains_key(&job));
        assert!(s.pending.is_empty());
    }

    #[test]
    fn an_aborted_jobs_running_tasks_keep_their_cores_until_they_answer() {
        let mut s = TaskScheduler::new(1);
        s.register_executor(executor("a", 2)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(2));
        let launched = launches(&effects);
        let effects = s
            .status_update("a", launched[0].1, Err("x".into()))
            .unwrap();
        assert!(matches!(finished(&effects), Some(Err(_))));
        let (_, effects) = s.submit_job("t".into(), inputs(2));
        assert_eq!(launches(&effects).len(), 1, "one core still busy");
        let effects = s.status_update("a", launched[1].1, Ok(vec![9])).unwrap();
        assert_eq!(
            launches(&effects).len(),
            1,
            "the freed core takes the next task"
        );
        assert_eq!(finished(&effects), None, "the late answer finishes nothing");
    }

    #[test]
    fn a_lost_executors_tasks_rerun_elsewhere_without_counting_failures() {
        let mut s = TaskScheduler::new(1);
        s.register_executor(executor("a", 2)).unwrap();
        let (job, effects) = s.submit_job("t".into(), inputs(2));
        let launched = launches(&effects);
        assert!(
            s.executor_lost("a").is_empty(),
            "nobody is left to run them"
        );
        let effects = s.register_executor(executor("b", 2)).unwrap();
        let relaunched = launches(&effects);
        assert_eq!(relaunched.len(), 2);
        assert_eq!(relaunched[0].2, vec![0], "lost tasks keep their order");
        assert!(relaunched.iter().all(|l| l.0 == "b" && l.3 == 1));
        // The old attempt's late answer is refused.
        assert!(s.status_update("a", launched[0].1, Ok(vec![0])).is_err());
        s.status_update("b", relaunched[0].1, Ok(vec![0])).unwrap();
        let effects = s.status_update("b", relaunched[1].1, Ok(vec![1])).unwrap();
        assert_eq!(
            effects,
            vec![Effect::JobFinished {
                job,
                outcome: Ok(vec![vec![0], vec![1]])
            }]
        );
    }

    #[test]
    fn a_status_from_the_wrong_executor_is_stale() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 1)).unwrap();
        s.register_executor(executor("b", 1)).unwrap();
        let (_, effects) = s.submit_job("t".into(), inputs(1));
        let (executor_id, task_id, _, _) = launches(&effects)[0].clone();
        let other = if executor_id == "a" { "b" } else { "a" };
        assert_eq!(
            s.status_update(other, task_id, Ok(vec![])),
            Err(StaleStatus {
                executor_id: other.into(),
                task_id
            })
        );
        assert!(s.status_update(&executor_id, 999, Ok(vec![])).is_err());
        assert_eq!(s.running_on(&executor_id), 1);
    }

    #[test]
    fn jobs_share_executors_in_submission_order() {
        let mut s = TaskScheduler::new(4);
        s.register_executor(executor("a", 1)).unwrap();
        let (first, effects) = s.submit_job("one".into(), inputs(1));
        let (second, none) = s.submit_job("two".into(), inputs(1));
        assert!(launches(&none).is_empty());
        let (_, task_id, _, _) = launches(&effects)[0].clone();
        let effects = s.status_update("a", task_id, Ok(vec![1])).unwrap();
        assert!(effects.contains(&Effect::JobFinished {
            job: first,
            outcome: Ok(vec![vec![1]])
        }));
        let next = launches(&effects);
        assert_eq!(next.len(), 1);
        let effects = s.status_update("a", next[0].1, Ok(vec![2])).unwrap();
        assert_eq!(
            effects,
            vec![Effect::JobFinished {
                job: second,
                outcome: Ok(vec![vec![2]])
            }]
        );
    }
}

//! The context promise, Spark's `sparkContextPromise`: how the cluster-mode AM learns that the
//! driver, running on its own thread, has created its context (and at which URL executors
//! reach it), and how the driver then waits until the AM has registered with the RM and says
//! "go" (Spark's `resumeDriver`). Two oneshot channels, one each way.

use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::context::DriverContext;
use super::scheduler::ExecutorInfo;

/// What the driver hands the AM once its context exists.
#[derive(Debug, Clone)]
pub struct DriverReady {
    /// The driver endpoint's URL, the executors' `--driver-url`.
    pub driver_url: String,
    /// A handle on the same driver, so the AM can stop its executors and its jobs when it must
    /// end the application while the user's driver is still running (Spark interrupts the
    /// user's thread there; a Rust thread cannot be interrupted, so its jobs fail instead).
    pub context: DriverContext,
    /// The total executors the driver asks for (`None` until it asks).
    pub executor_target: watch::Receiver<Option<u32>>,
    /// The executors registered with the driver.
    pub executors: watch::Receiver<Vec<ExecutorInfo>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromiseError {
    #[error("the driver did not initialize its context within {0:?} (am-wait-time)")]
    Timeout(Duration),
    #[error("the driver ended without initializing its context")]
    DriverEnded,
    #[error("the application master stopped before resuming the driver")]
    NotResumed,
}

/// Creates a linked pair: the driver thread keeps the promise, the AM keeps the waiter.
pub fn context_promise() -> (ContextPromise, ContextWaiter) {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (resume_tx, resume_rx) = oneshot::channel();
    (
        ContextPromise {
            ready: ready_tx,
            resume: resume_rx,
        },
        ContextWaiter {
            ready: ready_rx,
            resume: resume_tx,
        },
    )
}

/// The driver's side. Dropping it unfulfilled tells the AM the driver ended first.
#[derive(Debug)]
pub struct ContextPromise {
    ready: oneshot::Sender<DriverReady>,
    resume: oneshot::Receiver<()>,
}

impl ContextPromise {
    /// Hands `ready` to the AM, then blocks the driver thread until the AM resumes it. Must not
    /// be called from async code (use [`ContextPromise::fulfil_async`]).
    pub fn fulfil(self, ready: DriverReady) -> Result<(), PromiseError> {
        self.ready
            .send(ready)
            .map_err(|_| PromiseError::NotResumed)?;
        self.resume
            .blocking_recv()
            .map_err(|_| PromiseError::NotResumed)
    }

    /// [`ContextPromise::fulfil`] for async callers.
    pub async fn fulfil_async(self, ready: DriverReady) -> Result<(), PromiseError> {
        self.ready
            .send(ready)
            .map_err(|_| PromiseError::NotResumed)?;
        self.resume.await.map_err(|_| PromiseError::NotResumed)
    }
}

/// The AM's side.
#[derive(Debug)]
pub struct ContextWaiter {
    ready: oneshot::Receiver<DriverReady>,
    resume: oneshot::Sender<()>,
}

impl ContextWaiter {
    /// Waits up to `am_wait_time` for the driver's context. On success the driver is paused
    /// until [`ResumeDriver::resume`]; dropping the `ResumeDriver` instead releases the driver
    /// with [`PromiseError::NotResumed`].
    pub async fn wait(
        self,
        am_wait_time: Duration,
    ) -> Result<(DriverReady, ResumeDriver), PromiseError> {
        match tokio::time::timeout(am_wait_time, self.ready).await {
            Ok(Ok(ready)) => Ok((ready, ResumeDriver(self.resume))),
            Ok(Err(_)) => Err(PromiseError::DriverEnded),
            Err(_) => Err(PromiseError::Timeout(am_wait_time)),
        }
    }
}

/// The AM's "go": lets the paused driver continue into the user's code.
#[derive(Debug)]
pub struct ResumeDriver(oneshot::Sender<()>);

impl ResumeDriver {
    pub fn resume(self) {
        // If the driver thread is gone there is nobody left to resume; its outcome says why.
        let _ = self.0.send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::app::TaskRegistry;

    fn ready(url: &str) -> DriverReady {
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        let context = DriverContext::new(
            url.into(),
            events,
            watch::channel(Vec::new()).1,
            watch::channel(None).0,
            TaskRegistry::default(),
            Vec::new(),
            tokio::runtime::Handle::current(),
        );
        DriverReady {
            driver_url: url.into(),
            context,
            executor_target: watch::channel(None).1,
            executors: watch::channel(Vec::new()).1,
        }
    }

    #[tokio::test]
    async fn the_am_gets_the_url_and_the_driver_waits_for_resume() {
        let (promise, waiter) = context_promise();
        let (resumed_tx, mut resumed) = oneshot::channel();
        let handed = ready("http://h:1");
        let driver = std::thread::spawn(move || {
            let outcome = promise.fulfil(handed);
            let _ = resumed_tx.send(());
            outcome
        });
        let (got, resume) = waiter.wait(Duration::from_secs(60)).await.unwrap();
        assert_eq!(got.driver_url, "http://h:1");
        assert!(
            resumed.try_recv().is_err(),
            "the driver must stay paused until resumed"
        );
        resume.resume();
        let outcome = tokio::task::spawn_blocking(move || driver.join().unwrap())
            .await
            .unwrap();
        assert_eq!(outcome, Ok(()));
    }

    #[tokio::test]
    async fn times_out_when_the_driver_never_creates_its_context() {
        let (_promise, waiter) = context_promise();
        let err = waiter.wait(Duration::from_millis(10)).await.unwrap_err();
        assert_eq!(err, PromiseError::Timeout(Duration::from_millis(10)));
        assert!(err.to_string().contains("am-wait-time"));
    }

    #[tokio::test]
    async fn a_driver_that_ends_first_is_reported_at_once() {
        let (promise, waiter) = context_promise();
        drop(promise);
        let err = waiter.wait(Duration::from_secs(60)).await.unwrap_err();
        assert_eq!(err, PromiseError::DriverEnded);
    }

    #[tokio::test]
    async fn a_driver_is_released_when_the_am_gives_up() {
        let (promise, waiter) = context_promise();
        let driver = tokio::spawn(promise.fulfil_async(ready("http://h:1")));
        let (_, resume) = waiter.wait(Duration::from_secs(60)).await.unwrap();
        drop(resume);
        assert_eq!(driver.await.unwrap(), Err(PromiseError::NotResumed));
    }
}

//! The background tasks of one node manager (container watchers, stops, clean-ups), kept so that
//! `shutdown` can wait until every one of them has ended.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::task::JoinSet;

#[derive(Debug, Default)]
pub struct Tasks {
    set: Mutex<JoinSet<()>>,
}

impl Tasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        // Reap what has ended so the set does not grow with the node's history.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }

    /// Waits until every task has ended, including tasks spawned while waiting.
    pub async fn join_all(&self) {
        loop {
            let mut set =
                std::mem::take(&mut *self.set.lock().unwrap_or_else(PoisonError::into_inner));
            if set.is_empty() {
                return;
            }
            while let Some(result) = set.join_next().await {
                if let Err(e) = result
                    && e.is_panic()
                {
                    tracing::error!("a node manager task panicked: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn join_all_waits_for_tasks_spawned_by_tasks() {
        let tasks = Arc::new(Tasks::default());
        let done = Arc::new(AtomicUsize::new(0));
        let (inner_tasks, inner_done) = (tasks.clone(), done.clone());
        tasks.spawn(async move {
            tokio::task::yield_now().await;
            let d = inner_done.clone();
            inner_tasks.spawn(async move {
                tokio::task::yield_now().await;
                d.fetch_add(1, Ordering::SeqCst);
            });
            inner_done.fetch_add(1, Ordering::SeqCst);
        });
        tasks.join_all().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }
}

//! Why a file that was just written can fail to execute with ETXTBSY ("Text file busy"), and the
//! barrier that prevents it. Linux refuses to execute a file that some process holds open for
//! writing. Every file is opened close-on-exec, but a child forked while one is open holds a
//! copy of its descriptor until the child execs, and a container's child does real work in
//! between (setsid, signal resets, the move into its cgroup, which can take milliseconds on a
//! loaded host). A container started meanwhile that executes the freshly localized program
//! then fails with exit 126. So every spawn holds the barrier (shared) from before its fork
//! until its child has exec'd, and whoever closes a written file that will be executed waits
//! for the spawns in flight to get past exec: no copy of its descriptor is left anywhere.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};

static FORKS: RwLock<()> = RwLock::new(());

/// Held around a spawn, which returns only once its child has exec'd (or failed to).
pub(crate) fn forking() -> RwLockReadGuard<'static, ()> {
    FORKS.read().unwrap_or_else(PoisonError::into_inner)
}

/// Returns once every spawn that had begun before this call is past exec. Call it after
/// closing a written file and before anyone may execute it.
pub(crate) async fn after_forks_in_flight() {
    // The wait is a few milliseconds at most (one fork and exec), but it blocks a thread.
    let _ = tokio::task::spawn_blocking(|| {
        drop(FORKS.write().unwrap_or_else(PoisonError::into_inner));
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_waits_for_the_spawn_in_flight_and_no_longer() {
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let spawner = std::thread::spawn(move || {
            let _forking = forking();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().unwrap();
        let mut waiting = tokio::spawn(after_forks_in_flight());
        // A hang guard would not do here: this checks that the writer is still waiting.
        let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
        assert!(
            early.is_err(),
            "the writer went on while a spawn was in flight"
        );
        release_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the writer goes on once the spawn is past exec")
            .unwrap();
        spawner.join().unwrap();
    }
}

//! Why a file that was just written can fail to execute with ETXTBSY ("Text file busy"), and how
//! the node avoids it. Linux refuses to execute a file while any open file description of it is
//! writable. Files are opened close-on-exec, but a child forked while one is open shares it until
//! its exec, and even then the kernel lets go of it only as the child returns to user space:
//! after its parent has been told that the exec succeeded, and later still when a loaded host
//! preempts the child right there. A container launched meanwhile that executes the freshly
//! localized program fails with exit 126. Waiting for the spawns in flight narrows that race
//! but cannot close it, so a file that will be executed is written while no fork can happen:
//! spawns hold this lock shared from before their fork until their child has exec'd, and the
//! writer holds it alone while the file is open for writing. No child ever shares it.

use std::io;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

static FORKS: RwLock<()> = RwLock::new(());

/// Held around a spawn, which returns only once its child has exec'd (or failed to).
pub(crate) fn forking() -> RwLockReadGuard<'static, ()> {
    FORKS.read().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `write` (blocking file I/O) on a blocking thread while no spawn can fork. `write` must
/// close whatever it opens for writing before it returns, and should be quick: spawns wait.
pub(crate) async fn without_forks<T: Send + 'static>(
    write: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(move || {
        let _alone = FORKS.write().unwrap_or_else(PoisonError::into_inner);
        write()
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_waits_for_the_spawn_in_flight_and_spawns_wait_for_the_writer() {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let spawner = std::thread::spawn(move || {
            let _forking = forking();
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
        });
        held_rx.recv().unwrap();
        let wrote = Arc::new(AtomicBool::new(false));
        let writing = Arc::clone(&wrote);
        let (inside_tx, inside_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let mut writer = tokio::spawn(without_forks(move || {
            writing.store(true, Ordering::SeqCst);
            inside_tx.send(()).unwrap();
            let _ = done_rx.recv();
            Ok(())
        }));
        // Not a hang guard: this checks that the writer is still held back meanwhile.
        let early = tokio::time::timeout(Duration::from_millis(200), &mut writer).await;
        assert!(
            early.is_err(),
            "the writer went on while a spawn was in flight"
        );
        assert!(!wrote.load(Ordering::SeqCst));
        release_tx.send(()).unwrap();
        spawner.join().unwrap();
        inside_rx.recv().unwrap();
        // The writer is at work: a spawn has to wait until it is done.
        let (forked_tx, forked_rx) = mpsc::channel();
        let late_spawner = std::thread::spawn(move || {
            let _forking = forking();
            forked_tx.send(()).unwrap();
        });
        assert!(
            forked_rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a spawn forked while the writer was at work"
        );
        done_tx.send(()).unwrap();
        forked_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the spawn goes on once the writer is done");
        late_spawner.join().unwrap();
        tokio::time::timeout(Duration::from_secs(60), writer)
            .await
            .expect("the writer is done")
            .unwrap()
            .unwrap();
    }
}

//! Following a container's log file as it grows (`ReadContainerLog` with `follow`, behind
//! `spindle logs --follow`): what is there is sent at once, then what is appended, until the
//! container completes; then the rest, and the stream ends.
//!
//! The end is event-driven (the container table's completion signal); growth is not, since
//! noticing a write without inotify needs a crate the workspace does not have: while a follower
//! is attached and has caught up, the file is looked at again every `FOLLOW_POLL`.

use std::path::PathBuf;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use crate::logs::LogError;

/// How often a caught-up follower looks for more (only while one is attached).
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
const CHUNK_BYTES: usize = 64 * 1024;

/// What a follower needs to know of the container whose log it follows.
pub struct Followed {
    /// Bumped whenever a container completes (any container: the follower checks its own).
    pub ended: watch::Receiver<u64>,
    /// Whether the container still runs (or is being launched).
    pub live: Box<dyn Fn() -> bool + Send + Sync>,
    /// Turns true when the node manager stops: followers end then, so shutdown is not held up.
    pub stopping: watch::Receiver<bool>,
    pub poll: Duration,
}

struct State {
    file: tokio::fs::File,
    path: PathBuf,
    followed: Followed,
    /// The container has completed: read to the end once more, then stop.
    draining: bool,
}

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { path, source }
}

/// Streams `path` from `offset`, then what is appended to it while the container lives.
pub async fn follow(
    path: PathBuf,
    offset: u64,
    followed: Followed,
) -> Result<BoxStream<'static, Result<Vec<u8>, LogError>>, LogError> {
    let mut file = crate::logs::open(&path)?;
    file.seek(std::io::SeekFrom::Start(offset.min(i64::MAX as u64)))
        .await
        .map_err(io(&path))?;
    let start = State {
        file,
        path,
        followed,
        draining: false,
    };
    Ok(stream::try_unfold(start, next_chunk).boxed())
}

async fn next_chunk(mut st: State) -> Result<Option<(Vec<u8>, State)>, LogError> {
    loop {
        let mut buf = vec![0; CHUNK_BYTES];
        let n = st.file.read(&mut buf).await.map_err(io(&st.path))?;
        if n > 0 {
            buf.truncate(n);
            return Ok(Some((buf, st)));
        }
        if st.draining || *st.followed.stopping.borrow() {
            return Ok(None);
        }
        // Marked seen before the check, so a completion after it still wakes the wait below.
        st.followed.ended.borrow_and_update();
        if !(st.followed.live)() {
            st.draining = true;
            continue;
        }
        tokio::select! {
            changed = st.followed.ended.changed() => {
                // The table is gone only when the node is: end with what was sent.
                if changed.is_err() {
                    st.draining = true;
                }
            }
            _ = st.followed.stopping.wait_for(|stop| *stop) => return Ok(None),
            () = tokio::time::sleep(st.followed.poll) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Fixture {
        ended: watch::Sender<u64>,
        live: Arc<AtomicBool>,
        stopping: watch::Sender<bool>,
    }

    fn fixture(poll: Duration) -> (Fixture, Followed) {
        let (ended, ended_rx) = watch::channel(0);
        let (stopping, stopping_rx) = watch::channel(false);
        let live = Arc::new(AtomicBool::new(true));
        let seen = live.clone();
        let followed = Followed {
            ended: ended_rx,
            live: Box::new(move || seen.load(Ordering::SeqCst)),
            stopping: stopping_rx,
            poll,
        };
        (
            Fixture {
                ended,
                live,
                stopping,
            },
            followed,
        )
    }

    async fn next(stream: &mut BoxStream<'static, Result<Vec<u8>, LogError>>) -> Option<String> {
        let chunk = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("hang guard: the follower answers");
        chunk.map(|c| String::from_utf8(c.unwrap()).unwrap())
    }

    #[tokio::test]
    async fn sends_what_is_appended_until_the_container_completes_then_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        std::fs::write(&path, "one\n").unwrap();
        let (fx, followed) = fixture(Duration::from_millis(5));
        let mut stream = follow(path.clone(), 0, followed).await.unwrap();
        assert_eq!(next(&mut stream).await.as_deref(), Some("one\n"));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"two\n").unwrap();
        assert_eq!(next(&mut stream).await.as_deref(), Some("two\n"));
        // Written just before it ended: still sent, then the stream ends.
        file.write_all(b"last\n").unwrap();
        fx.live.store(false, Ordering::SeqCst);
        fx.ended.send_modify(|n| *n += 1);
        assert_eq!(next(&mut stream).await.as_deref(), Some("last\n"));
        assert_eq!(next(&mut stream).await, None);
    }

    #[tokio::test]
    async fn the_end_of_a_container_is_heard_without_waiting_for_a_poll() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stderr");
        std::fs::write(&path, "").unwrap();
        // A poll this long would outlast the hang guard: only the completion can end it.
        let (fx, followed) = fixture(Duration::from_secs(3600));
        let mut stream = follow(path, 0, followed).await.unwrap();
        let waiter = tokio::spawn(async move { next(&mut stream).await });
        tokio::task::yield_now().await;
        fx.live.store(false, Ordering::SeqCst);
        fx.ended.send_modify(|n| *n += 1);
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_completed_container_is_read_once_and_a_stopping_node_ends_followers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout");
        std::fs::write(&path, "abcdef").unwrap();
        let (fx, followed) = fixture(Duration::from_secs(3600));
        fx.live.store(false, Ordering::SeqCst);
        let mut stream = follow(path.clone(), 2, followed).await.unwrap();
        assert_eq!(next(&mut stream).await.as_deref(), Some("cdef"));
        assert_eq!(next(&mut stream).await, None);

        let (fx, followed) = fixture(Duration::from_secs(3600));
        let mut stream = follow(path, 6, followed).await.unwrap();
        let waiter = tokio::spawn(async move { next(&mut stream).await });
        tokio::task::yield_now().await;
        fx.stopping.send_replace(true);
        assert_eq!(waiter.await.unwrap(), None);
    }
}

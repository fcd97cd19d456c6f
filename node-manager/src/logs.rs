//! Containers' log files, as `spindle logs`, the web server and completion diagnostics read them:
//! listing an application's log files, opening one by a plain file name (nothing outside the
//! container's log dir can be named), streaming it from an offset, and the tail of stderr.
//!
//! A log dir belongs to its container's user, who may put anything there; the node manager
//! (root, often) lists and opens only regular files in it, never through a link.

use std::path::{Path, PathBuf};

use futures::stream::{self, BoxStream, StreamExt};
use spindle_containers::launch_context::is_plain_file_name;
use spindle_containers::no_follow;
use spindle_containers::{ApplicationId, ContainerId};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::layout::Layout;

/// Bytes per chunk when streaming a log file.
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error(
        "log file name {0:?} is not allowed: it must be a plain file name inside the container's \
         log directory (e.g. stdout, stderr)"
    )]
    BadFileName(String),
    #[error("container {container} belongs to {actual}, not to application {requested}")]
    WrongApplication {
        container: ContainerId,
        requested: ApplicationId,
        actual: ApplicationId,
    },
    #[error("no logs of application {0} on this node")]
    NoApplication(ApplicationId),
    #[error(
        "no logs of container {0} on this node (once its application is over, its logs are in the \
         RM's log store: spindle logs)"
    )]
    NoContainer(ContainerId),
    #[error("container {container} has no log file {file:?}")]
    NoFile {
        container: ContainerId,
        file: String,
    },
    #[error("cannot read log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One container's log files: (name, size in bytes), sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerLogs {
    pub container: ContainerId,
    pub files: Vec<(String, u64)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { path, source }
}

/// The log files of `container`, or of every container of `app` on this node when `None`.
pub async fn list(
    layout: &Layout,
    app: ApplicationId,
    container: Option<ContainerId>,
) -> Result<Vec<ContainerLogs>, LogError> {
    let containers = match container {
        Some(c) if c.application() != app => {
            return Err(LogError::WrongApplication {
                container: c,
                requested: app,
                actual: c.application(),
            });
        }
        Some(c) => vec![c],
        None => containers_with_logs(layout, app).await?,
    };
    let mut listed = Vec::with_capacity(containers.len());
    for c in containers {
        listed.push(ContainerLogs {
            container: c,
            files: files_of(layout, c).await?,
        });
    }
    Ok(listed)
}

async fn containers_with_logs(
    layout: &Layout,
    app: ApplicationId,
) -> Result<Vec<ContainerId>, LogError> {
    let dir = layout.app_log_dir(app);
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LogError::NoApplication(app));
        }
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut ids = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
        // Only directories named by container ids are containers' logs.
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

async fn files_of(layout: &Layout, container: ContainerId) -> Result<Vec<(String, u64)>, LogError> {
    let dir = layout.log_dir(container);
    let mut entries = match tokio::fs::read_dir(&dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(LogError::NoContainer(container));
        }
        Err(e) => return Err(io(&dir)(e)),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io(&dir))? {
        let meta = entry.metadata().await.map_err(io(&entry.path()))?;
        if let (true, Some(name)) = (meta.is_file(), entry.file_name().to_str()) {
            files.push((name.to_string(), meta.len()));
        }
    }
    files.sort();
    Ok(files)
}

/// The path of log `file` of `container`, checked to be a plain name of an existing regular
/// file (a link is no log file).
pub async fn log_file(
    layout: &Layout,
    container: ContainerId,
    file: &str,
) -> Result<PathBuf, LogError> {
    if !is_plain_file_name(file) {
        return Err(LogError::BadFileName(file.to_string()));
    }
    let dir = layout.log_dir(container);
    if !tokio::fs::try_exists(&dir).await.unwrap_or(false) {
        return Err(LogError::NoContainer(container));
    }
    let path = dir.join(file);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(meta) if meta.is_file() => Ok(path),
        Ok(_) => Err(LogError::NoFile {
            container,
            file: file.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LogError::NoFile {
            container,
            file: file.to_string(),
        }),
        Err(e) => Err(io(&path)(e)),
    }
}

/// Streams `path` from byte `offset` to its end as it is now.
pub async fn read_from(
    path: PathBuf,
    offset: u64,
) -> Result<BoxStream<'static, Result<Vec<u8>, LogError>>, LogError> {
    let mut file = open(&path)?;
    // Past the end reads nothing; the kernel refuses to seek beyond i64::MAX, which is past
    // every end anyway.
    file.seek(std::io::SeekFrom::Start(offset.min(i64::MAX as u64)))
        .await
        .map_err(io(&path))?;
    let chunks = stream::try_unfold((file, path), |(mut file, path)| async move {
        let mut buf = vec![0; CHUNK_BYTES];
        let n = file.read(&mut buf).await.map_err(io(&path))?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        Ok(Some((buf, (file, path))))
    });
    Ok(chunks.boxed())
}

/// Opens a container's log file for reading: a regular file, not through a link.
pub fn open(path: &Path) -> Result<tokio::fs::File, LogError> {
    let file = no_follow::open_regular(path).map_err(io(path))?;
    Ok(tokio::fs::File::from_std(file))
}

/// The last `max_lines` lines of `path` (within its last `max_bytes`), or "" if unreadable.
pub async fn tail(path: &Path, max_lines: usize, max_bytes: u64) -> String {
    let Ok(mut file) = open(path) else {
        return String::new();
    };
    let len = file.metadata().await.map_or(0, |m| m.len());
    let start = len.saturating_sub(max_bytes);
    if file.seek(std::io::SeekFrom::Start(start)).await.is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).await.is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    // A cut in the middle of the first line makes it a fragment: drop it.
    let skip_fragment = usize::from(start > 0 && lines.len() > 1);
    let first = lines.len().saturating_sub(max_lines).max(skip_fragment);
    lines[first..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(app: u32, id: u64) -> ContainerId {
        format!("container_1700000000000_{app:04}_01_{id:06}")
            .parse()
            .unwrap()
    }

    fn write_log(layout: &Layout, c: ContainerId, name: &str, text: &str) {
        let dir = layout.log_dir(c);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[tokio::test]
    async fn lists_the_files_of_an_application_or_one_container() {
        let work = tempfile::tempdir().unwrap();
        let layout = Layout::new(work.path());
        write_log(&layout, cid(1, 2), "stdout", "hello\n");
        write_log(&layout, cid(1, 2), "stderr", "");
        write_log(&layout, cid(1, 1), "stdout", "x");
        std::fs::create_dir_all(layout.app_log_dir(cid(1, 1).application()).join("junk")).unwrap();
        let app = cid(1, 1).application();
        let all = list(&layout, app, None).await.unwrap();
        assert_eq!(
            all,
            vec![
                ContainerLogs {
                    container: cid(1, 1),
                    files: vec![("stdout".into(), 1)]
                },
                ContainerLogs {
                    container: cid(1, 2),
                    files: vec![("stderr".into(), 0), ("stdout".into(), 6)]
                },
            ]
        );
        assert_eq!(list(&layout, app, Some(cid(1, 2))).await.unwrap().len(), 1);
        assert!(matches!(
            list(&layout, app, Some(cid(2, 1))).await,
            Err(LogError::WrongApplication { .. })
        ));
        assert!(matches!(
            list(&layout, cid(3, 1).application(), None).await,
            Err(LogError::NoApplication(_))
        ));
    }

    #[tokio::test]
    async fn only_plain_names_of_existing_files_open() {
        let work = tempfile::tempdir().unwrap();
        let layout = Layout::new(work.path());
        write_log(&layout, cid(1, 1), "stdout", "abcdef");
        for bad in ["../stdout", "/etc/passwd", "..", ""] {
            assert!(matches!(
                log_file(&layout, cid(1, 1), bad).await,
                Err(LogError::BadFileName(_))
            ));
        }
        assert!(matches!(
            log_file(&layout, cid(1, 1), "nope").await,
            Err(LogError::NoFile { .. })
        ));
        assert!(matches!(
            log_file(&layout, cid(1, 2), "stdout").await,
            Err(LogError::NoContainer(_))
        ));
        let path = log_file(&layout, cid(1, 1), "stdout").await.unwrap();
        let chunks: Vec<Vec<u8>> = read_from(path, 2)
            .await
            .unwrap()
            .map(|c| c.unwrap())
            .collect()
            .await;
        assert_eq!(chunks.concat(), b"cdef");
    }

    #[tokio::test]
    async fn a_link_a_container_planted_in_its_log_dir_is_never_followed() {
        let work = tempfile::tempdir().unwrap();
        let layout = Layout::new(work.path());
        write_log(&layout, cid(1, 1), "stdout", "mine\n");
        let secret = work.path().join("secret");
        std::fs::write(&secret, "not yours\n").unwrap();
        let dir = layout.log_dir(cid(1, 1));
        std::os::unix::fs::symlink(&secret, dir.join("stderr")).unwrap();
        assert!(matches!(
            log_file(&layout, cid(1, 1), "stderr").await,
            Err(LogError::NoFile { .. })
        ));
        // Not listed (so not aggregated), not read by a path that was swapped after the check.
        let listed = list(&layout, cid(1, 1).application(), None).await.unwrap();
        assert_eq!(listed[0].files, vec![("stdout".to_string(), 5)]);
        assert!(read_from(dir.join("stderr"), 0).await.is_err());
        assert_eq!(tail(&dir.join("stderr"), 10, 4096).await, "");
    }

    #[tokio::test]
    async fn tail_keeps_the_last_whole_lines() {
        let work = tempfile::tempdir().unwrap();
        let path = work.path().join("stderr");
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(tail(&path, 3, 4096).await, "line 18\nline 19\nline 20");
        // 12 bytes from the end cut "line 19" in half: the fragment is dropped.
        assert_eq!(tail(&path, 10, 12).await, "line 20");
        assert_eq!(tail(&work.path().join("missing"), 3, 4096).await, "");
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// A log file name opens one of the container's own log files, or nothing.
        #[test]
        fn a_log_file_name_never_opens_anything_outside_the_log_dir(
            name in prop_oneof![
                Just(String::new()),
                Just(".".to_string()),
                Just("..".to_string()),
                Just("stdout".to_string()),
                "(\\.\\./){1,4}(secret|state/containers\\.redb)",
                "/[a-z]{1,8}(/[a-z]{1,8}){0,3}",
                "stdout/\\.\\./\\.\\./[a-z]{1,5}",
                "stdout\\x00[a-z./]{0,5}",
                "[a-z]{256,300}",
                "\\PC{1,16}",
            ]
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let work = tempfile::tempdir().unwrap();
            let layout = Layout::new(work.path());
            write_log(&layout, cid(1, 1), "stdout", "mine");
            std::fs::write(work.path().join("secret"), "not yours").unwrap();
            match runtime.block_on(log_file(&layout, cid(1, 1), &name)) {
                Ok(path) => {
                    prop_assert_eq!(&name, "stdout");
                    prop_assert_eq!(path, layout.log_dir(cid(1, 1)).join("stdout"));
                }
                Err(LogError::BadFileName(_)) => prop_assert!(!is_plain_file_name(&name)),
                Err(LogError::NoFile { .. }) => prop_assert!(is_plain_file_name(&name)),
                Err(e) => prop_assert!(false, "{name:?}: {e}"),
            }
        }
    }
}

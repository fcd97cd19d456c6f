//! The log store (YARN's log aggregation): the log files node managers upload when an application
//! is over, kept under `state_dir/app-logs/<application>/<container>/<file>` (and the node that
//! ran each container in `<application>/<container>.node`), listed and read back by `spindle logs`
//! once the node that wrote them is gone.
//!
//! Every name from the wire is checked before it touches a path: a container id that parses (it
//! names its application too) and a plain file name, so nothing outside that directory can be
//! written or read. An upload goes to `app-logs/.incoming/<n>/` first and is moved into place only
//! when its `end` message arrives; an upload cut short leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use spindle_containers::launch_context::is_plain_file_name;
use spindle_containers::{ApplicationId, ContainerId, IdError};
use spindle_protocol as proto;
use spindle_protocol::log_store_server::LogStore;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tonic::{Request, Response, Status, Streaming};

use super::status::shorten;

const CHUNK_BYTES: usize = 256 * 1024;
const INCOMING: &str = ".incoming";
/// Longest node id kept: a `host:port` fits many times over.
const MAX_NODE_ID_BYTES: usize = 1024;

pub struct LogStoreService {
    dir: PathBuf,
    next_upload: AtomicU64,
}

fn internal(what: &str, path: &Path, e: io::Error) -> Status {
    tracing::error!(path = %path.display(), error = %e, "log store: {what} failed");
    Status::internal(format!("log store could not {what}: {e}"))
}

pub(super) fn parse_app(value: &str) -> Result<ApplicationId, Status> {
    value.parse().map_err(|mut e: IdError| {
        e.value = shorten(&e.value);
        Status::invalid_argument(format!("application_id: {e}"))
    })
}

pub(super) fn parse_container(value: &str) -> Result<ContainerId, Status> {
    value.parse().map_err(|mut e: IdError| {
        e.value = shorten(&e.value);
        Status::invalid_argument(format!("container_id: {e}"))
    })
}

fn check_file(file: &str) -> Result<(), Status> {
    if is_plain_file_name(file) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "file {:?} is not allowed: it must be a plain file name inside the container's \
             log directory (e.g. stdout, stderr)",
            shorten(file)
        )))
    }
}

fn check_node_id(node_id: &str) -> Result<(), Status> {
    if node_id.len() <= MAX_NODE_ID_BYTES && !node_id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "node_id must be at most {MAX_NODE_ID_BYTES} bytes without control characters, \
             not {} bytes",
            node_id.len()
        )))
    }
}

/// Removes an upload's temporary directory unless it was committed.
struct Incoming(PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The file being written, and what the upload has written so far.
#[derive(Default)]
struct Received {
    current: Option<((ContainerId, String), File)>,
    files: BTreeSet<(ContainerId, String)>,
    nodes: BTreeMap<ContainerId, String>,
    bytes: u64,
}

impl LogStoreService {
    /// Opens (creating if needed) the store in `dir`, removing uploads a previous run left
    /// unfinished.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        match std::fs::remove_dir_all(dir.join(INCOMING)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(LogStoreService {
            dir,
            next_upload: AtomicU64::new(0),
        })
    }

    fn app_dir(&self, app: ApplicationId) -> PathBuf {
        self.dir.join(app.to_string())
    }

    /// Whether any logs of `app` were aggregated.
    pub(super) async fn has_logs(&self, app: ApplicationId) -> bool {
        tokio::fs::try_exists(self.app_dir(app))
            .await
            .unwrap_or(false)
    }

    fn container_dir(&self, id: ContainerId) -> PathBuf {
        self.app_dir(id.application()).join(id.to_string())
    }

    fn node_file(&self, id: ContainerId) -> PathBuf {
        self.app_dir(id.application()).join(format!("{id}.node"))
    }

    /// Writes one chunk into the upload's temporary directory.
    async fn receive(
        &self,
        temp: &Path,
        got: &mut Received,
        chunk: proto::LogUploadChunk,
    ) -> Result<(), Status> {
        let id = parse_container(&chunk.container_id)?;
        check_file(&chunk.file)?;
        check_node_id(&chunk.node_id)?;
        let key = (id, chunk.file);
        if got.current.as_ref().map(|(k, _)| k) != Some(&key) {
            if let Some((_, file)) = got.current.take() {
                flush(file, temp).await?;
            }
            if !got.files.insert(key.clone()) {
                return Err(Status::invalid_argument(format!(
                    "file {:?} of container {id} was sent in two parts: a file's chunks must \
                     come one after another",
                    key.1
                )));
            }
            let dir = temp.join(id.to_string());
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| internal("create an upload", &dir, e))?;
            let path = dir.join(&key.1);
            let file = File::create(&path)
                .await
                .map_err(|e| internal("create an upload", &path, e))?;
            got.current = Some((key, file));
        }
        if let Some((_, file)) = got.current.as_mut() {
            file.write_all(&chunk.data)
                .await
                .map_err(|e| internal("write an upload", temp, e))?;
        }
        got.bytes += chunk.data.len() as u64;
        got.nodes.insert(id, chunk.node_id);
        Ok(())
    }

    /// Moves every received file into place (replacing an earlier copy) and records the nodes.
    async fn commit(&self, temp: &Path, got: Received) -> Result<(), Status> {
        if let Some((_, file)) = got.current {
            flush(file, temp).await?;
        }
        for (id, name) in &got.files {
            let dir = self.container_dir(*id);
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| internal("store an upload", &dir, e))?;
            let target = dir.join(name);
            tokio::fs::rename(temp.join(id.to_string()).join(name), &target)
                .await
                .map_err(|e| internal("store an upload", &target, e))?;
        }
        for (id, node) in &got.nodes {
            let path = self.node_file(*id);
            tokio::fs::write(&path, node)
                .await
                .map_err(|e| internal("store an upload", &path, e))?;
        }
        Ok(())
    }

    /// The files of one container's directory, sorted, with their sizes.
    async fn files_of(&self, id: ContainerId) -> Result<Vec<proto::LogFile>, Status> {
        let dir = self.container_dir(id);
        let mut entries = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| internal("list logs", &dir, e))?;
        let mut files = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| internal("list logs", &dir, e))?
        {
            let meta = entry
                .metadata()
                .await
                .map_err(|e| internal("list logs", &entry.path(), e))?;
            if let (true, Some(name)) = (meta.is_file(), entry.file_name().to_str()) {
                files.push(proto::LogFile {
                    name: name.to_string(),
                    size: meta.len(),
                });
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    /// The containers of `app` with aggregated logs, in id order.
    async fn containers_of(&self, app: ApplicationId) -> Result<Vec<ContainerId>, Status> {
        let dir = self.app_dir(app);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Status::not_found(format!(
                    "application_id={app} has no aggregated logs"
                )));
            }
            Err(e) => return Err(internal("list logs", &dir, e)),
        };
        let mut ids = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| internal("list logs", &dir, e))?
        {
            let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
            if let (true, Some(id)) = (
                is_dir,
                entry.file_name().to_str().and_then(|n| n.parse().ok()),
            ) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

async fn flush(file: File, temp: &Path) -> Result<(), Status> {
    file.sync_all()
        .await
        .map_err(|e| internal("write an upload", temp, e))
}

type LogChunks = Pin<Box<dyn Stream<Item = Result<proto::LogChunk, Status>> + Send>>;

#[tonic::async_trait]
impl LogStore for LogStoreService {
    async fn upload_logs(
        &self,
        request: Request<Streaming<proto::LogUploadChunk>>,
    ) -> Result<Response<proto::UploadLogsResponse>, Status> {
        let mut chunks = request.into_inner();
        let n = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(INCOMING).join(n.to_string());
        tokio::fs::create_dir_all(&temp)
            .await
            .map_err(|e| internal("create an upload", &temp, e))?;
        let _remove_on_return = Incoming(temp.clone());
        let mut got = Received::default();
        while let Some(chunk) = chunks.message().await? {
            let end = chunk.end;
            // The end message may carry a last chunk, or nothing.
            if !(chunk.container_id.is_empty() && chunk.file.is_empty() && chunk.data.is_empty()) {
                self.receive(&temp, &mut got, chunk).await?;
            }
            if end {
                let (files, bytes) = (got.files.len(), got.bytes);
                let nodes: BTreeSet<&String> = got.nodes.values().collect();
                tracing::info!(files, bytes, nodes = ?nodes, "aggregated logs stored");
                self.commit(&temp, got).await?;
                return Ok(Response::new(proto::UploadLogsResponse {
                    files: u32::try_from(files).unwrap_or(u32::MAX),
                    bytes,
                }));
            }
        }
        Err(Status::invalid_argument(
            "the upload ended without its end message; nothing of it was kept",
        ))
    }

    async fn list_logs(
        &self,
        request: Request<proto::ListLogsRequest>,
    ) -> Result<Response<proto::ListLogsResponse>, Status> {
        let request = request.into_inner();
        let app = parse_app(&request.application_id)?;
        let ids = match request.container_id.as_str() {
            "" => self.containers_of(app).await?,
            raw => {
                let id = parse_container(raw)?;
                if id.application() != app {
                    return Err(Status::invalid_argument(format!(
                        "container_id={id} belongs to {}, not to application {app}",
                        id.application()
                    )));
                }
                if !tokio::fs::try_exists(self.container_dir(id))
                    .await
                    .unwrap_or(false)
                {
                    return Err(Status::not_found(format!(
                        "container_id={id} has no aggregated logs"
                    )));
                }
                vec![id]
            }
        };
        let mut containers = Vec::with_capacity(ids.len());
        for id in ids {
            containers.push(proto::ContainerLogFiles {
                container_id: id.to_string(),
                files: self.files_of(id).await?,
                node_id: tokio::fs::read_to_string(self.node_file(id))
                    .await
                    .unwrap_or_default(),
            });
        }
        Ok(Response::new(proto::ListLogsResponse { containers }))
    }

    type ReadLogStream = LogChunks;

    async fn read_log(
        &self,
        request: Request<proto::ReadLogRequest>,
    ) -> Result<Response<LogChunks>, Status> {
        let request = request.into_inner();
        let id = parse_container(&request.container_id)?;
        check_file(&request.file)?;
        let path = self.container_dir(id).join(&request.file);
        let mut file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Status::not_found(format!(
                    "file {:?} is not among the aggregated logs of container_id={id}",
                    request.file
                )));
            }
            Err(e) => return Err(internal("open a log", &path, e)),
        };
        // An offset past the end reads nothing (as `tail` from there would); capping it also keeps
        // offsets beyond what the kernel can seek to (over i64::MAX) from becoming an error.
        let length = file
            .metadata()
            .await
            .map_err(|e| internal("read a log", &path, e))?
            .len();
        file.seek(io::SeekFrom::Start(request.offset.min(length)))
            .await
            .map_err(|e| internal("read a log", &path, e))?;
        let chunks = futures::stream::try_unfold((file, path), |(mut file, path)| async move {
            let mut data = vec![0; CHUNK_BYTES];
            let n = file
                .read(&mut data)
                .await
                .map_err(|e| internal("read a log", &path, e))?;
            if n == 0 {
                return Ok(None);
            }
            data.truncate(n);
            Ok(Some((proto::LogChunk { data }, (file, path))))
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_protocol::log_store_client::LogStoreClient;
    use spindle_protocol::log_store_server::LogStoreServer;
    use tonic::Code;
    use tonic::transport::Channel;

    const APP: &str = "application_1700000000000_0001";

    fn cid(n: u64) -> String {
        format!("container_1700000000000_0001_01_{n:06}")
    }

    /// A store in a temp dir, served on loopback.
    async fn serve() -> (LogStoreClient<Channel>, PathBuf, tempfile::TempDir) {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("app-logs");
        let service = LogStoreService::open(dir.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(LogStoreServer::new(service))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let client = LogStoreClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        (client, dir, state)
    }

    fn chunk(container: &str, file: &str, data: &str) -> proto::LogUploadChunk {
        proto::LogUploadChunk {
            container_id: container.into(),
            file: file.into(),
            data: data.as_bytes().to_vec(),
            node_id: "node-a:8041".into(),
            end: false,
        }
    }

    fn end() -> proto::LogUploadChunk {
        proto::LogUploadChunk {
            end: true,
            ..Default::default()
        }
    }

    async fn upload(
        client: &mut LogStoreClient<Channel>,
        chunks: Vec<proto::LogUploadChunk>,
    ) -> Result<proto::UploadLogsResponse, Status> {
        client
            .upload_logs(futures::stream::iter(chunks))
            .await
            .map(Response::into_inner)
    }

    async fn read(
        client: &mut LogStoreClient<Channel>,
        container: &str,
        file: &str,
        offset: u64,
    ) -> Result<String, Status> {
        let request = proto::ReadLogRequest {
            container_id: container.into(),
            file: file.into(),
            offset,
        };
        let mut stream = client.read_log(request).await?.into_inner();
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend(chunk.data);
        }
        Ok(String::from_utf8(data).unwrap())
    }

    /// Every file under `dir`, relative, sorted.
    fn tree(dir: &Path) -> Vec<String> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(root, &path, out);
                } else {
                    out.push(path.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, dir, &mut out);
        out.sort();
        out
    }

    #[tokio::test]
    async fn uploaded_logs_are_listed_and_read_back_and_a_second_upload_replaces_them() {
        let (mut client, dir, _state) = serve().await;
        let answer = upload(
            &mut client,
            vec![
                chunk(&cid(1), "stdout", "hello "),
                chunk(&cid(1), "stdout", "world\n"),
                chunk(&cid(1), "stderr", ""),
                chunk(&cid(2), "stdout", "two\n"),
                end(),
            ],
        )
        .await
        .unwrap();
        assert_eq!((answer.files, answer.bytes), (3, 16));
        let container = |n: u64, files: &[(&str, u64)]| proto::ContainerLogFiles {
            container_id: cid(n),
            files: files
                .iter()
                .map(|(name, size)| proto::LogFile {
                    name: name.to_string(),
                    size: *size,
                })
                .collect(),
            node_id: "node-a:8041".into(),
        };
        let listed = client
            .list_logs(proto::ListLogsRequest {
                application_id: APP.into(),
                container_id: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            listed.containers,
            vec![
                container(1, &[("stderr", 0), ("stdout", 12)]),
                container(2, &[("stdout", 4)]),
            ]
        );
        assert_eq!(
            read(&mut client, &cid(1), "stdout", 6).await.unwrap(),
            "world\n"
        );
        assert_eq!(read(&mut client, &cid(1), "stderr", 0).await.unwrap(), "");

        let mut again = chunk(&cid(2), "stdout", "two, again\n");
        again.end = true;
        upload(&mut client, vec![again]).await.unwrap();
        assert_eq!(
            read(&mut client, &cid(2), "stdout", 0).await.unwrap(),
            "two, again\n"
        );
        let one = client
            .list_logs(proto::ListLogsRequest {
                application_id: APP.into(),
                container_id: cid(2),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(one.containers, vec![container(2, &[("stdout", 11)])]);
        assert_eq!(
            tree(&dir),
            [
                format!("{APP}/{}.node", cid(1)),
                format!("{APP}/{}/stderr", cid(1)),
                format!("{APP}/{}/stdout", cid(1)),
                format!("{APP}/{}.node", cid(2)),
                format!("{APP}/{}/stdout", cid(2)),
            ]
        );
    }

    #[tokio::test]
    async fn an_upload_without_its_end_keeps_nothing() {
        let (mut client, dir, _state) = serve().await;
        let err = upload(&mut client, vec![chunk(&cid(1), "stdout", "partial")])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("without its end message"), "{err}");
        assert_eq!(tree(&dir), Vec::<String>::new());
        let missing = read(&mut client, &cid(1), "stdout", 0).await.unwrap_err();
        assert_eq!(missing.code(), Code::NotFound);
    }

    #[tokio::test]
    async fn names_that_could_leave_the_store_are_refused_and_nothing_is_written() {
        let (mut client, dir, _state) = serve().await;
        let mut bad_node = chunk(&cid(1), "stdout", "x");
        bad_node.node_id = "evil\nnode".into();
        let cases = [
            (
                chunk(&cid(1), "../../escape", "x"),
                "file \"../../escape\" is not allowed",
            ),
            (chunk(&cid(1), "..", "x"), "file \"..\" is not allowed"),
            (chunk(&cid(1), "", "x"), "file \"\" is not allowed"),
            (chunk("../../etc", "stdout", "x"), "container_id"),
            (chunk("", "stdout", "x"), "container_id"),
            (bad_node, "node_id"),
        ];
        for (first, expected) in cases {
            let err = upload(&mut client, vec![first, end()]).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{err}");
            assert!(err.message().contains(expected), "{err}");
        }
        let split = upload(
            &mut client,
            vec![
                chunk(&cid(1), "stdout", "a"),
                chunk(&cid(1), "stderr", "b"),
                chunk(&cid(1), "stdout", "c"),
                end(),
            ],
        )
        .await
        .unwrap_err();
        assert!(split.message().contains("sent in two parts"), "{split}");
        assert_eq!(tree(&dir), Vec::<String>::new());

        for file in ["../x", "/etc/passwd", ""] {
            let err = read(&mut client, &cid(1), file, 0).await.unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{file}: {err}");
        }
        let unknown_app = client
            .list_logs(proto::ListLogsRequest {
                application_id: "application_1700000000000_0009".into(),
                container_id: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown_app.code(), Code::NotFound);
        let foreign = client
            .list_logs(proto::ListLogsRequest {
                application_id: "application_1700000000000_0009".into(),
                container_id: cid(1),
            })
            .await
            .unwrap_err();
        assert_eq!(foreign.code(), Code::InvalidArgument);
        assert!(
            foreign.message().contains("not to application"),
            "{foreign}"
        );
    }

    #[test]
    fn opening_removes_uploads_a_previous_run_left_unfinished() {
        let state = tempfile::tempdir().unwrap();
        let dir = state.path().join("app-logs");
        std::fs::create_dir_all(dir.join(INCOMING).join("7").join(cid(1))).unwrap();
        std::fs::write(
            dir.join(INCOMING).join("7").join(cid(1)).join("stdout"),
            "x",
        )
        .unwrap();
        LogStoreService::open(dir.clone()).unwrap();
        assert!(!dir.join(INCOMING).exists());
    }
}

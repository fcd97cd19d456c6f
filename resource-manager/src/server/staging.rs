//! The staging store: programs and files that applications ship, kept content-addressed under
//! `state_dir/staging/<sha256>`. An upload is streamed to a temporary file, hashed on the way,
//! and renamed into place only if its sha256 is the one it claimed; a fetch streams the file
//! back in 256 KiB chunks.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::Stream;
use sha2::{Digest, Sha256};
use spindle_containers::launch_context::is_sha256_hex;
use spindle_protocol as proto;
use spindle_protocol::staging_store_server::StagingStore;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Request, Response, Status, Streaming};

use super::status::shorten;

pub const CHUNK_BYTES: usize = 256 * 1024;

pub struct StagingService {
    dir: PathBuf,
    next_upload: AtomicU64,
}

/// Removes a half-written upload unless it was kept.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn check_digest(field: &str, sha256: &str) -> Result<(), Status> {
    if is_sha256_hex(sha256) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field}={:?} is not a sha256: expected 64 lowercase hex digits",
            shorten(sha256)
        )))
    }
}

fn internal(what: &str, path: &Path, e: io::Error) -> Status {
    tracing::error!(path = %path.display(), error = %e, "staging store: {what} failed");
    Status::internal(format!("staging store could not {what}: {e}"))
}

impl StagingService {
    /// Opens (creating if needed) the store in `dir`, removing uploads a previous run left
    /// half-written.
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".upload-") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(StagingService {
            dir,
            next_upload: AtomicU64::new(0),
        })
    }

    fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    async fn receive(
        &self,
        file: &mut File,
        temp: &Path,
        first: proto::FileChunk,
        rest: &mut Streaming<proto::FileChunk>,
    ) -> Result<(String, u64), Status> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut chunk = Some(first);
        while let Some(c) = chunk {
            hasher.update(&c.data);
            size += c.data.len() as u64;
            file.write_all(&c.data)
                .await
                .map_err(|e| internal("write an upload", temp, e))?;
            chunk = rest.message().await?;
        }
        file.sync_all()
            .await
            .map_err(|e| internal("write an upload", temp, e))?;
        Ok((hex::encode(hasher.finalize()), size))
    }
}

#[tonic::async_trait]
impl StagingStore for StagingService {
    async fn upload(
        &self,
        request: Request<Streaming<proto::FileChunk>>,
    ) -> Result<Response<proto::UploadResponse>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks.message().await?.ok_or_else(|| {
            Status::invalid_argument("the upload is empty: its first chunk must name the sha256")
        })?;
        let claimed = first.sha256.clone();
        let claimed_size = first.size;
        check_digest("sha256", &claimed)?;
        let n = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let temp_path = self.dir.join(format!(".upload-{claimed}-{n}"));
        let mut file = File::create(&temp_path)
            .await
            .map_err(|e| internal("create an upload", &temp_path, e))?;
        let temp = TempFile(Some(temp_path.clone()));
        let (digest, size) = self
            .receive(&mut file, &temp_path, first, &mut chunks)
            .await?;
        drop(file);
        if digest != claimed {
            return Err(Status::invalid_argument(format!(
                "uploaded content has sha256 {digest}, not the sha256 {claimed} it was sent as; \
                 nothing was stored"
            )));
        }
        if claimed_size != 0 && claimed_size != size {
            return Err(Status::invalid_argument(format!(
                "uploaded {size} bytes, but the first chunk said size={claimed_size}; nothing was stored"
            )));
        }
        let path = self.path_of(&claimed);
        tokio::fs::rename(&temp_path, &path)
            .await
            .map_err(|e| internal("store an upload", &path, e))?;
        temp.keep();
        tracing::info!(sha256 = %claimed, size, "file staged");
        Ok(Response::new(proto::UploadResponse {
            sha256: claimed,
            size,
        }))
    }

    async fn stat(
        &self,
        request: Request<proto::StatRequest>,
    ) -> Result<Response<proto::StatResponse>, Status> {
        let sha256 = &request.get_ref().sha256;
        check_digest("sha256", sha256)?;
        let path = self.path_of(sha256);
        let response = match tokio::fs::metadata(&path).await {
            Ok(meta) => proto::StatResponse {
                exists: true,
                size: meta.len(),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => proto::StatResponse::default(),
            Err(e) => return Err(internal("look up a file", &path, e)),
        };
        Ok(Response::new(response))
    }

    type FetchStream = Pin<Box<dyn Stream<Item = Result<proto::FileChunk, Status>> + Send>>;

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let sha256 = request.into_inner().sha256;
        check_digest("sha256", &sha256)?;
        let path = self.path_of(&sha256);
        let file = match File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Status::not_found(format!(
                    "no staged file with sha256 {sha256}"
                )));
            }
            Err(e) => return Err(internal("open a file", &path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| internal("look up a file", &path, e))?
            .len();
        Ok(Response::new(Box::pin(chunks(file, sha256, size, path))))
    }
}

/// The file as chunks of `CHUNK_BYTES` (the last may be shorter); the first names the sha256 and
/// size, and an empty file is one empty chunk.
fn chunks(
    file: File,
    sha256: String,
    size: u64,
    path: PathBuf,
) -> impl Stream<Item = Result<proto::FileChunk, Status>> + Send {
    struct State {
        file: File,
        first: bool,
        at_end: bool,
    }
    let start = State {
        file,
        first: true,
        at_end: false,
    };
    futures::stream::try_unfold(start, move |mut st| {
        let (sha256, path) = (sha256.clone(), path.clone());
        async move {
            if st.at_end {
                return Ok(None);
            }
            let data = read_chunk(&mut st.file)
                .await
                .map_err(|e| internal("read a file", &path, e))?;
            if data.is_empty() && !st.first {
                return Ok(None);
            }
            st.at_end = data.len() < CHUNK_BYTES;
            let chunk = if st.first {
                proto::FileChunk { sha256, size, data }
            } else {
                proto::FileChunk {
                    data,
                    ..Default::default()
                }
            };
            st.first = false;
            Ok(Some((chunk, st)))
        }
    })
}

/// Reads up to `CHUNK_BYTES`, fewer only at the end of the file.
async fn read_chunk(file: &mut File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut filled = 0;
    while filled < CHUNK_BYTES {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

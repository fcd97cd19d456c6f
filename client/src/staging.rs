//! Ships files into the RM's staging store: hash each file (sha256, streamed), ask the store
//! whether it already holds that content (`Stat`), and upload it in chunks only if not. The
//! result is the `LocalResource` a launch context names it by.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use spindle_containers::LocalResource;
use spindle_protocol as proto;
use tokio::io::AsyncReadExt;

use crate::error::ClientError;
use crate::rm_client::RmClient;

const CHUNK_BYTES: usize = 256 * 1024;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lowercase hex sha256 and size of a file, read in chunks (programs can be large).
pub async fn digest_file(path: &Path) -> Result<(String, u64), ClientError> {
    let mut file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).await.map_err(io_error(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Puts `path` into the staging store (unless it is there already) and names it `name` in
/// containers, executable or not.
pub async fn stage_file(
    rm: &RmClient,
    path: &Path,
    name: &str,
    executable: bool,
) -> Result<LocalResource, ClientError> {
    let (sha256, size) = digest_file(path).await?;
    let mut staging = rm.staging();
    let stat = staging
        .stat(crate::rm_client::unary(proto::StatRequest {
            sha256: sha256.clone(),
        }))
        .await
        .map_err(rm.fail("StagingStore.Stat"))?
        .into_inner();
    if stat.exists && stat.size == size {
        tracing::debug!(file = %path.display(), %sha256, "already staged");
    } else {
        upload(rm, path, &sha256, size).await?;
        tracing::debug!(file = %path.display(), %sha256, size, "staged");
    }
    Ok(LocalResource {
        name: name.to_string(),
        sha256,
        size,
        executable,
    })
}

async fn upload(rm: &RmClient, path: &Path, sha256: &str, size: u64) -> Result<(), ClientError> {
    let file = tokio::fs::File::open(path).await.map_err(io_error(path))?;
    // A read error cannot travel inside the request stream: it ends the stream early (the store
    // then refuses the short upload) and is kept here to be reported instead of that refusal.
    let read_error: Arc<Mutex<Option<std::io::Error>>> = Arc::default();
    let chunks = chunk_stream(
        file,
        sha256.to_string(),
        size,
        path.to_path_buf(),
        read_error.clone(),
    );
    let result = rm.staging().upload(chunks).await;
    if let Some(source) = read_error.lock().ok().and_then(|mut slot| slot.take()) {
        return Err(ClientError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    result.map_err(rm.fail("StagingStore.Upload"))?;
    Ok(())
}

/// The file as upload chunks; the first names the digest and size (and is sent even for an
/// empty file, so the store always learns what to expect).
fn chunk_stream(
    file: tokio::fs::File,
    sha256: String,
    size: u64,
    path: PathBuf,
    read_error: Arc<Mutex<Option<std::io::Error>>>,
) -> impl futures::Stream<Item = proto::FileChunk> + Send + 'static {
    struct State {
        file: tokio::fs::File,
        first: bool,
        done: bool,
    }
    let start = State {
        file,
        first: true,
        done: false,
    };
    futures::stream::unfold(start, move |mut state| {
        let sha256 = sha256.clone();
        let read_error = read_error.clone();
        let path = path.clone();
        async move {
            if state.done {
                return None;
            }
            let mut data = vec![0u8; CHUNK_BYTES];
            let n = match state.file.read(&mut data).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "read failed during upload");
                    if let Ok(mut slot) = read_error.lock() {
                        *slot = Some(e);
                    }
                    return None;
                }
            };
            if n == 0 && !state.first {
                return None;
            }
            data.truncate(n);
            let chunk = if state.first {
                proto::FileChunk { sha256, size, data }
            } else {
                proto::FileChunk {
                    sha256: String::new(),
                    size: 0,
                    data,
                }
            };
            state.done = n == 0;
            state.first = false;
            Some((chunk, state))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn digest_matches_sha256_of_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let (digest, size) = digest_file(&path).await.unwrap();
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(size, 3);
    }

    #[tokio::test]
    async fn chunks_carry_the_whole_file_and_the_digest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let content: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks: Vec<_> = chunk_stream(file, "d".into(), 5, path, Arc::default())
            .collect()
            .await;
        assert_eq!(chunks[0].sha256, "d");
        assert_eq!(chunks[0].size, 5);
        assert!(chunks[1..].iter().all(|c| c.sha256.is_empty()));
        let joined: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
        assert_eq!(joined, content);
    }

    #[tokio::test]
    async fn an_empty_file_is_one_chunk_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks: Vec<_> = chunk_stream(file, "e".into(), 0, path, Arc::default())
            .collect()
            .await;
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].sha256, "e");
        assert!(chunks[0].data.is_empty());
    }
}

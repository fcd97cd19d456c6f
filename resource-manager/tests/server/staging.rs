//! The staging store: an upload whose content does not match its sha256 is refused and leaves
//! nothing behind; a right one is stored, found by Stat, and fetched back in 256 KiB chunks.

use sha2::{Digest, Sha256};
use spindle_protocol as proto;
use spindle_resource_manager::STAGING_CHUNK_BYTES;
use tonic::Code;

use crate::common::*;

fn chunks_of(data: &[u8], sha256: &str) -> Vec<proto::FileChunk> {
    let mut chunks: Vec<proto::FileChunk> = data
        .chunks(100_000)
        .map(|c| proto::FileChunk {
            data: c.to_vec(),
            ..Default::default()
        })
        .collect();
    chunks[0].sha256 = sha256.into();
    chunks[0].size = data.len() as u64;
    chunks
}

async fn stat(rm: &mut Rm, sha256: &str) -> proto::StatResponse {
    rm.staging
        .stat(proto::StatRequest {
            sha256: sha256.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn uploads_are_verified_stored_and_fetched_in_chunks() {
    let mut rm = Rm::start().await;
    let data: Vec<u8> = (0..600 * 1024).map(|i| (i % 251) as u8).collect();
    let sha256 = hex::encode(Sha256::digest(&data));
    let wrong = hex::encode(Sha256::digest(b"something else"));

    let r = rm
        .staging
        .upload(tokio_stream::iter(chunks_of(&data, &wrong)))
        .await;
    let status = r.expect_err("a wrong sha256 is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains(&sha256), "{}", status.message());
    assert!(!stat(&mut rm, &wrong).await.exists);

    let stored = rm
        .staging
        .upload(tokio_stream::iter(chunks_of(&data, &sha256)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (stored.sha256.as_str(), stored.size),
        (sha256.as_str(), data.len() as u64)
    );
    let s = stat(&mut rm, &sha256).await;
    assert!(s.exists);
    assert_eq!(s.size, data.len() as u64);

    let mut fetch = rm
        .staging
        .fetch(proto::FetchRequest {
            sha256: sha256.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut chunks = vec![];
    while let Some(chunk) = within("a chunk", fetch.message()).await.unwrap() {
        chunks.push(chunk);
    }
    let sizes: Vec<usize> = chunks.iter().map(|c| c.data.len()).collect();
    assert_eq!(
        sizes,
        vec![
            STAGING_CHUNK_BYTES,
            STAGING_CHUNK_BYTES,
            600 * 1024 - 2 * STAGING_CHUNK_BYTES
        ]
    );
    assert_eq!(
        (chunks[0].sha256.as_str(), chunks[0].size),
        (sha256.as_str(), data.len() as u64)
    );
    let fetched: Vec<u8> = chunks.into_iter().flat_map(|c| c.data).collect();
    assert!(fetched == data, "fetched content differs");
    rm.shutdown().await;
}

#[tokio::test]
async fn bad_or_unknown_digests_are_refused() {
    let mut rm = Rm::start().await;
    let r = rm
        .staging
        .stat(proto::StatRequest {
            sha256: "../../etc/passwd".into(),
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    let unknown = "0".repeat(64);
    let r = rm
        .staging
        .fetch(proto::FetchRequest {
            sha256: unknown.clone(),
        })
        .await;
    let status = r.expect_err("nothing staged under that digest");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&unknown));
    let empty: Vec<proto::FileChunk> = vec![];
    let r = rm.staging.upload(tokio_stream::iter(empty)).await;
    assert_eq!(r.unwrap_err().code(), Code::InvalidArgument);
    rm.shutdown().await;
}

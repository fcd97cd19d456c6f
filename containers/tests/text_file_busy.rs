//! A program localized while other containers are being forked must execute: before the fork
//! barrier, about one launch in twenty failed here with exit 126, "Text file busy", because a
//! child forked during the download still held the file open for writing (see
//! `containers/src/fork_barrier.rs`). Real downloads, real forks, real execs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use spindle_containers::LocalResource;
use spindle_containers::localize::{ChunkStream, FetchError, FetchSource, Localizer};
use spindle_containers::process::{Exit, ProcessSpec, spawn};

/// Serves what it holds in small chunks, yielding between them, so a download stays open
/// while the forks go on.
#[derive(Default)]
struct Files(Mutex<HashMap<String, Vec<u8>>>);

impl FetchSource for Files {
    fn fetch(&self, sha256: &str) -> BoxFuture<'_, Result<ChunkStream, FetchError>> {
        let data = self.0.lock().unwrap().get(sha256).cloned();
        Box::pin(async move {
            let data = data.ok_or_else(|| FetchError("no such file".into()))?;
            let chunks: Vec<Result<Vec<u8>, FetchError>> =
                data.chunks(4096).map(|c| Ok(c.to_vec())).collect();
            let slow = futures::stream::iter(chunks).then(|chunk| async move {
                tokio::task::yield_now().await;
                chunk
            });
            Ok(slow.boxed())
        })
    }
}

fn container(dir: &Path, command: &str) -> ProcessSpec {
    let script = dir.join("launch_container.sh");
    std::fs::write(&script, format!("{command}\n")).unwrap();
    ProcessSpec {
        script,
        working_dir: dir.to_path_buf(),
        stdout: dir.join("stdout"),
        stderr: dir.join("stderr"),
        inherited_env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cgroup: None,
        run_as: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn programs_localized_while_containers_fork_execute() {
    let work = tempfile::tempdir().unwrap();
    let files = Arc::new(Files::default());
    let cache = work.path().join("filecache");
    let localizer = Localizer::new(files.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let forkers: Vec<_> = (0..3)
        .map(|f| {
            let dir = work.path().join(format!("forker-{f}"));
            std::fs::create_dir(&dir).unwrap();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    spawn(&container(&dir, "true")).unwrap().wait().await;
                }
            })
        })
        .collect();
    let mut busy = Vec::new();
    for i in 0..200 {
        // A new program each time: each is downloaded, not found in the cache.
        let mut program = b"#!/bin/sh\nexit 0\n".to_vec();
        program.extend(std::iter::repeat_n(b'#', 200_000));
        program.extend(format!("\n# {i}\n").bytes());
        let sha256 = hex::encode(Sha256::digest(&program));
        let size = program.len() as u64;
        files.0.lock().unwrap().insert(sha256.clone(), program);
        let dir = work.path().join(format!("container-{i}"));
        std::fs::create_dir(&dir).unwrap();
        let prog = LocalResource {
            name: "prog".into(),
            sha256,
            size,
            executable: true,
        };
        localizer
            .localize(&[prog], &cache, &dir, None)
            .await
            .unwrap();
        let exit = spawn(&container(&dir, "./prog")).unwrap().wait().await;
        if exit != (Exit::Exited { exit_code: 0 }) {
            let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
            busy.push(format!("launch {i}: {exit:?} {stderr}"));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for forker in forkers {
        forker.await.unwrap();
    }
    assert!(busy.is_empty(), "{busy:#?}");
}

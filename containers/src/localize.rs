//! Localization: putting a container's `LocalResource`s into its working directory. Each file is
//! fetched once into a content-addressed cache (`<cache>/<sha256>`), verified against its digest
//! before the cache takes it, and from there hard-linked (or copied) into every container that
//! asks for it. The caller names the cache per call: the node manager keeps one per user
//! (`usercache/<user>/filecache`, YARN's layout), in directories only it can enter, so that no
//! container can plant a file or a link in a cache the node manager reads as root.
//!
//! Cache entries are read-only and executable (0555), and hard links share that mode (and the
//! node manager's ownership, so a container can read them but never change what the next one
//! gets): executable resources are linked, so the program a hundred executors run is stored
//! once; other resources are copied with mode 0644 and given to the container's user, so they
//! are writable and not executable, as the container asked.
//!
//! The localizer counts what its caches saved (hits, misses, bytes downloaded) for the node's
//! metrics.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use futures::StreamExt;
use futures::future::{BoxFuture, try_join_all};
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::launch_context::{LocalResource, is_plain_file_name, is_sha256_hex};
use crate::launch_script::{EXIT_CODE_FILE, SCRIPT_FILE};
use crate::run_as::RunAs;

/// The bytes of one file, in chunks, as a `FetchSource` streams them.
pub type ChunkStream = BoxStream<'static, Result<Vec<u8>, FetchError>>;

/// Why a fetch source could not deliver a file (its own words, e.g. a gRPC status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// Where the cache gets files it does not have: the node manager plugs in the RM's
/// `StagingStore.Fetch`.
pub trait FetchSource: Send + Sync {
    /// Streams the content whose lowercase hex sha256 is `sha256`.
    fn fetch(&self, sha256: &str) -> BoxFuture<'_, Result<ChunkStream, FetchError>>;
}

#[derive(Debug, thiserror::Error)]
pub enum LocalizeError {
    #[error(
        "local resource name {0:?} is not allowed: it must be a plain file name inside the \
         container directory (no '/', no '..', not empty)"
    )]
    BadName(String),
    #[error(
        "local resource name {0:?} is reserved for the node manager's own files \
         ({SCRIPT_FILE}, {EXIT_CODE_FILE})"
    )]
    ReservedName(String),
    #[error("local resource name {0:?} is given twice")]
    DuplicateName(String),
    #[error("local resource {name:?} has sha256 {sha256:?}: expected 64 lowercase hex digits")]
    BadDigest { name: String, sha256: String },
    #[error("cannot fetch local resource {name:?} (sha256 {sha256}): {source}")]
    Fetch {
        name: String,
        sha256: String,
        source: FetchError,
    },
    #[error(
        "local resource {name:?} refused: its content has sha256 {actual}, expected {expected}"
    )]
    DigestMismatch {
        name: String,
        expected: String,
        actual: String,
    },
    #[error(
        "local resource {name:?} (sha256 {sha256}) refused: it is {actual} bytes, expected size {expected}"
    )]
    SizeMismatch {
        name: String,
        sha256: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "local resource {name:?} (sha256 {sha256}) refused: it is larger than its size {expected}"
    )]
    TooLarge {
        name: String,
        sha256: String,
        expected: u64,
    },
    #[error("cannot localize {name:?} at {path}: {source}")]
    Io {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the cache has done since the localizer was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Resources found in the cache.
    pub hits: u64,
    /// Resources the cache did not have, so they were fetched (whether or not that worked).
    pub misses: u64,
    /// Bytes fetched into the cache and kept (verified).
    pub downloaded_bytes: u64,
}

/// Localizes resources into container directories through caches it is told of.
pub struct Localizer {
    source: Arc<dyn FetchSource>,
    /// One lock per cache entry being fetched, so concurrent containers download a file once.
    downloads: Mutex<HashMap<PathBuf, Weak<tokio::sync::Mutex<()>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    downloaded_bytes: AtomicU64,
}

const CACHE_MODE: u32 = 0o555;
const EXECUTABLE_MODE: u32 = 0o755;
const DATA_MODE: u32 = 0o644;

impl Localizer {
    /// A localizer fetching what its caches lack from `source`.
    pub fn new(source: Arc<dyn FetchSource>) -> Self {
        Localizer {
            source,
            downloads: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            downloaded_bytes: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            downloaded_bytes: self.downloaded_bytes.load(Ordering::Relaxed),
        }
    }

    /// Checks every resource first, then puts them all into `container_dir` (in parallel)
    /// through the cache at `cache_dir` (created if missing); copies are given to `owner` when
    /// there is one. Nothing is fetched when any resource is malformed.
    pub async fn localize(
        &self,
        resources: &[LocalResource],
        cache_dir: &Path,
        container_dir: &Path,
        owner: Option<&RunAs>,
    ) -> Result<(), LocalizeError> {
        validate(resources)?;
        try_join_all(
            resources
                .iter()
                .map(|r| self.localize_one(r, cache_dir, container_dir, owner)),
        )
        .await?;
        Ok(())
    }

    /// Makes sure the cache at `cache_dir` holds `resource`'s content and returns the cache
    /// entry's path.
    pub async fn cached(
        &self,
        resource: &LocalResource,
        cache_dir: &Path,
    ) -> Result<PathBuf, LocalizeError> {
        validate(std::slice::from_ref(resource))?;
        let entry = cache_dir.join(&resource.sha256);
        let lock = self.download_lock(&entry);
        let _downloading = lock.lock().await;
        if tokio::fs::try_exists(&entry).await.unwrap_or(false) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(entry);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let io = |path: &Path| {
            let (name, path) = (resource.name.clone(), path.to_path_buf());
            move |source| LocalizeError::Io { name, path, source }
        };
        tokio::fs::create_dir_all(cache_dir)
            .await
            .map_err(io(cache_dir))?;
        // Only this task downloads this digest (the lock), so the temp name needs no randomness.
        let partial = cache_dir.join(format!(".{}.download", resource.sha256));
        let size = match self.download(resource, &partial).await {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
        };
        tokio::fs::rename(&partial, &entry)
            .await
            .map_err(io(&entry))?;
        self.downloaded_bytes.fetch_add(size, Ordering::Relaxed);
        tracing::debug!(sha256 = %resource.sha256, "cached local resource");
        Ok(entry)
    }

    fn download_lock(&self, entry: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut downloads = self
            .downloads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        downloads.retain(|_, lock| lock.strong_count() > 0);
        if let Some(lock) = downloads.get(entry).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        downloads.insert(entry.to_path_buf(), Arc::downgrade(&lock));
        lock
    }

    /// Streams the content into `partial`, hashing as it goes; keeps it only if it verifies.
    /// Returns its size.
    async fn download(&self, r: &LocalResource, partial: &Path) -> Result<u64, LocalizeError> {
        let io = |source| LocalizeError::Io {
            name: r.name.clone(),
            path: partial.to_path_buf(),
            source,
        };
        let fetch_error = |source| LocalizeError::Fetch {
            name: r.name.clone(),
            sha256: r.sha256.clone(),
            source,
        };
        let size_error = |actual| LocalizeError::SizeMismatch {
            name: r.name.clone(),
            sha256: r.sha256.clone(),
            expected: r.size,
            actual,
        };
        let mut chunks = self.source.fetch(&r.sha256).await.map_err(fetch_error)?;
        let mut file = tokio::fs::File::create(partial).await.map_err(io)?;
        let mut hasher = Sha256::new();
        let mut written: u64 = 0;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(fetch_error)?;
            written += chunk.len() as u64;
            // A size of 0 means the sender did not say; otherwise stop a runaway stream early.
            if r.size != 0 && written > r.size {
                return Err(LocalizeError::TooLarge {
                    name: r.name.clone(),
                    sha256: r.sha256.clone(),
                    expected: r.size,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        let actual = hex::encode(hasher.finalize());
        if actual != r.sha256 {
            return Err(LocalizeError::DigestMismatch {
                name: r.name.clone(),
                expected: r.sha256.clone(),
                actual,
            });
        }
        if r.size != 0 && written != r.size {
            return Err(size_error(written));
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::set_permissions(partial, std::fs::Permissions::from_mode(CACHE_MODE))
            .await
            .map_err(io)?;
        Ok(written)
    }

    async fn localize_one(
        &self,
        r: &LocalResource,
        cache_dir: &Path,
        container_dir: &Path,
        owner: Option<&RunAs>,
    ) -> Result<(), LocalizeError> {
        let entry = self.cached(r, cache_dir).await?;
        let target = container_dir.join(&r.name);
        let io = |source| LocalizeError::Io {
            name: r.name.clone(),
            path: target.clone(),
            source,
        };
        if r.executable {
            match tokio::fs::hard_link(&entry, &target).await {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(io(e)),
                // Another file system, or links not allowed: a copy does as well.
                Err(e) => tracing::debug!(name = %r.name, "hard link failed, copying: {e}"),
            }
        }
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Err(io(std::io::ErrorKind::AlreadyExists.into()));
        }
        tokio::fs::copy(&entry, &target).await.map_err(io)?;
        let mode = if r.executable {
            EXECUTABLE_MODE
        } else {
            DATA_MODE
        };
        tokio::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(io)?;
        match owner {
            Some(owner) => owner.own(&target).map_err(io),
            None => Ok(()),
        }
    }
}

/// Checks resources without touching anything: plain, distinct, unreserved names; well-formed
/// digests.
pub fn validate(resources: &[LocalResource]) -> Result<(), LocalizeError> {
    let mut names = HashSet::new();
    for r in resources {
        if !is_plain_file_name(&r.name) {
            return Err(LocalizeError::BadName(r.name.clone()));
        }
        if [SCRIPT_FILE, EXIT_CODE_FILE].contains(&r.name.as_str()) {
            return Err(LocalizeError::ReservedName(r.name.clone()));
        }
        if !names.insert(r.name.as_str()) {
            return Err(LocalizeError::DuplicateName(r.name.clone()));
        }
        if !is_sha256_hex(&r.sha256) {
            return Err(LocalizeError::BadDigest {
                name: r.name.clone(),
                sha256: r.sha256.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Serves files it holds, counting fetches; `lie` serves other bytes than asked for.
    #[derive(Default)]
    struct Files {
        files: HashMap<String, Vec<u8>>,
        lie: Option<Vec<u8>>,
        fetches: AtomicUsize,
    }

    impl Files {
        fn with(content: &[u8]) -> (Arc<Files>, String) {
            let digest = sha256(content);
            let mut files = Files::default();
            files.files.insert(digest.clone(), content.to_vec());
            (Arc::new(files), digest)
        }
    }

    impl FetchSource for Files {
        fn fetch(&self, sha256: &str) -> BoxFuture<'_, Result<ChunkStream, FetchError>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let found = self.lie.clone().or_else(|| self.files.get(sha256).cloned());
            let sha256 = sha256.to_string();
            Box::pin(async move {
                // Yield so that concurrent requests really overlap.
                tokio::task::yield_now().await;
                let data = found.ok_or_else(|| FetchError(format!("no file {sha256}")))?;
                let chunks: Vec<Result<Vec<u8>, FetchError>> =
                    data.chunks(3).map(|c| Ok(c.to_vec())).collect();
                Ok(futures::stream::iter(chunks).boxed())
            })
        }
    }

    fn cache(work: &tempfile::TempDir) -> PathBuf {
        work.path().join("filecache")
    }

    fn sha256(content: &[u8]) -> String {
        hex::encode(Sha256::digest(content))
    }

    fn resource(name: &str, sha256: &str, size: u64, executable: bool) -> LocalResource {
        LocalResource {
            name: name.into(),
            sha256: sha256.into(),
            size,
            executable,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn localizes_into_the_container_dir_through_the_cache() {
        let work = tempfile::tempdir().unwrap();
        let (files, digest) = Files::with(b"#!/bin/sh\necho hi\n");
        let localizer = Localizer::new(files.clone());
        let dir = work.path().join("c1");
        std::fs::create_dir(&dir).unwrap();
        let resources = [
            resource("prog", &digest, 18, true),
            resource("data.txt", &digest, 18, false),
        ];
        localizer
            .localize(&resources, &cache(&work), &dir, None)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(dir.join("prog")).unwrap(),
            b"#!/bin/sh\necho hi\n"
        );
        assert_eq!(mode(&dir.join("prog")) & 0o111, 0o111, "executable");
        assert_eq!(mode(&dir.join("data.txt")), DATA_MODE);
        assert!(work.path().join("filecache").join(&digest).exists());
        assert_eq!(files.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(
            localizer.stats(),
            CacheStats {
                hits: 1,
                misses: 1,
                downloaded_bytes: 18
            },
            "the second resource of the same content came from the cache"
        );
    }

    #[tokio::test]
    async fn concurrent_containers_fetch_a_digest_once() {
        let work = tempfile::tempdir().unwrap();
        let (files, digest) = Files::with(b"the program");
        let localizer = Localizer::new(files.clone());
        let dirs: Vec<PathBuf> = (0..8).map(|i| work.path().join(format!("c{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let r = [resource("prog", &digest, 11, true)];
        let cache = cache(&work);
        try_join_all(dirs.iter().map(|d| localizer.localize(&r, &cache, d, None)))
            .await
            .unwrap();
        assert_eq!(files.fetches.load(Ordering::SeqCst), 1);
        for d in &dirs {
            assert_eq!(std::fs::read(d.join("prog")).unwrap(), b"the program");
        }
    }

    #[tokio::test]
    async fn content_that_does_not_match_its_digest_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let digest = sha256(b"what was asked for");
        let files = Arc::new(Files {
            lie: Some(b"something else".to_vec()),
            ..Files::default()
        });
        let localizer = Localizer::new(files);
        let err = localizer
            .localize(
                &[resource("prog", &digest, 0, true)],
                &cache(&work),
                work.path(),
                None,
            )
            .await
            .unwrap_err();
        let actual = sha256(b"something else");
        assert!(
            matches!(&err, LocalizeError::DigestMismatch { expected, actual: a, .. }
                if *expected == digest && *a == actual),
            "{err}"
        );
        assert!(err.to_string().contains(&digest) && err.to_string().contains(&actual));
        assert_eq!(
            localizer.stats(),
            CacheStats {
                hits: 0,
                misses: 1,
                downloaded_bytes: 0
            },
            "refused content is a miss that kept nothing"
        );
        let cached: Vec<_> = std::fs::read_dir(work.path().join("filecache"))
            .unwrap()
            .collect();
        assert!(cached.is_empty(), "nothing kept: {cached:?}");
        assert!(!work.path().join("prog").exists());
    }

    #[tokio::test]
    async fn a_wrong_size_is_refused() {
        let work = tempfile::tempdir().unwrap();
        let (files, digest) = Files::with(b"12345");
        let localizer = Localizer::new(files);
        let err = localizer
            .localize(
                &[resource("f", &digest, 4, false)],
                &cache(&work),
                work.path(),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, LocalizeError::TooLarge { expected: 4, .. }),
            "{err}"
        );
        let err = localizer
            .localize(
                &[resource("f", &digest, 6, false)],
                &cache(&work),
                work.path(),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LocalizeError::SizeMismatch {
                    expected: 6,
                    actual: 5,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_fetch_failure_names_the_resource() {
        let work = tempfile::tempdir().unwrap();
        let localizer = Localizer::new(Arc::new(Files::default()));
        let digest = "ab".repeat(32);
        let err = localizer
            .localize(
                &[resource("prog", &digest, 1, true)],
                &cache(&work),
                work.path(),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot fetch local resource \"prog\" (sha256 {digest}): no file {digest}")
        );
    }

    #[tokio::test]
    async fn malformed_resources_fetch_nothing() {
        let work = tempfile::tempdir().unwrap();
        let (files, digest) = Files::with(b"x");
        let localizer = Localizer::new(files.clone());
        let cases = [
            vec![resource("../x", &digest, 1, false)],
            vec![resource("launch_container.sh", &digest, 1, false)],
            vec![
                resource("a", &digest, 1, false),
                resource("a", &digest, 1, false),
            ],
            vec![
                resource("ok", &digest, 1, false),
                resource("b", "ABC", 1, false),
            ],
        ];
        for case in cases {
            let err = localizer
                .localize(&case, &cache(&work), work.path(), None)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    LocalizeError::BadName(_)
                        | LocalizeError::ReservedName(_)
                        | LocalizeError::DuplicateName(_)
                        | LocalizeError::BadDigest { .. }
                ),
                "{err}"
            );
        }
        assert_eq!(files.fetches.load(Ordering::SeqCst), 0);
        assert!(!work.path().join("ok").exists());
    }

    /// Every path under `root`, relative, sorted.
    fn tree(root: &Path) -> Vec<PathBuf> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(root, root, &mut out);
        out.sort();
        out
    }

    /// Names a request might use to get out of the container directory, and some that are
    /// harmless (plain unicode names).
    fn hostile_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            Just("..".to_string()),
            "(\\.\\./){1,4}[a-z]{0,8}",
            "/[a-z]{1,8}(/[a-z]{1,8}){0,3}",
            "[a-z]{1,5}/\\.\\./\\.\\./[a-z]{1,5}",
            "[a-z]{0,5}\\x00[a-z]{0,5}",
            "[a-z]{256,300}",
            "\\PC{1,12}",
            "[./a-z\\x00]{0,12}",
        ]
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        /// A resource name either stays a direct child of the container directory or is refused
        /// with nothing fetched and nothing created anywhere.
        #[test]
        fn a_resource_name_never_reaches_outside_the_container_dir(name in hostile_name()) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let work = tempfile::tempdir().unwrap();
            let (files, digest) = Files::with(b"content");
            let localizer = Localizer::new(files.clone());
            let dir = work.path().join("appcache").join("c1");
            std::fs::create_dir_all(&dir).unwrap();
            let before = tree(work.path());
            let resources = [resource(&name, &digest, 7, false)];
            let outcome = runtime.block_on(localizer.localize(&resources, &cache(&work), &dir, None));
            let plain = is_plain_file_name(&name)
                && ![SCRIPT_FILE, EXIT_CODE_FILE].contains(&name.as_str());
            match outcome {
                Ok(()) => {
                    prop_assert!(plain, "{name:?} was localized");
                    let target = dir.join(&name);
                    prop_assert_eq!(target.parent(), Some(dir.as_path()));
                    prop_assert_eq!(std::fs::read(&target).unwrap(), b"content");
                    let mut expected = before.clone();
                    expected.extend([
                        PathBuf::from("appcache/c1").join(&name),
                        PathBuf::from("filecache"),
                        PathBuf::from("filecache").join(&digest),
                    ]);
                    expected.sort();
                    prop_assert_eq!(tree(work.path()), expected);
                }
                Err(e) => {
                    prop_assert!(!plain, "{name:?} refused: {e}");
                    prop_assert!(
                        matches!(e, LocalizeError::BadName(_) | LocalizeError::ReservedName(_)),
                        "{e}"
                    );
                    prop_assert!(e.to_string().contains("local resource name"), "{e}");
                    prop_assert_eq!(files.fetches.load(Ordering::SeqCst), 0);
                    prop_assert_eq!(tree(work.path()), before);
                }
            }
        }
    }
}

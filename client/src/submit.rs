//! Submitting an application, YARN's way: find the program, get an application id and the
//! scheduler's limits, check the AM fits, stage the program and files, and submit the AM's launch
//! context (`./<program> ARGS…` with the staged files as local resources). Nothing is submitted
//! unless every check passed.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use spindle_containers::{ApplicationId, LocalResource, Resource};
use spindle_protocol as proto;
use tracing::Instrument;

use crate::error::ClientError;
use crate::rm_client::{NewApplication, RmClient};
use crate::staging::stage_file;

/// The AM env variable that lists the staged files, so the AM can start more containers of the
/// same program (JSON array of `LocalResource`).
pub const LOCAL_RESOURCES_ENV: &str = "SPINDLE_LOCAL_RESOURCES";

/// Everything a submission needs; `Submission::new` fills Spark's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// The program as the user named it: a path if it contains '/', else looked up in PATH.
    pub program: String,
    pub args: Vec<String>,
    /// Defaults to the program's file name.
    pub name: Option<String>,
    pub queue: String,
    pub application_type: String,
    pub tags: Vec<String>,
    pub am_resource: Resource,
    /// Shipped next to the program in every container that uses the app's local resources.
    pub files: Vec<PathBuf>,
    pub env: BTreeMap<String, String>,
    /// 0: the cluster's default.
    pub max_attempts: u32,
    pub user: String,
}

impl Submission {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        Submission {
            program: program.into(),
            args,
            name: None,
            queue: "default".to_string(),
            application_type: "SPINDLE".to_string(),
            tags: Vec::new(),
            am_resource: Resource::new(512, 1),
            files: Vec::new(),
            env: BTreeMap::new(),
            max_attempts: 0,
            user: current_user(),
        }
    }
}

/// The submitting user: the user a client's calls act for, `SPINDLE_USER` when set, else the
/// OS user (`spindle_security::client_user`). The RM takes the submitter of an application to
/// be its owner, and only admins may submit in another user's name.
pub fn current_user() -> String {
    spindle_security::client_user().unwrap_or_else(|_| spindle_security::current_user())
}

/// Finds the program to ship: a name with a '/' is a path; a bare name is searched in `path_var`
/// (the `PATH` value) like a shell does. It must be an executable regular file.
pub fn resolve_program(program: &str, path_var: Option<&OsStr>) -> Result<PathBuf, ClientError> {
    let not_found = |reason: String| ClientError::ProgramNotFound {
        program: program.to_string(),
        reason,
    };
    if program.is_empty() {
        return Err(not_found("the program name is empty".into()));
    }
    if program.contains('/') {
        let path = PathBuf::from(program);
        return check_executable(&path).map(|()| path).map_err(not_found);
    }
    let dirs = path_var.map(std::env::split_paths).into_iter().flatten();
    for dir in dirs {
        let candidate = dir.join(program);
        if check_executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(not_found(
        "no executable file of that name in PATH (give a path with '/' for a file elsewhere)"
            .into(),
    ))
}

fn check_executable(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not executable", path.display()));
    }
    Ok(())
}

/// Checks that every file exists and that no two staged files share a container-dir name;
/// returns (path, name) pairs, the program first.
fn shipped_files(program: &Path, files: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, ClientError> {
    let mut shipped: Vec<(PathBuf, String)> = Vec::new();
    for path in std::iter::once(program).chain(files.iter().map(PathBuf::as_path)) {
        let meta = std::fs::metadata(path).map_err(|source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ClientError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("not a regular file"),
            });
        }
        let name = path
            .file_name()
            .and_then(OsStr::to_str)
            .ok_or_else(|| ClientError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("the file name is not valid UTF-8"),
            })?
            .to_string();
        if shipped.iter().any(|(_, other)| *other == name) {
            return Err(ClientError::DuplicateName(name));
        }
        shipped.push((path.to_path_buf(), name));
    }
    Ok(shipped)
}

/// Checks the AM against the scheduler's maximum, on every dimension.
pub fn check_am_resource(asked: Resource, maximum: Resource) -> Result<(), ClientError> {
    if asked.memory_mb > maximum.memory_mb {
        return Err(ClientError::AmMemoryAboveMaximum { asked, maximum });
    }
    if asked.vcores > maximum.vcores {
        return Err(ClientError::AmVcoresAboveMaximum { asked, maximum });
    }
    Ok(())
}

/// The AM's launch context of the shared contract: `./<program> ARGS…`, the staged files, and
/// the user's env plus `SPINDLE_LOCAL_RESOURCES`.
pub fn am_launch_context(
    program_name: &str,
    args: &[String],
    resources: &[LocalResource],
    env: &BTreeMap<String, String>,
) -> proto::ContainerLaunchContext {
    let mut environment: std::collections::HashMap<String, String> =
        env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // Serializing plain strings and numbers cannot fail.
    let listed = serde_json::to_string(resources).unwrap_or_else(|_| "[]".to_string());
    environment.insert(LOCAL_RESOURCES_ENV.to_string(), listed);
    proto::ContainerLaunchContext {
        command: std::iter::once(format!("./{program_name}"))
            .chain(args.iter().cloned())
            .collect(),
        environment,
        local_resources: resources
            .iter()
            .map(|r| proto::LocalResource {
                name: r.name.clone(),
                sha256: r.sha256.clone(),
                size: r.size,
                executable: r.executable,
            })
            .collect(),
    }
}

/// A submission whose program and files were found on this machine: what is left to do
/// needs the RM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedSubmission {
    submission: Submission,
    /// (path, name in the container dir), the program first.
    shipped: Vec<(PathBuf, String)>,
}

impl Submission {
    /// Finds the program (in `PATH` for a bare name) and checks every file, before anything
    /// is asked of the RM.
    pub fn prepare(self) -> Result<PreparedSubmission, ClientError> {
        let path_var = std::env::var_os("PATH");
        let program = resolve_program(&self.program, path_var.as_deref())?;
        let shipped = shipped_files(&program, &self.files)?;
        Ok(PreparedSubmission {
            submission: self,
            shipped,
        })
    }
}

impl PreparedSubmission {
    /// The program's path on this machine.
    pub fn program_path(&self) -> &Path {
        &self.shipped[0].0
    }

    /// Sets a variable of the AM's environment, for what is known only once the program was
    /// found (a client-mode driver's URL).
    pub fn set_env(&mut self, name: &str, value: String) {
        self.submission.env.insert(name.to_string(), value);
    }
}

/// Submits the application and returns its id; the app is then SUBMITTED or later.
pub async fn submit(
    rm: &mut RmClient,
    prepared: &PreparedSubmission,
) -> Result<ApplicationId, ClientError> {
    let new_app = rm.new_application().await?;
    submit_as(rm, prepared, &new_app).await?;
    Ok(new_app.id)
}

/// [`submit`] under an id already obtained with `RmClient::new_application`, for a caller that
/// needs the id before submitting (a client-mode driver serves only its own application).
pub async fn submit_as(
    rm: &mut RmClient,
    prepared: &PreparedSubmission,
    new_app: &NewApplication,
) -> Result<(), ClientError> {
    check_am_resource(prepared.submission.am_resource, new_app.maximum)?;
    let span = tracing::info_span!("submit", app = %new_app.id);
    stage_and_submit(rm, prepared, new_app.id)
        .instrument(span)
        .await
}

async fn stage_and_submit(
    rm: &mut RmClient,
    prepared: &PreparedSubmission,
    id: ApplicationId,
) -> Result<(), ClientError> {
    let submission = &prepared.submission;
    let mut resources = Vec::with_capacity(prepared.shipped.len());
    for (index, (path, name)) in prepared.shipped.iter().enumerate() {
        // The program must run; other files keep whether they were executable already.
        let executable = index == 0 || is_executable(path);
        resources.push(stage_file(rm, path, name, executable).await?);
    }
    let program_name = &prepared.shipped[0].1;
    let request = proto::SubmitApplicationRequest {
        application_id: id.to_string(),
        name: submission
            .name
            .clone()
            .unwrap_or_else(|| program_name.clone()),
        queue: submission.queue.clone(),
        application_type: submission.application_type.clone(),
        tags: submission.tags.clone(),
        am_resource: Some(submission.am_resource.to_proto()),
        am_container: Some(am_launch_context(
            program_name,
            &submission.args,
            &resources,
            &submission.env,
        )),
        max_attempts: i32::try_from(submission.max_attempts).unwrap_or(i32::MAX),
        user: submission.user.clone(),
        unmanaged: false,
    };
    rm.submit_application(request).await?;
    tracing::info!("submitted");
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn programs_are_found_by_path_or_in_path() {
        let dir = tempfile::tempdir().unwrap();
        let tool = write(dir.path(), "tool", 0o755);
        write(dir.path(), "data", 0o644);
        let path_var =
            std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();

        assert_eq!(resolve_program("tool", Some(&path_var)).unwrap(), tool);
        let by_path = resolve_program(tool.to_str().unwrap(), None).unwrap();
        assert_eq!(by_path, tool);

        let err = resolve_program("missing-tool", Some(&path_var)).unwrap_err();
        assert!(
            err.to_string().contains("\"missing-tool\" not found"),
            "{err}"
        );
        let err = resolve_program("data", Some(&path_var)).unwrap_err();
        assert!(matches!(err, ClientError::ProgramNotFound { .. }));
        let data = dir.path().join("data");
        let err = resolve_program(data.to_str().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("not executable"), "{err}");
        let err = resolve_program("./nope", None).unwrap_err();
        assert!(err.to_string().contains("./nope"), "{err}");
    }

    #[test]
    fn file_names_must_not_clash() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let program = write(dir.path(), "app", 0o755);
        let conf = write(dir.path(), "app.conf", 0o644);
        let clash = write(&sub, "app", 0o644);
        let shipped = shipped_files(&program, std::slice::from_ref(&conf)).unwrap();
        assert_eq!(shipped[1].1, "app.conf");
        let err = shipped_files(&program, &[clash]).unwrap_err();
        assert!(
            matches!(err, ClientError::DuplicateName(ref n) if n == "app"),
            "{err}"
        );
        let err = shipped_files(&program, &[dir.path().join("absent")]).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn am_above_the_maximum_names_both_numbers() {
        let max = Resource::new(8192, 32);
        assert!(check_am_resource(Resource::new(8192, 32), max).is_ok());
        let err = check_am_resource(Resource::new(100_000, 1), max).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AM resource memory_mb=100000 exceeds the maximum allocation of 8192 MB"
        );
        let err = check_am_resource(Resource::new(512, 33), max).unwrap_err();
        assert!(err.to_string().contains("vcores=33"), "{err}");
        assert!(err.to_string().contains("32 vcores"), "{err}");
    }

    #[test]
    fn launch_context_follows_the_contract() {
        let resources = vec![LocalResource {
            name: "pi".into(),
            sha256: "a".repeat(64),
            size: 10,
            executable: true,
        }];
        let env = BTreeMap::from([("K".to_string(), "v=w".to_string())]);
        let ctx = am_launch_context("pi", &["100".into(), "a b".into()], &resources, &env);
        assert_eq!(ctx.command, ["./pi", "100", "a b"]);
        assert_eq!(ctx.environment["K"], "v=w");
        let listed: Vec<LocalResource> =
            serde_json::from_str(&ctx.environment[LOCAL_RESOURCES_ENV]).unwrap();
        assert_eq!(listed, resources);
        assert_eq!(ctx.local_resources.len(), 1);
        assert!(ctx.local_resources[0].executable);
        // The contract's own validation accepts it.
        spindle_containers::LaunchContext::from_proto(Some(&ctx)).unwrap();
    }

    #[test]
    fn a_user_is_always_named() {
        assert!(!current_user().is_empty());
    }
}

//! Where the `pi` scenario gets the Pi example it submits: the file given with `--program`, or
//! `pi` next to this program (`target/<profile>/pi`), built with cargo in the same profile when
//! it is missing or older than this program. So `cargo run --release -p spindle-bench -- pi`
//! works on a fresh clone, and never measures a Pi left over from older sources.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The Pi example's binary, as cargo names it.
const PI: &str = "pi";
/// The package that holds it.
const EXAMPLES_PACKAGE: &str = "spindle-examples";
/// The workspace this bench was built from: where cargo can build Pi from the same sources.
const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");

/// The Pi example to submit: `given` if any (it must be an executable file), else the one next
/// to this program, built first if it is missing or older than this program.
pub fn locate(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        check_executable(path).with_context(|| format!("--program {}", path.display()))?;
        return Ok(path.to_path_buf());
    }
    let bench = std::env::current_exe().context("finding this program's own file")?;
    let profile_dir = bench
        .parent()
        .with_context(|| format!("{} has no parent directory", bench.display()))?;
    let pi = profile_dir.join(PI);
    if !is_fresh(&pi, &bench) {
        build(profile_dir)?;
    }
    check_executable(&pi).with_context(|| {
        format!(
            "cargo built {PI} but {} is not there; name the Pi example with --program",
            pi.display()
        )
    })?;
    Ok(pi)
}

/// `pi` exists and was built no earlier than the bench (so from the same sources or newer).
fn is_fresh(pi: &Path, bench: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    match (modified(pi), modified(bench)) {
        (Some(pi), Some(bench)) => pi >= bench,
        _ => false,
    }
}

/// `$CARGO build -p spindle-examples --bin pi` in the profile and target dir this program was
/// built in (`<target dir>/<profile dir>/spindle-bench`). Cargo's progress goes to stderr, so
/// that stdout keeps only the report.
fn build(profile_dir: &Path) -> anyhow::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|name| name.to_str())
        .with_context(|| format!("{} names no cargo profile", profile_dir.display()))?;
    let target_dir = profile_dir
        .parent()
        .with_context(|| format!("{} is not inside a target dir", profile_dir.display()))?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(WORKSPACE_MANIFEST)
        .arg("--target-dir")
        .arg(target_dir)
        .args(["-p", EXAMPLES_PACKAGE, "--bin", PI])
        .args(profile_flags(profile))
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()));
    eprintln!(
        "spindle-bench: building the Pi example ({} build -p {EXAMPLES_PACKAGE} --bin {PI} {})",
        cargo.to_string_lossy(),
        profile_flags(profile).join(" ")
    );
    let status = command
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    if !status.success() {
        bail!(
            "building the Pi example failed ({status}); build it yourself or name it with \
             --program"
        );
    }
    Ok(())
}

/// Cargo's flags for the profile whose output directory is `dir_name`: `debug` is the dev
/// profile (cargo's default), every other profile writes to a directory of its own name.
fn profile_flags(dir_name: &str) -> Vec<String> {
    match dir_name {
        "debug" => Vec::new(),
        "release" => vec!["--release".to_string()],
        other => vec!["--profile".to_string(), other.to_string()],
    }
}

fn check_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!("{} is not an executable file", path.display());
    }
    Ok(())
}

/// The program's size in MB, to one decimal: every submission hashes it, and the first one
/// uploads it, so its size is part of what a run costs.
pub fn size_mb(path: &Path) -> anyhow::Result<f64> {
    let bytes = std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    Ok((bytes as f64 / (1024.0 * 1024.0) * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::SystemTime;

    #[test]
    fn each_profile_dir_maps_to_its_cargo_flags() {
        assert!(profile_flags("debug").is_empty());
        assert_eq!(profile_flags("release"), ["--release"]);
        assert_eq!(profile_flags("bench"), ["--profile", "bench"]);
    }

    #[test]
    fn a_pi_older_than_the_bench_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        let new = dir.path().join("new");
        std::fs::write(&old, b"").unwrap();
        std::fs::write(&new, b"").unwrap();
        let earlier = SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(earlier)
            .unwrap();
        assert!(is_fresh(&new, &old));
        assert!(!is_fresh(&old, &new));
        assert!(!is_fresh(&dir.path().join("missing"), &new));
    }

    #[test]
    fn a_given_program_must_be_an_executable_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::write(&data, b"").unwrap();
        let err = locate(Some(&data)).unwrap_err();
        assert!(
            format!("{err:#}").contains("not an executable file"),
            "{err:#}"
        );
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(locate(Some(&data)).unwrap(), data);
        let err = locate(Some(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("--program"), "{err:#}");
    }
}

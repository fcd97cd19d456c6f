//! Renders `launch_container.sh`, the bash script through which the node manager runs every
//! container: it exports the environment, runs the program as its child with argv exactly as
//! given, and records the program's exit status in the container directory, where it outlives
//! the node manager.

use std::collections::BTreeMap;

/// The script's file name inside the container directory.
pub const SCRIPT_FILE: &str = "launch_container.sh";
/// Where the script records the program's exit status (decimal, one line).
pub const EXIT_CODE_FILE: &str = "exit_code";

/// Variables bash will not let a script set; exporting one would fail at launch time, so it is
/// refused when the script is rendered.
const BASH_READONLY: &[&str] = &[
    "BASHOPTS",
    "BASH_VERSINFO",
    "EUID",
    "PPID",
    "SHELLOPTS",
    "UID",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchScriptError {
    #[error("the command is empty: it needs at least the program")]
    EmptyCommand,
    #[error("argument {index} of the command contains a NUL byte, which no argv can carry")]
    NulInArgument { index: usize },
    #[error(
        "environment variable name {0:?} is not allowed: use letters, digits and '_', not \
         starting with a digit"
    )]
    BadEnvName(String),
    #[error("environment variable {0:?} is read-only in bash and cannot be set for a container")]
    ReadOnlyEnvName(String),
    #[error("the value of environment variable {0:?} contains a NUL byte")]
    NulInEnvValue(String),
}

/// Quotes `s` for bash so that it reads back as exactly `s`: inside single quotes nothing is
/// special, and a single quote itself is closed, escaped and reopened.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The text of `launch_container.sh` for `command` (`PROGRAM ARGS...`) with `env` exported.
///
/// The script is meant to run with the container directory as its working directory.
pub fn render(
    command: &[String],
    env: &BTreeMap<String, String>,
) -> Result<String, LaunchScriptError> {
    if command.first().is_none_or(|program| program.is_empty()) {
        return Err(LaunchScriptError::EmptyCommand);
    }
    if let Some(index) = command.iter().position(|a| a.contains('\0')) {
        return Err(LaunchScriptError::NulInArgument { index });
    }
    let mut script = String::from(
        "#!/bin/bash\n\
         # Written by the Spindle node manager for one container.\n\
         # A stop sends SIGTERM to the whole process group: the program gets it too, and this\n\
         # shell waits for the program to end instead of dying first, so that the program's\n\
         # status is recorded and the shell's exit means the program is gone.\n\
         trap ':' TERM\n",
    );
    for (name, value) in env {
        if !is_env_name(name) {
            return Err(LaunchScriptError::BadEnvName(name.clone()));
        }
        if BASH_READONLY.contains(&name.as_str()) {
            return Err(LaunchScriptError::ReadOnlyEnvName(name.clone()));
        }
        if value.contains('\0') {
            return Err(LaunchScriptError::NulInEnvValue(name.clone()));
        }
        script.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    let argv: Vec<String> = command.iter().map(|a| shell_quote(a)).collect();
    script.push_str(&argv.join(" "));
    // One write by bash's builtin `printf`, no temp file and `mv`: forking `mv` cost ~40% of a
    // short container's launch. The status is read only after bash has exited, so the write is
    // complete then; a bash killed mid-write leaves an empty file, which reads as no status.
    script.push_str(&format!(
        "\nspindle_exit_code=$?\n\
         printf '%s\\n' \"$spindle_exit_code\" > {EXIT_CODE_FILE}\n\
         exit \"$spindle_exit_code\"\n"
    ));
    Ok(script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs the rendered script with bash in `dir` and returns (stdout, exit status).
    fn run(dir: &Path, command: &[String], env: &BTreeMap<String, String>) -> (Vec<u8>, i32) {
        let script = render(command, env).expect("renders");
        std::fs::write(dir.join(SCRIPT_FILE), script).expect("writes script");
        let out = Command::new("bash")
            .arg(SCRIPT_FILE)
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .expect("bash runs");
        (out.stdout, out.status.code().expect("bash exits"))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoting_survives_the_awkward_characters() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME `x` \"y\""), "'$HOME `x` \"y\"'");
    }

    #[test]
    fn records_the_exit_status_and_exits_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let (_, status) = run(
            dir.path(),
            &strings(&["bash", "-c", "exit 3"]),
            &BTreeMap::new(),
        );
        assert_eq!(status, 3);
        let recorded = std::fs::read_to_string(dir.path().join(EXIT_CODE_FILE)).unwrap();
        assert_eq!(recorded, "3\n");
    }

    #[test]
    fn records_the_exit_status_even_when_path_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([("PATH".to_string(), "/nowhere".to_string())]);
        let (_, status) = run(dir.path(), &strings(&["/bin/bash", "-c", "exit 5"]), &env);
        assert_eq!(status, 5);
        let recorded = std::fs::read_to_string(dir.path().join(EXIT_CODE_FILE)).unwrap();
        assert_eq!(recorded, "5\n");
    }

    #[test]
    fn runs_the_program_as_a_child_not_exec() {
        let dir = tempfile::tempdir().unwrap();
        // With `exec` the shell would be replaced and never write the exit code.
        let (out, _) = run(
            dir.path(),
            &strings(&["bash", "-c", "echo $PPID; echo $$ >&2"]),
            &BTreeMap::new(),
        );
        assert!(!out.is_empty());
        assert!(dir.path().join(EXIT_CODE_FILE).exists());
        assert!(
            render(&strings(&["prog"]), &BTreeMap::new())
                .unwrap()
                .lines()
                .all(|l| !l.starts_with("exec"))
        );
    }

    #[test]
    fn refuses_what_bash_cannot_carry() {
        let cmd = strings(&["prog"]);
        let env = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert_eq!(
            render(&[], &BTreeMap::new()),
            Err(LaunchScriptError::EmptyCommand)
        );
        assert_eq!(
            render(&strings(&["prog", "a\0b"]), &BTreeMap::new()),
            Err(LaunchScriptError::NulInArgument { index: 1 })
        );
        assert_eq!(
            render(&cmd, &env("1X", "v")),
            Err(LaunchScriptError::BadEnvName("1X".into()))
        );
        assert_eq!(
            render(&cmd, &env("A=B", "v")),
            Err(LaunchScriptError::BadEnvName("A=B".into()))
        );
        assert_eq!(
            render(&cmd, &env("UID", "0")),
            Err(LaunchScriptError::ReadOnlyEnvName("UID".into()))
        );
        assert_eq!(
            render(&cmd, &env("X", "a\0")),
            Err(LaunchScriptError::NulInEnvValue("X".into()))
        );
    }

    fn nul_separated(bytes: &[u8]) -> Vec<String> {
        let mut items: Vec<String> = bytes
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).expect("utf-8 out"))
            .collect();
        assert_eq!(items.pop().as_deref(), Some(""), "output ends with NUL");
        items
    }

    /// Text that tends to break quoting: quotes, `$`, backticks, backslashes, newlines, unicode.
    fn awkward_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("$".to_string()),
            Just("$(echo x)".to_string()),
            Just("`id`".to_string()),
            Just("\\".to_string()),
            Just("\n".to_string()),
            Just("!".to_string()),
            Just("*".to_string()),
            Just(" ".to_string()),
            Just("-n".to_string()),
            "[^\\x00]{0,4}",
        ];
        prop::collection::vec(piece, 0..6).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn argv_and_env_reach_the_program_byte_identical(
            args in prop::collection::vec(awkward_text(), 0..5),
            values in prop::collection::vec(awkward_text(), 0..4),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut command = strings(&["/usr/bin/printf", "%s\\0"]);
            command.extend(args.iter().cloned());
            let (out, status) = run(dir.path(), &command, &BTreeMap::new());
            prop_assert_eq!(status, 0);
            // printf with no arguments still prints the format once, with an empty string.
            let expected = if args.is_empty() { vec![String::new()] } else { args.clone() };
            prop_assert_eq!(nul_separated(&out), expected);

            let env: BTreeMap<String, String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("SPINDLE_TEST_{i}"), v.clone()))
                .collect();
            let (out, status) = run(dir.path(), &strings(&["/usr/bin/env", "-0"]), &env);
            prop_assert_eq!(status, 0);
            let seen: BTreeMap<String, String> = nul_separated(&out)
                .into_iter()
                .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .filter(|(k, _)| k.starts_with("SPINDLE_TEST_"))
                .collect();
            prop_assert_eq!(seen, env);
        }
    }
}

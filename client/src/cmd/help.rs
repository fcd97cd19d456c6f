//! The examples and exit codes `--help` shows under each command (clap's `after_help`), kept
//! together so they read as one manual and stay in step with docs/cli.md.

/// The exit status every command shares; a macro so that `concat!` can append it.
macro_rules! exit_codes {
    () => {
        "

Exit status:
  0  success (for submit: the application FINISHED with final status SUCCEEDED)
  1  the application failed or was killed, or the command could not do its job
  2  usage error: unknown flag, missing argument, or a value that does not parse"
    };
}

pub const TOP: &str = concat!(
    "\
Examples:
  spindle local-cluster --nodes 2
  spindle submit --rm 127.0.0.1:8032 --num-executors 4 -- ./pi 1000
  spindle apps --state RUNNING
  spindle logs application_1700000000000_0001 --follow
  spindle config defaults > spindle.yaml
  spindle completions bash > /etc/bash_completion.d/spindle

Settings come from spindle.yaml (--config, $SPINDLE_CONFIG, /etc/spindle/spindle.yaml), then
SPINDLE_<SECTION>__<KEY> variables (e.g. SPINDLE_RESOURCE_MANAGER__BIND=0.0.0.0:9032), then flags.
Client commands prove the cluster's client secret: --secret-file, else $SPINDLE_SECRET_FILE
(the resource manager prints the line to export), else client.secret-file; they act for
$SPINDLE_USER, else your OS user.",
    exit_codes!()
);

pub const RESOURCE_MANAGER: &str = concat!(
    "\
Examples:
  spindle resource-manager
  spindle resource-manager --bind 127.0.0.1:0 --web-bind 127.0.0.1:0 --state-dir /tmp/rm
  SPINDLE_RESOURCE_MANAGER__NM_LIVENESS_EXPIRY=30s spindle resource-manager --log-format json
  spindle resource-manager --secret-file /etc/spindle/client.secret --daemon-secret-file /etc/spindle/daemon.secret

Without secret files it generates client.secret and daemon.secret in its state dir. It prints
`export SPINDLE_SECRET_FILE=…` and `export SPINDLE_DAEMON_SECRET_FILE=…` lines, then
rpc-address, web-address and cluster-timestamp lines on stdout, then runs until SIGINT or
SIGTERM.",
    exit_codes!()
);

pub const NODE_MANAGER: &str = concat!(
    "\
Examples:
  spindle node-manager --rm rm.example:8032 --daemon-secret-file /etc/spindle/daemon.secret
  spindle node-manager --rm 127.0.0.1:8032 --bind 127.0.0.1:0 --work-dir /tmp/nm1 --memory-mb 4g
  spindle node-manager --bind 0.0.0.0:8041 --advertise node7.example:8041 --vcores 8

It needs the cluster's daemon secret (--daemon-secret-file, else $SPINDLE_DAEMON_SECRET_FILE,
else node-manager.daemon-secret-file). It prints node-id, rpc-address and web-address lines on stdout, then runs until SIGINT or
SIGTERM, stopping its containers on the way out.",
    exit_codes!()
);

pub const LOCAL_CLUSTER: &str = concat!(
    "\
Examples:
  spindle local-cluster
  spindle local-cluster --nodes 3 --vcores 4 --memory-mb 4g

It makes secrets of its own and prints the export lines for them: paste the
SPINDLE_SECRET_FILE one, then point clients at the printed rpc-address with --rm, or programs
at the printed master.",
    exit_codes!()
);

pub const SUBMIT: &str = "\
Examples:
  spindle submit -- ./my-am --workers 4
  spindle submit --rm rm.example:8032 --name pi --num-executors 4 --executor-memory 1g -- ./pi 1000
  spindle submit --master 'local-cluster[2,2,2048]' -- ./pi
  spindle submit --deploy-mode client --master spindle://rm.example:8032 -- ./pi
  spindle submit --no-wait --files data.csv --env MODE=fast -- ./job

It prints the application id on stdout at once, then follows the application: a live status
line on a terminal, a line per state change otherwise.

Exit status:
  0  the application FINISHED with final status SUCCEEDED (or --no-wait and it was submitted)
  1  it failed or was killed, or it could not be submitted; the diagnostics are on stderr
  2  usage error
  With --deploy-mode client: the exit status of the program.";

pub const APPS: &str = concat!(
    "\
Examples:
  spindle apps
  spindle apps --state RUNNING,ACCEPTED
  spindle apps --json | jq -r '.[].id'",
    exit_codes!()
);

pub const STATUS: &str = concat!(
    "\
Examples:
  spindle status application_1700000000000_0001
  spindle status application_1700000000000_0001 --json",
    exit_codes!()
);

pub const KILL: &str = concat!(
    "\
Examples:
  spindle kill application_1700000000000_0001
  spindle kill --rm rm.example:8032 application_1700000000000_0001
  spindle kill --secret-file ~/.spindle/client.secret application_1700000000000_0001

Only the application's owner and the cluster's admins may kill it.",
    exit_codes!()
);

pub const NODES: &str = concat!(
    "\
Examples:
  spindle nodes
  spindle nodes --json",
    exit_codes!()
);

pub const LOGS: &str = concat!(
    "\
Examples:
  spindle logs application_1700000000000_0001
  spindle logs application_1700000000000_0001 --follow
  spindle logs application_1700000000000_0001 --container container_1700000000000_0001_01_000002 --file stderr

Only the application's owner and the cluster's admins may read its logs.",
    exit_codes!()
);

pub const CONFIG: &str = concat!(
    "\
Examples:
  spindle config defaults > /etc/spindle/spindle.yaml
  SPINDLE_NODE_MANAGER__MONITOR_INTERVAL=500ms spindle config show --config ./spindle.yaml",
    exit_codes!()
);

pub const COMPLETIONS: &str = concat!(
    "\
Examples:
  spindle completions bash > /etc/bash_completion.d/spindle
  spindle completions zsh > \"${fpath[1]}/_spindle\"
  spindle completions fish > ~/.config/fish/completions/spindle.fish",
    exit_codes!()
);

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser as _};

    use crate::cmd::Cli;

    /// The `spindle …` lines of a help text, as argument lists (env assignments, quotes and
    /// redirections dropped).
    fn example_lines(text: &str) -> Vec<Vec<String>> {
        text.lines()
            .map(str::trim)
            .filter_map(|line| {
                let command = line.split(['>', '|']).next()?.trim();
                let words: Vec<&str> = command
                    .split_whitespace()
                    .skip_while(|w| w.starts_with("SPINDLE_"))
                    .collect();
                (words.first() == Some(&"spindle")).then(|| {
                    words
                        .iter()
                        .map(|w| w.trim_matches('\'').to_string())
                        .collect()
                })
            })
            .collect()
    }

    #[test]
    fn every_command_shows_examples_that_parse() {
        let cli = Cli::command();
        let mut checked = 0;
        for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
            let help = sub
                .get_after_help()
                .unwrap_or_else(|| panic!("{} has no examples", sub.get_name()))
                .to_string();
            let examples = example_lines(&help);
            assert!(!examples.is_empty(), "{}: {help}", sub.get_name());
            for words in examples {
                if let Err(e) = Cli::try_parse_from(&words) {
                    panic!("example {words:?} does not parse: {e}");
                }
                checked += 1;
            }
        }
        let top = cli.get_after_help().unwrap().to_string();
        for words in example_lines(&top) {
            Cli::try_parse_from(&words).unwrap();
        }
        assert!(checked > 20, "{checked}");
    }

    #[test]
    fn help_documents_the_exit_codes() {
        let cli = Cli::command();
        let top = cli.get_after_help().unwrap().to_string();
        for code in ["0  success", "1  the application failed", "2  usage error"] {
            assert!(top.contains(code), "{top}");
        }
        let submit = cli.find_subcommand("submit").unwrap();
        assert!(
            submit
                .get_after_help()
                .unwrap()
                .to_string()
                .contains("Exit status")
        );
    }

    #[test]
    fn listings_all_have_json() {
        let cli = Cli::command();
        for name in ["apps", "status", "nodes"] {
            let sub = cli.find_subcommand(name).unwrap();
            assert!(
                sub.get_arguments().any(|a| a.get_id() == "json"),
                "{name} has no --json"
            );
        }
    }
}

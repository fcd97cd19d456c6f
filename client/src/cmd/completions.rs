//! `spindle completions SHELL`: the shell completion script for the whole command tree, made by
//! `clap_complete` from the same definition that parses the command line, so it never lags.

use std::process::ExitCode;

use clap::CommandFactory as _;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    write(args.shell, &mut stdout);
    Ok(ExitCode::SUCCESS)
}

fn write(shell: Shell, out: &mut dyn std::io::Write) {
    let mut command = super::Cli::command();
    clap_complete::generate(shell, &mut command, "spindle", out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: Shell) -> String {
        let mut out = Vec::new();
        write(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scripts_know_the_commands_and_their_flags() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let text = script(shell);
            for word in [
                "submit",
                "node-manager",
                "num-executors",
                "follow",
                "completions",
            ] {
                assert!(text.contains(word), "{shell}: no {word}");
            }
        }
    }
}

//! The `spindle` binary: the daemons and the client commands, all in `spindle_client::cmd`.

fn main() -> std::process::ExitCode {
    spindle_client::cmd::main()
}

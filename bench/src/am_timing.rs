//! The Pi driver's own account of its steps, read from the AM container's stdout: in cluster
//! mode the driver runs in the AM and prints
//! `Timing: context C ms, N executor(s) registered E ms, result R ms (since the program started)`,
//! each figure on the AM process's clock. Only the AM knows when its executors registered and
//! when the result was in, so the `pi` scenario takes those two instants from here.

use std::time::Duration;

use anyhow::{Context, bail};

/// What the line says; every figure is since the AM process entered the SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverTiming {
    /// The driver's context existed (the AM registers with the RM right after).
    pub context: Duration,
    pub executors: u32,
    /// Every executor the driver waited for had registered with it.
    pub executors_registered: Duration,
    /// The job's result was in.
    pub result: Duration,
}

const PREFIX: &str = "Timing: context ";

/// The last `Timing:` line of `stdout`.
pub fn parse(stdout: &str) -> anyhow::Result<DriverTiming> {
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with(PREFIX))
        .with_context(|| {
            format!("the AM's stdout has no line starting {PREFIX:?}; it was:\n{stdout}")
        })?;
    parse_line(line).with_context(|| format!("cannot read the AM's timing line {line:?}"))
}

fn parse_line(line: &str) -> anyhow::Result<DriverTiming> {
    let rest = line.strip_prefix(PREFIX).unwrap_or(line);
    let (context, rest) = millis_then(rest, ", ")?;
    let (executors, rest) = rest
        .split_once(" executor(s) registered ")
        .context("expected \"N executor(s) registered\" after the context")?;
    let executors: u32 = executors
        .parse()
        .with_context(|| format!("{executors:?} is not a number of executors"))?;
    let (executors_registered, rest) = millis_then(rest, ", ")?;
    let rest = rest
        .strip_prefix("result ")
        .context("expected \"result R ms\" after the executors")?;
    let (result, _) = millis_then(rest, " ")?;
    if !(context <= executors_registered && executors_registered <= result) {
        bail!("the steps are out of order: {context:?}, {executors_registered:?}, {result:?}");
    }
    Ok(DriverTiming {
        context,
        executors,
        executors_registered,
        result,
    })
}

/// `"123 ms<sep>rest"` → (123 ms, rest); a missing separator means the line ends there.
fn millis_then<'a>(text: &'a str, sep: &str) -> anyhow::Result<(Duration, &'a str)> {
    let (number, rest) = text
        .split_once(" ms")
        .with_context(|| format!("expected a figure in ms at {text:?}"))?;
    let ms: u64 = number
        .trim()
        .parse()
        .with_context(|| format!("{number:?} is not a whole number of ms"))?;
    Ok((
        Duration::from_millis(ms),
        rest.strip_prefix(sep).unwrap_or(rest),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STDOUT: &str = "Pi is roughly 3.14392\n\
        8 tasks ran in 4 executor processes on 2 nodes: 127.0.0.1:40105 127.0.0.1:41031\n\
        Timing: context 23 ms, 4 executor(s) registered 573 ms, result 577 ms \
        (since the program started)\n";

    #[test]
    fn reads_the_drivers_line() {
        assert_eq!(
            parse(STDOUT).unwrap(),
            DriverTiming {
                context: Duration::from_millis(23),
                executors: 4,
                executors_registered: Duration::from_millis(573),
                result: Duration::from_millis(577),
            }
        );
    }

    #[test]
    fn a_missing_or_mangled_line_is_an_error_that_shows_it() {
        let err = parse("Pi is roughly 3.1\n").unwrap_err();
        assert!(format!("{err:#}").contains("Pi is roughly 3.1"), "{err:#}");
        for bad in [
            "Timing: context x ms, 4 executor(s) registered 5 ms, result 6 ms",
            "Timing: context 1 ms, four executor(s) registered 5 ms, result 6 ms",
            "Timing: context 1 ms, 4 executors registered 5 ms, result 6 ms",
            "Timing: context 1 ms, 4 executor(s) registered 5 ms",
            "Timing: context 9 ms, 4 executor(s) registered 5 ms, result 6 ms",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(format!("{err:#}").contains(bad), "{bad}: {err:#}");
        }
    }
}

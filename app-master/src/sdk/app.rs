//! What a user's `main` writes: an [`App`] names its tasks and its driver. Tasks are plain
//! functions from a serde input to a serde output; the registry stores them type-erased as
//! JSON bytes → JSON bytes, so the driver can ship inputs over the wire and any executor of the
//! same program can run them by name.

use std::collections::BTreeMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::context::DriverContext;

/// A task as the executor runs it: input bytes in, output bytes or an error message out.
type ErasedTask = Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// User code that runs before the driver's context exists, with the program's arguments
/// (Spark: a `main` that works before it creates its `SparkContext`).
pub type BeforeContextFn = Arc<dyn Fn(&[String]) -> Result<(), String> + Send + Sync>;

/// The user's driver: plans the work and runs jobs through the context.
pub type DriverFn = Arc<dyn Fn(&DriverContext) -> Result<(), String> + Send + Sync>;

/// A program's tasks, by name. Cloning is cheap (the functions are shared).
#[derive(Clone, Default)]
pub struct TaskRegistry {
    tasks: BTreeMap<String, ErasedTask>,
}

impl TaskRegistry {
    /// Registers `task` under `name`; a second registration under the same name replaces the
    /// first and is reported by [`App::check`].
    fn insert<I, O, F>(&mut self, name: &str, task: F) -> Option<ErasedTask>
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(I) -> Result<O, String> + Send + Sync + 'static,
    {
        let task_name = name.to_string();
        let erased: ErasedTask = Arc::new(move |input: &[u8]| {
            let input: I = serde_json::from_slice(input)
                .map_err(|e| format!("task '{task_name}' could not decode its input: {e}"))?;
            let output = task(input)?;
            serde_json::to_vec(&output)
                .map_err(|e| format!("task '{task_name}' could not encode its output: {e}"))
        });
        self.tasks.insert(name.to_string(), erased)
    }

    /// True if a task is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Runs the task `name` on a JSON-encoded input. A panic inside the task is caught and
    /// becomes the task's error, carrying the panic message, so one bad input cannot take the
    /// executor down with it.
    pub fn run(&self, name: &str, input: &[u8]) -> Result<Vec<u8>, String> {
        let task = self.tasks.get(name).ok_or_else(|| {
            format!(
                "no task named '{name}' is registered; registered tasks: {}",
                self.describe_names()
            )
        })?;
        match catch_unwind(AssertUnwindSafe(|| task(input))) {
            Ok(result) => result,
            Err(payload) => Err(format!(
                "task '{name}' panicked: {}",
                panic_message(payload.as_ref())
            )),
        }
    }

    /// The registered names as one human-readable list, for error messages.
    pub(crate) fn describe_names(&self) -> String {
        if self.tasks.is_empty() {
            "(none)".to_string()
        } else {
            self.names().join(", ")
        }
    }
}

impl fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("tasks", &self.names())
            .finish()
    }
}

/// The text of a panic payload: `panic!` gives a `&str` or a `String`; anything else is opaque.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}

/// A mistake in how the app was put together, found before anything runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error(
        "app '{app}': task name '{task}' is registered more than once; task names must be unique"
    )]
    DuplicateTask { app: String, task: String },
    #[error("app '{app}': a task name must not be empty")]
    EmptyTaskName { app: String },
    #[error("app '{app}' has no driver; call .driver(..) to give it one")]
    NoDriver { app: String },
}

/// A Spark-shaped application: a name, the tasks its executors can run, and its driver.
///
/// ```
/// use spindle_app_master::sdk::App;
///
/// let app = App::new("squares")
///     .task("square", |x: u64| -> Result<u64, String> { Ok(x * x) })
///     .driver(|ctx| {
///         let squares: Vec<u64> = ctx.run("square", vec![1u64, 2, 3]).map_err(|e| e.to_string())?;
///         println!("{squares:?}");
///         Ok(())
///     });
/// assert!(app.check().is_ok());
/// ```
#[derive(Clone)]
pub struct App {
    name: String,
    tasks: TaskRegistry,
    driver: Option<DriverFn>,
    before_context: Option<BeforeContextFn>,
    /// Registration mistakes, kept until [`App::check`] so the builder chain stays infallible.
    problems: Vec<AppError>,
}

impl App {
    pub fn new(name: impl Into<String>) -> App {
        App {
            name: name.into(),
            tasks: TaskRegistry::default(),
            driver: None,
            before_context: None,
            problems: Vec::new(),
        }
    }

    /// Registers a task: a function from a deserializable input to a serializable output.
    /// Executors find it by `name`, so every role of the program must register the same tasks.
    pub fn task<I, O, F>(mut self, name: &str, task: F) -> App
    where
        I: DeserializeOwned,
        O: Serialize,
        F: Fn(I) -> Result<O, String> + Send + Sync + 'static,
    {
        if name.is_empty() {
            self.problems.push(AppError::EmptyTaskName {
                app: self.name.clone(),
            });
        }
        if self.tasks.insert(name, task).is_some() {
            self.problems.push(AppError::DuplicateTask {
                app: self.name.clone(),
                task: name.to_string(),
            });
        }
        self
    }

    /// Sets the driver: the program's plan, run once per application with a [`DriverContext`].
    pub fn driver<F>(mut self, driver: F) -> App
    where
        F: Fn(&DriverContext) -> Result<(), String> + Send + Sync + 'static,
    {
        self.driver = Some(Arc::new(driver));
        self
    }

    /// Sets work the driver does before its context exists (reading input, say). In cluster
    /// mode the AM waits at most `--am-wait-time` for the context, so a step that never ends
    /// fails the attempt with exit 13, as in Spark.
    pub fn before_context<F>(mut self, step: F) -> App
    where
        F: Fn(&[String]) -> Result<(), String> + Send + Sync + 'static,
    {
        self.before_context = Some(Arc::new(step));
        self
    }

    /// Runs the step set by [`App::before_context`], if any.
    pub fn run_before_context(&self, args: &[String]) -> Result<(), String> {
        match &self.before_context {
            Some(step) => step(args),
            None => Ok(()),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tasks(&self) -> &TaskRegistry {
        &self.tasks
    }

    /// The driver, if one was set.
    pub fn driver_fn(&self) -> Option<&DriverFn> {
        self.driver.as_ref()
    }

    /// Reports the first mistake in how the app was built, or a missing driver.
    pub fn check(&self) -> Result<(), AppError> {
        if let Some(problem) = self.problems.first() {
            return Err(problem.clone());
        }
        if self.driver.is_none() {
            return Err(AppError::NoDriver {
                app: self.name.clone(),
            });
        }
        Ok(())
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("tasks", &self.tasks.names())
            .field("has_driver", &self.driver.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double_app() -> App {
        App::new("t")
            .task("double", |x: i64| -> Result<i64, String> { Ok(x * 2) })
            .task("fail", |_: i64| -> Result<i64, String> {
                Err("bad input".into())
            })
            .task("boom", |x: i64| -> Result<i64, String> {
                if x > 0 {
                    panic!("boom on {x}");
                }
                Ok(x)
            })
            .driver(|_| Ok(()))
    }

    #[test]
    fn runs_a_task_through_json() {
        let app = double_app();
        let out = app.tasks().run("double", b"21").unwrap();
        assert_eq!(out, b"42");
    }

    #[test]
    fn a_task_error_is_returned() {
        let app = double_app();
        assert_eq!(app.tasks().run("fail", b"1").unwrap_err(), "bad input");
    }

    #[test]
    fn a_panic_becomes_the_task_error_with_its_message() {
        let app = double_app();
        let err = app.tasks().run("boom", b"7").unwrap_err();
        assert_eq!(err, "task 'boom' panicked: boom on 7");
        // The registry is still usable after a caught panic.
        assert_eq!(app.tasks().run("boom", b"0").unwrap(), b"0");
    }

    #[test]
    fn an_undecodable_input_names_the_task() {
        let app = double_app();
        let err = app.tasks().run("double", b"\"text\"").unwrap_err();
        assert!(
            err.starts_with("task 'double' could not decode its input"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_task_lists_the_registered_ones() {
        let app = double_app();
        let err = app.tasks().run("triple", b"1").unwrap_err();
        assert_eq!(
            err,
            "no task named 'triple' is registered; registered tasks: boom, double, fail"
        );
    }

    #[test]
    fn check_reports_duplicates_and_a_missing_driver() {
        let dup = App::new("a")
            .task("x", |v: u8| -> Result<u8, String> { Ok(v) })
            .task("x", |v: u8| -> Result<u8, String> { Ok(v) })
            .driver(|_| Ok(()));
        assert_eq!(
            dup.check(),
            Err(AppError::DuplicateTask {
                app: "a".into(),
                task: "x".into()
            })
        );
        let no_driver = App::new("b").task("x", |v: u8| -> Result<u8, String> { Ok(v) });
        assert_eq!(
            no_driver.check(),
            Err(AppError::NoDriver { app: "b".into() })
        );
        assert!(double_app().check().is_ok());
    }
}

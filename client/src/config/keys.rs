//! The documentation of every `spindle.yaml` key, kept in one table beside the config tree so
//! that `spindle config defaults`, the environment overrides' error messages and the docs all
//! say the same thing. A test checks the table against the keys the structs really have, so a
//! new field without a line here (or a line for a field that is gone) fails the build's tests.

/// One key of `spindle.yaml`: its dotted path, what it is, and what a value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// Sections and keys joined by `.`, as written in the file: `resource-manager.bind`.
    pub path: &'static str,
    /// One line saying what the key does (and what its default means when it is `null`).
    pub doc: &'static str,
    /// What a value must look like, for error messages.
    pub expected: &'static str,
}

const fn key(path: &'static str, doc: &'static str, expected: &'static str) -> KeyDoc {
    KeyDoc {
        path,
        doc,
        expected,
    }
}

const HOST_PORT: &str = "HOST:PORT, e.g. 0.0.0.0:8032";
const OPTIONAL_HOST_PORT: &str = "HOST:PORT, e.g. 0.0.0.0:8088, or null";
const DURATION: &str = "a duration such as 250ms, 2s, 10m or 1h";
const PATH: &str = "a file system path";
const OPTIONAL_PATH: &str = "a file system path, or null";
const WHOLE: &str = "a whole number";
const SECTION: &str = "a mapping of the section's keys";
const RESOURCE: &str = "{memory_mb: N, vcores: N}";

/// Every key, in the order the file shows them.
pub const KEYS: &[KeyDoc] = &[
    key(
        "resource-manager",
        "The resource manager (`spindle resource-manager`).",
        SECTION,
    ),
    key(
        "resource-manager.bind",
        "gRPC address for clients, AMs and node managers (YARN's 8032).",
        HOST_PORT,
    ),
    key(
        "resource-manager.web-bind",
        "HTTP address of the web UI, REST API and /metrics (YARN's 8088); null: no web server.",
        OPTIONAL_HOST_PORT,
    ),
    key(
        "resource-manager.state-dir",
        "Where the RM keeps its state store, staged files and aggregated logs.",
        PATH,
    ),
    key(
        "resource-manager.minimum-allocation",
        "Container requests are rounded up to a multiple of this memory and at least this.",
        RESOURCE,
    ),
    key(
        "resource-manager.minimum-allocation.memory_mb",
        "Memory in MB.",
        WHOLE,
    ),
    key(
        "resource-manager.minimum-allocation.vcores",
        "Virtual cores.",
        WHOLE,
    ),
    key(
        "resource-manager.maximum-allocation",
        "Container requests above this are refused.",
        RESOURCE,
    ),
    key(
        "resource-manager.maximum-allocation.memory_mb",
        "Memory in MB.",
        WHOLE,
    ),
    key(
        "resource-manager.maximum-allocation.vcores",
        "Virtual cores.",
        WHOLE,
    ),
    key(
        "resource-manager.placement",
        "Where a new container goes: spread (most free memory first) or pack (fill nodes one by one).",
        "spread or pack",
    ),
    key(
        "resource-manager.nm-heartbeat-interval",
        "How often node managers heartbeat; capped at a third of nm-liveness-expiry.",
        DURATION,
    ),
    key(
        "resource-manager.nm-liveness-expiry",
        "A node silent this long is LOST.",
        DURATION,
    ),
    key(
        "resource-manager.am-liveness-expiry",
        "An application master silent this long has failed its attempt.",
        DURATION,
    ),
    key(
        "resource-manager.default-max-attempts",
        "Attempts per application when the submission does not say.",
        WHOLE,
    ),
    key(
        "resource-manager.max-attempts-limit",
        "The most attempts a submission may ask for.",
        WHOLE,
    ),
    key(
        "resource-manager.max-completed-applications",
        "Finished applications kept; the oldest are forgotten first.",
        WHOLE,
    ),
    key(
        "resource-manager.secret-file",
        "The client secret clients prove on every call (mode 0600); null: generated as client.secret in state-dir.",
        OPTIONAL_PATH,
    ),
    key(
        "resource-manager.daemon-secret-file",
        "The daemon secret node managers prove to join (mode 0600); null: generated as daemon.secret in state-dir.",
        OPTIONAL_PATH,
    ),
    key(
        "resource-manager.anonymous-reads",
        "Whether reads on the web port (UI, REST GETs, /metrics) need no secret.",
        "true or false",
    ),
    key(
        "resource-manager.admins",
        "Users who may kill any application, read its logs and submit anywhere; the RM's own user always may.",
        "a list of user names, e.g. [alice, ops]",
    ),
    key(
        "resource-manager.queue-acls",
        "Who may submit to a queue: QUEUE: {submit: [users, or \"*\" for anyone]}; a queue not listed accepts anyone.",
        "a mapping of queue names to {submit: [users]}",
    ),
    key(
        "resource-manager.key-roll-interval",
        "How long a key signs AM, container and NM tokens before a new one takes over; AM and NM tokens live twice this.",
        DURATION,
    ),
    key(
        "resource-manager.container-token-expiry",
        "How long after its allocation a container may be started (YARN's allocation expiry).",
        DURATION,
    ),
    key(
        "node-manager",
        "A node manager (`spindle node-manager`).",
        SECTION,
    ),
    key(
        "node-manager.rm",
        "The resource manager's gRPC address.",
        "HOST:PORT, e.g. 127.0.0.1:8032",
    ),
    key(
        "node-manager.bind",
        "Where the container manager listens (the RM and AMs call it here).",
        "HOST:PORT, e.g. 0.0.0.0:8041",
    ),
    key(
        "node-manager.advertise",
        "The address others reach this node at, and its node id; null: the bound address.",
        "HOST:PORT, or null",
    ),
    key(
        "node-manager.web-bind",
        "HTTP address for logs and metrics; null: an ephemeral port on the bind host.",
        OPTIONAL_HOST_PORT,
    ),
    key(
        "node-manager.work-dir",
        "Containers' working dirs, logs and the localized-file cache live under here.",
        PATH,
    ),
    key(
        "node-manager.memory-mb",
        "Memory in MB offered to the cluster; null: the host's memory.",
        "a whole number of MB, or null",
    ),
    key(
        "node-manager.vcores",
        "Virtual cores offered to the cluster; null: the host's logical cores.",
        "a whole number, or null",
    ),
    key(
        "node-manager.hostname",
        "The node's display name, never resolved; null: the host's name.",
        "a name, or null",
    ),
    key(
        "node-manager.kill-grace",
        "Between SIGTERM and SIGKILL when a container is stopped.",
        DURATION,
    ),
    key(
        "node-manager.monitor-interval",
        "How often the memory monitor samples each container's processes.",
        DURATION,
    ),
    key(
        "node-manager.cgroups",
        "Container cgroups: auto (where the host allows) or off (the memory monitor alone).",
        "auto or off",
    ),
    key(
        "node-manager.daemon-secret-file",
        "The cluster's daemon secret (mode 0600), as the RM generated it; null: SPINDLE_DAEMON_SECRET_FILE must name it.",
        OPTIONAL_PATH,
    ),
    key(
        "node-manager.fallback-user",
        "As root: the user a container runs as when its owner is no user of this host, or is root.",
        "a user name",
    ),
    key(
        "node-manager.allow-root",
        "As root: whether containers of applications owned by root may run as root.",
        "true or false",
    ),
    key(
        "node-manager.min-user-id",
        "As root: owners with a smaller uid (system accounts) run as fallback-user, as YARN's min.user.id.",
        "a uid",
    ),
    key(
        "client",
        "The client commands (submit, apps, status, kill, nodes, logs).",
        SECTION,
    ),
    key(
        "client.rm",
        "The resource manager's gRPC address; --rm and SPINDLE_RM override it.",
        "HOST:PORT, e.g. 127.0.0.1:8032",
    ),
    key(
        "client.queue",
        "The queue applications go to unless --queue says otherwise.",
        "a queue name",
    ),
    key(
        "client.connect-timeout",
        "How long to wait for the RM to accept a connection.",
        DURATION,
    ),
    key(
        "client.secret-file",
        "The cluster's client secret (mode 0600); --secret-file and SPINDLE_SECRET_FILE override it; null: none.",
        OPTIONAL_PATH,
    ),
];

/// The documentation of the key at `path`, if it is one.
pub fn find(path: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|k| k.path == path)
}

/// The environment variable that overrides `path`: `SPINDLE_` and the path upper-cased,
/// sections joined by `__`, dashes as `_`.
pub fn env_name(path: &str) -> String {
    let segments: Vec<String> = path
        .split('.')
        .map(|s| s.to_ascii_uppercase().replace('-', "_"))
        .collect();
    format!("SPINDLE_{}", segments.join("__"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_path() {
        assert_eq!(
            env_name("resource-manager.bind"),
            "SPINDLE_RESOURCE_MANAGER__BIND"
        );
        assert_eq!(
            env_name("node-manager.monitor-interval"),
            "SPINDLE_NODE_MANAGER__MONITOR_INTERVAL"
        );
        assert_eq!(
            env_name("resource-manager.minimum-allocation.memory_mb"),
            "SPINDLE_RESOURCE_MANAGER__MINIMUM_ALLOCATION__MEMORY_MB"
        );
    }

    #[test]
    fn paths_are_unique_and_so_are_their_variables() {
        let mut names: Vec<String> = KEYS.iter().map(|k| env_name(k.path)).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KEYS.len());
    }
}

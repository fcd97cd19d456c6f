//! `spindle config defaults`: the whole `spindle.yaml` with every default, a comment line
//! above each key from the key table. It is generated from the structs' `Default` and the
//! table, never written by hand, so it cannot fall behind the code.

use serde_yaml::Value;

use super::{SpindleConfig, keys, tree};

/// Shown when a key has no line in the table; a test makes sure it never is.
const UNDOCUMENTED: &str = "(undocumented)";

/// The annotated YAML document of `config`'s values (the defaults, for the command).
pub fn annotated(config: &SpindleConfig) -> String {
    let mut out = String::from(
        "# spindle.yaml: every key with its default. Remove what you do not change.\n\
         # Any key can also be set by an environment variable, e.g. SPINDLE_RESOURCE_MANAGER__BIND.\n",
    );
    if let Value::Mapping(sections) = tree(config) {
        write_mapping(&mut out, &sections, "", 0);
    }
    out
}

fn write_mapping(out: &mut String, mapping: &serde_yaml::Mapping, prefix: &str, depth: usize) {
    let indent = "  ".repeat(depth);
    for (key, value) in mapping {
        let name = key.as_str().unwrap_or_default();
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        };
        let doc = keys::find(&path).map_or(UNDOCUMENTED, |k| k.doc);
        out.push_str(&format!("{indent}# {doc}\n"));
        match value {
            Value::Mapping(children) if !children.is_empty() => {
                out.push_str(&format!("{indent}{name}:\n"));
                write_mapping(out, children, &path, depth + 1);
            }
            scalar => out.push_str(&format!("{indent}{name}: {}\n", scalar_text(scalar))),
        }
    }
}

/// A scalar as YAML writes it (quoted when a plain scalar would read back differently).
fn scalar_text(value: &Value) -> String {
    serde_yaml::to_string(value)
        .map(|text| text.trim_end().to_string())
        .unwrap_or_else(|_| "null".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{key_paths, parse};

    #[test]
    fn the_printed_defaults_load_back_as_the_defaults() {
        let text = annotated(&SpindleConfig::default());
        assert_eq!(parse(&text).unwrap(), SpindleConfig::default(), "{text}");
    }

    #[test]
    fn every_key_has_a_comment_line_above_it() {
        let text = annotated(&SpindleConfig::default());
        assert!(!text.contains(UNDOCUMENTED), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        let mut keys_seen = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            keys_seen += 1;
            assert!(line.contains(':'), "not a key line: {line}");
            let above = lines[i - 1].trim_start();
            assert!(above.starts_with("# "), "no comment above {line:?}");
        }
        assert_eq!(keys_seen, key_paths(&tree(&SpindleConfig::default())).len());
    }

    #[test]
    fn the_table_documents_exactly_the_keys_the_structs_have() {
        let paths = key_paths(&tree(&SpindleConfig::default()));
        let documented: Vec<&str> = keys::KEYS.iter().map(|k| k.path).collect();
        assert_eq!(paths, documented);
    }

    #[test]
    fn values_that_read_as_other_types_are_quoted() {
        let mut config = SpindleConfig::default();
        config.client.queue = "true".to_string();
        config.node_manager.hostname = Some("007".to_string());
        let text = annotated(&config);
        assert_eq!(parse(&text).unwrap(), config, "{text}");
    }
}

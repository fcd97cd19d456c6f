//! The NM tokens an AM holds, one per node: the RM hands them out with the containers it
//! allocates (and at registration, for containers kept from an earlier attempt), the
//! `AmRmClient` files them here as they come, and the `NmClient` presents the right one on every
//! call to a node. One shared table, so a token the RM re-issues reaches the next call at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use spindle_protocol as proto;

/// Node id → its NM token for this application. Cheap to clone; clones share the table.
#[derive(Debug, Clone, Default)]
pub struct NmTokens {
    by_node: Arc<RwLock<HashMap<String, String>>>,
}

impl NmTokens {
    pub fn new() -> NmTokens {
        NmTokens::default()
    }

    /// Keeps the tokens of an RM answer; a node's newer token replaces its older one. Entries
    /// without a node or a token are no token at all and are skipped.
    pub fn update(&self, tokens: &[proto::NodeToken]) {
        let mut by_node = self.by_node.write().unwrap_or_else(|e| e.into_inner());
        for token in tokens {
            if !token.node_id.is_empty() && !token.token.is_empty() {
                by_node.insert(token.node_id.clone(), token.token.clone());
            }
        }
    }

    /// The token for `node_id`, if the RM sent one.
    pub fn get(&self, node_id: &str) -> Option<String> {
        self.by_node
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(node_id)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(node: &str, token: &str) -> proto::NodeToken {
        proto::NodeToken {
            node_id: node.into(),
            token: token.into(),
        }
    }

    #[test]
    fn newer_tokens_replace_older_ones_and_empty_entries_are_skipped() {
        let tokens = NmTokens::new();
        let shared = tokens.clone();
        tokens.update(&[token("a:1", "one"), token("b:1", "two"), token("", "x")]);
        tokens.update(&[token("a:1", "three"), token("b:1", "")]);
        assert_eq!(shared.get("a:1").as_deref(), Some("three"));
        assert_eq!(shared.get("b:1").as_deref(), Some("two"));
        assert_eq!(shared.get(""), None);
        assert_eq!(shared.get("c:1"), None);
    }
}

//! Printing node state: the seed API's JSON shape and a one-line status.

use std::fmt::Write as _;

use raft_core::{EntryPayload, LogIndex, Node};

/// `{"term":1,"state":"LEADER","log":[{"term":1,"command":"msg1"}],"uncommitted":[]}`: `log`
/// holds the committed command entries and `uncommitted` the command entries after the commit
/// index. No-op entries are not listed, as the seed API has none.
#[must_use]
pub fn state_json(node: &Node) -> String {
    let commit = node.commit_index();
    let mut log = Vec::new();
    let mut uncommitted = Vec::new();
    for entry in node.entries(LogIndex(1), node.last_log_index()) {
        let EntryPayload::Command(bytes) = &entry.payload else {
            continue;
        };
        let item = format!(
            "{{\"term\":{},\"command\":{}}}",
            entry.term.0,
            json_string(&String::from_utf8_lossy(bytes))
        );
        if entry.index <= commit {
            log.push(item);
        } else {
            uncommitted.push(item);
        }
    }
    format!(
        "{{\"term\":{},\"state\":\"{}\",\"log\":[{}],\"uncommitted\":[{}]}}",
        node.term().0,
        node.role().as_str(),
        log.join(","),
        uncommitted.join(",")
    )
}

/// Role, term, leader, indexes and elections started (by this incarnation) on one line.
#[must_use]
pub fn status_line(node: &Node) -> String {
    let status = node.status();
    let leader = status
        .leader_id
        .map_or_else(|| "-".to_owned(), |id| id.to_string());
    format!(
        "{} {} leader={} last={} commit={} applied={} elections={}",
        status.role.as_str(),
        status.term,
        leader,
        status.last_log_index,
        status.commit_index,
        status.applied_index,
        status.stats.elections_started
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_json() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn fresh_node_prints_the_seed_shape() {
        let node = Node::new(raft_core::Config::new(
            raft_core::NodeId(1),
            [raft_core::NodeId(1)],
        ))
        .expect("valid config");
        assert_eq!(
            state_json(&node),
            r#"{"term":0,"state":"FOLLOWER","log":[],"uncommitted":[]}"#
        );
    }
}

//! The run viewer: one self-contained HTML page (inline CSS, JS and SVG, no network) that
//! replays a JSON trace ([`crate::trace_json`]): the nodes with their roles, terms and logs,
//! messages in flight, faults, a time scrubber and the event list. The page is
//! `viz/viz.html` with the style, the scripts (`viz/render.js`, the drawing it shares with
//! raft-net's live dashboard, and `viz/viz.js`) and the trace inlined; the trace goes into a
//! `<script type="application/json">` block, escaped so that no string in it can end the
//! block.
//!
//! [`replay`] rebuilds the cluster the same way the page's script does; it checks the trace
//! as it goes (every log change must fit the log, every node state must agree with it), and
//! [`summary`] is the line the page also writes into its `#summary` element, so a browser test
//! can compare the two.

use std::fmt::Write as _;

use crate::trace_json::{LogChange, NodeState, Record, RecordKind};

const TEMPLATE: &str = include_str!("../viz/viz.html");
const STYLE: &str = include_str!("../viz/viz.css");
const SCRIPT: &str = include_str!("../viz/viz.js");
/// Node boxes, logs, links and the legend: shared with raft-net's live dashboard.
const RENDER: &str = include_str!("../viz/render.js");

/// One node as the trace leaves it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// As in `cluster` records: `running`, `paused`, `crashed`, `stopped`, `never_started`.
    pub life: String,
    pub state: Option<NodeState>,
    /// The index and term of the last entry covered by a snapshot (0 without one).
    pub snapshot: [u64; 2],
    /// The terms of the entries after the snapshot.
    pub terms: Vec<u64>,
}

impl NodeView {
    /// The index of the last entry.
    #[must_use]
    pub fn last_index(&self) -> u64 {
        self.snapshot[0] + self.terms.len() as u64
    }

    fn apply(&mut self, change: &LogChange) -> Result<(), String> {
        if change.reset {
            self.snapshot = [0, 0];
            self.terms.clear();
        }
        if let Some([index, term]) = change.snapshot {
            // The rule of `DurableState::apply`: keep what follows the snapshot only when the
            // log holds the snapshot's last entry.
            let first = self.snapshot[0] + 1;
            let covered = index
                .checked_sub(first)
                .and_then(|offset| usize::try_from(offset).ok())
                .filter(|&i| self.terms.get(i) == Some(&term));
            match covered {
                Some(i) => drop(self.terms.drain(..=i)),
                None => self.terms.clear(),
            }
            self.snapshot = [index, term];
        }
        if let Some(from) = change.from {
            let first = self.snapshot[0] + 1;
            if from < first || from > self.last_index() + 1 {
                return Err(format!(
                    "a log change from index {from} does not fit a log holding {first}..={}",
                    self.last_index()
                ));
            }
            let keep = usize::try_from(from - first).map_err(|e| e.to_string())?;
            self.terms.truncate(keep);
            self.terms.extend(&change.terms);
        } else if !change.terms.is_empty() {
            return Err("log terms without a `from` index".to_owned());
        }
        Ok(())
    }
}

/// The cluster as the trace leaves it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Node `i + 1` is at index `i`.
    pub nodes: Vec<NodeView>,
    /// The violated invariant and the checker's message, if the run stopped on one.
    pub violation: Option<(String, String)>,
}

/// Replays a trace to its end, checking that it is consistent.
pub fn replay(records: &[Record]) -> Result<Replayed, String> {
    let mut replayed = Replayed::default();
    for (number, record) in records.iter().enumerate() {
        apply(&mut replayed, record)
            .map_err(|e| format!("record {} (event #{}): {e}", number + 1, record.seq))?;
    }
    if replayed.nodes.is_empty() {
        return Err("the trace has no `cluster` record".to_owned());
    }
    Ok(replayed)
}

fn apply(replayed: &mut Replayed, record: &Record) -> Result<(), String> {
    match &record.kind {
        RecordKind::Cluster { lives, .. } => {
            if lives.len() < replayed.nodes.len() {
                return Err("the cluster shrank".to_owned());
            }
            replayed.nodes.resize_with(lives.len(), NodeView::default);
            for (node, life) in replayed.nodes.iter_mut().zip(lives) {
                node.life.clone_from(life);
            }
        }
        RecordKind::Violation { invariant, detail } if replayed.violation.is_none() => {
            replayed.violation = Some((invariant.clone(), detail.clone()));
        }
        _ => {}
    }
    if record.state.is_none() && record.log.is_none() {
        return Ok(());
    }
    let id = record
        .kind
        .node()
        .ok_or("a node state or log change on a record about no node")?;
    let view = usize::try_from(id)
        .ok()
        .and_then(|id| id.checked_sub(1))
        .and_then(|i| replayed.nodes.get_mut(i))
        .ok_or_else(|| format!("no node n{id} in the cluster"))?;
    if let Some(change) = &record.log {
        view.apply(change)?;
    }
    if let Some(state) = &record.state {
        if state.last != view.last_index() {
            return Err(format!(
                "n{id}'s log ends at {} but its state says {}",
                view.last_index(),
                state.last
            ));
        }
        view.state = Some(state.clone());
    }
    Ok(())
}

/// One line: node count, each node's last log index, commit index and log terms, and the
/// violation. The page writes the same line into `<pre id="summary">`.
#[must_use]
pub fn summary(replayed: &Replayed) -> String {
    let join = |f: &dyn Fn(&NodeView) -> String, sep: &str| {
        replayed.nodes.iter().map(f).collect::<Vec<_>>().join(sep)
    };
    let mut line = format!("nodes={}", replayed.nodes.len());
    let _ = write!(
        line,
        " log_lengths={}",
        join(&|n| n.last_index().to_string(), ",")
    );
    let _ = write!(
        line,
        " commit={}",
        join(
            &|n| n.state.as_ref().map_or(0, |s| s.commit).to_string(),
            ","
        )
    );
    let _ = write!(
        line,
        " terms={}",
        join(
            &|n| {
                let mut terms = vec![format!("s{}", n.snapshot[0])];
                terms.extend(n.terms.iter().map(u64::to_string));
                terms.join(".")
            },
            "/"
        )
    );
    let violation = replayed.violation.as_ref().map_or("none", |v| v.0.as_str());
    let _ = write!(line, " violation={violation}");
    line
}

/// The page for `records`, titled `title`.
#[must_use]
pub fn render_html(records: &[Record], title: &str) -> String {
    let data = script_json(&serde_json::to_string(records).unwrap_or_else(|_| "[]".to_owned()));
    let title = html_escape(title);
    let mut page =
        String::with_capacity(TEMPLATE.len() + RENDER.len() + SCRIPT.len() + data.len() + 1024);
    // One pass over the template, so nothing substituted is searched for placeholders again.
    let mut rest = TEMPLATE;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}").map(|e| start + e) else {
            break;
        };
        let value = match &rest[start + 2..end] {
            "TITLE" => title.as_str(),
            "STYLE" => STYLE,
            "SCRIPT" => SCRIPT,
            "RENDER" => RENDER,
            "DATA" => data.as_str(),
            _ => {
                page.push_str(&rest[..end + 2]);
                rest = &rest[end + 2..];
                continue;
            }
        };
        page.push_str(&rest[..start]);
        page.push_str(value);
        rest = &rest[end + 2..];
    }
    page.push_str(rest);
    page
}

/// JSON made safe inside `<script>`: `<`, `>` and `&` only occur in JSON strings, where their
/// `\u` escapes mean the same, so `</script>` and `<!--` cannot appear. U+2028 and U+2029 are
/// escaped too, for older JavaScript parsers.
fn script_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_block() {
        let json = r#"["</script><script>alert(1)</script>","a&b<!--"]"#;
        let safe = script_json(json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: Vec<String> = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, ["</script><script>alert(1)</script>", "a&b<!--"]);
    }

    #[test]
    fn log_changes_follow_the_durable_rules() {
        let mut node = NodeView::default();
        let change = |snapshot, from, terms: &[u64]| LogChange {
            reset: false,
            snapshot,
            from,
            terms: terms.to_vec(),
        };
        node.apply(&change(None, Some(1), &[1, 1, 2]))
            .expect("append");
        node.apply(&change(None, Some(3), &[3, 3]))
            .expect("overwrite");
        assert_eq!(
            (node.last_index(), node.terms.clone()),
            (4, vec![1, 1, 3, 3])
        );
        node.apply(&change(Some([2, 1]), None, &[]))
            .expect("compact");
        assert_eq!((node.snapshot, node.terms.clone()), ([2, 1], vec![3, 3]));
        node.apply(&change(Some([6, 4]), None, &[]))
            .expect("install");
        assert_eq!((node.snapshot, node.last_index()), ([6, 4], 6));
        assert!(node.apply(&change(None, Some(9), &[4])).is_err(), "a gap");
        assert!(
            node.apply(&change(None, Some(3), &[4])).is_err(),
            "compacted"
        );
    }
}

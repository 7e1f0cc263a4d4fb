//! The JSON trace and the viewer built from it: deterministic to the byte, the same events as
//! the text trace, and enough to rebuild every node's log exactly.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use raft_core::{LogIndex, NodeId, Role};
use raft_sim::explore::{run_seed, sim_config, ExploreConfig};
use raft_sim::scenario::run_script_traced;
use raft_sim::sim::{Life, Sim};
use raft_sim::trace::{Tee, TraceSink};
use raft_sim::trace_json::{self, JsonTrace, Record, RecordKind, SharedBuffer};
use raft_sim::viz;

fn json_sink() -> (Box<dyn TraceSink>, SharedBuffer) {
    let buffer = SharedBuffer::default();
    (Box::new(JsonTrace::new(buffer.clone())), buffer)
}

fn scenario_trace(name: &str) -> Vec<u8> {
    let path = format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("scenario readable");
    let (sink, buffer) = json_sink();
    let outcome = run_script_traced(&text, Some(sink));
    assert_eq!(outcome.error, None, "{name}");
    buffer.contents()
}

fn records(bytes: &[u8]) -> Vec<Record> {
    trace_json::parse(std::str::from_utf8(bytes).expect("UTF-8")).expect("parses")
}

fn explore_config() -> ExploreConfig {
    ExploreConfig {
        fault_ms: 2_000,
        ..ExploreConfig::new(5)
    }
}

#[test]
fn same_scenario_and_same_seed_give_identical_bytes() {
    let first = scenario_trace("readme.scn");
    assert!(first.len() > 10_000, "the trace has substance");
    assert!(first == scenario_trace("readme.scn"));

    let seeded = |seed| {
        let (sink, buffer) = json_sink();
        let report = run_seed(seed, &explore_config(), Some(sink));
        assert_eq!(report.failure, None);
        buffer.contents()
    };
    let a = seeded(42);
    assert!(a == seeded(42));
    assert!(a != seeded(43));
}

/// A writer the test keeps a handle on, for the text trace.
#[derive(Clone, Default)]
struct Text(Rc<RefCell<Vec<u8>>>);

impl Write for Text {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_records_are_the_text_trace_events() {
    let text = Text::default();
    let (json, buffer) = json_sink();
    let report = run_seed(
        7,
        &explore_config(),
        Some(Box::new(Tee(vec![Box::new(text.clone()), json]))),
    );
    let lines = String::from_utf8(text.0.borrow().clone()).expect("UTF-8");
    let records = records(&buffer.contents());
    let mirrored: Vec<String> = records.iter().filter_map(text_line).collect();
    let expected: Vec<&str> = lines.lines().collect();
    assert!(expected.len() > 1_000);
    assert_eq!(mirrored, expected);
    // Adding the JSON sink did not change the run.
    assert_eq!(
        run_seed(7, &explore_config(), None).trace_hash,
        report.trace_hash
    );
    let kinds = |name: &str| {
        records
            .iter()
            .filter(|r| kind_name(&r.kind) == name)
            .count()
    };
    for name in [
        "send",
        "step",
        "cluster",
        "tick",
        "deliver",
        "persisted",
        "role",
        "control",
    ] {
        assert!(kinds(name) > 0, "no {name} records");
    }
}

fn kind_name(kind: &RecordKind) -> &'static str {
    match kind {
        RecordKind::Tick { .. } => "tick",
        RecordKind::Deliver { .. } => "deliver",
        RecordKind::Drop { .. } => "drop",
        RecordKind::Persisted { .. } => "persisted",
        RecordKind::Propose { .. } => "propose",
        RecordKind::Reply { .. } => "reply",
        RecordKind::Role { .. } => "role",
        RecordKind::Control { .. } => "control",
        RecordKind::Send { .. } => "send",
        RecordKind::Step { .. } => "step",
        RecordKind::Cluster { .. } => "cluster",
        RecordKind::Violation { .. } => "violation",
    }
}

/// Every scenario's trace replays without contradiction: each log change fits the log, and
/// each node state's last index is where the replayed log ends.
#[test]
fn every_scenario_replays_consistently() {
    let dir = format!("{}/scenarios", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".scn"))
        .collect();
    names.sort();
    assert!(names.len() > 5);
    for name in names {
        let records = records(&scenario_trace(&name));
        if let Err(error) = viz::replay(&records) {
            panic!("{name}: {error}");
        }
    }
}

#[test]
fn explored_seeds_replay_consistently() {
    for seed in 0..6 {
        let (sink, buffer) = json_sink();
        let config = ExploreConfig {
            fault_ms: 4_000,
            ..ExploreConfig::new(5)
        };
        let _ = run_seed(seed, &config, Some(sink));
        let records = records(&buffer.contents());
        let replayed = viz::replay(&records).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(replayed.nodes.len(), 5);
    }
}

/// The rebuilt logs are the nodes' logs, through crashes, restarts, compaction and snapshots.
#[test]
fn replayed_logs_are_the_nodes_logs() {
    let mut sim = Sim::new(sim_config(3, 5));
    let (sink, buffer) = json_sink();
    sim.trace_mut().stream_to(sink);
    for id in sim.node_ids() {
        sim.start(id).expect("starts");
    }
    sim.start_clients();
    sim.run_until_time(1_500);
    let leader = sim.current_leader().expect("a leader");
    sim.crash(leader).expect("crash");
    let lagging = NodeId(if leader == NodeId(1) { 2 } else { 1 });
    sim.record_control(format!("isolate {lagging}"));
    sim.network.isolate(lagging);
    sim.run_until_time(3_000);
    let compacted = sim
        .node_ids()
        .into_iter()
        .filter(|&id| id != leader && id != lagging)
        .find(|&id| sim.compact(id).is_ok());
    assert!(compacted.is_some(), "some node compacts");
    sim.record_control("heal".to_owned());
    sim.network.heal();
    sim.start(leader).expect("restarts");
    sim.run_until_time(5_000);
    sim.stop_clients();
    assert!(sim.run_until(8_000, Sim::converged), "converged");
    assert!(sim.failure().is_none());

    let expected: Vec<(u64, Vec<u64>, u64)> = sim
        .node_ids()
        .into_iter()
        .map(|id| {
            let node = sim.node(id).expect("up");
            let last = node.last_log_index();
            let terms = node
                .entries(LogIndex(1), last)
                .iter()
                .map(|e| e.term.0)
                .collect();
            (last.0, terms, node.commit_index().0)
        })
        .collect();
    let lives: Vec<Life> = sim
        .node_ids()
        .into_iter()
        .map(|id| sim.life(id).expect("node"))
        .collect();
    let leader_now = sim.current_leader();
    // The last record is written when the simulation, which owns the sink, is dropped.
    drop(sim);

    let records = records(&buffer.contents());
    let replayed = viz::replay(&records).expect("consistent");
    let snapshots = replayed.nodes.iter().filter(|n| n.snapshot[0] > 0).count();
    assert!(snapshots > 0, "some node holds a snapshot");
    for (i, (node, (last, terms, commit))) in replayed.nodes.iter().zip(&expected).enumerate() {
        assert_eq!(node.last_index(), *last, "n{}", i + 1);
        assert_eq!(&node.terms, terms, "n{}", i + 1);
        assert_eq!(node.state.as_ref().map(|s| s.commit), Some(*commit));
        assert_eq!(node.life, "running");
        assert_eq!(lives[i], Life::Running);
    }
    let leaders: Vec<u64> = replayed
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            n.state
                .as_ref()
                .is_some_and(|s| s.role == Role::Leader.as_str())
        })
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert!(leaders.contains(&leader_now.expect("leader").0));
    assert!(records
        .iter()
        .any(|r| matches!(&r.kind, RecordKind::Cluster { cut, .. } if !cut.is_empty())));
}

#[test]
fn a_failure_is_recorded_and_shown() {
    // A correct core gives the checker nothing to find, so the failure here is one a driver
    // reports (`fail_liveness`); safety violations take the same path.
    let mut sim = Sim::new(sim_config(1, 3));
    let (sink, buffer) = json_sink();
    sim.trace_mut().stream_to(sink);
    for id in sim.node_ids() {
        sim.start(id).expect("starts");
    }
    sim.run_until_time(700);
    sim.fail_liveness(
        "liveness_commit",
        "nothing committed </script><b>".to_owned(),
    );
    sim.run_until_time(800);
    let events = sim.events();
    drop(sim);

    let records = records(&buffer.contents());
    let last = records.last().expect("records");
    assert_eq!(
        last.kind,
        RecordKind::Violation {
            invariant: "liveness_commit".to_owned(),
            detail: "nothing committed </script><b>".to_owned(),
        }
    );
    assert_eq!((last.seq, last.t), (events, 700), "the run stopped there");
    let replayed = viz::replay(&records).expect("consistent");
    assert!(viz::summary(&replayed).ends_with(" violation=liveness_commit"));
    let page = viz::render_html(&records, "t");
    // The trace, the shared renderer and the viewer's script.
    assert_eq!(
        page.matches("</script>").count(),
        3,
        "only the page's own blocks close"
    );
    assert!(page.contains("nothing committed \\u003c/script\\u003e\\u003cb\\u003e"));
}

#[test]
fn the_page_is_self_contained() {
    let records = records(&scenario_trace("readme.scn"));
    let page = viz::render_html(&records, "raft-sim <readme>");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<title>raft-sim &lt;readme&gt;</title>"));
    assert!(!page.contains("{{"), "every placeholder filled");
    for external in [
        "http:",
        "https:",
        "src=",
        "href=",
        "@import",
        "fetch(",
        "XMLHttpRequest",
    ] {
        assert!(!page.contains(external), "{external}");
    }
    let start = page
        .find(r#"<script type="application/json" id="trace">"#)
        .expect("data block");
    let data = &page[start..];
    let data = &data[data.find('>').expect("tag end") + 1..data.find("</script>").expect("end")];
    let back: Vec<Record> = serde_json::from_str(data).expect("the data is JSON");
    assert_eq!(back, records);
}

#[test]
fn summary_names_nodes_logs_and_commits() {
    let records = records(&scenario_trace("readme.scn"));
    let replayed = viz::replay(&records).expect("consistent");
    assert_eq!(
        viz::summary(&replayed),
        "nodes=3 log_lengths=6,6,6 commit=6,6,6 terms=s0.1.1.1.2.2.2/s0.1.1.1.2.2.2/s0.1.1.1.2.2.2 violation=none"
    );
}

#[test]
fn cli_writes_identical_files_and_rejects_bad_traces() {
    let dir = std::env::temp_dir().join(format!("raft-sim-viz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = env!("CARGO_BIN_EXE_raft-sim");
    let scenario = format!("{}/scenarios/readme.scn", env!("CARGO_MANIFEST_DIR"));
    let run = |n: u32| {
        let json = dir.join(format!("{n}.jsonl"));
        let html = dir.join(format!("{n}.html"));
        let status = std::process::Command::new(exe)
            .args(["run", &scenario, "--trace-json"])
            .arg(&json)
            .arg("--html")
            .arg(&html)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("runs");
        assert!(status.success());
        (
            std::fs::read(&json).expect("json written"),
            std::fs::read(&html).expect("html written"),
        )
    };
    let (json1, html1) = run(1);
    let (json2, html2) = run(2);
    assert!(json1 == json2 && html1 == html2);

    let viz = std::process::Command::new(exe)
        .args(["viz", "--summary", "-o"])
        .arg(dir.join("3.html"))
        .arg(dir.join("1.jsonl"))
        .output()
        .expect("runs");
    assert!(viz.status.success());
    assert!(std::fs::read(dir.join("3.html")).expect("written").len() > 10_000);
    assert!(String::from_utf8_lossy(&viz.stdout).starts_with("nodes=3 log_lengths=6,6,6 "));

    std::fs::write(
        dir.join("bad.jsonl"),
        "{\"seq\":0,\"t\":0,\"kind\":\"tick\",\"node\":1}\nnot json\n",
    )
    .expect("written");
    let bad = std::process::Command::new(exe)
        .args(["viz", "--summary"])
        .arg(dir.join("bad.jsonl"))
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 2:"));
    let _ = std::fs::remove_dir_all(&dir);
}
/// The text trace's line for the records that mirror it (as `#seq Tms ...`).
fn text_line(record: &Record) -> Option<String> {
    let body = match &record.kind {
        RecordKind::Tick { node } => format!("n{node} tick"),
        RecordKind::Deliver {
            from,
            to,
            message,
            term,
        } => format!("n{to} <- n{from} {message} t{term}"),
        RecordKind::Drop {
            from,
            to,
            message,
            reason,
        } => format!("n{to} x- n{from} {message} dropped ({reason})"),
        RecordKind::Persisted { node, persist_id } => {
            format!("n{node} persisted p{persist_id}")
        }
        RecordKind::Propose { node, request } => format!("n{node} propose r{request}"),
        RecordKind::Reply {
            node,
            request,
            reply,
        } => format!("n{node} reply r{request} {reply}"),
        RecordKind::Role { node, role, term } => format!("n{node} is {role} in t{term}"),
        RecordKind::Control { text } => text.clone(),
        RecordKind::Send { .. }
        | RecordKind::Step { .. }
        | RecordKind::Cluster { .. }
        | RecordKind::Violation { .. } => return None,
    };
    Some(format!("#{} {}ms {body}", record.seq, record.t))
}

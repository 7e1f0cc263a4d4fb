//! Running the model checker: the search strategy, progress on stderr, and the report.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

use stateright::{Checker, HasDiscoveries, Model, Path};

use super::{ModelAction, RaftModel};

/// How to walk the state space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Breadth first: every state within the depth bound, each first along a shortest path,
    /// so a counterexample is a shortest one (with one thread).
    Bfs,
    /// Depth first: far less memory; with a depth bound, a state first met along a longer
    /// path is not explored again along a shorter one, so the search can stop short of the
    /// bound below it.
    Dfs,
    /// Random walks from the initial state to the bound, forever or until the timeout.
    Random { seed: u64 },
}

#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub strategy: Strategy,
    pub threads: usize,
    /// Stop at the first counterexample instead of looking for one per property.
    pub stop_at_first_violation: bool,
    /// Report what was found after this long. The search threads are not stopped (stateright
    /// has no way to), so only a process about to exit should set it.
    pub timeout: Option<Duration>,
    /// Report what was found once the process's resident memory passes this many bytes
    /// (Linux; like `timeout`, for a process about to exit).
    pub memory_limit_bytes: Option<u64>,
    /// Print progress to stderr this often (`None`: quiet).
    pub progress: Option<Duration>,
}

impl CheckOptions {
    #[must_use]
    pub fn new(strategy: Strategy) -> CheckOptions {
        CheckOptions {
            strategy,
            threads: 1,
            stop_at_first_violation: true,
            timeout: None,
            memory_limit_bytes: None,
            progress: None,
        }
    }
}

/// A property's example or counterexample.
#[derive(Clone, Debug)]
pub struct Discovery {
    pub property: &'static str,
    /// True for an `always` property's counterexample, false for a `sometimes` example.
    pub violation: bool,
    pub actions: Vec<ModelAction>,
    /// stateright's action indices from the initial state, `a/b/c` (see `--replay`).
    pub index_path: String,
}

#[derive(Clone, Debug)]
pub struct CheckReport {
    pub states: usize,
    pub unique_states: usize,
    /// The longest path explored, in actions.
    pub depth: usize,
    pub elapsed: Duration,
    /// Why the search ended early, if it did: `None` when it ended by itself (the bounded
    /// space exhausted, or a violation found).
    pub stopped_by: Option<&'static str>,
    /// Sorted by property name.
    pub discoveries: Vec<Discovery>,
}

impl CheckReport {
    pub fn violations(&self) -> impl Iterator<Item = &Discovery> {
        self.discoveries.iter().filter(|d| d.violation)
    }

    #[must_use]
    pub fn states_per_second(&self) -> f64 {
        self.states as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The index path of `actions` from the initial state: position of each action among those
/// the model offers at its step.
fn index_path(model: &RaftModel, actions: &[ModelAction]) -> String {
    let mut state = model.initial_state();
    let mut indices = vec!["0".to_owned()];
    for action in actions {
        let mut enabled = Vec::new();
        model.actions(&state, &mut enabled);
        let index = enabled
            .iter()
            .position(|a| a == action)
            .unwrap_or(usize::MAX);
        indices.push(index.to_string());
        model.apply(&mut state, action);
    }
    indices.join("/")
}

/// The actions named by an index path (`0/3/1/...`: the initial state, then the position of
/// each action among those offered).
pub fn actions_of_index_path(model: &RaftModel, path: &str) -> Result<Vec<ModelAction>, String> {
    let mut indices = path.split('/').map(|part| {
        part.trim()
            .parse::<usize>()
            .map_err(|e| format!("bad index {part:?} in {path:?}: {e}"))
    });
    match indices.next() {
        Some(Ok(0)) => {}
        _ => {
            return Err(format!(
                "an index path starts with 0, the initial state: {path:?}"
            ))
        }
    }
    let mut state = model.initial_state();
    let mut actions = Vec::new();
    for index in indices {
        let index = index?;
        let mut enabled = Vec::new();
        model.actions(&state, &mut enabled);
        let action = enabled.get(index).cloned().ok_or_else(|| {
            format!(
                "step {} offers {} actions, not {index}",
                actions.len() + 1,
                enabled.len()
            )
        })?;
        model.apply(&mut state, &action);
        actions.push(action);
    }
    Ok(actions)
}

/// Runs the checker to completion (or the timeout) and reports.
#[must_use]
pub fn run(model: RaftModel, options: &CheckOptions) -> CheckReport {
    let properties = model.properties();
    let mut builder = model.clone().checker().threads(options.threads.max(1));
    if options.stop_at_first_violation {
        builder = builder.finish_when(HasDiscoveries::AnyFailures);
    }
    if let Some(timeout) = options.timeout {
        builder = builder.timeout(timeout);
    }
    let started = Instant::now();
    let report = match options.strategy {
        Strategy::Bfs => finish(&model, builder.spawn_bfs(), started, options),
        Strategy::Dfs => finish(&model, builder.spawn_dfs(), started, options),
        Strategy::Random { seed } => finish(
            &model,
            builder.spawn_simulation(seed, stateright::UniformChooser),
            started,
            options,
        ),
    };
    let mut report = report;
    for discovery in &mut report.discoveries {
        discovery.violation = properties
            .iter()
            .find(|p| p.name == discovery.property)
            .is_some_and(|p| p.expectation != stateright::Expectation::Sometimes);
    }
    report
}

fn finish(
    model: &RaftModel,
    mut checker: impl Checker<RaftModel>,
    started: Instant,
    options: &CheckOptions,
) -> CheckReport {
    let handles = checker.handles();
    let mut last_report = Instant::now();
    // stateright's own timeout is checked only when a thread runs out of queued work, which a
    // lone depth-first thread never does; past the timeout the search threads are left to the
    // process's exit.
    let limit = |started: Instant| {
        if options.timeout.is_some_and(|t| started.elapsed() >= t) {
            return Some("the timeout");
        }
        let over = options
            .memory_limit_bytes
            .is_some_and(|limit| resident_bytes().is_some_and(|used| used > limit));
        over.then_some("the memory limit")
    };
    let mut stopped_by = None;
    while handles.iter().any(|handle| !handle.is_finished()) {
        stopped_by = limit(started);
        if stopped_by.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if let Some(every) = options.progress {
            if last_report.elapsed() >= every {
                last_report = Instant::now();
                let _ = writeln!(
                    std::io::stderr(),
                    "  {:>7.1} s: {} states, {} unique, depth {}",
                    started.elapsed().as_secs_f64(),
                    checker.state_count(),
                    checker.unique_state_count(),
                    checker.max_depth().saturating_sub(1)
                );
            }
        }
    }
    if stopped_by.is_none() {
        for handle in handles {
            if handle.join().is_err() {
                stopped_by = Some("a search thread panicking");
            }
        }
    }
    let elapsed = started.elapsed();
    let mut discoveries: Vec<Discovery> = checker
        .discoveries()
        .into_iter()
        .map(|(property, path): (&'static str, Path<_, ModelAction>)| {
            let actions = model.real_actions(&path.into_actions());
            Discovery {
                property,
                violation: true,
                index_path: index_path(model, &actions),
                actions,
            }
        })
        .collect();
    discoveries.sort_by_key(|d| d.property);
    CheckReport {
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        // stateright counts the initial state as depth 1.
        depth: checker.max_depth().saturating_sub(1),
        elapsed,
        stopped_by,
        discoveries,
    }
}

/// Shortest first, then by property name, so reports list the most readable one first.
#[must_use]
pub fn shortest_violation(report: &CheckReport) -> Option<&Discovery> {
    let mut violations: VecDeque<&Discovery> = report.violations().collect();
    violations
        .make_contiguous()
        .sort_by_key(|d| (d.actions.len(), d.property));
    violations.pop_front()
}

/// This process's resident memory, from `/proc/self/statm` (pages of 4 KiB).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

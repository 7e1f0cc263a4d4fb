//! The bug catalogue: each known bug of `raft_core::bugs` is switched on in every node, in turn,
//! to measure what finds it: how many seeds `explore` needs (the first failing seed and the
//! invariant that fired) and which scenarios stop on it.

use std::ops::Range;

use raft_core::bugs::Bug;

use crate::explore::{run_seed_guarded, ExploreConfig};
use crate::scenario::{run_script_with, RunOptions};

/// The first seed of a range on which exploration with a bug fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caught {
    pub seed: u64,
    /// Seeds run up to and including the failing one.
    pub seeds_run: u64,
    pub invariant: &'static str,
    pub detail: String,
}

/// Explores `seeds` in order with `bug` in every node until a seed fails; `None` when none
/// does. `progress` is called after every seed with the seeds run so far.
pub fn explore_until_caught(
    bug: Bug,
    nodes: u64,
    seeds: Range<u64>,
    fault_ms: u64,
    mut progress: impl FnMut(u64),
) -> Option<Caught> {
    let config = ExploreConfig {
        fault_ms,
        bugs: vec![bug],
        ..ExploreConfig::new(nodes)
    };
    let start = seeds.start;
    for seed in seeds {
        let report = run_seed_guarded(seed, &config);
        progress(seed - start + 1);
        if let Some(failure) = report.failure {
            return Some(Caught {
                seed,
                seeds_run: seed - start + 1,
                invariant: failure.invariant,
                detail: failure.detail,
            });
        }
    }
    None
}

/// How one scenario ended with a bug on, when it did not run to its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioStop {
    pub scenario: String,
    /// The invariant violated, or `None` when an expectation failed instead (a `run until`
    /// that was not reached, a control refused).
    pub invariant: Option<String>,
    pub error: String,
}

/// Runs every `(name, text)` scenario with `bug` in every node; returns those that stopped.
#[must_use]
pub fn scenarios_stopped(bug: Bug, scenarios: &[(String, String)]) -> Vec<ScenarioStop> {
    scenarios
        .iter()
        .filter_map(|(name, text)| {
            let options = RunOptions {
                bugs: vec![bug],
                ..RunOptions::default()
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_script_with(text, options)
            }));
            let error = match run {
                Ok(outcome) => outcome.error?,
                Err(_) => "panic".to_owned(),
            };
            let invariant = error
                .split_once("invariant ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .map(str::to_owned)
                .or_else(|| (error == "panic").then(|| "panic".to_owned()));
            Some(ScenarioStop {
                scenario: name.clone(),
                invariant,
                error,
            })
        })
        .collect()
}

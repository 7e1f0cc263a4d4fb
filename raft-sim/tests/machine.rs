//! The simulator running a state machine of the test's own, through the public API a machine's
//! crate uses: scenarios, exploration, and the machine checks catching machines that break the
//! `StateMachine` contract.

use std::cell::Cell;
use std::rc::Rc;

use raft_core::{BadSnapshot, LogIndex, StateMachine};
use raft_sim::explore::{run_machine_seed, ExploreConfig};
use raft_sim::machine::SimMachine;
use raft_sim::scenario::run_machine_script;

/// How a [`Counter`] breaks the contract, if it does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Flaw {
    #[default]
    None,
    /// Its snapshot forgets the total.
    ForgetfulSnapshot,
    /// Its snapshot carries a number of its own replica: replicas at one index encode
    /// different bytes.
    ReplicaInSnapshot(u64),
    /// Its outputs carry a number of its own replica.
    ReplicaInOutput(u64),
    /// It refuses every snapshot.
    RefusesRestore,
}

/// A counter: `add N` adds, and answers the total before.
#[derive(Clone, Debug, Default)]
struct Counter {
    total: u64,
    flaw: Flaw,
}

/// The state is the total; the flaw is how the machine was built.
impl PartialEq for Counter {
    fn eq(&self, other: &Counter) -> bool {
        self.total == other.total
    }
}

/// A maker of counters with a flaw that names each replica.
fn numbered(flaw: fn(u64) -> Flaw) -> impl Fn() -> Counter {
    let replicas = Rc::new(Cell::new(0));
    move || {
        replicas.set(replicas.get() + 1);
        Counter {
            flaw: flaw(replicas.get()),
            ..Counter::default()
        }
    }
}

impl StateMachine for Counter {
    type Command = u64;
    type Output = u64;
    type Query = ();
    type Answer = u64;
    type Snapshot = (u64, u64);

    fn encode_command(command: &u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&command.to_le_bytes());
    }

    fn decode_command(bytes: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn invalid_output() -> u64 {
        u64::MAX
    }

    fn apply(&mut self, _index: LogIndex, add: u64) -> u64 {
        let before = self.total;
        self.total = self.total.wrapping_add(add);
        match self.flaw {
            Flaw::ReplicaInOutput(replica) => before + 1000 * replica,
            _ => before,
        }
    }

    fn query(&self, (): &()) -> u64 {
        self.total
    }

    fn snapshot(&self) -> (u64, u64) {
        match self.flaw {
            Flaw::ForgetfulSnapshot => (0, 0),
            Flaw::ReplicaInSnapshot(replica) => (self.total, replica),
            Flaw::None | Flaw::ReplicaInOutput(_) | Flaw::RefusesRestore => (self.total, 0),
        }
    }

    fn encode_snapshot(&(total, extra): &(u64, u64), out: &mut Vec<u8>) {
        out.extend_from_slice(&total.to_le_bytes());
        if extra != 0 {
            out.extend_from_slice(&extra.to_le_bytes());
        }
    }

    fn restore(&mut self, bytes: &[u8]) -> Result<(), BadSnapshot> {
        if self.flaw == Flaw::RefusesRestore {
            return Err(BadSnapshot);
        }
        let total = bytes.get(..8).ok_or(BadSnapshot)?;
        self.total = u64::from_le_bytes(total.try_into().map_err(|_| BadSnapshot)?);
        Ok(())
    }
}

impl SimMachine for Counter {
    fn parse_command(text: &str) -> Result<u64, String> {
        text.strip_prefix("add ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("expected `add N`, not {text:?}"))
    }

    fn workload_command(_client: usize, n: u64) -> u64 {
        n % 1000
    }
}

const PARTITION_AND_CRASH: &str = "
cluster 3 seed 11
start 1 2 3
run until leader within 2s
propose leader add 5
propose leader add 7
run 100ms
isolate 3
propose leader add 1
run 100ms
compact leader
run 50ms
crash 2
restart 2
heal
run until converged within 5s
propose leader add 2
run 100ms
machine 1
machine 2
machine 3
";

#[test]
fn a_scenario_runs_the_tests_own_machine_through_a_partition_and_a_crash() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, Counter::default);
    assert_eq!(outcome.error, None, "{}", outcome.transcript);
    let transcript = &outcome.transcript;
    // Replies carry the machine's output: the total before each addition.
    assert!(transcript.contains("-> 12"), "{transcript}");
    assert!(transcript.contains("-> 13"), "{transcript}");
    for node in 1..=3 {
        let line = transcript
            .lines()
            .find(|line| {
                line.trim_start()
                    .starts_with(&format!("n{node} machine at i"))
            })
            .unwrap_or_else(|| panic!("no machine line for n{node}:\n{transcript}"));
        assert!(line.contains("total: 15"), "{line}");
    }
}

#[test]
fn a_snapshot_that_forgets_state_is_caught() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, || Counter {
        flaw: Flaw::ForgetfulSnapshot,
        ..Counter::default()
    });
    // The leader's snapshot, restored, is not the leader's machine.
    let error = outcome.error.expect("the forgetful snapshot is caught");
    assert!(
        error.contains("machine_snapshot_restores"),
        "{error}\n{}",
        outcome.transcript
    );
}

#[test]
fn replicas_whose_snapshots_differ_at_one_index_are_caught() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, numbered(Flaw::ReplicaInSnapshot));
    let error = outcome.error.expect("the replicas' snapshots differ");
    assert!(
        error.contains("machine_snapshot_agreement"),
        "{error}\n{}",
        outcome.transcript
    );
}

#[test]
fn replicas_whose_outputs_differ_at_one_index_are_caught() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, numbered(Flaw::ReplicaInOutput));
    let error = outcome.error.expect("the replicas' outputs differ");
    assert!(
        error.contains("machine_output_agreement"),
        "{error}\n{}",
        outcome.transcript
    );
}

#[test]
fn a_snapshot_that_does_not_restore_is_caught() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, || Counter {
        flaw: Flaw::RefusesRestore,
        ..Counter::default()
    });
    let error = outcome.error.expect("n2 cannot restart from its snapshot");
    assert!(
        error.contains("machine_snapshot_restores"),
        "{error}\n{}",
        outcome.transcript
    );
}

#[test]
fn an_unparsable_command_is_a_script_error() {
    let outcome = run_machine_script(
        "cluster 3 seed 1\nstart 1 2 3\nrun until leader within 2s\npropose leader subtract 1\n",
        Counter::default,
    );
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("expected `add N`")),
        "{outcome:?}"
    );
}

#[test]
fn bulk_writes_are_the_machines_workload_and_key_value_commands_are_refused() {
    let script = "cluster 3 seed 2\nstart 1 2 3\nrun until leader within 2s\nwrite leader 10\nrun until converged within 2s\nmachine 1\n";
    let outcome = run_machine_script(script, Counter::default);
    assert_eq!(outcome.error, None, "{}", outcome.transcript);
    // `write` proposed the workload's commands 1 to 10: a total of 55.
    assert!(
        outcome.transcript.contains("total: 55"),
        "{}",
        outcome.transcript
    );
    let script = "cluster 3 seed 2\nstart 1 2 3\nrun until leader within 2s\nopen-session leader\n";
    let outcome = run_machine_script(script, Counter::default);
    assert!(
        outcome
            .error
            .as_deref()
            .is_some_and(|e| e.contains("a machine of their own")),
        "{outcome:?}"
    );
}

#[test]
fn exploration_runs_the_tests_own_machine() {
    let config = ExploreConfig::new(3);
    for seed in 0..20 {
        let report = run_machine_seed(seed, &config, None, Counter::default);
        assert_eq!(report.failure, None, "seed {seed}");
        assert!(report.events > 1000, "seed {seed} did real work");
    }
    // The same seed with the same machine is the same run.
    let first = run_machine_seed(3, &config, None, Counter::default);
    let again = run_machine_seed(3, &config, None, Counter::default);
    assert_eq!(first, again);
}

#[test]
fn exploration_catches_a_machine_whose_snapshot_forgets() {
    let config = ExploreConfig::new(3);
    let caught = (0..20).find_map(|seed| {
        let report = run_machine_seed(seed, &config, None, || Counter {
            flaw: Flaw::ForgetfulSnapshot,
            ..Counter::default()
        });
        report.failure
    });
    let failure = caught.expect("some seed restores a forgetful snapshot");
    assert!(
        failure.invariant.starts_with("machine_"),
        "{}",
        failure.invariant
    );
}

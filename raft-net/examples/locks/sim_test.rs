//! The lock machine's own tests: its rules, then the simulator running it on every node through
//! partitions and crashes (scenario and exploration), with raft-sim's checks that every
//! replica's outputs and snapshots agree at every applied index. They run in `cargo test`.

use raft_core::{LogIndex, StateMachine};
use raft_sim::explore::{run_machine_seed, ExploreConfig};
use raft_sim::machine::SimMachine;
use raft_sim::scenario::run_machine_script;

use super::{Command, Holder, Locks, Output};

impl SimMachine for Locks {
    /// `acquire LOCK OWNER TTL_MS AT_MS` or `release LOCK OWNER AT_MS`.
    fn parse_command(text: &str) -> Result<Command, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let number = |word: &str| word.parse().map_err(|_| format!("{word:?} is no number"));
        match words[..] {
            ["acquire", lock, owner, ttl_ms, now_ms] => {
                Ok(acquire(lock, owner, number(ttl_ms)?, number(now_ms)?))
            }
            ["release", lock, owner, now_ms] => Ok(release(lock, owner, number(now_ms)?)),
            _ => Err(format!(
                "expected `acquire LOCK OWNER TTL_MS AT_MS` or `release LOCK OWNER AT_MS`, not {text:?}"
            )),
        }
    }

    /// Clients contend for two locks with short leases; `n` grows with time, so it serves as
    /// the clock. Every third command releases.
    fn workload_command(client: usize, n: u64) -> Command {
        let (lock, owner) = (format!("lock{}", n % 2), format!("client{client}"));
        if n % 3 == 2 {
            release(&lock, &owner, n)
        } else {
            acquire(&lock, &owner, 40, n)
        }
    }
}

fn acquire(lock: &str, owner: &str, ttl_ms: u64, now_ms: u64) -> Command {
    Command {
        lock: lock.to_string(),
        owner: owner.to_string(),
        now_ms,
        ttl_ms: Some(ttl_ms),
    }
}

fn release(lock: &str, owner: &str, now_ms: u64) -> Command {
    Command {
        lock: lock.to_string(),
        owner: owner.to_string(),
        now_ms,
        ttl_ms: None,
    }
}

fn holder(owner: &str, token: u64, expires_ms: u64) -> Holder {
    Holder {
        owner: owner.to_string(),
        token,
        expires_ms,
    }
}

#[test]
fn grants_are_exclusive_until_the_lease_ends_and_tokens_only_grow() {
    let mut locks = Locks::default();
    let granted = locks.apply(LogIndex(3), acquire("db", "alice", 100, 1000));
    assert_eq!(granted, Output::Granted(holder("alice", 3, 1100)));
    let held = locks.apply(LogIndex(4), acquire("db", "bob", 100, 1050));
    assert_eq!(held, Output::Held(holder("alice", 3, 1100)));
    // A renewal keeps the token and extends the lease.
    let renewed = locks.apply(LogIndex(5), acquire("db", "alice", 100, 1060));
    assert_eq!(renewed, Output::Granted(holder("alice", 3, 1160)));
    // A proposer whose clock lags does not move the machine's time back.
    let lagging = locks.apply(LogIndex(6), acquire("db", "bob", 100, 10));
    assert!(matches!(lagging, Output::Held(_)), "{lagging:?}");
    // Past the lease, the next owner gets a larger token; alice's release is refused.
    let taken = locks.apply(LogIndex(7), acquire("db", "bob", 100, 1200));
    assert_eq!(taken, Output::Granted(holder("bob", 7, 1300)));
    assert_eq!(
        locks.apply(LogIndex(8), release("db", "alice", 1200)),
        Output::NotHolder
    );
    assert_eq!(locks.query(&"db".to_string()), Some(holder("bob", 7, 1300)));
    assert_eq!(
        locks.apply(LogIndex(9), release("db", "bob", 1200)),
        Output::Released
    );
    assert_eq!(locks.query(&"db".to_string()), None);
}

/// A lease the commands' time passed is gone from the machine, whoever asks next and for
/// which lock: the table does not grow with locks nobody releases.
#[test]
fn expired_locks_leave_the_table_at_the_first_command_past_their_lease() {
    let mut locks = Locks::default();
    for (i, lock) in ["a", "b", "c"].into_iter().enumerate() {
        let ttl_ms = 100 * (i as u64 + 1);
        locks.apply(LogIndex(i as u64 + 1), acquire(lock, "alice", ttl_ms, 1000));
    }
    // Renewing `a` at 1050 moves its lease from 1100 to 2050.
    locks.apply(LogIndex(4), acquire("a", "alice", 1000, 1050));
    let held = |locks: &Locks| locks.0.held.keys().cloned().collect::<Vec<_>>();
    assert_eq!(held(&locks), ["a", "b", "c"]);
    // Time 1250 (from a command on another lock) passes `b`'s lease (1200) only.
    locks.apply(LogIndex(5), release("z", "bob", 1250));
    assert_eq!(held(&locks), ["a", "c"]);
    assert_eq!(locks.query(&"b".to_string()), None);
    // A proposer's late clock moves nothing back, and removes nothing.
    locks.apply(LogIndex(6), release("z", "bob", 10));
    assert_eq!(held(&locks), ["a", "c"]);
    locks.apply(LogIndex(7), release("z", "bob", 5000));
    assert!(held(&locks).is_empty());
    // The next grant of `b` is a new holder with a larger token.
    let granted = locks.apply(LogIndex(8), acquire("b", "carol", 100, 5000));
    assert_eq!(granted, Output::Granted(holder("carol", 8, 5100)));
}

#[test]
fn garbage_changes_nothing_and_snapshots_restore() {
    let mut locks = Locks::default();
    locks.apply(LogIndex(1), acquire("db", "alice", 100, 1000));
    let before = locks.clone();
    let mut trailing = Locks::command_bytes(&acquire("db", "bob", 1, 1));
    trailing.push(0);
    for garbage in [&[][..], &[9, 9, 9][..], &trailing[..]] {
        assert_eq!(locks.apply_bytes(LogIndex(2), garbage), Output::Invalid);
    }
    assert_eq!(locks, before);
    let mut restored = Locks::default();
    restored
        .restore(&locks.snapshot_bytes())
        .expect("its own snapshot restores");
    assert_eq!(restored, locks);
    assert!(restored.restore(&[1, 2]).is_err());
    assert_eq!(restored, locks, "a refused snapshot changes nothing");
}

/// Alice takes the lock; then her leader (n2 in this seed) is cut off alone and accepts carol's
/// request, which can never commit. The majority elects a new leader; bob cannot have the lock
/// until alice's lease ends, then gets a larger token. Both of the majority compact their logs,
/// the old leader crashes and restarts, and after healing it catches up from a snapshot, its
/// uncommitted entry overwritten. Every replica agrees throughout.
const PARTITION_AND_CRASH: &str = "
cluster 3 seed 5
start 1 2 3
run until leader within 2s
propose leader acquire db alice 1000 0
run 100ms
partition 2 1,3
propose 2 acquire db carol 1000 600
run until leader 1,3 within 3s
propose leader acquire db bob 1000 500
propose leader acquire db bob 1000 1500
run 100ms
compact 1
compact 3
crash 2
restart 2
heal
run until converged within 5s
propose leader release db bob 1600
run until converged within 2s
machine 1
machine 2
machine 3
";

#[test]
fn a_partition_and_a_crash_keep_every_replica_in_agreement() {
    let outcome = run_machine_script(PARTITION_AND_CRASH, Locks::default);
    let transcript = &outcome.transcript;
    assert_eq!(outcome.error, None, "{transcript}");
    let grants: Vec<u64> = transcript
        .lines()
        .filter_map(|line| {
            let granted = line.split("-> Granted(").nth(1)?;
            granted
                .split("token: ")
                .nth(1)?
                .split(',')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(grants.len(), 2, "alice's and bob's grants: {transcript}");
    assert!(grants[0] < grants[1], "fencing tokens grow: {grants:?}");
    assert!(
        transcript.contains("-> Held(Holder { owner: \"alice\""),
        "{transcript}"
    );
    assert!(transcript.contains("-> Released"), "{transcript}");
    // Carol's request on the cut-off leader never committed.
    assert!(!transcript.contains("to r2: committed"), "{transcript}");
    let machines: Vec<&str> = transcript
        .lines()
        .filter(|l| l.contains(" machine at "))
        .collect();
    assert_eq!(machines.len(), 3, "{transcript}");
    assert!(
        machines.iter().all(|l| l.contains("held: {}")),
        "{machines:?}"
    );
}

#[test]
fn exploration_with_faults_finds_no_disagreement() {
    let config = ExploreConfig {
        fault_ms: 5_000,
        ..ExploreConfig::new(3)
    };
    for seed in 0..40 {
        let report = run_machine_seed(seed, &config, None, Locks::default);
        assert_eq!(report.failure, None, "seed {seed}");
    }
}

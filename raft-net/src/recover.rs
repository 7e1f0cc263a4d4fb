//! `raft-net recover --data-dir D --force-new-cluster [--dry-run]`: disaster recovery after a
//! lost quorum (etcd's `--force-new-cluster`).
//!
//! When a majority of the members is gone for good, no leader can ever be elected again. This
//! rewrites a stopped survivor's durable state so that it is the only voter of a new cluster
//! (`raft_core::DurableState::forced_to_single_voter`): its log is kept, one membership entry in
//! a new term makes it the only voter, and it starts as a new incarnation of a new cluster id,
//! so that members of the old cluster that come back with their old data dirs are refused
//! rather than mixed in. Started again (without `--peer`), it elects itself, commits everything
//! it holds, and others join it as new servers.
//!
//! The price: every entry in the survivor's log becomes committed, including entries the old
//! cluster never committed (writes whose clients got a timeout or an error), and whatever the
//! old cluster committed that the survivor lacks is gone. The node's disk proves an entry
//! committed only up to its snapshot (a snapshot holds applied entries only); the report
//! counts the entries after it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use raft_core::{
    DurableState, EntryPayload, Incarnation, LogIndex, Membership, Node, NodeId, Term,
};
use serde_json::{json, Value};

use crate::cluster_id::ClusterId;
use crate::error::StorageError;
use crate::storage::{self, Meta, Wal};

/// `raft-net recover` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct RecoverArgs {
    /// The data dir of the stopped node to recover.
    #[arg(long, env = "RAFT_VOLUME_DIR")]
    pub data_dir: PathBuf,
    /// Make this node the only voter of a new cluster (required: it is the only recovery
    /// there is, and it may lose data).
    #[arg(long)]
    pub force_new_cluster: bool,
    /// Print what would be kept and changed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Why a recovery did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    #[error("give --force-new-cluster (with --dry-run first to see what it keeps): it is the only recovery, and it may lose data")]
    NotForced,
    #[error("{dir} is not a data dir (no meta.json)")]
    NoDataDir { dir: PathBuf },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the recovered state would not start: {0}")]
    Restore(#[from] raft_core::RestoreError),
}

/// What a recovery keeps and changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub meta: Meta,
    pub last_index: LogIndex,
    pub last_term: Term,
    /// The last index this node's disk proves committed: its snapshot's.
    pub known_committed: LogIndex,
    /// Entries after `known_committed`: committed or not, they all become committed.
    pub entries_past_known_commit: u64,
    pub membership_before: Membership,
    pub incarnation_after: Incarnation,
    pub cluster_id_after: ClusterId,
    /// A torn tail that recovery cuts (as any start would).
    pub torn_tail: Option<(PathBuf, u64)>,
    /// The state written.
    pub forced: DurableState,
}

impl Plan {
    /// The report printed (JSON).
    #[must_use]
    pub fn report(&self, dry_run: bool, dir: &Path) -> Value {
        let ids = |set: &BTreeSet<NodeId>| set.iter().map(|id| id.0).collect::<Vec<_>>();
        let id = self.meta.node_id;
        json!({
            "dry_run": dry_run,
            "data_dir": dir.display().to_string(),
            "node_id": id.0,
            "last_index": self.last_index.0,
            "last_term": self.last_term.0,
            "known_committed_index": self.known_committed.0,
            "entries_past_known_commit": self.entries_past_known_commit,
            "membership_before": {
                "voters": ids(&self.membership_before.voters),
                "learners": ids(&self.membership_before.learners),
            },
            "membership_after": { "voters": [id.0], "learners": [] },
            "new_term": self.forced.hard_state.current_term.0,
            "incarnation_before": self.meta.incarnation.0,
            "incarnation_after": self.incarnation_after.0,
            "cluster_id_before": self.meta.cluster_id.map(|id| id.to_string()),
            "cluster_id_after": self.cluster_id_after.to_string(),
            "torn_tail_cut": self.torn_tail.as_ref().map(|(path, offset)| {
                format!("{} at byte {offset}", path.display())
            }),
        })
    }

    /// The warning printed before anything is changed.
    #[must_use]
    pub fn warning(&self) -> String {
        let id = self.meta.node_id;
        let others: Vec<String> = self
            .membership_before
            .voters
            .iter()
            .chain(&self.membership_before.learners)
            .filter(|&&member| member != id)
            .map(ToString::to_string)
            .collect();
        format!(
            "WARNING: --force-new-cluster makes {id} the only voter of a new cluster ({}).\n\
             - Every entry in its log becomes committed: the {} entries after index {} (the last \
             one its disk proves committed) may include writes the old cluster never committed \
             (clients that got a timeout or an error), and they will take effect.\n\
             - Any write the old cluster committed that this node lacks (its log ends at index {}, \
             term {}) is lost for good.\n\
             - The other members ({}) are dropped. Start them from empty data dirs and add them \
             with --join; a member started on its old data dir is refused (another cluster id).\n\
             Do this only when a majority of the members is lost for good, and only on the \
             survivor with the longest log.",
            self.cluster_id_after,
            self.entries_past_known_commit,
            self.known_committed.0,
            self.last_index.0,
            self.last_term.0,
            if others.is_empty() {
                "none".to_string()
            } else {
                others.join(", ")
            },
        )
    }
}

/// What forcing `state` (of the data dir `meta` describes) into a one-voter cluster gives, at
/// `now_micros`.
#[must_use]
pub fn plan(
    meta: &Meta,
    state: DurableState,
    torn_tail: Option<(PathBuf, u64)>,
    now_micros: u64,
) -> Plan {
    let known_committed = state
        .snapshot
        .as_ref()
        .map_or(LogIndex::ZERO, |snapshot| snapshot.meta.last_included_index);
    let (last_index, last_term) = match (state.entries.last(), &state.snapshot) {
        (Some(entry), _) => (entry.index, entry.term),
        (None, Some(snapshot)) => (
            snapshot.meta.last_included_index,
            snapshot.meta.last_included_term,
        ),
        (None, None) => (LogIndex::ZERO, Term::ZERO),
    };
    let membership_before = latest_membership(meta, &state);
    // Greater than the incarnation it replaces even if the clock was set back.
    let incarnation_after = Incarnation(now_micros.max(meta.incarnation.0.saturating_add(1)));
    let cluster_id_after =
        ClusterId::after_forced_recovery(meta.cluster_id, meta.node_id, incarnation_after);
    let entries_past_known_commit = state.entries.len() as u64;
    let forced = state.forced_to_single_voter(meta.node_id, incarnation_after);
    Plan {
        meta: meta.clone(),
        last_index,
        last_term,
        known_committed,
        entries_past_known_commit,
        membership_before,
        incarnation_after,
        cluster_id_after,
        torn_tail,
        forced,
    }
}

/// The membership the log, the snapshot or else the initial voters give.
fn latest_membership(meta: &Meta, state: &DurableState) -> Membership {
    let logged = state
        .entries
        .iter()
        .rev()
        .find_map(|entry| match &entry.payload {
            EntryPayload::Membership(membership) => Some(membership.clone()),
            _ => None,
        });
    logged
        .or_else(|| {
            state
                .snapshot
                .as_ref()
                .map(|snapshot| snapshot.meta.membership.clone())
        })
        .unwrap_or_else(|| Membership::new(meta.voters.iter().copied()))
}

/// Runs `raft-net recover`; the plan it carried out (or, with `--dry-run`, would carry out).
/// `warn` gets the warning before anything changes.
pub fn run(
    args: &RecoverArgs,
    now_micros: u64,
    warn: impl FnOnce(&str),
) -> Result<Plan, RecoverError> {
    if !args.force_new_cluster {
        return Err(RecoverError::NotForced);
    }
    let dir = &args.data_dir;
    let Some(meta) = storage::read_meta(dir)? else {
        return Err(RecoverError::NoDataDir { dir: dir.clone() });
    };
    let wal_dir = storage::wal_dir(dir);
    if args.dry_run {
        let (state, report) = Wal::inspect(&wal_dir)?;
        let plan = plan(&meta, state, report.truncated, now_micros);
        check_starts(&plan)?;
        warn(&plan.warning());
        return Ok(plan);
    }
    let (mut wal, state, report) = Wal::recover(&wal_dir)?;
    let plan = plan(&meta, state, report.truncated, now_micros);
    check_starts(&plan)?;
    warn(&plan.warning());
    // The log first, then the metadata: interrupted in between, the node is refused by its
    // own log (it records the new incarnation as the only voter, the metadata names the old
    // one, so it never campaigns); running `recover` again completes it.
    wal.checkpoint(&plan.forced)?;
    let meta = Meta {
        voters: [plan.meta.node_id].into_iter().collect(),
        incarnation: plan.incarnation_after,
        cluster_id: Some(plan.cluster_id_after),
        ..plan.meta.clone()
    };
    storage::write_meta(dir, &meta)?;
    Ok(plan)
}

/// The forced state must be one the node can start from.
fn check_starts(plan: &Plan) -> Result<(), RecoverError> {
    let id = plan.meta.node_id;
    let mut config = raft_core::Config::new(id, [id]);
    config.incarnation = plan.incarnation_after;
    Node::restore(config, plan.forced.clone())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{Entry, HardState};

    fn entry(index: u64, term: u64, payload: EntryPayload) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload,
        }
    }

    #[test]
    fn a_plan_counts_what_becomes_committed_and_names_both_memberships() {
        let meta = Meta {
            node_id: NodeId(1),
            voters: [NodeId(1), NodeId(2), NodeId(3)].into_iter().collect(),
            incarnation: Incarnation(50),
            cluster_id: ClusterId::from_wire(9),
        };
        let grown = Membership::new([NodeId(1), NodeId(2), NodeId(3), NodeId(4)]);
        let state = DurableState {
            hard_state: HardState {
                current_term: Term(4),
                voted_for: Some(NodeId(2)),
            },
            snapshot: None,
            entries: vec![
                entry(1, 1, EntryPayload::Noop),
                entry(2, 2, EntryPayload::Membership(grown.clone())),
                entry(3, 3, EntryPayload::Command(b"x".to_vec().into())),
            ],
        };
        // A clock behind the old incarnation still gives a greater one.
        let plan = plan(&meta, state, None, 10);
        assert_eq!(plan.incarnation_after, Incarnation(51));
        assert_eq!((plan.last_index, plan.last_term), (LogIndex(3), Term(3)));
        assert_eq!(plan.known_committed, LogIndex::ZERO);
        assert_eq!(plan.entries_past_known_commit, 3);
        assert_eq!(plan.membership_before, grown);
        assert_ne!(Some(plan.cluster_id_after), meta.cluster_id);
        assert_eq!(plan.forced.entries.len(), 4);
        assert_eq!(plan.forced.hard_state.current_term, Term(5));
        check_starts(&plan).unwrap();
        let warning = plan.warning();
        for needle in ["WARNING", "the 3 entries after index 0", "n2, n3, n4"] {
            assert!(warning.contains(needle), "{needle}: {warning}");
        }
        let report = plan.report(true, Path::new("d"));
        assert_eq!(report["membership_before"]["voters"], json!([1, 2, 3, 4]));
        assert_eq!(report["membership_after"]["voters"], json!([1]));
    }
}

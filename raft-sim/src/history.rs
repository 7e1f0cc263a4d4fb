//! The client history check. Clients only append, so a history is linearizable exactly when
//! the log order of the acknowledged writes respects real time: a write acknowledged before
//! another was invoked must sit at a lower index. (Each write carries a unique command, and the
//! checker already verified that each acknowledgement names the committed entry holding it.)

use crate::checker::Violation;
use crate::client::{Outcome, Record};

/// Checks the real-time order of every acknowledged write in `records`.
pub fn check_linearizable(records: &[Record]) -> Result<(), Violation> {
    let mut acknowledged: Vec<(u64, &Record)> = records
        .iter()
        .filter_map(|record| match record.outcome {
            Outcome::Committed { index, .. } => Some((index.0, record)),
            _ => None,
        })
        .collect();
    acknowledged.sort_by_key(|&(index, record)| (index, record.request_id));
    // The latest invocation among writes at lower indexes: a write at a higher index must not
    // have been acknowledged before it.
    let mut latest: Option<&Record> = None;
    for &(index, record) in &acknowledged {
        if let (Some(earlier), Some(completed)) = (latest, record.completed_ms) {
            if completed < earlier.invoked_ms {
                return Err(Violation {
                    invariant: "linearizable_history",
                    detail: format!(
                        "{} ({:?}) was acknowledged at {completed} ms at i{index}, before {} ({:?}) was invoked at {} ms, yet {} sits at a lower index",
                        record.request_id,
                        record.command,
                        earlier.request_id,
                        earlier.command,
                        earlier.invoked_ms,
                        earlier.request_id
                    ),
                });
            }
        }
        if latest.is_none_or(|l| record.invoked_ms > l.invoked_ms) {
            latest = Some(record);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::{LogIndex, NodeId, RequestId, Term};

    fn write(id: u64, index: u64, invoked_ms: u64, completed_ms: u64) -> Record {
        Record {
            client: Some(0),
            request_id: RequestId(id),
            command: format!("w{id}"),
            node: NodeId(1),
            invoked_ms,
            accepted: Some((LogIndex(index), Term(1))),
            outcome: Outcome::Committed {
                index: LogIndex(index),
                term: Term(1),
            },
            completed_ms: Some(completed_ms),
        }
    }

    #[test]
    fn concurrent_writes_may_commit_in_either_order() {
        let history = [write(1, 3, 0, 10), write(2, 2, 5, 12)];
        assert_eq!(check_linearizable(&history), Ok(()));
    }

    #[test]
    fn a_write_acknowledged_first_must_come_first() {
        // w2 was acknowledged at 4 ms, before w1 was invoked at 5 ms, but sits after it.
        let history = [write(1, 2, 5, 10), write(2, 3, 0, 4)];
        let error = check_linearizable(&history).expect_err("not linearizable");
        assert_eq!(error.invariant, "linearizable_history");
    }
}

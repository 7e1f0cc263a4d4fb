//! The client history check. Writes only append, so the writes are linearizable exactly when
//! the log order of the acknowledged writes respects real time: a write acknowledged before
//! another was invoked must sit at a lower index. (Each write carries a unique command, and the
//! checker already verified that each acknowledgement names the committed entry holding it.)
//! A read served at index `i` observes the log through `i`, so it is linearizable when `i`
//! covers every write acknowledged before the read was invoked.

use crate::checker::Violation;
use crate::client::{Outcome, Record};

/// Checks the real-time order of every acknowledged write and served read in `records`.
pub fn check_linearizable(records: &[Record]) -> Result<(), Violation> {
    check_writes(records)?;
    check_reads(records)
}

fn check_reads(records: &[Record]) -> Result<(), Violation> {
    // Acknowledged writes by completion time, with the highest index acknowledged so far.
    let mut writes: Vec<(u64, u64)> = records
        .iter()
        .filter_map(|record| match (record.outcome, record.completed_ms) {
            (Outcome::Committed { index, .. }, Some(completed)) => Some((completed, index.0)),
            _ => None,
        })
        .collect();
    writes.sort_unstable();
    let mut highest = 0;
    for write in &mut writes {
        highest = highest.max(write.1);
        write.1 = highest;
    }
    for record in records {
        let Outcome::Read { index } = record.outcome else {
            continue;
        };
        let before = writes.partition_point(|&(completed, _)| completed < record.invoked_ms);
        let Some(&(_, required)) = before.checked_sub(1).and_then(|i| writes.get(i)) else {
            continue;
        };
        if index.0 < required {
            return Err(Violation {
                invariant: "linearizable_history",
                detail: format!(
                    "read {} invoked at {} ms was served at {index}, missing a write acknowledged earlier at i{required}",
                    record.request_id, record.invoked_ms
                ),
            });
        }
    }
    Ok(())
}

fn check_writes(records: &[Record]) -> Result<(), Violation> {
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
            payload_hash: crate::checker::command_hash(format!("w{id}").as_bytes()),
            read: false,
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

    fn read(id: u64, index: u64, invoked_ms: u64) -> Record {
        Record {
            command: String::new(),
            read: true,
            accepted: None,
            outcome: Outcome::Read {
                index: LogIndex(index),
            },
            ..write(id, 0, invoked_ms, invoked_ms + 1)
        }
    }

    #[test]
    fn a_read_sees_every_write_acknowledged_before_it() {
        let ok = [write(1, 2, 0, 10), read(2, 2, 11), read(3, 1, 9)];
        assert_eq!(check_linearizable(&ok), Ok(()));
        let stale = [write(1, 2, 0, 10), read(2, 1, 11)];
        assert!(check_linearizable(&stale).is_err());
    }

    #[test]
    fn a_write_acknowledged_first_must_come_first() {
        // w2 was acknowledged at 4 ms, before w1 was invoked at 5 ms, but sits after it.
        let history = [write(1, 2, 5, 10), write(2, 3, 0, 4)];
        let error = check_linearizable(&history).expect_err("not linearizable");
        assert_eq!(error.invariant, "linearizable_history");
    }
}

//! Every type that crosses the wire or goes to disk round-trips through postcard.

use proptest::prelude::*;
use raft_core::wire::{decode, encode, WIRE_VERSION};
use raft_core::{
    AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, DecodeError, DurableState,
    Entry, EntryPayload, Envelope, HardState, InstallSnapshot, InstallSnapshotResponse, LogIndex,
    LogSplice, Message, NodeId, PersistId, PersistRequest, Reply, RequestVote, RequestVoteResponse,
    Snapshot, SnapshotMeta, Term,
};

fn payload_strategy() -> impl Strategy<Value = EntryPayload> {
    let ids = || proptest::collection::btree_set(any::<u64>().prop_map(NodeId), 0..5);
    prop_oneof![
        Just(EntryPayload::Noop),
        proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| EntryPayload::Command(bytes.into())),
        (ids(), ids()).prop_map(|(voters, learners)| {
            EntryPayload::Membership(raft_core::Membership {
                voters,
                learners,
                ..raft_core::Membership::default()
            })
        }),
    ]
}

fn entry_strategy() -> impl Strategy<Value = Entry> {
    (any::<u64>(), any::<u64>(), payload_strategy()).prop_map(|(index, term, payload)| Entry {
        index: LogIndex(index),
        term: Term(term),
        payload,
    })
}

fn result_strategy() -> impl Strategy<Value = AppendResult> {
    prop_oneof![
        any::<u64>().prop_map(|m| AppendResult::Success {
            match_index: LogIndex(m)
        }),
        (
            any::<u64>(),
            proptest::option::of(any::<u64>()),
            any::<u64>()
        )
            .prop_map(|(r, t, f)| {
                AppendResult::Reject {
                    rejected_prev_index: LogIndex(r),
                    hint: ConflictHint {
                        conflict_term: t.map(Term),
                        first_index: LogIndex(f),
                    },
                }
            }),
        Just(AppendResult::StaleTerm),
    ]
}

fn message_strategy() -> impl Strategy<Value = Message> {
    let vote =
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(i, t, transfer)| RequestVote {
            last_log_index: LogIndex(i),
            last_log_term: Term(t),
            leadership_transfer: transfer,
        });
    prop_oneof![
        vote.clone().prop_map(Message::RequestVote),
        vote.prop_map(Message::PreVote),
        any::<bool>()
            .prop_map(|g| Message::RequestVoteResponse(RequestVoteResponse { vote_granted: g })),
        any::<bool>()
            .prop_map(|g| Message::PreVoteResponse(RequestVoteResponse { vote_granted: g })),
        (
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(entry_strategy(), 0..8),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(
                |(p, t, entries, c, round)| Message::AppendEntries(AppendEntries {
                    prev_log_index: LogIndex(p),
                    prev_log_term: Term(t),
                    entries,
                    leader_commit: LogIndex(c),
                    read_round: round,
                })
            ),
        (any::<u64>(), result_strategy()).prop_map(|(read_round, result)| {
            Message::AppendEntriesResponse(AppendEntriesResponse { read_round, result })
        }),
        Just(Message::TimeoutNow),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(index, term, offset, data)| Message::InstallSnapshot(
                InstallSnapshot {
                    meta: SnapshotMeta {
                        last_included_index: LogIndex(index),
                        last_included_term: Term(term),
                        membership: raft_core::Membership::new([NodeId(index | 1)]),
                    },
                    total_bytes: offset + data.len() as u64,
                    offset,
                    data,
                }
            )),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(index, received, installed)| {
            Message::InstallSnapshotResponse(InstallSnapshotResponse {
                last_included_index: LogIndex(index),
                received_bytes: received,
                installed,
            })
        }),
    ]
}

fn envelope_strategy() -> impl Strategy<Value = Envelope> {
    (any::<u64>(), any::<u64>(), any::<u64>(), message_strategy()).prop_map(
        |(from, to, term, message)| Envelope {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            incarnation: raft_core::Incarnation(0),
            message,
        },
    )
}

proptest! {
    #[test]
    fn every_message_round_trips(envelope in envelope_strategy()) {
        let frame = encode(&envelope);
        prop_assert_eq!(frame[0], WIRE_VERSION);
        // Sized exactly, and the same bytes when appended behind a header.
        prop_assert_eq!(raft_core::wire::encoded_len(&envelope), frame.len());
        prop_assert_eq!(frame.capacity(), frame.len());
        let mut behind = vec![9, 9, 9];
        raft_core::wire::encode_into(&envelope, &mut behind);
        prop_assert_eq!(&behind[3..], &frame[..]);
        prop_assert_eq!(decode(&frame, usize::MAX).unwrap(), envelope);
    }

    /// A command is serialized as a byte string, which postcard writes exactly like the plain
    /// sequence of bytes it was serialized as before (length, then the bytes), so frames and
    /// logs written before still decode.
    #[test]
    fn command_bytes_encode_like_a_byte_vector(command in proptest::collection::vec(any::<u8>(), 0..300)) {
        let as_vec = postcard::to_allocvec(&(7u8, command.clone())).unwrap();
        let payload = EntryPayload::Command(command.clone().into());
        let as_payload = postcard::to_allocvec(&payload).unwrap();
        // The enum's variant index (1 for Command), then the same bytes as the vector.
        prop_assert_eq!(as_payload[0], 1);
        prop_assert_eq!(&as_payload[1..], &as_vec[1..]);
        let decoded: EntryPayload = postcard::from_bytes(&as_payload).unwrap();
        prop_assert_eq!(decoded, payload);
    }

    /// Snapshot data (on disk) and snapshot chunks (on the wire) likewise.
    #[test]
    fn snapshot_bytes_encode_like_a_byte_vector(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let meta = raft_core::SnapshotMeta {
            last_included_index: LogIndex(9),
            last_included_term: Term(2),
            membership: raft_core::Membership::new([NodeId(1)]),
        };
        let snapshot = raft_core::Snapshot { meta: meta.clone(), data: data.clone().into() };
        let as_bytes = postcard::to_allocvec(&snapshot).unwrap();
        prop_assert_eq!(&as_bytes, &postcard::to_allocvec(&(&meta, &data)).unwrap());
        prop_assert_eq!(postcard::from_bytes::<raft_core::Snapshot>(&as_bytes).unwrap(), snapshot);
        let chunk = raft_core::InstallSnapshot { meta: meta.clone(), total_bytes: 300, offset: 4, data: data.clone() };
        let as_bytes = postcard::to_allocvec(&chunk).unwrap();
        prop_assert_eq!(&as_bytes, &postcard::to_allocvec(&(&meta, 300u64, 4u64, &data)).unwrap());
        prop_assert_eq!(postcard::from_bytes::<raft_core::InstallSnapshot>(&as_bytes).unwrap(), chunk);
    }

    /// Valid frames with their body mutated (bytes flipped, cut short, grown): decoding never
    /// panics, and whatever it accepts is a message that round-trips exactly.
    #[test]
    fn mutated_frames_decode_to_an_error_or_a_message_that_round_trips(
        envelope in envelope_strategy(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        tail in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let mut frame = encode(&envelope);
        for (at, value) in flips {
            // Mutate the body only: the version byte is tested on its own.
            let body_position = 1 + at.index(frame.len() - 1);
            frame[body_position] ^= value;
        }
        if let Some(cut) = cut {
            frame.truncate(1 + cut.index(frame.len()));
        }
        frame.extend_from_slice(&tail);
        prop_assert_eq!(frame[0], WIRE_VERSION);
        match decode(&frame, 1 << 20) {
            Ok(decoded) => {
                let again = encode(&decoded);
                prop_assert_eq!(decode(&again, 1 << 20), Ok(decoded));
            }
            Err(error) => prop_assert!(
                matches!(error, DecodeError::Malformed | DecodeError::TrailingBytes { .. }),
                "a frame with the right version fails in its body: {:?}",
                error
            ),
        }
    }

    #[test]
    fn unmutated_frames_decode_to_the_same_envelope(envelope in envelope_strategy()) {
        prop_assert_eq!(decode(&encode(&envelope), 1 << 20), Ok(envelope));
    }

    #[test]
    fn persist_requests_and_durable_state_round_trip(
        entries in proptest::collection::vec(entry_strategy(), 0..8),
        term in any::<u64>(),
        vote in proptest::option::of(any::<u64>()),
    ) {
        let hard_state = HardState { current_term: Term(term), voted_for: vote.map(NodeId) };
        let request = PersistRequest {
            persist_id: PersistId(term),
            hard_state: Some(hard_state),
            snapshot: Some(Snapshot {
                meta: SnapshotMeta {
                    last_included_index: LogIndex(term / 2),
                    last_included_term: Term(term / 3),
                    membership: raft_core::Membership::new([NodeId(1), NodeId(2)]),
                },
                data: vec![1, 2, 3].into(),
            }),
            log: Some(LogSplice { from: LogIndex(1), entries: entries.clone() }),
        };
        let bytes = postcard::to_allocvec(&request).unwrap();
        prop_assert_eq!(postcard::from_bytes::<PersistRequest>(&bytes).unwrap(), request);
        let durable = DurableState { hard_state, snapshot: None, entries };
        let bytes = postcard::to_allocvec(&durable).unwrap();
        prop_assert_eq!(postcard::from_bytes::<DurableState>(&bytes).unwrap(), durable);
    }

    #[test]
    fn replies_round_trip(index in any::<u64>(), term in any::<u64>()) {
        for reply in [
            Reply::Accepted { index: LogIndex(index), term: Term(term) },
            Reply::Committed { index: LogIndex(index), term: Term(term) },
            Reply::Dropped { index: LogIndex(index), term: Term(term) },
            Reply::NotLeader { leader_hint: Some(NodeId(index)) },
            Reply::NotLeader { leader_hint: None },
            Reply::Busy,
            Reply::ReadReady { index: LogIndex(index) },
            Reply::Unknown { index: LogIndex(index), term: Term(term) },
            Reply::ChangeRejected { reason: raft_core::ChangeRejection::ChangeInProgress },
            Reply::ChangeRejected { reason: raft_core::ChangeRejection::NotApplicable },
            Reply::ChangeRejected { reason: raft_core::ChangeRejection::NotCaughtUp },
            Reply::ChangeRejected { reason: raft_core::ChangeRejection::LastVoter },
        ] {
            let bytes = postcard::to_allocvec(&reply).unwrap();
            prop_assert_eq!(postcard::from_bytes::<Reply>(&bytes).unwrap(), reply);
        }
    }
}

#[test]
fn decode_rejects_bad_frames_with_reasons() {
    let frame = encode(&Envelope {
        from: NodeId(1),
        to: NodeId(2),
        term: Term(3),
        incarnation: raft_core::Incarnation(0),
        message: Message::RequestVoteResponse(RequestVoteResponse { vote_granted: true }),
    });
    assert_eq!(decode(&[], 100), Err(DecodeError::Empty));
    assert_eq!(
        decode(&[9, 0, 0], 100),
        Err(DecodeError::UnsupportedVersion { version: 9 })
    );
    assert_eq!(
        decode(&frame, 2),
        Err(DecodeError::TooLarge {
            len: frame.len(),
            max: 2
        })
    );
    assert_eq!(
        decode(&frame[..frame.len() - 1], 100),
        Err(DecodeError::Malformed)
    );
    let mut long = frame.clone();
    long.push(0);
    assert_eq!(
        decode(&long, 100),
        Err(DecodeError::TrailingBytes { count: 1 })
    );
}

#[test]
fn a_huge_length_prefix_does_not_allocate() {
    // Version, from, to, term, AppendEntries tag, prev index, prev term, then an entry count of
    // u64::MAX as a varint: decoding must fail on the short input, not reserve memory.
    let mut frame = vec![WIRE_VERSION, 1, 2, 3, 2, 0, 0];
    frame.extend([0xff; 9]);
    frame.push(0x01);
    assert!(decode(&frame, 1024).is_err());
}

//! A pure, deterministic, sans-IO Raft state machine.
//!
//! A [`Node`] holds one server's Raft state. The driver (a simulator, a network node, a test)
//! feeds it [`Input`]s with [`Node::step`] and carries out the [`Action`]s each step returns. The
//! crate never reads a clock, touches a socket or a file, spawns a thread or draws unseeded
//! randomness: time arrives as [`Input::Tick`], and election jitter comes from
//! [`Config::rng_seed`]. The same inputs therefore always produce the same actions.
//!
//! # The contract
//!
//! 1. Feed one `Input`, take every returned `Action`, then the next input. `step` is the only
//!    mutator; results of actions (a finished fsync, a datagram) come back as new inputs.
//!    [`Node::step_into`] does the same into a buffer the driver reuses, so a busy driver
//!    allocates nothing for the actions themselves.
//! 2. Execute [`Action::Persist`] requests in order and report [`Input::PersistDone`] in order
//!    (it is cumulative). A crash may lose requests that were not reported done, never reorder
//!    them; restart with [`Node::restore`] from what is durable ([`DurableState::apply`] shows
//!    how a request changes it).
//! 3. The core withholds every message that certifies durable state (vote replies, append
//!    acknowledgements, and a candidate's vote requests, which certify its new term and vote)
//!    until a `PersistDone` covers it, and counts its own vote and its own match index only
//!    once durable. AppendEntries go out at once, in parallel with the local write of *log
//!    entries* (Raft thesis §10.2.1). So [`Action::Send`] needs no ordering against
//!    `Persist`.
//! 4. **A node acts as leader of a term only once that term and its own vote for itself are
//!    durable on its own disk**, however many peers granted their votes before. A leader that
//!    could forget its term could restart in the old term, win the same term again and lead it
//!    twice with two different logs, committing two different entries at one index. Thesis
//!    §10.2.1 lets a leader write its log entries in parallel with replicating them; it never
//!    lets a node act on a term its disk has not recorded.
//! 5. Each step emits at most one `Persist` (everything that step made unstable), with
//!    increasing `persist_id`s. Actions come out in the order Persist, Send..., ApplySnapshot,
//!    Apply, Reply..., so a driver that executes them in order, synchronously, is also correct.
//! 6. [`Action::Apply`] hands over committed, locally durable entries exactly once, in index
//!    order. A proposal accepted by a leader ([`Reply::Accepted`]) is later reported exactly
//!    once more: [`Reply::Committed`] (right after its `Apply`) or [`Reply::Dropped`] (a new
//!    leader overwrote it). A read ([`Input::Read`]) is answered once: [`Reply::ReadReady`]
//!    after the `Apply` that brings the state machine up to the read's index, so the driver can
//!    read its state machine right then; or a rejection.
//! 7. **A server that lost its durable state is a new server.** [`Config::incarnation`] names
//!    the life of one durable state: kept across restarts, chosen anew and greater when the
//!    state is lost (a wiped or replaced disk), and a server that lost it starts with no
//!    `voters` configured. Every message carries its sender's incarnation and the membership
//!    records each voter's; votes and acknowledgements count only from the recorded one, so a
//!    server never speaks for what an earlier life of it promised, and a leader re-adds a
//!    returning server through the ordinary changes (a returning learner, caught up, promoted
//!    with its new incarnation). The rules and their proof sketch (thesis §4.2.2, §11.1) are in
//!    the `incarnation` module; its one unprotected window is a member of the initial cluster
//!    restarted on an empty disk *with* its initial voters before any leader recorded it.
//!
//! # Beyond Figure 2
//!
//! On by default ([`Config`] switches): pre-vote (Raft thesis §9.6), so a node that was cut off
//! cannot disrupt a healthy cluster when it returns; check-quorum (§6.2), so a leader that lost
//! its quorum steps down, with leader stickiness (§4.2.3): followers that hear from a live
//! leader ignore vote requests. Followers hold an AppendEntries that overtook the ones before
//! it (a reordering network) until those arrive, instead of rejecting it and making the
//! leader send its window again ([`Config::early_appends_max`]; the `early_appends` module
//! says why that is only a later delivery and keeps every rule above); a gap before what they
//! hold that looks like a loss they report ([`AppendResult::Gap`]), and the leader sends again
//! only what is missing. Always available: leadership transfer
//! ([`Input::TransferLeader`], §3.10) and linearizable reads by ReadIndex ([`Input::Read`],
//! §6.4).
//!
//! Membership changes ([`Input::ChangeMembership`], thesis §4): one server at a time, one
//! change in flight, new servers join as learners and are promoted once caught up; the
//! membership lives in the log and in snapshots. A node configured with no voters waits for a
//! leader to add it.
//!
//! Snapshots (Raft §7): the application hands the core a snapshot of its state machine with
//! [`Input::Compact`]; the core persists it, drops the log it covers, and streams it in chunks
//! ([`Config::snapshot_chunk_bytes_max`]) to followers that need compacted entries, which hand
//! it to their application as [`Action::ApplySnapshot`]. A restarted node is restored from its
//! latest snapshot plus the log after it ([`DurableState`]).
//!
//! # State machines
//!
//! The core replicates opaque command bytes. A [`StateMachine`] gives them meaning: it applies
//! a committed command at an index and returns an output, answers reads the core released,
//! and hands over snapshots cheaply (taken on the driver in O(1) or close, encoded to bytes
//! elsewhere) and restores from their bytes; [`machine`] states its contract (determinism, the
//! encoding of commands, what bytes that do not decode do). [`session::Sessions`] makes any
//! machine exactly-once for clients that retry; [`kv::KvStore`] is the reference machine.
//! raft-net's node and raft-sim's simulator run any of them.
//!
//! `step` never fails and never panics, whatever a decoded message carries: stale, forged or
//! unknown-peer messages are ignored and counted in [`Stats::messages_ignored`]; client
//! rejections are [`Reply`] values. What no correct peer sends is not obeyed:
//!
//! - a term or index above [`ACCEPTED_VALUE_MAX`] (2^62): the whole message is ignored, so
//!   every step's arithmetic stays far from overflow and a made-up term cannot leave a node
//!   unable to campaign;
//! - `TimeoutNow` from anyone but this node's current leader, a voter, in the current term;
//! - a vote request from outside the membership; replication (AppendEntries, InstallSnapshot)
//!   from outside the membership in a higher term while this node hears from a live leader
//!   (a newer leader it has not heard of can only exist once that one lost its quorum), and at
//!   most one partial snapshot of at most [`Config::snapshot_bytes_max`] is buffered from any
//!   sender;
//! - an append rejection for an index beyond the leader's log.
//!
//! Members are trusted to follow the protocol otherwise (Raft is not Byzantine fault
//! tolerant): keeping everyone else out is the transport's job (raft-net's cluster key). Only constructors
//! return errors ([`ConfigError`], [`RestoreError`]), and the wire decoder ([`wire::decode`])
//! returns [`DecodeError`]. A broken internal invariant is a bug and panics with its name.
//!
//! # Example
//!
//! ```
//! use raft_core::{Action, Config, Input, Node, NodeId, Role};
//!
//! let mut node = Node::new(Config::new(NodeId(1), [NodeId(1)])).unwrap();
//! // Tick until the election timeout fires; the node becomes a candidate and asks to persist
//! // its new term and vote.
//! let mut persisted = None;
//! while persisted.is_none() {
//!     for action in node.step(Input::Tick) {
//!         if let Action::Persist(request) = action {
//!             persisted = Some(request.persist_id);
//!         }
//!     }
//! }
//! // Once the vote is durable the single voter wins its election.
//! let _ = node.step(Input::PersistDone { persist_id: persisted.unwrap() });
//! assert_eq!(node.role(), Role::Leader);
//! ```

#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod action;
#[cfg(feature = "bug-catalogue")]
pub mod bugs;
#[cfg(not(feature = "bug-catalogue"))]
mod bugs;
mod byte_string;
mod config;
mod early_appends;
mod error;
mod fingerprint;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod incarnation;
mod input;
mod invariants;
pub mod kv;
mod log;
mod log_entry;
pub mod machine;
mod membership;
mod message;
mod node;
mod persist;
mod progress;
mod quorum;
mod read_index;
mod rename;
mod role;
pub mod session;
mod shared_bytes;
mod shared_map;
mod snapshot;
mod timer;
mod transfer;
mod types;
pub mod wire;

/// The top-level README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExample;

pub use action::{Action, Reply};
pub use config::Config;
pub use error::{ConfigError, DecodeError, RestoreError};
pub use input::Input;
pub use log_entry::{Entry, EntryPayload};
pub use machine::{BadSnapshot, SerdeMachine, StateMachine};
pub use membership::{ChangeRejection, Membership, MembershipChange};
pub use message::{
    AppendEntries, AppendEntriesResponse, AppendResult, ConflictHint, Envelope, InstallSnapshot,
    InstallSnapshotResponse, Message, RequestVote, RequestVoteResponse,
};
pub use node::{Node, Stats, Status};
pub use persist::{DurableState, HardState, LogSplice, PersistRequest, Snapshot, SnapshotMeta};
pub use rename::{NodeRenaming, Rename, RenamingError};
pub use shared_bytes::SharedBytes;
pub use types::{
    Incarnation, LogIndex, NodeId, PersistId, RequestId, Role, Term, ACCEPTED_VALUE_MAX,
};

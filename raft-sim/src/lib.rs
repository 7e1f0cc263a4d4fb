//! Deterministic cluster simulator for `raft-core`.
//!
//! A [`sim::Sim`] drives several [`raft_core::Node`]s with a discrete-event loop over virtual
//! milliseconds: node ticks (each node at its own rate), message deliveries through a faulty
//! [`network`], disk completions from a [`disk`] model, and a [`client`] workload. After every
//! event the [`checker`] verifies Raft's safety properties over every node past and present;
//! a violation stops the run with the seed, the event number and the last [`trace`] events.
//!
//! Every random choice comes from one master seed, split per component ([`rng::sub_seed`]),
//! so the same seed and the same script give a byte-identical trace. Scenarios
//! ([`scenario`]) script a run in a small text language; [`explore`] runs random fault
//! schedules per seed, each with its own fault profile (swarm testing), and checks liveness
//! once the faults heal, and the client [`history`] for linearizability. Every event can be streamed as text or as JSON ([`trace_json`]), and
//! [`viz`] turns a JSON trace into a self-contained HTML page that replays the run.
//!
//! The nodes replicate the simulator's own machine (the applied log, by its chain hash), or
//! any [`raft_core::StateMachine`] a crate brings ([`machine`]): its scenarios and exploration
//! then check that every replica's outputs and snapshots agree.

#[cfg(feature = "catalogue")]
pub mod catalogue;
pub mod checker;
pub mod client;
pub mod disk;
pub mod event;
pub mod explore;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod history;
pub mod machine;
pub mod model;
pub mod network;
pub mod replication;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod state;
pub mod trace;
pub mod trace_json;
pub mod viz;

//! A Raft node: `raft-core` driven by tokio, with UDP between peers, HTTP for clients and a
//! write-ahead log on disk.
//!
//! All protocol decisions live in `raft-core`; this crate only moves bytes, time and disk:
//! [`driver`] owns the core and runs its actions, [`transport`] carries peer messages
//! (authenticated with a [`cluster_key`], with [`replay`] protection), [`storage`] makes
//! persist requests durable with group commit, [`http`] serves the node's own routes to clients
//! (behind [`auth`] tokens, optionally over [`tls`]) next to the state machine's routes (the
//! key-value machine's are in [`kv`]; they reach the driver through a [`service::Handle`]) and
//! the dashboard, fed by the driver's [`events`]; [`node`] wires them together; a data dir
//! belongs to one [`cluster_id`]; a service of its own starts from the [`prelude`]. [`cluster`] (with its [`launcher`]), [`client`],
//! [`bench`](mod@bench), [`recover`] (a lost quorum) and [`backup`] (`snapshot save` and
//! `restore`) are the other subcommands of the `raft-net` binary.

pub mod addresses;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod cluster_id;
pub mod cluster_key;
pub mod config;
pub mod driver;
pub mod error;
pub mod events;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod kv;
pub mod launcher;
pub mod member_address;
pub mod metrics;
pub mod node;
pub mod prelude;
pub mod recover;
pub mod replay;
pub mod replica;
pub mod service;
pub mod snapshot_schedule;
pub mod storage;
pub mod tls;
pub mod transport;

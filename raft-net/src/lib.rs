//! A Raft node: `raft-core` driven by tokio, with UDP between peers, HTTP for clients and a
//! write-ahead log on disk.
//!
//! All protocol decisions live in `raft-core`; this crate only moves bytes, time and disk:
//! [`driver`] owns the core and runs its actions, [`transport`] carries peer messages,
//! [`storage`] makes persist requests durable with group commit, [`http`] serves clients,
//! [`node`] wires them together. [`cluster`], [`client`] and [`bench`] are the other
//! subcommands of the `raft-net` binary.

pub mod addresses;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod config;
pub mod driver;
pub mod error;
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod node;
pub mod storage;
pub mod transport;

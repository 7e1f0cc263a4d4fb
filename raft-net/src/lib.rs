//! A Raft node: `raft-core` driven by tokio, with UDP between peers, HTTP for clients and a
//! write-ahead log on disk.
//!
//! All protocol decisions live in `raft-core`; this crate only moves bytes, time and disk:
//! [`driver`] owns the core and runs its actions, [`transport`] carries peer messages
//! (authenticated with a [`cluster_key`], with [`replay`] protection), [`storage`] makes
//! persist requests durable with group commit, [`http`] serves clients (behind [`auth`]
//! tokens, optionally over [`tls`]), [`node`] wires them together; a data dir belongs to one
//! [`cluster_id`]. [`cluster`], [`client`], [`bench`](mod@bench), [`recover`] (a lost quorum)
//! and [`backup`] (`snapshot save` and `restore`) are the other subcommands of the `raft-net`
//! binary.

pub mod addresses;
pub mod auth;
pub mod backup;
pub mod bench;
pub mod client;
pub mod cluster;
pub mod cluster_id;
pub mod cluster_key;
pub mod config;
pub mod driver;
pub mod error;
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod node;
pub mod recover;
pub mod replay;
pub mod storage;
pub mod tls;
pub mod transport;

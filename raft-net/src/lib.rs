//! A Raft node: `raft-core` driven by tokio, with UDP between peers, HTTP for clients and a
//! write-ahead log on disk.
//!
//! All protocol decisions live in `raft-core`; this crate only moves bytes, time and disk:
//! [`driver`] owns the core and runs its actions, [`transport`] carries peer messages,
//! [`storage`] makes persist requests durable with group commit, [`http`] serves clients.

pub mod error;
pub mod metrics;
pub mod storage;

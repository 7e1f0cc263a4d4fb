//! Deterministic cluster simulator for `raft-core`.

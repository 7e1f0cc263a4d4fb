//! Raft node over UDP and HTTP.

//! Role-specific handling: each file adds the `Node` methods one role needs.

mod candidate;
mod follower;
mod leader;

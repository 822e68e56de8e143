//! Where requests go: one lazily connected channel per node address, and what
//! the client has learned about node addresses and queue leaders.

mod directory;
mod leader_watch;
mod pool;

pub(crate) use directory::Directory;
pub(crate) use pool::{normalize_address, ChannelSettings, Pool};

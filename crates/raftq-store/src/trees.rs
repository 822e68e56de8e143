//! How a group's trees are named in the node's one database: `g{group}.log`,
//! `g{group}.meta`, `g{group}.snapshot`. Its own module so the stores that
//! open them need not import the node store that opens them.

pub(crate) fn tree_name(group: u64, what: &str) -> String {
    format!("g{group}.{what}")
}

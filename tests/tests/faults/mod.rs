//! Fault injection for the sync tests: a TCP proxy between a node and its hub.

pub mod proxy;

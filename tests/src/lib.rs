//! End-to-end tests of stocksync and the binaries they drive.
//!
//! The tests (in `tests/`) work on real SQLite files and real child processes; the binaries in
//! `src/bin/` are test support only (`crash-writer`: a node that writes until it is killed).
//! The library itself is empty.

//! Placeholder: written by the sync crash test's author.
fn main() {}

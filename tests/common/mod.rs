//! Helpers shared by the integration tests that start real processes and
//! must prove that nothing they started is left running. (A directory with
//! a `mod.rs` is not compiled as a test of its own.)

pub mod cluster;
#[allow(dead_code)] // not every test binary uses every helper
pub mod procs;

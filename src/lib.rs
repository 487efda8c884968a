//! # mpcomm-cli
//!
//! The processes and tools of the `mpcomm` command, built on the `mpcomm`
//! library (protocol core, runtime, `Group` API): the group manager, the
//! comparison server and the peer process ([`roles`]), run reports
//! ([`report`]), experiment sweeps ([`sweep`]) and the benchmark
//! ([`mod@bench`]). The executable itself is `src/main.rs`.

pub mod bench;
pub mod report;
pub mod roles;
pub mod summary;
pub mod sweep;

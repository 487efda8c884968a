//! # mpcomm
//!
//! Ordered multicast among a group of peers, without a broker. This crate is
//! the runtime around the sans-IO protocol core ([`mpcomm_core`]) and the
//! processes of the MPComm system.

pub mod bench;
pub mod control;
pub mod report;
pub mod roles;
pub mod runtime;
pub mod summary;
pub mod sweep;

pub use mpcomm_check as check;
pub use mpcomm_core as core;

//! Subcommands of the `mpcomm` binary.

pub mod bench;
pub mod check;
pub mod demo;
pub mod group_manager;
pub mod key;
pub mod peer;
pub mod server;
pub mod sim;
pub mod sweep;
pub mod wan;

pub(crate) use group_manager::shutdown_signal;

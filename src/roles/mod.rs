//! The processes of the system, as library code: each role binds its
//! sockets, serves, and stops on request. The CLI (`src/cli/`) only parses
//! arguments and calls into these modules.

mod address;
pub mod demo;
pub mod group_manager;
pub mod peer;
pub mod reach;
pub mod server;
pub mod stamp;

//! # mpcomm
//!
//! Ordered multicast among a group of peers, without a broker.
//!
//! This crate is the library: the sans-IO protocol core ([`core`], the
//! `mpcomm-core` crate), the runtime that drives it over a UDP socket with
//! tokio ([`runtime`]), and the [`runtime::Group`] API an application uses
//! to join a group, multicast and receive deliveries in the chosen order.
//! The `mpcomm` command line (group manager, comparison server, peer, demo,
//! benchmarks) is built on it in the `mpcomm-cli` crate.
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `wan` | wide-area network emulation on outgoing datagrams (`runtime::WanConfig`) |
//! | `control` | the JSON-lines control plane: the group manager's requests, run commands, log upload (`mpcomm::control`), authenticated with the group key (`mpcomm::secure`) |
//! | `check` | the offline checker of delivery logs (`mpcomm::check`) |
//!
//! None is on by default: the library alone needs only tokio and a few
//! small crates.
#![forbid(unsafe_code)]

#[cfg(feature = "control")]
pub mod control;
pub mod keyfile;
pub mod runtime;
#[cfg(feature = "control")]
pub mod secure;

#[cfg(feature = "check")]
pub use mpcomm_check as check;
pub use mpcomm_core as core;

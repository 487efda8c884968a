//! The group key on the command line: `mpcomm keygen`, and the `--key` /
//! `--insecure` arguments every process takes.
//!
//! Secure by default off loopback: a process that binds an address other
//! than loopback refuses to start without a key, and says how to make one,
//! unless `--insecure` says the operator means it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mpcomm::core::KeyRing;
use mpcomm::keyfile::{self, KeySource};

/// The environment variable that names the key file when `--key` is absent.
pub const KEY_ENV: &str = "MPCOMM_KEY_FILE";

/// `--key FILE` and `--insecure`, shared by every process.
#[derive(Debug, Clone, Default, Args)]
pub struct KeyArgs {
    /// The group key file (made by `mpcomm keygen FILE`; the same file on
    /// every host). With it, every datagram is authenticated and encrypted
    /// and every control connection authenticated.
    #[arg(long = "key", value_name = "FILE", env = KEY_ENV)]
    pub key: Option<PathBuf>,
    /// Run without a key on an address other than loopback (anyone who can
    /// reach the ports can then join, forge messages or stop processes).
    #[arg(long)]
    pub insecure: bool,
}

impl KeyArgs {
    /// Loads the key, or decides that none is needed: without one, every
    /// address in `bound` must be loopback, or `--insecure` given.
    pub fn load(&self, role: &str, bound: &[SocketAddr]) -> anyhow::Result<Option<KeyRing>> {
        if let Some(path) = &self.key {
            let keys = keyfile::load(path)
                .with_context(|| format!("cannot use the key file {}", path.display()))?;
            return Ok(Some(keys));
        }
        let exposed: Vec<String> = bound
            .iter()
            .filter(|a| !a.ip().is_loopback())
            .map(ToString::to_string)
            .collect();
        if exposed.is_empty() {
            return Ok(None);
        }
        if self.insecure {
            tracing::warn!(
                "{role} listens on {} without a group key (--insecure): anyone who can reach it can join the group, forge messages and stop processes",
                exposed.join(", ")
            );
            eprintln!(
                "mpcomm: warning: {role} runs without a group key on {} (--insecure)",
                exposed.join(", ")
            );
            return Ok(None);
        }
        anyhow::bail!(
            "refusing to listen on {} without a group key: anyone who can reach it could join the group, \
             forge messages or stop processes.\n  Make a key once:   mpcomm keygen mpcomm.key\n  \
             copy it (mode 0600) to every host, and start every process with --key mpcomm.key \
             (or set {KEY_ENV}=mpcomm.key).\n  To run without one anyway, add --insecure; \
             on one machine, bind 127.0.0.1 instead.",
            exposed.join(", ")
        )
    }
}

impl KeyArgs {
    /// Like [`KeyArgs::load`], for a long-lived process: a key file is read
    /// again at every connection and run, so that it can be rotated in place.
    pub fn source(&self, role: &str, bound: &[SocketAddr]) -> anyhow::Result<KeySource> {
        let keys = self.load(role, bound)?;
        match (&self.key, keys) {
            (Some(path), Some(_)) => Ok(KeySource::file(path)?),
            (_, keys) => Ok(KeySource::fixed(keys)),
        }
    }
}

/// Arguments of `mpcomm keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (created with mode 0600).
    pub file: PathBuf,
    /// Replace an existing file with a brand-new key.
    #[arg(long, conflicts_with = "rotate")]
    pub force: bool,
    /// Take the existing file one step through a rotation: add a new key,
    /// then switch to it, then retire the old one (run it three times,
    /// copying the file to every member in between).
    #[arg(long)]
    pub rotate: bool,
}

/// Runs `mpcomm keygen`.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let fresh = |epoch| keyfile::generate(epoch).context("no random numbers from the system");
    if args.rotate {
        let keys = keyfile::load(&args.file)
            .with_context(|| format!("cannot rotate {}", args.file.display()))?;
        // Draw the new key now (it is needed only in step 1).
        let next = fresh(keys.send_key().epoch().wrapping_add(1))?;
        let (rotated, step) = keyfile::rotate(&keys, |_| next);
        keyfile::save(&args.file, &rotated, true)?;
        println!("{}: {step}", args.file.display());
        return Ok(ExitCode::SUCCESS);
    }
    let keys = KeyRing::single(fresh(1)?);
    keyfile::save(&args.file, &keys, args.force)?;
    println!(
        "wrote a new group key to {} (mode 0600): copy it to every host and pass --key {}",
        args.file.display(),
        args.file.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! One way to read a network description, for every command that takes
//! one (`--wan` of demo, server, sweep and bench; the flags of `sim`), and
//! what to say about it before a run.
//!
//! The grammar is `NetProfile`'s (`mpcomm_sim::net`): probabilities are
//! written as a percentage (`loss=1%`) or as a fraction below one
//! (`loss=0.01`); a bare `1` or more is refused as ambiguous. Before a run
//! the commands echo the settings as they understood them, and warn when a
//! setting makes a run impossible (every datagram lost).

use mpcomm_sim::NetProfile;

/// Parses a `--wan` value, with the flag named in the error.
pub fn parse(spec: &str) -> Result<NetProfile, String> {
    spec.parse::<NetProfile>()
        .map_err(|e| format!("--wan {spec:?}: {e}"))
}

/// Warnings about settings that make a run impossible or hopeless.
pub fn warnings(net: &NetProfile) -> Vec<String> {
    let mut w = Vec::new();
    if net.loss >= 1.0 {
        w.push(
            "warning: loss=100% drops every datagram: no run can complete (each will fail when \
             the handshake times out). For one percent write loss=1%."
                .to_string(),
        );
    } else if net.loss >= 0.9 {
        w.push(format!(
            "warning: loss={}% loses almost every datagram: runs will take very long or fail",
            net.loss * 100.0
        ));
    }
    w
}

/// The line that echoes the network before a run, and its warnings.
pub fn describe(net: &NetProfile) -> Vec<String> {
    let mut lines = vec![format!("network: emulated WAN {net}")];
    lines.extend(warnings(net));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_loss_is_warned_about() {
        let net = parse("inter=40ms, loss=100%").unwrap();
        assert!(warnings(&net)[0].contains("no run can complete"));
        assert!(warnings(&parse("loss=1%").unwrap()).is_empty());
        let e = parse("inter=40ms,loss=1").unwrap_err();
        assert!(e.contains("loss=1: ") && e.contains("write 1%"), "{e}");
    }
}

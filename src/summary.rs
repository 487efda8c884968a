//! The checker's findings as a person reads them: one table, used by every
//! command that prints findings (`sim`, `server`, `demo`, `check`).

use std::fmt::Write;

use mpcomm_check::{Findings, ViewFindings};

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "VIOLATED" }
}

/// Renders findings as an aligned, multi-line table (ends with a newline).
pub fn findings_table(f: &Findings) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  Found {} unordered message rounds (of {})",
        f.unordered_rounds, f.rounds
    );
    let rows = [
        (
            "total order",
            f.total_order,
            f.counterexamples.total_order.as_deref(),
        ),
        (
            "agreement",
            f.agreement,
            f.counterexamples.agreement.as_deref(),
        ),
        (
            "integrity",
            f.integrity,
            f.counterexamples.integrity.as_deref(),
        ),
        ("fifo", f.fifo, f.counterexamples.fifo.as_deref()),
    ];
    for (name, ok, example) in rows {
        let _ = write!(s, "  {name:<17} {}", verdict(ok));
        if let Some(e) = example {
            let _ = write!(s, ": {e}");
        }
        s.push('\n');
    }
    let _ = write!(s, "  {:<17} ", "causal");
    match f.causal {
        Some(ok) => {
            let _ = write!(s, "{}", verdict(ok));
            if let Some(e) = &f.counterexamples.causal {
                let n = f.causal_violations.unwrap_or(0);
                let what = if n == 1 { "delivery" } else { "deliveries" };
                let _ = write!(s, " ({n} {what} too early): {e}");
            }
        }
        None => s.push_str("unknown (the logs do not say what senders had delivered)"),
    }
    s.push('\n');
    if let Some(n) = f.answers_before_questions {
        let _ = writeln!(s, "  {:<17} {n} delivered before their question", "answers");
    }
    if let Some(agree) = f.states_agree {
        let _ = write!(
            s,
            "  {:<17} {}",
            "states",
            if agree { "agree" } else { "DIFFER" }
        );
        if let Some(e) = &f.counterexamples.states {
            let _ = write!(s, ": {e}");
        }
        s.push('\n');
        for p in f.states.iter().flatten() {
            let _ = writeln!(s, "    peer {}: {}", p.peer, p.state);
        }
    }
    let _ = writeln!(s, "  delivered         {} of {}", f.delivered, f.expected);
    if !f.complete {
        let _ = writeln!(s, "  complete          NO: {}", incomplete(f));
        let _ = write!(s, "  consistent        ");
        match (&f.counterexamples.consistency, f.consistent) {
            (_, true) => {
                let _ = writeln!(s, "yes: {}", consistency_rule(f));
            }
            (Some(e), false) => {
                let _ = writeln!(s, "NO: {e}");
            }
            (None, false) => {
                let _ = writeln!(s, "NO");
            }
        }
    }
    if let Some(l) = &f.latency_us {
        let ms = |us: u64| us as f64 / 1e3;
        let _ = writeln!(
            s,
            "  latency           p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            l.count
        );
    }
    let _ = writeln!(
        s,
        "  verdict           {}",
        match (f.passed, f.complete) {
            (true, _) => "PASS",
            (false, false) => "FAIL (the run did not complete)",
            (false, true) => "FAIL",
        }
    );
    s
}

/// Which members' logs are missing or cut short, in one line.
fn incomplete(f: &Findings) -> String {
    let list = |v: &[u16]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = Vec::new();
    if !f.missing_logs.is_empty() {
        parts.push(format!("no log of member {}", list(&f.missing_logs)));
    }
    if !f.partial_logs.is_empty() {
        parts.push(format!(
            "partial log of member {} (no end line: its writer was killed)",
            list(&f.partial_logs)
        ));
    }
    if !f.failed_logs.is_empty() {
        parts.push(format!("member {} failed", list(&f.failed_logs)));
    }
    if parts.is_empty() {
        "the logs do not tell of a whole run".to_string()
    } else {
        parts.join("; ")
    }
}

/// What "consistent" meant for the findings' order, in words.
fn consistency_rule(f: &Findings) -> &'static str {
    use mpcomm_check::Property;
    let Ok(order) = f.order.parse::<mpcomm_core::OrderKind>() else {
        return "nothing delivered twice or invented";
    };
    if Property::TotalOrder.promised_by(order) {
        "every log is a prefix of one sequence (what was delivered, was delivered in one order)"
    } else if Property::Fifo.promised_by(order) {
        "each sender's messages in order, without gaps"
    } else {
        "nothing delivered twice or invented"
    }
}

/// Renders what the view lines say, for a run in which the group changed:
/// each view after the first, who left (not missing: "left in view v"), and
/// the virtual-synchrony verdict (ends with a newline).
pub fn views_table(v: &ViewFindings) -> String {
    let mut s = String::new();
    let list = |ms: &[mpcomm_core::MemberId]| {
        ms.iter()
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for view in v.views.iter().skip(1) {
        let mut change = Vec::new();
        if !view.left.is_empty() {
            change.push(format!("without {}", list(&view.left)));
        }
        if !view.joined.is_empty() {
            change.push(format!("with {} joining", list(&view.joined)));
        }
        let _ = writeln!(
            s,
            "  {:<17} {}: members {}{}",
            "view",
            view.id,
            list(&view.members),
            if change.is_empty() {
                String::new()
            } else {
                format!(" ({})", change.join(", "))
            }
        );
    }
    for l in &v.left {
        let _ = writeln!(
            s,
            "  {:<17} member {} left in view {}",
            "left", l.member, l.view
        );
    }
    let _ = writeln!(
        s,
        "  {:<17} {}",
        "virtual synchrony", v.virtual_synchrony_detail
    );
    s
}

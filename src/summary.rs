//! The checker's findings as a person reads them: one table, used by every
//! command that prints findings (`sim`, `server`, `demo`, `check`).

use std::fmt::Write;

use mpcomm_check::Findings;

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
    let _ = writeln!(s, "  delivered         {} of {}", f.delivered, f.expected);
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
        if f.passed { "PASS" } else { "FAIL" }
    );
    s
}

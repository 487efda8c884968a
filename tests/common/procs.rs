//! Processes seen through /proc: which ones a command started, and whether
//! any of them is still running.
//!
//! A process is named by its pid *and* its start time, because a pid can be
//! reused later by an unrelated process.

use std::collections::BTreeSet;

/// A process as (pid, start time in clock ticks since boot).
pub type Proc = (u32, String);

/// Field `i` after the command name in /proc/PID/stat (0 = state,
/// 19 = start time), or `None` if the process is gone.
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(i).map(str::to_string)
}

/// Whether `pid` exists and is more than a zombie waiting to be reaped.
fn is_live(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|state| state != "Z" && state != "X")
}

/// Whether the process `(pid, start)` is still running.
pub fn is_running((pid, start): &Proc) -> bool {
    is_live(*pid) && stat_field(*pid, 19).as_deref() == Some(start.as_str())
}

/// Panics naming the first process of `seen` that is still running.
pub fn assert_all_gone<'a>(seen: impl IntoIterator<Item = &'a Proc>) {
    for p in seen {
        assert!(!is_running(p), "process {} is still running", p.0);
    }
}

/// The children of `pid` right now.
pub fn children_of(pid: u32) -> BTreeSet<Proc> {
    let mut kids = BTreeSet::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return kids;
    };
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        for c in list
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            if let Some(start) = stat_field(c, 19) {
                kids.insert((c, start));
            }
        }
    }
    kids
}

/// Pids of live processes (other than this test) whose command line
/// mentions `needle`: a test gives everything it starts a unique directory
/// on its command line, and looks for that.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || !is_live(pid) {
            continue;
        }
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline"))
            && String::from_utf8_lossy(&cmd).contains(needle)
        {
            found.push(pid);
        }
    }
    found
}

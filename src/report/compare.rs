//! `compare.html`: the reports of the same seed and workload under
//! different orders, side by side — the problem (`none`) beside its cure
//! (`total`), each in its own frame with its own explorer.
//!
//! The page only frames the reports next to it (relative links), so it
//! works from a file, offline, like the reports themselves.

use std::fmt::Write as _;

use super::svg::esc;

/// The file name of the side-by-side page, in the directory above the runs.
pub const COMPARE_FILE: &str = "compare.html";

/// The page for `runs`: (label, relative link to its `report.html`).
pub fn render_compare(runs: &[(String, String)]) -> String {
    let mut s = String::with_capacity(2048);
    s.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>mpcomm — the same run under different orders</title><style>\
         body{margin:0;font:14px/1.4 system-ui,-apple-system,\"Segoe UI\",Roboto,Arial,sans-serif;color:#1d2433}\
         header{padding:8px 16px;border-bottom:1px solid #d9dde5}h1{font-size:17px;margin:0}\
         .runs{display:flex;height:calc(100vh - 64px)}\
         .run{flex:1;display:flex;flex-direction:column;border-right:1px solid #d9dde5;min-width:0}\
         .run h2{font-size:14px;margin:0;padding:4px 10px;background:#f4f6f9}\
         iframe{flex:1;border:0;width:100%}</style></head><body>\
         <header><h1>The same seed and workload under different orders</h1>\
         <div>Each side is a run's own report; open one alone for more room.</div></header>\
         <div class=\"runs\">",
    );
    for (label, href) in runs {
        let _ = write!(
            s,
            "<div class=\"run\"><h2>order <code>{l}</code> — <a href=\"{h}\" target=\"_top\">open alone</a></h2>\
             <iframe src=\"{h}#compact\" title=\"report of the run under {l}\"></iframe></div>",
            l = esc(label),
            h = esc(href)
        );
    }
    s.push_str("</div></body></html>\n");
    s
}

//! Small helpers for writing HTML and SVG by hand: escaping, colours,
//! numbers and axis ticks.
//!
//! The report is plain text put together with `write!`. That keeps it free
//! of dependencies and easy to read, but it means every piece of text that
//! comes from outside (peer names, regions, error messages) must go through
//! [`esc`] before it lands in the page: a peer named `<script>` must show
//! up as the text "`<script>`", not run.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG content and for attribute values (in
/// double or single quotes). Control characters, which XML does not allow
/// and which no honest name contains, become `\u{fffd}` (the replacement
/// character), so that the SVG stays well-formed whatever a peer calls
/// itself.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The Okabe–Ito palette: eight colours that people with the common forms
/// of colour blindness can still tell apart. Its yellow is darkened a
/// little, because pure `#F0E442` almost vanishes on white.
pub const PALETTE: [&str; 8] = [
    "#0072B2", // blue
    "#E69F00", // orange
    "#009E73", // bluish green
    "#CC79A7", // reddish purple
    "#56B4E9", // sky blue
    "#D55E00", // vermillion
    "#C9B800", // yellow (darkened)
    "#000000", // black
];

/// The colour of a sender's messages.
pub fn colour(sender: u16) -> &'static str {
    PALETTE[usize::from(sender) % PALETTE.len()]
}

/// The mark shapes. Beyond eight senders colours repeat, so the shape
/// tells sender 0 (blue circle) from sender 8 (blue square).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Circle,
    Square,
    Diamond,
    Triangle,
}

/// The shape of a sender's marks.
pub fn shape(sender: u16) -> Shape {
    match (usize::from(sender) / PALETTE.len()) % 4 {
        0 => Shape::Circle,
        1 => Shape::Square,
        2 => Shape::Diamond,
        _ => Shape::Triangle,
    }
}

/// Writes a mark of `shape` centred at (`x`, `y`) with radius `r`: the
/// element's name and geometry, ready for more attributes. The caller
/// closes the tag.
pub fn open_shape(out: &mut String, shape: Shape, x: f64, y: f64, r: f64) {
    match shape {
        Shape::Circle => {
            let _ = write!(
                out,
                "<circle cx=\"{}\" cy=\"{}\" r=\"{}\"",
                num(x),
                num(y),
                num(r)
            );
        }
        Shape::Square => {
            let s = r * 0.9;
            let _ = write!(
                out,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"",
                num(x - s),
                num(y - s),
                num(2.0 * s),
                num(2.0 * s)
            );
        }
        Shape::Diamond => {
            let s = r * 1.25;
            let _ = write!(
                out,
                "<path d=\"M{} {}l{} {} {} {} {} {}z\"",
                num(x),
                num(y - s),
                num(s),
                num(s),
                num(-s),
                num(s),
                num(-s),
                num(-s)
            );
        }
        Shape::Triangle => {
            let s = r * 1.3;
            let _ = write!(
                out,
                "<path d=\"M{} {}l{} {}h{}z\"",
                num(x),
                num(y - s),
                num(s),
                num(1.7 * s),
                num(-2.0 * s)
            );
        }
    }
}

/// The element name [`open_shape`] opened, to close it.
pub fn shape_tag(shape: Shape) -> &'static str {
    match shape {
        Shape::Circle => "circle",
        Shape::Square => "rect",
        Shape::Diamond | Shape::Triangle => "path",
    }
}

/// A coordinate with one decimal, without a trailing `.0`: short, because
/// a report has thousands of them.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    let r = (v * 10.0).round() / 10.0;
    if r == r.trunc() {
        format!("{}", r as i64)
    } else {
        format!("{r:.1}")
    }
}

/// Microseconds as milliseconds for people: `12.3 ms`, `1,234 ms`.
pub fn ms(us: u64) -> String {
    let v = us as f64 / 1e3;
    if v >= 1000.0 {
        format!("{} ms", thousands(v.round() as u64))
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else {
        format!("{v:.1} ms")
    }
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A "nice" axis step (1, 2 or 5 times a power of ten) of at least `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let pow = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * pow >= raw {
            return m * pow;
        }
    }
    10.0 * pow
}

/// Tick values: the multiples of a nice step in `lo..=hi`, about
/// `pixels / spacing` of them.
pub fn ticks(lo: f64, hi: f64, pixels: f64, spacing: f64) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo || pixels <= 0.0 {
        return Vec::new();
    }
    let want = (pixels / spacing).max(1.0);
    let step = nice_step((hi - lo).max(f64::MIN_POSITIVE) / want);
    let mut out = Vec::new();
    let mut v = (lo / step).ceil() * step;
    // Bounded: at most `want + 2` steps fit between lo and hi.
    while v <= hi + step * 1e-9 && out.len() < 1000 {
        out.push(v);
        v += step;
    }
    out
}

/// A tick label: integers without decimals, small steps with as many
/// decimals as they need.
pub fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        thousands(v.round().max(0.0) as u64)
    } else if (v * 10.0 - (v * 10.0).round()).abs() < 1e-9 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\"\u{7}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\u{fffd}"
        );
        assert_eq!(esc("plain name-1"), "plain name-1");
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(num(3.0), "3");
        assert_eq!(num(3.04), "3");
        assert_eq!(num(3.25), "3.3");
        assert_eq!(num(f64::NAN), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(ms(1500), "1.5 ms");
        assert_eq!(ms(2_345_000), "2,345 ms");
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(
            ticks(0.0, 100.0, 500.0, 100.0),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert!(ticks(5.0, 1.0, 100.0, 10.0).is_empty());
        assert!(ticks(3.0, 3.0, 100.0, 10.0).len() <= 1);
        assert_eq!(tick_label(2000.0), "2,000");
        assert_eq!(tick_label(0.5), "0.5");
    }

    #[test]
    fn senders_get_distinct_colour_or_shape() {
        for a in 0..32u16 {
            for b in 0..a {
                assert!(colour(a) != colour(b) || shape(a) != shape(b), "{a} {b}");
            }
        }
    }
}

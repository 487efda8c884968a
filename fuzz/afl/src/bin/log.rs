//! AFL harness for the `log` target (see `mpcomm_fuzz::log_lines`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::log_lines(data));
}

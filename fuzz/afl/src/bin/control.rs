//! AFL harness for the `control` target (see `mpcomm_fuzz::control_line`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::control_line(data));
}

//! AFL harness for the `wan` target (see `mpcomm_fuzz::wan`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::wan(data));
}

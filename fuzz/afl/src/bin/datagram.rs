//! AFL harness for the `datagram` target (see `mpcomm_fuzz::datagram`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::datagram(data));
}

//! AFL harness for the `peer` target (see `mpcomm_fuzz::peer`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::peer(data));
}

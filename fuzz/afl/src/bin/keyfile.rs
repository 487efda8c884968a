//! AFL harness for the `keyfile` target (see `mpcomm_fuzz::keyfile`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::keyfile(data));
}

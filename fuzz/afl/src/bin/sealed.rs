//! AFL harness for the `sealed` target (see `mpcomm_fuzz::sealed`).
fn main() {
    afl::fuzz!(|data: &[u8]| mpcomm_fuzz::sealed(data));
}

//! Variable-length integers (LEB128), for the ordering engines' own bytes.
//!
//! A number is written seven bits at a time, lowest first; every byte but
//! the last has its top bit set. Small numbers — the common case for
//! counters that change by one or two between messages — take one byte:
//!
//! ```text
//!   5     → 0x05
//!   300   → 0xAC 0x02      (300 = 0b10_0101100: 0101100 with "more", then 10)
//! ```
//!
//! A `u64` takes at most ten bytes. Decoding is total: it never reads past
//! the input, and rejects a number that runs off the end or does not fit in
//! 64 bits.

/// Most bytes a `u64` takes.
pub(crate) const MAX_LEN: usize = 10;

/// Bytes `x` takes.
pub(crate) fn len(x: u64) -> usize {
    let bits = 64 - x.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Appends `x` to `out`.
pub(crate) fn put(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

/// Reads one number from the front of `input`, advancing it; `None` if the
/// input ends in the middle of a number or the number overflows 64 bits.
pub(crate) fn get(input: &mut &[u8]) -> Option<u64> {
    let mut x: u64 = 0;
    for i in 0..MAX_LEN {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        let bits = u64::from(b & 0x7f);
        if i == MAX_LEN - 1 && bits > 1 {
            return None; // more than 64 bits
        }
        x |= bits << (7 * i);
        if b & 0x80 == 0 {
            return Some(x);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        for (x, bytes) in [
            (0u64, &[0x00][..]),
            (5, &[0x05]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
        ] {
            let mut out = Vec::new();
            put(&mut out, x);
            assert_eq!(out, bytes);
            assert_eq!(len(x), bytes.len());
        }
        assert_eq!(len(u64::MAX), MAX_LEN);
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(get(&mut &[0x80u8][..]), None, "runs off the end");
        assert_eq!(get(&mut &[][..]), None);
        let too_big = [0xffu8; 10];
        assert_eq!(get(&mut &too_big[..]), None);
        let mut eleven = vec![0x80u8; 10];
        eleven.push(0);
        assert_eq!(get(&mut &eleven[..]), None);
    }

    proptest! {
        #[test]
        fn round_trip(xs in proptest::collection::vec(any::<u64>(), 0..20)) {
            let mut out = Vec::new();
            for &x in &xs {
                put(&mut out, x);
            }
            prop_assert_eq!(out.len(), xs.iter().map(|&x| len(x)).sum::<usize>());
            let mut input = &out[..];
            for &x in &xs {
                prop_assert_eq!(get(&mut input), Some(x));
            }
            prop_assert!(input.is_empty());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut input = &bytes[..];
            while get(&mut input).is_some() {}
        }
    }
}

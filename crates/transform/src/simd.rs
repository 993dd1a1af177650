//! Byte tests sixteen bytes at a time with SSE2, part of every x86_64 CPU,
//! for the direct path's string scan: one load and a handful of compares
//! classify what the SWAR words of `swar.rs` need two rounds of bit tricks
//! for. Other targets get the same answers from a byte loop (and the scan
//! falls back on its SWAR words there). The crate's only `unsafe` outside
//! the librdkafka calls is the load below.

/// One bit per byte of `chunk`, lowest byte lowest: in `.0` the bytes that
/// end plain string text (`"`, `\`, a control character, a non-ASCII
/// byte), in `.1` those that tag text escapes (space, `,`, `=`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(super) fn plain_string_masks(chunk: &[u8; 16]) -> (u32, u32) {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    // SAFETY: `chunk` is sixteen readable bytes and `_mm_loadu_si128` has
    // no alignment requirement; the other intrinsics only need SSE2, which
    // the x86_64 baseline includes (they are in this block only because
    // Rust before 1.87 counts them as unsafe to call).
    let (ends, escapes) = unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let is = |byte: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(byte as i8));
        // Signed bytes: 0x80 and above are negative, so one comparison
        // finds control characters and non-ASCII bytes together.
        let low_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let ends = _mm_or_si128(_mm_or_si128(is(b'"'), is(b'\\')), low_or_high);
        let escapes = _mm_or_si128(_mm_or_si128(is(b' '), is(b',')), is(b'='));
        (_mm_movemask_epi8(ends), _mm_movemask_epi8(escapes))
    };
    (ends as u32, escapes as u32)
}

/// [`plain_string_masks`] for targets without SSE2.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(super) fn plain_string_masks(chunk: &[u8; 16]) -> (u32, u32) {
    byte_loop_masks(chunk)
}

/// The masks of [`plain_string_masks`] a byte at a time: the definition
/// the vector code is tested against.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn byte_loop_masks(chunk: &[u8; 16]) -> (u32, u32) {
    let mut ends = 0;
    let mut escapes = 0;
    for (i, &b) in chunk.iter().enumerate() {
        if b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b) {
            ends |= 1 << i;
        }
        if matches!(b, b' ' | b',' | b'=') {
            escapes |= 1 << i;
        }
    }
    (ends, escapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_masks_agree_with_a_byte_loop_for_every_byte_and_position() {
        for special in 0..=255u8 {
            for at in 0..16 {
                for filler in [b'a', b' ', 0x7f, 0xc3] {
                    let mut chunk = [filler; 16];
                    chunk[at] = special;
                    assert_eq!(
                        plain_string_masks(&chunk),
                        byte_loop_masks(&chunk),
                        "{special} at {at} among {filler}"
                    );
                }
            }
        }
    }
}

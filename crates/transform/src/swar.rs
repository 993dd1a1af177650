//! Byte tests eight bytes at a time in a `u64` ("SWAR"), for the scans of
//! the transform's hot path: finding the end of a string, digits, bytes
//! that need escaping. Each mask has the high bit set in marked bytes; a
//! borrow can also mark bytes above a marked one, never below, so the
//! lowest mark is exact and "no mark" means none.

/// 0x01 in every byte.
pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
/// 0x80 in every byte.
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at the start of `chunk` (at least eight long) as one
/// little-endian word.
#[inline(always)]
pub(super) fn word(chunk: &[u8]) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&chunk[..8]);
    u64::from_le_bytes(bytes)
}

/// Marks the bytes of `word` equal to `byte` (high bits, among others).
#[inline(always)]
pub(super) fn equal_bytes(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x
}

/// Marks the bytes of `word` below `limit` (at most 0x80; high bits, among
/// others).
#[inline(always)]
pub(super) fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word
}

//! The crash test's workload, shared by the helper binary that appends it
//! and the test that checks what survived: batch sizes and payloads are
//! functions of (thread, batch, record), so either side can recompute them.

/// Records in batch `k`: up to 3000 (~700 KB) every other batch, so a batch
/// spans many frames and often more than one of sled's log buffers.
pub fn batch_len(k: u64) -> u64 {
    if k % 7 == 3 {
        1 + k % 40
    } else if k % 2 == 0 {
        1 + (k * 7919) % 3000
    } else {
        1 + (k * 7919) % 200
    }
}

/// Payload of record `i` of batch `k` of thread `t`, checkable without the
/// helper. Every seventh batch holds large records (20-60 KB, the size of
/// the persister's compressed records), the rest small ones.
pub fn payload(t: u64, k: u64, i: u64) -> Vec<u8> {
    let mut p = format!("t{t}b{k}r{i}:").into_bytes();
    // Pseudo-random letters: incompressible enough that a batch stays
    // large on disk after the WAL's LZ4 compression.
    let mut x = ((t << 48) | (k << 16) | i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = if k % 7 == 3 {
        20_000 + (k * 7919 + i * 104_729) % 40_000
    } else {
        (k * 7 + i * 13) % 400
    };
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(b'a' + (x % 26) as u8);
    }
    p
}

//! The test file's contents and the checksum both ends agree on.
//!
//! The checksum is a streaming 64-bit hash over the byte stream: four lanes
//! of multiply-rotate over 32-byte blocks, then the tail and the length. It
//! does not depend on how the stream was split into reads (a TCP receiver
//! sees arbitrary splits), it catches a changed, missing, extra or
//! reordered block, and it is fast enough in a debug build to hash
//! gigabytes (word reads, no per-byte loop).

/// Bytes per block: four 8-byte lanes.
const BLOCK: usize = 32;
const PRIME_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME_3: u64 = 0x1656_67B1_9E37_79F9;

#[derive(Clone, Debug)]
pub struct Hasher {
    lanes: [u64; 4],
    tail: [u8; BLOCK],
    tail_len: usize,
    total: u64,
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new()
    }
}

impl Hasher {
    pub fn new() -> Self {
        Self {
            lanes: [PRIME_1, PRIME_2, PRIME_3, PRIME_1 ^ PRIME_2],
            tail: [0; BLOCK],
            tail_len: 0,
            total: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.tail_len > 0 {
            let take = (BLOCK - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + take].copy_from_slice(&data[..take]);
            self.tail_len += take;
            data = &data[take..];
            if self.tail_len < BLOCK {
                return;
            }
            let block = self.tail;
            self.blocks(&block);
            self.tail_len = 0;
        }
        let whole = data.len() / BLOCK * BLOCK;
        self.blocks(&data[..whole]);
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// Hashes `data`, a whole number of blocks.
    fn blocks(&mut self, data: &[u8]) {
        debug_assert_eq!(data.len() % BLOCK, 0);
        let [mut a, mut b, mut c, mut d] = self.lanes;
        let p = data.as_ptr();
        let mut i = 0;
        // A plain pointer loop: a debug build runs it at near memory speed,
        // where an iterator chain would be many times slower.
        while i < data.len() {
            // SAFETY: i + 32 <= data.len(); unaligned reads of plain bytes.
            let (w0, w1, w2, w3) = unsafe {
                (
                    (p.add(i) as *const u64).read_unaligned(),
                    (p.add(i + 8) as *const u64).read_unaligned(),
                    (p.add(i + 16) as *const u64).read_unaligned(),
                    (p.add(i + 24) as *const u64).read_unaligned(),
                )
            };
            a = round(a, w0);
            b = round(b, w1);
            c = round(c, w2);
            d = round(d, w3);
            i += BLOCK;
        }
        self.lanes = [a, b, c, d];
    }

    pub fn finish(&self) -> u64 {
        let mut h = self.clone();
        let mut last = [0u8; BLOCK];
        last[..h.tail_len].copy_from_slice(&h.tail[..h.tail_len]);
        h.blocks(&last);
        let [a, b, c, d] = h.lanes;
        let mut x = a.rotate_left(1) ^ b.rotate_left(7) ^ c.rotate_left(12) ^ d.rotate_left(18);
        x ^= h.total.wrapping_mul(PRIME_3);
        // Final avalanche (as in xxHash64).
        x ^= x >> 33;
        x = x.wrapping_mul(PRIME_2);
        x ^= x >> 29;
        x = x.wrapping_mul(PRIME_3);
        x ^ (x >> 32)
    }
}

#[inline(always)]
fn round(lane: u64, word: u64) -> u64 {
    (lane ^ word).wrapping_mul(PRIME_1).rotate_left(31)
}

/// The checksum of `data` in one go.
#[cfg(test)]
pub fn checksum(data: &[u8]) -> u64 {
    let mut h = Hasher::new();
    h.update(data);
    h.finish()
}

/// Pseudo-random bytes (xorshift64*): the test file is not compressible
/// and no two chunks are alike, so a misplaced chunk changes the checksum.
pub struct Filler(u64);

impl Filler {
    pub fn new(seed: u64) -> Self {
        // Any seed but one that leaves the state zero (xorshift's fixed point).
        let x = seed.wrapping_mul(PRIME_1) ^ PRIME_2;
        Self(if x == 0 { PRIME_3 } else { x })
    }

    /// Fills `buf` (its length a multiple of 8 except perhaps at the end).
    pub fn fill(&mut self, buf: &mut [u8]) {
        let p = buf.as_mut_ptr();
        let words = buf.len() / 8;
        let mut x = self.0;
        for i in 0..words {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
            // SAFETY: i * 8 + 8 <= buf.len().
            unsafe { (p.add(i * 8) as *mut u64).write_unaligned(v.to_le()) };
        }
        for (j, b) in buf[words * 8..].iter_mut().enumerate() {
            *b = (x >> (8 * j)) as u8;
        }
        self.0 = x;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        Filler::new(42).fill(&mut v);
        v
    }

    #[test]
    fn does_not_depend_on_how_the_stream_was_split() {
        let d = data(10_000);
        let whole = checksum(&d);
        for split in [1, 3, 7, 31, 32, 33, 64, 1000, 4097] {
            let mut h = Hasher::new();
            for part in d.chunks(split) {
                h.update(part);
            }
            assert_eq!(h.finish(), whole, "split {split}");
            assert_eq!(h.len(), d.len() as u64);
        }
        // Uneven splits too.
        let mut h = Hasher::new();
        let (mut i, mut step) = (0, 1);
        while i < d.len() {
            let end = (i + step).min(d.len());
            h.update(&d[i..end]);
            i = end;
            step = step * 3 % 101 + 1;
        }
        assert_eq!(h.finish(), whole);
    }

    #[test]
    fn catches_changes_losses_and_reordering() {
        let d = data(4096);
        let sum = checksum(&d);
        let mut flipped = d.clone();
        flipped[1234] ^= 1;
        assert_ne!(checksum(&flipped), sum);
        assert_ne!(checksum(&d[..4095]), sum);
        let mut longer = d.clone();
        longer.push(0);
        assert_ne!(checksum(&longer), sum, "a trailing zero byte is not free");
        // Two 64-byte chunks swapped.
        let mut swapped = d.clone();
        let (a, b) = swapped.split_at_mut(64);
        a.swap_with_slice(&mut b[..64]);
        assert_ne!(checksum(&swapped), sum);
        assert_ne!(checksum(&[]), checksum(&[0]));
    }

    #[test]
    fn filler_is_deterministic_and_varied() {
        let a = data(1 << 16);
        assert_eq!(a, data(1 << 16));
        let mut b = vec![0u8; 1 << 16];
        Filler::new(43).fill(&mut b);
        assert!(a != b, "different seeds, different data");
        // Consecutive calls continue the stream: no repeated chunks.
        let mut f = Filler::new(7);
        let mut c1 = vec![0u8; 4096];
        let mut c2 = vec![0u8; 4096];
        f.fill(&mut c1);
        f.fill(&mut c2);
        assert!(c1 != c2);
        let zeros = a.iter().filter(|&&x| x == 0).count();
        assert!(zeros < a.len() / 100, "{zeros} zero bytes");
    }
}

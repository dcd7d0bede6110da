//! The test file's contents and the checksum both ends agree on.
//!
//! The checksum is XXH3-64 over the byte stream (the xxhash-rust crate),
//! streamed, so it does not depend on how the stream was split into reads
//! (a TCP receiver sees arbitrary splits). The contents come from a seeded
//! PRNG (fastrand's wyrand): not compressible, and no two chunks alike, so
//! a misplaced chunk changes the checksum. Both crates are built optimised
//! even in debug builds (see the workspace's Cargo.toml), so a debug lab
//! still hashes gigabytes.

use xxhash_rust::xxh3::Xxh3;

/// A streaming checksum that also counts the bytes it has seen.
#[derive(Clone, Default)]
pub struct Hasher {
    xxh3: Xxh3,
    total: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn update(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.xxh3.update(data);
    }

    pub fn finish(&self) -> u64 {
        self.xxh3.digest()
    }
}

/// The checksum of `data` in one go.
#[cfg(test)]
pub fn checksum(data: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(data)
}

/// Pseudo-random bytes from a seed: the same file at both ends.
pub struct Filler(fastrand::Rng);

impl Filler {
    pub fn new(seed: u64) -> Self {
        Self(fastrand::Rng::with_seed(seed))
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
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
        let mut swapped = d.clone();
        let (a, b) = swapped.split_at_mut(64);
        a.swap_with_slice(&mut b[..64]);
        assert_ne!(checksum(&swapped), sum);
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

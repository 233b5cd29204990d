//! FNV-1a, 64 bit: the checksum of spat's run files and data fingerprints. Cheap, dependency-free,
//! and enough to tell one file or data set from another (it is not a defence against forgery).

/// An incremental FNV-1a (64-bit) hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    /// The hash of no bytes (FNV-1a's 64-bit offset basis).
    pub const fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `bytes` after what was hashed before.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash of every byte given so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash as 16 lower-case hex digits, the form spat's files record.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }

    /// The hash of `bytes` as 16 hex digits.
    pub fn hex_of(bytes: &[u8]) -> String {
        Fnv1a::new().update(bytes).hex()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_test_vectors() {
        // From the FNV reference test suite (Fowler/Noll/Vo, fnv-1a 64-bit).
        assert_eq!(Fnv1a::hex_of(b""), "cbf29ce484222325");
        assert_eq!(Fnv1a::hex_of(b"a"), "af63dc4c8601ec8c");
        assert_eq!(Fnv1a::hex_of(b"foobar"), "85944171f73967e8");
        let mut split = Fnv1a::new();
        split.update(b"foo").update(b"bar");
        assert_eq!(split.hex(), "85944171f73967e8");
    }
}

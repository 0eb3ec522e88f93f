//! `meta.checksum` of a delta page: a digest of the scope's state that a node can recompute from
//! what it holds.
//!
//! The state is the set of live products (`product:{id}:{version}`) and stock levels
//! (`stock_level:{product_id}:{location_id}:{on_hand}:{allocated}`, decimals as on the wire).
//! Each line is hashed with SHA-256 and the hashes are added lane by lane (four little-endian
//! u64 lanes, wrapping). Addition commutes, so the hub keeps the digest up to date in O(1) per
//! change (subtract the old line, add the new one) and a node sums its rows in any order.

use sha2::{Digest, Sha256};
use stocksync_model::Decimal;

/// A multiset digest: the lane-wise sum of the SHA-256 of each line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateDigest([u64; 4]);

impl StateDigest {
    /// Adds a line.
    pub fn add(&mut self, line: &str) {
        let h = lanes(line);
        for (a, b) in self.0.iter_mut().zip(h) {
            *a = a.wrapping_add(b);
        }
    }

    /// Removes a line that was added before.
    pub fn remove(&mut self, line: &str) {
        let h = lanes(line);
        for (a, b) in self.0.iter_mut().zip(h) {
            *a = a.wrapping_sub(b);
        }
    }

    /// Adds another digest (the union of two disjoint sets).
    pub fn combine(&mut self, other: &StateDigest) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
    }

    /// The wire form: `sha256sum:` and 64 hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::from("sha256sum:");
        for lane in self.0 {
            for byte in lane.to_le_bytes() {
                s.push_str(&format!("{byte:02x}"));
            }
        }
        s
    }

    /// Reads the wire form back.
    pub fn from_hex(s: &str) -> Option<StateDigest> {
        let hex = s.strip_prefix("sha256sum:")?;
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u64; 4];
        for (i, lane) in out.iter_mut().enumerate() {
            let mut bytes = [0u8; 8];
            for (j, b) in bytes.iter_mut().enumerate() {
                let at = (i * 8 + j) * 2;
                *b = u8::from_str_radix(&hex[at..at + 2], 16).ok()?;
            }
            *lane = u64::from_le_bytes(bytes);
        }
        Some(StateDigest(out))
    }
}

fn lanes(line: &str) -> [u64; 4] {
    let hash = Sha256::digest(line.as_bytes());
    let mut out = [0u64; 4];
    for (lane, chunk) in out.iter_mut().zip(hash.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *lane = u64::from_le_bytes(b);
    }
    out
}

/// The line of a live product.
pub fn product_line(id: &str, version: u64) -> String {
    format!("product:{id}:{version}")
}

/// The line of a stock level.
pub fn stock_line(
    product_id: &str,
    location_id: &str,
    on_hand: Decimal,
    allocated: Decimal,
) -> String {
    format!("stock_level:{product_id}:{location_id}:{on_hand}:{allocated}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_does_not_matter_and_remove_undoes_add() {
        let mut a = StateDigest::default();
        a.add("x");
        a.add("y");
        let mut b = StateDigest::default();
        b.add("y");
        b.add("x");
        assert_eq!(a, b);
        b.add("z");
        assert_ne!(a, b);
        b.remove("z");
        assert_eq!(a, b);
        assert_eq!(StateDigest::from_hex(&a.to_hex()), Some(a));
        assert_eq!(StateDigest::from_hex("sha256sum:zz"), None);
    }
}

//! The Merkle tree of RFC 9162 §2.1 (= RFC 6962 §2.1): SHA-256, leaf = H(0x00‖entry),
//! node = H(0x01‖left‖right), split at the largest power of two smaller than the size.
//!
//! [`Tree`] keeps the hash of every *complete* subtree (level `L`, index `i` covers leaves
//! `[i·2^L, (i+1)·2^L)`), filled in as leaves are appended. Any root or proof for any past
//! size is then built from O(log n) stored hashes — the tree is never recomputed. The
//! verifiers ([`verify_inclusion`], [`verify_consistency`]) are pure functions of their
//! inputs, per RFC 9162 §2.1.3.2 and §2.1.4.2.

use thiserror::Error;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Errors of proof generation (requests outside the tree).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The leaf index is not below the tree size.
    #[error("index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size it was asked against.
        size: u64,
    },
    /// The tree size is larger than the tree holds.
    #[error("size {asked} is beyond the tree's size {size}")]
    SizeOutOfRange {
        /// The size asked for.
        asked: u64,
        /// The tree's size.
        size: u64,
    },
    /// A consistency proof from a larger to a smaller tree.
    #[error("consistency from {from} to {to} is undefined")]
    BadRange {
        /// First size.
        from: u64,
        /// Second size.
        to: u64,
    },
}

/// The leaf hash of an entry: H(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(&[0x00]);
    ctx.update(entry);
    to_hash(ctx.finish().as_ref())
}

/// The hash of an interior node: H(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    to_hash(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf).as_ref())
}

fn to_hash(d: &[u8]) -> Hash {
    let mut h = [0u8; 32];
    h.copy_from_slice(d);
    h
}

/// The largest power of two strictly smaller than `n` (for `n ≥ 2`).
pub fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree that stores the hash of every complete subtree.
///
/// Memory: about two hashes (64 bytes) per leaf. `levels[L][i]` is the hash of the complete
/// subtree at level `L`, index `i`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf hash and the hashes of the subtrees it completes.
    pub fn push(&mut self, leaf: Hash) {
        let mut level = 0usize;
        let mut hash = leaf;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(hash);
            let len = row.len();
            // A right child completes its parent.
            if !len.is_multiple_of(2) {
                return;
            }
            match (row.get(len - 2), row.get(len - 1)) {
                (Some(l), Some(r)) => hash = node_hash(l, r),
                _ => return,
            }
            level += 1;
        }
    }

    /// Drops every leaf at or after `size` (used to roll back a batch that failed to
    /// become durable).
    pub fn truncate(&mut self, size: u64) {
        for (level, row) in self.levels.iter_mut().enumerate() {
            let keep = usize::try_from(size >> level).unwrap_or(usize::MAX);
            row.truncate(keep);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// The stored hash of the complete subtree at `level`, `index`, if it exists.
    pub fn stored(&self, level: u32, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::try_from(level).ok()?)?;
        row.get(usize::try_from(index).ok()?).copied()
    }

    /// The leaf hash at `index`.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.stored(0, index)
    }

    /// The root of the tree of the first `size` leaves.
    pub fn root_at(&self, size: u64) -> Result<Hash, MerkleError> {
        self.check_size(size)?;
        Ok(self.mth(0, size))
    }

    /// The current root.
    pub fn root(&self) -> Hash {
        self.mth(0, self.size())
    }

    /// The inclusion proof of leaf `index` in the tree of size `size` (RFC 9162 §2.1.3.1).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(size)?;
        if index >= size {
            return Err(MerkleError::IndexOutOfRange { index, size });
        }
        let mut proof = Vec::new();
        self.path(index, 0, size, &mut proof);
        Ok(proof)
    }

    /// The consistency proof between sizes `from` and `to` (RFC 9162 §2.1.4.1). Empty when
    /// `from` is 0 or equals `to`.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, MerkleError> {
        self.check_size(to)?;
        if from > to {
            return Err(MerkleError::BadRange { from, to });
        }
        let mut proof = Vec::new();
        if from > 0 && from < to {
            self.subproof(from, 0, to, true, &mut proof);
        }
        Ok(proof)
    }

    fn check_size(&self, asked: u64) -> Result<(), MerkleError> {
        let size = self.size();
        if asked > size {
            return Err(MerkleError::SizeOutOfRange { asked, size });
        }
        Ok(())
    }

    /// MTH(D[lo:hi]) from stored complete subtrees.
    fn mth(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n == 0 {
            return EMPTY_ROOT;
        }
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            // INVARIANT: callers pass ranges within the tree, whose complete subtrees are
            // all stored; the fallback below recomputes rather than panics if not.
            if let Some(h) = self.stored(n.trailing_zeros(), lo / n) {
                return h;
            }
            if n == 1 {
                return EMPTY_ROOT;
            }
        }
        let k = split_point(n);
        node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
    }

    /// PATH(m, D[lo:hi]).
    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.mth(lo, lo + k));
        }
    }

    /// SUBPROOF(m, D[lo:hi], b).
    fn subproof(&self, m: u64, lo: u64, hi: u64, b: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !b {
                out.push(self.mth(lo, hi));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, lo, lo + k, b, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.mth(lo, lo + k));
        }
    }
}

/// Verifies that `leaf` is at `index` in the tree of `size` with `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Verifies that the tree of size `from` with root `from_root` is a prefix of the tree of
/// size `to` with root `to_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    from: u64,
    to: u64,
    from_root: &Hash,
    to_root: &Hash,
    proof: &[Hash],
) -> bool {
    if from > to {
        return false;
    }
    if from == to {
        return proof.is_empty() && from_root == to_root;
    }
    if from == 0 {
        // Every tree extends the empty tree.
        return proof.is_empty() && *from_root == EMPTY_ROOT;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(*from_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (from - 1, to - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *from_root && sr == *to_root && s == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    /// RFC 6962 reference data (Certificate Transparency's test vectors).
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn reference_tree() -> Tree {
        let mut t = Tree::new();
        for l in LEAVES {
            t.push(leaf_hash(&unhex(l)));
        }
        t
    }

    #[test]
    fn roots_match_rfc6962_vectors() {
        let t = reference_tree();
        for (size, want) in ROOTS.iter().enumerate() {
            assert_eq!(t.root_at(size as u64).unwrap(), h(want), "size {size}");
        }
        assert_eq!(Tree::new().root(), EMPTY_ROOT);
    }

    #[test]
    fn inclusion_proofs_match_rfc6962_vectors() {
        let t = reference_tree();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (0, 1, &[]),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let proof = t.inclusion_proof(index, size).unwrap();
            assert_eq!(proof, want, "index {index} size {size}");
            let leaf = t.leaf(index).unwrap();
            assert!(verify_inclusion(
                index,
                size,
                &leaf,
                &proof,
                &h(ROOTS[size as usize])
            ));
        }
    }

    #[test]
    fn consistency_proofs_match_rfc6962_vectors() {
        let t = reference_tree();
        let cases: [(u64, u64, &[&str]); 4] = [
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                2,
                8,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (from, to, want) in cases {
            let want: Vec<Hash> = want.iter().map(|s| h(s)).collect();
            let proof = t.consistency_proof(from, to).unwrap();
            assert_eq!(proof, want, "{from} -> {to}");
            assert!(verify_consistency(
                from,
                to,
                &h(ROOTS[from as usize]),
                &h(ROOTS[to as usize]),
                &proof
            ));
        }
    }

    #[test]
    fn requests_outside_the_tree_are_errors() {
        let t = reference_tree();
        assert!(t.inclusion_proof(8, 8).is_err());
        assert!(t.inclusion_proof(0, 9).is_err());
        assert!(t.consistency_proof(5, 4).is_err());
        assert!(t.root_at(9).is_err());
    }

    #[test]
    fn truncate_rolls_back_to_an_earlier_tree() {
        let mut t = reference_tree();
        let mut five = Tree::new();
        for l in &LEAVES[..5] {
            five.push(leaf_hash(&unhex(l)));
        }
        t.truncate(5);
        assert_eq!(t, five);
        assert_eq!(t.root(), h(ROOTS[5]));
    }

    // === naive reference, for differential property tests ===

    fn ref_mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => EMPTY_ROOT,
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&ref_mth(&leaves[..k]), &ref_mth(&leaves[k..]))
            }
        }
    }

    fn ref_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = ref_path(m, &leaves[..k]);
            p.push(ref_mth(&leaves[k..]));
            p
        } else {
            let mut p = ref_path(m - k, &leaves[k..]);
            p.push(ref_mth(&leaves[..k]));
            p
        }
    }

    fn ref_subproof(m: usize, leaves: &[Hash], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![ref_mth(leaves)] };
        }
        let k = split_point(n as u64) as usize;
        if m <= k {
            let mut p = ref_subproof(m, &leaves[..k], b);
            p.push(ref_mth(&leaves[k..]));
            p
        } else {
            let mut p = ref_subproof(m - k, &leaves[k..], false);
            p.push(ref_mth(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n as u32).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    fn flip(proof: &mut [Hash], bit: usize) {
        let i = (bit / 256) % proof.len();
        proof[i][(bit / 8) % 32] ^= 1 << (bit % 8);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn inclusion_matches_reference_and_resists_tampering(
            n in 1usize..300, i in any::<prop::sample::Index>(), bit in any::<usize>()
        ) {
            let ls = leaves(n);
            let mut t = Tree::new();
            for l in &ls { t.push(*l); }
            let index = i.index(n);
            let proof = t.inclusion_proof(index as u64, n as u64).unwrap();
            prop_assert_eq!(&proof, &ref_path(index, &ls));
            let root = ref_mth(&ls);
            prop_assert_eq!(t.root(), root);
            prop_assert!(verify_inclusion(index as u64, n as u64, &ls[index], &proof, &root));
            // Wrong leaf, wrong index, wrong size: refused.
            let other = leaf_hash(b"not in the tree");
            prop_assert!(!verify_inclusion(index as u64, n as u64, &other, &proof, &root));
            if n > 1 {
                let j = (index + 1) % n;
                prop_assert!(!verify_inclusion(j as u64, n as u64, &ls[index], &proof, &root));
            }
            // Any flipped bit in the proof or the root fails.
            if !proof.is_empty() {
                let mut bad = proof.clone();
                flip(&mut bad, bit);
                prop_assert!(!verify_inclusion(index as u64, n as u64, &ls[index], &bad, &root));
            }
            let mut bad_root = root;
            bad_root[bit % 32] ^= 1 << (bit % 8);
            prop_assert!(!verify_inclusion(index as u64, n as u64, &ls[index], &proof, &bad_root));
        }

        #[test]
        fn consistency_matches_reference_and_resists_tampering(
            n in 1usize..300, m in any::<prop::sample::Index>(), bit in any::<usize>()
        ) {
            let ls = leaves(n);
            let mut t = Tree::new();
            for l in &ls { t.push(*l); }
            let from = m.index(n) + 1; // 1..=n
            let proof = t.consistency_proof(from as u64, n as u64).unwrap();
            if from < n {
                prop_assert_eq!(&proof, &ref_subproof(from, &ls, true));
            }
            let (r1, r2) = (ref_mth(&ls[..from]), ref_mth(&ls));
            prop_assert_eq!(t.root_at(from as u64).unwrap(), r1);
            prop_assert!(verify_consistency(from as u64, n as u64, &r1, &r2, &proof));
            if !proof.is_empty() {
                let mut bad = proof.clone();
                flip(&mut bad, bit);
                prop_assert!(!verify_consistency(from as u64, n as u64, &r1, &r2, &bad));
            }
            let mut bad_root = r1;
            bad_root[bit % 32] ^= 1 << (bit % 8);
            prop_assert!(!verify_consistency(from as u64, n as u64, &bad_root, &r2, &proof));
            let mut bad_root = r2;
            bad_root[bit % 32] ^= 1 << (bit % 8);
            prop_assert!(!verify_consistency(from as u64, n as u64, &r1, &bad_root, &proof));
        }
    }
}

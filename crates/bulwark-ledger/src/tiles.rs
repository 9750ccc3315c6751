//! The C2SP tlog-tiles layout: `tile/<L>/<N>[.p/<W>]` for hash tiles and
//! `tile/entries/<N>[.p/<W>]` for entry bundles.
//!
//! A tile is 256 wide. The level-`L` tile with index `N` holds the hashes of tree level
//! `8L`, indexes `256N .. 256N + W`. `N` is written in 3-digit path elements, all but the
//! last prefixed with `x` (1234067 → `x001/x234/067`). An entry bundle is each entry as a
//! big-endian 16-bit length followed by its bytes.

use thiserror::Error;

use crate::merkle::{Hash, Tree};

/// Tile width.
pub const TILE_WIDTH: u64 = 256;
/// Highest tile level served (level 5 covers 2^48 entries).
pub const MAX_LEVEL: u8 = 5;

/// A parsed tile path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// `None` for an entry bundle, otherwise the tile level.
    pub level: Option<u8>,
    /// Tile index.
    pub index: u64,
    /// Width: 256 for a full tile, 1..=255 for a partial one.
    pub width: u64,
}

/// Why a tile path or tile is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TileError {
    /// The path does not follow the layout.
    #[error("malformed tile path")]
    Malformed,
    /// The tile is not (yet) in the tree.
    #[error("tile not found")]
    NotFound,
}

/// Parses the part of the path after `tile/`.
pub fn parse(path: &str) -> Result<TilePath, TileError> {
    let (level, rest) = path.split_once('/').ok_or(TileError::Malformed)?;
    let level = if level == "entries" {
        None
    } else {
        let l: u8 = parse_decimal(level)?
            .try_into()
            .map_err(|_| TileError::Malformed)?;
        if l > MAX_LEVEL {
            return Err(TileError::Malformed);
        }
        Some(l)
    };
    let (index_part, width) = match rest.split_once(".p/") {
        Some((i, w)) => {
            let w = parse_decimal(w)?;
            if w == 0 || w >= TILE_WIDTH {
                return Err(TileError::Malformed);
            }
            (i, w)
        }
        None => (rest, TILE_WIDTH),
    };
    let parts: Vec<&str> = index_part.split('/').collect();
    if parts.len() > 7 {
        return Err(TileError::Malformed);
    }
    let mut index: u64 = 0;
    let last = parts.len() - 1;
    for (i, p) in parts.iter().enumerate() {
        let digits = if i < last {
            p.strip_prefix('x').ok_or(TileError::Malformed)?
        } else {
            p
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TileError::Malformed);
        }
        let v: u64 = digits.parse().map_err(|_| TileError::Malformed)?;
        index = index
            .checked_mul(1000)
            .and_then(|x| x.checked_add(v))
            .ok_or(TileError::Malformed)?;
    }
    // The canonical encoding has no leading zero groups.
    if encode_index(index) != index_part {
        return Err(TileError::Malformed);
    }
    Ok(TilePath {
        level,
        index,
        width,
    })
}

fn parse_decimal(s: &str) -> Result<u64, TileError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(TileError::Malformed);
    }
    s.parse().map_err(|_| TileError::Malformed)
}

/// Encodes a tile index as path elements.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![n % 1000];
    n /= 1000;
    while n > 0 {
        groups.push(n % 1000);
        n /= 1000;
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g:03}")
            } else {
                format!("{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The path (after `tile/<L>/` or `tile/entries/`) of tile `index` with `width` entries:
/// `N` for a full tile, `N.p/W` for a partial one.
pub fn tile_name(index: u64, width: u64) -> String {
    if width == TILE_WIDTH {
        encode_index(index)
    } else {
        format!("{}.p/{width}", encode_index(index))
    }
}

/// The tiles of a tree of `size` entries: `(index, width)` for each, the last possibly
/// partial.
pub fn tiles_for(size: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..size.div_ceil(TILE_WIDTH)).map(move |i| (i, (size - i * TILE_WIDTH).min(TILE_WIDTH)))
}

/// The bytes of a hash tile, if the tree holds all of its hashes.
pub fn hash_tile(tree: &Tree, level: u8, index: u64, width: u64) -> Result<Vec<u8>, TileError> {
    let tree_level = u32::from(level) * 8;
    let mut out = Vec::with_capacity(usize::try_from(width).unwrap_or(0) * 32);
    for i in 0..width {
        let n = index
            .checked_mul(TILE_WIDTH)
            .and_then(|x| x.checked_add(i))
            .ok_or(TileError::NotFound)?;
        let h: Hash = tree.stored(tree_level, n).ok_or(TileError::NotFound)?;
        out.extend_from_slice(&h);
    }
    Ok(out)
}

/// The entry range `[from, to)` of an entry bundle.
pub fn entry_range(index: u64, width: u64) -> Option<(u64, u64)> {
    let from = index.checked_mul(TILE_WIDTH)?;
    Some((from, from.checked_add(width)?))
}

/// Encodes entries as a bundle.
pub fn bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;

    #[test]
    fn index_encoding_matches_the_spec_example() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(5), "005");
        assert_eq!(encode_index(1000), "x001/000");
    }

    #[test]
    fn paths_parse_strictly() {
        assert_eq!(
            parse("0/x001/x234/067").unwrap(),
            TilePath {
                level: Some(0),
                index: 1_234_067,
                width: 256
            }
        );
        assert_eq!(
            parse("entries/000.p/7").unwrap(),
            TilePath {
                level: None,
                index: 0,
                width: 7
            }
        );
        for bad in [
            "0/1",
            "0/0001",
            "0/x000/001",
            "6/000",
            "01/000",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/07",
            "0/001/002",
            "entries",
            "0/abc",
            "../000",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_tiles_hold_the_right_level() {
        let mut t = Tree::new();
        for i in 0..600u32 {
            t.push(leaf_hash(&i.to_be_bytes()));
        }
        let full = hash_tile(&t, 0, 1, 256).unwrap();
        assert_eq!(&full[..32], &t.leaf(256).unwrap());
        assert_eq!(hash_tile(&t, 0, 2, 88).unwrap().len(), 88 * 32);
        assert_eq!(hash_tile(&t, 0, 2, 89), Err(TileError::NotFound));
        // Level 1 holds the roots of complete 256-leaf subtrees.
        let l1 = hash_tile(&t, 1, 0, 2).unwrap();
        assert_eq!(&l1[32..], &t.stored(8, 1).unwrap());
        assert_eq!(
            t.root_at(512).unwrap(),
            crate::merkle::node_hash(&t.stored(8, 0).unwrap(), &t.stored(8, 1).unwrap())
        );
    }

    #[test]
    fn tiles_of_a_tree() {
        assert_eq!(tiles_for(0).count(), 0);
        assert_eq!(tiles_for(256).collect::<Vec<_>>(), vec![(0, 256)]);
        assert_eq!(
            tiles_for(600).collect::<Vec<_>>(),
            vec![(0, 256), (1, 256), (2, 88)]
        );
        assert_eq!(tile_name(2, 88), "002.p/88");
        assert_eq!(tile_name(1000, 256), "x001/000");
    }

    #[test]
    fn bundles_are_length_prefixed() {
        assert_eq!(
            bundle([b"ab".as_slice(), b"".as_slice()]).unwrap(),
            vec![0, 2, b'a', b'b', 0, 0]
        );
    }
}

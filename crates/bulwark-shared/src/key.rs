//! What the ports are keyed by: a namespace (chosen by the caller, validated here so that
//! every backend accepts the same ones) and a [`Key`] (a digest), plus the bounds every
//! backend shares.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::SharedError;

/// Longest TTL a port remembers anything for. Longer is a caller's bug (nothing Bulwark
/// guards lives that long), refused rather than kept forever.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;

/// A key: SHA-256 over the length-prefixed parts that identify a use (e.g. a DPoP key
/// thumbprint and a `jti`). Fixed size, so an entry costs the same whatever the caller
/// sent, and attacker-chosen strings are never stored (or sent to a backend) as such.
/// Part boundaries count: `["ab", "c"]` and `["a", "bc"]` are different keys.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key([u8; 32]);

impl Key {
    /// The key of `parts`.
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for p in parts {
            h.update(&(p.len() as u64).to_be_bytes());
            h.update(p);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(h.finish().as_ref());
        Self(out)
    }

    /// The digest (a backend's storage key, e.g. hex in a Redis key).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Which of `shards` tables holds this key (`shards` ≥ 1).
    pub(crate) fn shard(&self, shards: usize) -> usize {
        usize::from(self.0[0]) % shards.max(1)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// Checks a namespace: 1 to [`MAX_NAMESPACE_LEN`] bytes of `a-z 0-9 - _ . : /`, not
/// starting or ending with `/`. Its *family* is the part before the first `/`
/// (`event/acme` is of family `event`); see [`Capacity`].
pub fn check_namespace(namespace: &str) -> Result<(), SharedError> {
    let ok = !namespace.is_empty()
        && namespace.len() <= MAX_NAMESPACE_LEN
        && !namespace.starts_with('/')
        && !namespace.ends_with('/')
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.:/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(SharedError::Invalid { what: "namespace" })
    }
}

/// Checks a TTL: at least a millisecond (the resolution of Redis' `PX`; a zero TTL would
/// remember nothing), at most [`MAX_TTL`].
pub fn check_ttl(ttl: Duration) -> Result<(), SharedError> {
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        Err(SharedError::Invalid { what: "ttl" })
    } else {
        Ok(())
    }
}

/// The family of a namespace: its part before the first `/`.
pub(crate) fn family(namespace: &str) -> &str {
    namespace.split('/').next().unwrap_or(namespace)
}

/// How much an in-memory table may hold. Each namespace is a table of its own, so one
/// namespace filling up (an org flooding its nonces) does not refuse another's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Live entries per namespace, unless its family has its own figure.
    pub per_namespace: usize,
    /// Live entries per namespace for the namespaces of a family: `("event", 20_000)`
    /// gives each `event/<org>` its own 20,000.
    pub by_family: BTreeMap<String, usize>,
    /// Namespaces at most. When reached, namespaces holding nothing live are dropped;
    /// if none is, a new namespace is refused.
    pub max_namespaces: usize,
}

impl Capacity {
    /// `per_namespace` live entries in each of at most 4,096 namespaces.
    pub fn new(per_namespace: usize) -> Self {
        Self {
            per_namespace,
            by_family: BTreeMap::new(),
            max_namespaces: 4096,
        }
    }

    /// With `per_namespace` live entries for each namespace of `family`.
    #[must_use]
    pub fn family(mut self, family: &str, per_namespace: usize) -> Self {
        self.by_family.insert(family.to_owned(), per_namespace);
        self
    }

    /// With at most `n` namespaces.
    #[must_use]
    pub fn namespaces(mut self, n: usize) -> Self {
        self.max_namespaces = n;
        self
    }

    /// The capacity of `namespace`.
    pub fn of(&self, namespace: &str) -> usize {
        self.by_family
            .get(family(namespace))
            .copied()
            .unwrap_or(self.per_namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_boundaries_count() {
        let a = Key::from_parts(&[b"ab", b"c"]);
        let b = Key::from_parts(&[b"a", b"bc"]);
        let c = Key::from_parts(&[b"abc"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, Key::from_parts(&[b"ab", b"c"]));
        // The debug form shows a prefix of the digest, never the parts.
        let shown = format!("{a:?}");
        assert!(shown.starts_with("Key(") && shown.len() < 20, "{shown}");
    }

    #[test]
    fn namespaces_and_ttls_every_backend_accepts() {
        for ok in ["dpop", "event/acme", "rate:client", "a.b_c-d/e/f"] {
            assert_eq!(check_namespace(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(MAX_NAMESPACE_LEN + 1);
        for bad in [
            "",
            "/x",
            "x/",
            "Upper",
            "sp ace",
            "nul\0",
            "é",
            long.as_str(),
        ] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
        assert!(check_ttl(Duration::ZERO).is_err());
        assert!(check_ttl(Duration::from_micros(999)).is_err());
        assert!(check_ttl(Duration::from_millis(1)).is_ok());
        assert!(check_ttl(MAX_TTL).is_ok());
        assert!(check_ttl(MAX_TTL + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn families_have_their_own_capacity() {
        let c = Capacity::new(100).family("event", 7).namespaces(3);
        assert_eq!(c.of("dpop"), 100);
        assert_eq!(c.of("event/acme"), 7);
        assert_eq!(c.of("event"), 7);
        assert_eq!(c.of("events/acme"), 100);
        assert_eq!(c.max_namespaces, 3);
    }
}

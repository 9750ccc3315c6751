//! Request ids: accepted from `X-Request-Id` when well-formed, generated otherwise.
//!
//! A client-supplied id is echoed into logs and responses, so it is bounded and limited to
//! a conservative alphabet: it can never inject a log field, a header or markup.

use std::fmt;

/// The longest request id we accept from a client.
pub const MAX_LEN: usize = 128;

/// A validated request id (1–128 characters of `[A-Za-z0-9._:-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Validates a client-supplied id; `None` when it is empty, too long or has a character
    /// outside the allowed alphabet.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        if raw.is_empty() || raw.len() > MAX_LEN {
            return None;
        }
        if !raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return None;
        }
        // INVARIANT: every byte is ASCII, so this is valid UTF-8.
        String::from_utf8(raw.to_vec()).ok().map(Self)
    }

    /// Builds an id from 16 bytes supplied by the caller (this crate has no RNG), as hex.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push(hex_digit(b >> 4));
            s.push(hex_digit(b & 0x0f));
        }
        Self(s)
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex_digit(n: u8) -> char {
    char::from_digit(u32::from(n & 0x0f), 16).unwrap_or('0')
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_ids() {
        for ok in ["a", "req-1", "0f3e:12.ab_cd", &"x".repeat(MAX_LEN)] {
            assert!(RequestId::parse(ok.as_bytes()).is_some(), "{ok}");
        }
    }

    #[test]
    fn refuses_injection_and_oversize() {
        for bad in [
            "",
            "a b",
            "a\r\nSet-Cookie: x",
            "{\"json\":1}",
            "é",
            &"x".repeat(MAX_LEN + 1),
        ] {
            assert!(RequestId::parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn random_ids_are_32_hex_chars() {
        let id = RequestId::from_random([0xab; 16]);
        assert_eq!(id.as_str().len(), 32);
        assert!(RequestId::parse(id.as_str().as_bytes()).is_some());
    }
}

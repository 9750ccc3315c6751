//! The envelope, its canonical signing bytes and its bounded parser.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// The largest envelope accepted, in bytes (as JSON).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// The deepest nesting of arrays and objects accepted (the envelope itself is depth 1).
pub const MAX_DEPTH: usize = 16;
/// Longest `id`, `type`, `key_id`.
pub const MAX_NAME: usize = 64;
/// Nonce length bounds (base64url characters: 16 to 64, i.e. 96 to 384 bits).
pub const NONCE_CHARS: std::ops::RangeInclusive<usize> = 16..=64;

/// A signed envelope. Fields are public for the parser's users; [`Envelope::parse`] is
/// the only way an envelope from outside should be made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Unique id (also the SSE event id's companion; `[A-Za-z0-9_-]{1,64}`).
    pub id: String,
    /// What it instructs (`[a-z0-9._-]{1,64}`, e.g. `secrets.changed`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The org that sends it (a DNS label).
    pub org: String,
    /// The node it is addressed to (a DNS label).
    pub node: String,
    /// The org key that signed it.
    pub key_id: String,
    /// Unix seconds when it was signed.
    pub issued_at: i64,
    /// Random, single use (base64url, 16 to 64 characters).
    pub nonce: String,
    /// The instruction's data (any JSON within the bounds).
    pub payload: serde_json::Value,
    /// Ed25519 signature over [`Envelope::signing_bytes`], base64url (86 characters).
    pub signature: String,
}

/// Everything but the signature: what is signed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unsigned {
    /// See [`Envelope::id`].
    pub id: String,
    /// See [`Envelope::kind`].
    #[serde(rename = "type")]
    pub kind: String,
    /// See [`Envelope::org`].
    pub org: String,
    /// See [`Envelope::node`].
    pub node: String,
    /// See [`Envelope::key_id`].
    pub key_id: String,
    /// See [`Envelope::issued_at`].
    pub issued_at: i64,
    /// See [`Envelope::nonce`].
    pub nonce: String,
    /// See [`Envelope::payload`].
    pub payload: serde_json::Value,
}

/// Why bytes are not an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Over [`MAX_ENVELOPE_BYTES`].
    #[error("envelope larger than {MAX_ENVELOPE_BYTES} bytes")]
    TooLarge,
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("envelope nested deeper than {MAX_DEPTH}")]
    TooDeep,
    /// Not JSON of the envelope's shape (unknown or missing fields included).
    #[error("not an envelope: {0}")]
    Shape(String),
    /// A field outside its bounds.
    #[error("field `{0}` is out of bounds")]
    Field(&'static str),
    /// The random source failed while making a nonce.
    #[error("the random source failed")]
    Random,
    /// The canonical form could not be made.
    #[error("canonical JSON failed")]
    Canonical,
}

fn token_ok(s: &str, max: usize, extra: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The deepest nesting in `bytes` (JSON), counting only brackets outside strings; stops
/// counting once past `limit`. Runs before the JSON parser so that a deep input costs a
/// linear scan, not a recursion.
fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// The largest integer RFC 8785 (I-JSON, IEEE 754 doubles) represents exactly.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// Whether every number in `v` is an integer within ±[`MAX_SAFE_INTEGER`]. RFC 8785
/// serialises numbers as doubles: `1.0` and `1`, or two integers above 2⁵³ that round to
/// the same double, would sign to the same bytes, so a payload could be changed without
/// breaking its signature. Such numbers are refused (send them as strings).
fn numbers_exact(v: &serde_json::Value) -> bool {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            serde_json::Value::Number(n) => {
                let ok = n
                    .as_i64()
                    .is_some_and(|i| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&i));
                if !ok {
                    return false;
                }
            }
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    true
}

impl Unsigned {
    /// A new instruction from `org` to `node`, signed later: fresh nonce.
    pub fn new(
        id: impl Into<String>,
        kind: impl Into<String>,
        org: impl Into<String>,
        node: impl Into<String>,
        issued_at: i64,
        payload: serde_json::Value,
    ) -> Result<Self, ParseError> {
        let mut n = [0u8; 24];
        bulwark_crypto::fill_random(&mut n).map_err(|_| ParseError::Random)?;
        Ok(Self {
            id: id.into(),
            kind: kind.into(),
            org: org.into(),
            node: node.into(),
            key_id: String::new(),
            issued_at,
            nonce: URL_SAFE_NO_PAD.encode(n),
            payload,
        })
    }

    /// The RFC 8785 canonical bytes that are signed.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ParseError> {
        serde_jcs::to_vec(self).map_err(|_| ParseError::Canonical)
    }

    /// Signs with `key` (its kid becomes `key_id`). Refuses an envelope that would not
    /// pass [`Envelope::parse`]: nothing unsigned or malformed leaves the publisher.
    pub fn sign(mut self, key: &bulwark_crypto::SigningKey) -> Result<Envelope, ParseError> {
        key.kid().clone_into(&mut self.key_id);
        let sig = key.sign(&self.signing_bytes()?);
        let env = Envelope {
            id: self.id,
            kind: self.kind,
            org: self.org,
            node: self.node,
            key_id: self.key_id,
            issued_at: self.issued_at,
            nonce: self.nonce,
            payload: self.payload,
            signature: URL_SAFE_NO_PAD.encode(sig),
        };
        env.check_fields()?;
        let rendered = env.render()?;
        if rendered.len() > MAX_ENVELOPE_BYTES {
            return Err(ParseError::TooLarge);
        }
        if depth_exceeds(&rendered, MAX_DEPTH) {
            return Err(ParseError::TooDeep);
        }
        Ok(env)
    }
}

impl Envelope {
    /// Parses and bounds-checks an envelope (the signature is checked by the gate).
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(ParseError::TooLarge);
        }
        if depth_exceeds(bytes, MAX_DEPTH) {
            return Err(ParseError::TooDeep);
        }
        let env: Self =
            serde_json::from_slice(bytes).map_err(|e| ParseError::Shape(e.to_string()))?;
        env.check_fields()?;
        Ok(env)
    }

    fn check_fields(&self) -> Result<(), ParseError> {
        if !token_ok(&self.id, MAX_NAME, b"_-") {
            return Err(ParseError::Field("id"));
        }
        if !self.kind.starts_with(|c: char| c.is_ascii_lowercase())
            || !token_ok(&self.kind, MAX_NAME, b"._-")
            || self.kind.bytes().any(|b| b.is_ascii_uppercase())
        {
            return Err(ParseError::Field("type"));
        }
        if !label_ok(&self.org) {
            return Err(ParseError::Field("org"));
        }
        if !label_ok(&self.node) {
            return Err(ParseError::Field("node"));
        }
        if !token_ok(&self.key_id, MAX_NAME, b"_-") {
            return Err(ParseError::Field("key_id"));
        }
        if !(0..=253_402_300_799).contains(&self.issued_at) {
            return Err(ParseError::Field("issued_at"));
        }
        if !NONCE_CHARS.contains(&self.nonce.len()) || !token_ok(&self.nonce, 64, b"_-") {
            return Err(ParseError::Field("nonce"));
        }
        if self.signature.len() != 86 || !token_ok(&self.signature, 86, b"_-") {
            return Err(ParseError::Field("signature"));
        }
        if !numbers_exact(&self.payload) {
            return Err(ParseError::Field("payload"));
        }
        Ok(())
    }

    /// The JSON form (what travels).
    pub fn render(&self) -> Result<Vec<u8>, ParseError> {
        serde_json::to_vec(self).map_err(|_| ParseError::Canonical)
    }

    /// What was signed.
    pub fn unsigned(&self) -> Unsigned {
        Unsigned {
            id: self.id.clone(),
            kind: self.kind.clone(),
            org: self.org.clone(),
            node: self.node.clone(),
            key_id: self.key_id.clone(),
            issued_at: self.issued_at,
            nonce: self.nonce.clone(),
            payload: self.payload.clone(),
        }
    }

    /// The signature's 64 bytes, if it decodes.
    pub fn signature_bytes(&self) -> Option<[u8; 64]> {
        let v = URL_SAFE_NO_PAD.decode(&self.signature).ok()?;
        v.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signed() -> (Envelope, bulwark_crypto::SigningKey) {
        let key = bulwark_crypto::SigningKey::generate().unwrap();
        let env = Unsigned::new(
            "e1",
            "secrets.changed",
            "acme",
            "n1",
            1_000,
            json!({"b": 1, "a": [1, 2]}),
        )
        .unwrap()
        .sign(&key)
        .unwrap();
        (env, key)
    }

    #[test]
    fn signing_bytes_are_rfc8785_canonical_and_exclude_the_signature() {
        let (env, key) = signed();
        let bytes = env.unsigned().signing_bytes().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        // Keys sorted, no whitespace, no signature.
        assert!(
            text.starts_with(r#"{"id":"e1","issued_at":1000,"key_id":""#),
            "{text}"
        );
        assert!(text.contains(r#""payload":{"a":[1,2],"b":1}"#), "{text}");
        assert!(!text.contains("signature"));
        assert!(
            key.verifying_key()
                .verify(&bytes, &env.signature_bytes().unwrap())
        );
        assert_eq!(env.key_id, key.kid());
    }

    #[test]
    fn parse_round_trips_and_refuses_what_is_out_of_bounds() {
        let (env, _) = signed();
        let bytes = env.render().unwrap();
        assert_eq!(Envelope::parse(&bytes).unwrap(), env);

        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["extra"] = json!(1);
        assert!(matches!(
            Envelope::parse(&serde_json::to_vec(&v).unwrap()),
            Err(ParseError::Shape(_))
        ));
        for (field, bad) in [
            ("id", json!("")),
            ("id", json!("a/b")),
            ("type", json!("Secrets")),
            ("org", json!("Acme")),
            ("node", json!("n1-")),
            ("key_id", json!("k".repeat(65))),
            ("issued_at", json!(-1)),
            ("nonce", json!("short")),
            ("signature", json!("x")),
        ] {
            let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            v[field] = bad;
            assert!(
                Envelope::parse(&serde_json::to_vec(&v).unwrap()).is_err(),
                "{field}"
            );
        }
        let mut deep = String::new();
        for _ in 0..100 {
            deep.push('[');
        }
        assert_eq!(Envelope::parse(deep.as_bytes()), Err(ParseError::TooDeep));
        // Brackets inside strings do not count.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["payload"] = json!("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"\\\"[[[[[[[[[[[[[[[[[[[[");
        assert!(Envelope::parse(&serde_json::to_vec(&v).unwrap()).is_ok());
        assert_eq!(
            Envelope::parse(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
            Err(ParseError::TooLarge)
        );
    }

    #[test]
    fn numbers_that_would_sign_alike_are_refused() {
        let key = bulwark_crypto::SigningKey::generate().unwrap();
        for bad in [
            json!({"n": 1.0}),
            json!({"n": 0.5}),
            json!([9_007_199_254_740_993_u64]),
            json!({"a": [{"n": -9_007_199_254_740_992_i64}]}),
            json!(u64::MAX),
        ] {
            assert_eq!(
                Unsigned::new("e1", "t", "acme", "n1", 1, bad.clone())
                    .unwrap()
                    .sign(&key),
                Err(ParseError::Field("payload")),
                "{bad}"
            );
        }
        let ok = json!({"n": MAX_SAFE_INTEGER, "m": -MAX_SAFE_INTEGER, "s": "9007199254740993"});
        let env = Unsigned::new("e1", "t", "acme", "n1", 1, ok)
            .unwrap()
            .sign(&key)
            .unwrap();
        // A relayed envelope with such a number is refused by the parser as well.
        let mut v: serde_json::Value = serde_json::from_slice(&env.render().unwrap()).unwrap();
        v["payload"] = json!({"n": 1.5});
        assert_eq!(
            Envelope::parse(&serde_json::to_vec(&v).unwrap()),
            Err(ParseError::Field("payload"))
        );
    }

    #[test]
    fn the_publisher_refuses_to_sign_what_the_parser_would_refuse() {
        let key = bulwark_crypto::SigningKey::generate().unwrap();
        let big = json!("x".repeat(MAX_ENVELOPE_BYTES));
        assert_eq!(
            Unsigned::new("e1", "t", "acme", "n1", 1, big)
                .unwrap()
                .sign(&key),
            Err(ParseError::TooLarge)
        );
        let mut deep = json!(1);
        for _ in 0..MAX_DEPTH {
            deep = json!([deep]);
        }
        assert_eq!(
            Unsigned::new("e1", "t", "acme", "n1", 1, deep)
                .unwrap()
                .sign(&key),
            Err(ParseError::TooDeep)
        );
        assert_eq!(
            Unsigned::new("e/1", "t", "acme", "n1", 1, json!({}))
                .unwrap()
                .sign(&key),
            Err(ParseError::Field("id"))
        );
    }
}

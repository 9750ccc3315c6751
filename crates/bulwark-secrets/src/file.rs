//! The `BULWARK_SECRETS_V1` file the node agent writes (DESIGN.md §4 "Secrets").
//!
//! ```text
//! BULWARK_SECRETS_V1
//! API_KEY=abc123
//! CERT=base64:LS0tLS1CRUdJTi...
//! ```
//!
//! The header line, then one `KEY=value` line per secret, sorted by key, no duplicates.
//! Keys match `[A-Z_][A-Z0-9_]*` and are at most 128 bytes. A value is written as it is
//! when it is printable UTF-8 without leading or trailing whitespace and does not itself
//! start with `base64:`; otherwise as `base64:` and its standard base64. Limits: 256 keys,
//! 64 KiB per (decoded) value, 256 KiB for the whole file. Rendering refuses anything over
//! a limit rather than writing a truncated file; parsing refuses anything malformed.
//!
//! Writing it (0400, in a 0700 directory, via a temporary file and a rename) is the
//! caller's: this module does no I/O.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// The first line.
pub const HEADER: &str = "BULWARK_SECRETS_V1";
/// Most keys in one file.
pub const MAX_KEYS: usize = 256;
/// Longest key.
pub const MAX_KEY_LEN: usize = 128;
/// Largest value (decoded).
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Largest file.
pub const MAX_FILE_LEN: usize = 256 * 1024;
const B64_PREFIX: &str = "base64:";

/// Why a secrets file could not be rendered or parsed. Never carries a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FileError {
    /// A key outside `[A-Z_][A-Z0-9_]*` or over 128 bytes (the key is named: keys are not
    /// secret).
    #[error("invalid key `{0}`")]
    Key(String),
    /// More than 256 keys.
    #[error("more than {MAX_KEYS} keys")]
    TooManyKeys,
    /// A value over 64 KiB.
    #[error("the value of `{0}` is over {MAX_VALUE_LEN} bytes")]
    ValueTooLarge(String),
    /// The file would be, or is, over 256 KiB.
    #[error("the file is over {MAX_FILE_LEN} bytes")]
    FileTooLarge,
    /// The first line is not the header.
    #[error("missing `{HEADER}` header")]
    Header,
    /// Two secret names map to the same key (`a-b` and `a_b` both give `A_B`).
    #[error("two secrets map to the key `{0}`")]
    Collision(String),
    /// A line without `=`, a bad `base64:` value, keys out of order or repeated.
    #[error("line {0} is malformed")]
    Line(usize),
}

/// Whether `k` is a valid key.
pub fn is_valid_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_KEY_LEN
        && b.first()
            .is_some_and(|c| c.is_ascii_uppercase() || *c == b'_')
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn needs_base64(v: &[u8]) -> bool {
    match std::str::from_utf8(v) {
        Err(_) => true,
        Ok(s) => {
            s.starts_with(B64_PREFIX)
                || s.chars().any(char::is_control)
                || s.starts_with(char::is_whitespace)
                || s.ends_with(char::is_whitespace)
        }
    }
}

/// The file key of a secret name (`^[a-z][a-z0-9_-]*$`): upper case, `-` as `_`.
pub fn key_for(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// Renders the file for secrets given by name (each mapped with [`key_for`]); two names
/// mapping to one key are refused rather than one silently overwriting the other.
pub fn render_named(
    secrets: impl IntoIterator<Item = (String, Zeroizing<Vec<u8>>)>,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let mut keyed: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (name, value) in secrets {
        let key = key_for(&name);
        if keyed.insert(key.clone(), value).is_some() {
            return Err(FileError::Collision(key));
        }
    }
    render(&keyed)
}

/// Renders the file for `secrets` (key → value). The bytes zeroize on drop.
pub fn render(
    secrets: &BTreeMap<String, Zeroizing<Vec<u8>>>,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    if secrets.len() > MAX_KEYS {
        return Err(FileError::TooManyKeys);
    }
    // Sized once for the worst case (every value base64): growing would free unwiped copies.
    let need: usize = secrets
        .iter()
        .map(|(k, v)| k.len() + B64_PREFIX.len() + v.len().div_ceil(3) * 4 + 2)
        .sum::<usize>()
        + HEADER.len()
        + 1;
    let mut out = Zeroizing::new(Vec::with_capacity(need.min(MAX_FILE_LEN + 1024)));
    out.extend_from_slice(HEADER.as_bytes());
    out.push(b'\n');
    for (k, v) in secrets {
        if !is_valid_key(k) {
            return Err(FileError::Key(k.clone()));
        }
        if v.len() > MAX_VALUE_LEN {
            return Err(FileError::ValueTooLarge(k.clone()));
        }
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        if needs_base64(v) {
            out.extend_from_slice(B64_PREFIX.as_bytes());
            let encoded = Zeroizing::new(STANDARD.encode(v.as_slice()));
            out.extend_from_slice(encoded.as_bytes());
        } else {
            out.extend_from_slice(v);
        }
        out.push(b'\n');
        if out.len() > MAX_FILE_LEN {
            return Err(FileError::FileTooLarge);
        }
    }
    Ok(out)
}

/// Parses a file back into key → value, enforcing every rule `render` follows.
pub fn parse(bytes: &[u8]) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, FileError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(FileError::FileTooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| FileError::Line(0))?;
    let mut lines = text.split_terminator('\n');
    if lines.next() != Some(HEADER) {
        return Err(FileError::Header);
    }
    let mut out: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();
    let mut last: Option<&str> = None;
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        let (k, v) = line.split_once('=').ok_or(FileError::Line(n))?;
        if !is_valid_key(k) {
            return Err(FileError::Key(k.to_owned()));
        }
        if last.is_some_and(|l| l >= k) {
            return Err(FileError::Line(n));
        }
        last = Some(k);
        let value = match v.strip_prefix(B64_PREFIX) {
            Some(b) => Zeroizing::new(STANDARD.decode(b).map_err(|_| FileError::Line(n))?),
            None => Zeroizing::new(v.as_bytes().to_vec()),
        };
        if value.len() > MAX_VALUE_LEN {
            return Err(FileError::ValueTooLarge(k.to_owned()));
        }
        if out.len() == MAX_KEYS {
            return Err(FileError::TooManyKeys);
        }
        out.insert(k.to_owned(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn map(entries: &[(&str, &[u8])]) -> BTreeMap<String, Zeroizing<Vec<u8>>> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Zeroizing::new(v.to_vec())))
            .collect()
    }

    #[test]
    fn renders_sorted_with_base64_where_needed() {
        let m = map(&[
            ("Z_LAST", b"plain value"),
            ("A_FIRST", b"line1\nline2"),
            ("BIN", &[0, 159, 146, 150]),
            ("TRICKY", b"base64:not-really"),
            ("SPACE", b" padded "),
            ("EMPTY", b""),
        ]);
        let out = render(&m).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            text,
            "BULWARK_SECRETS_V1\nA_FIRST=base64:bGluZTEKbGluZTI=\nBIN=base64:AJ+Slg==\nEMPTY=\nSPACE=base64:IHBhZGRlZCA=\nTRICKY=base64:YmFzZTY0Om5vdC1yZWFsbHk=\nZ_LAST=plain value\n"
        );
        assert_eq!(parse(&out).unwrap(), m);
    }

    #[test]
    fn limits_and_malformed_input() {
        assert_eq!(
            render(&map(&[("lower", b"x")])),
            Err(FileError::Key("lower".into()))
        );
        assert_eq!(
            render(&map(&[("1A", b"x")])),
            Err(FileError::Key("1A".into()))
        );
        let long = "K".repeat(MAX_KEY_LEN + 1);
        assert!(render(&map(&[(long.as_str(), b"x")])).is_err());
        let big = vec![b'x'; MAX_VALUE_LEN + 1];
        assert_eq!(
            render(&map(&[("BIG", &big)])),
            Err(FileError::ValueTooLarge("BIG".into()))
        );
        let many: BTreeMap<String, Zeroizing<Vec<u8>>> = (0..=MAX_KEYS)
            .map(|i| (format!("K{i}"), Zeroizing::new(b"v".to_vec())))
            .collect();
        assert_eq!(render(&many), Err(FileError::TooManyKeys));
        // Five 64 KiB binary values exceed the 256 KiB file.
        let bin = vec![0u8; MAX_VALUE_LEN];
        let heavy: BTreeMap<String, Zeroizing<Vec<u8>>> = (0..5)
            .map(|i| (format!("K{i}"), Zeroizing::new(bin.clone())))
            .collect();
        assert_eq!(render(&heavy), Err(FileError::FileTooLarge));

        assert_eq!(parse(b"NOPE\n"), Err(FileError::Header));
        assert_eq!(
            parse(b"BULWARK_SECRETS_V1\nB=1\nA=2\n"),
            Err(FileError::Line(3))
        );
        assert_eq!(
            parse(b"BULWARK_SECRETS_V1\nA=1\nA=2\n"),
            Err(FileError::Line(3))
        );
        assert_eq!(
            parse(b"BULWARK_SECRETS_V1\nnoequals\n"),
            Err(FileError::Line(2))
        );
        assert_eq!(
            parse(b"BULWARK_SECRETS_V1\nA=base64:%%%\n"),
            Err(FileError::Line(2))
        );
    }

    #[test]
    fn names_map_to_keys_and_collisions_are_refused() {
        let v = |s: &str| Zeroizing::new(s.as_bytes().to_vec());
        let out = render_named([
            ("db-password".to_owned(), v("x")),
            ("api_key".to_owned(), v("y")),
        ])
        .unwrap();
        assert_eq!(&out[..], b"BULWARK_SECRETS_V1\nAPI_KEY=y\nDB_PASSWORD=x\n");
        assert_eq!(
            render_named([("a-b".to_owned(), v("1")), ("a_b".to_owned(), v("2"))]),
            Err(FileError::Collision("A_B".into()))
        );
    }

    #[test]
    fn errors_never_carry_values() {
        let big = vec![b's'; MAX_VALUE_LEN + 1];
        let e = render(&map(&[("SECRET", &big)])).unwrap_err().to_string();
        assert!(!e.contains("sss"));
    }

    proptest! {
        #[test]
        fn any_valid_map_round_trips(
            entries in prop::collection::btree_map("[A-Z_][A-Z0-9_]{0,20}", prop::collection::vec(any::<u8>(), 0..300), 0..40)
        ) {
            let m: BTreeMap<String, Zeroizing<Vec<u8>>> =
                entries.into_iter().map(|(k, v)| (k, Zeroizing::new(v))).collect();
            let out = render(&m).unwrap();
            prop_assert_eq!(parse(&out).unwrap(), m);
        }

        #[test]
        fn parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut input = b"BULWARK_SECRETS_V1\n".to_vec();
            input.extend_from_slice(&bytes);
            let _ = parse(&input);
            let _ = parse(&bytes);
        }
    }
}

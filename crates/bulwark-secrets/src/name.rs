//! Secret names: `^[a-z][a-z0-9_-]{0,62}$` (DESIGN.md §4 "Secrets").

/// Whether `s` is a valid secret name.
pub fn is_valid(s: &str) -> bool {
    let b = s.as_bytes();
    let Some((first, rest)) = b.split_first() else {
        return false;
    };
    b.len() <= 63
        && first.is_ascii_lowercase()
        && rest
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "db_password",
            "api-key-2",
            &format!("a{}", "b".repeat(62)),
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in ["", "A", "1a", "_a", "a.b", "a b", "é", &"a".repeat(64)] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}

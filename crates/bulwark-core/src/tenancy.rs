//! The tenant tree: org → app → env, with DNS-label-like names.

use std::fmt;
use std::sync::Arc;

/// A validated tenant name: 1–63 characters of `[a-z0-9-]`, starting with a letter, not
/// ending with `-` (a DNS label, lower case). Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

/// Why a name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    /// Empty or longer than 63 characters.
    Length,
    /// Does not start with a letter.
    Start,
    /// Ends with `-`.
    End,
    /// A character outside `[a-z0-9-]`.
    Character,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Length => "names are 1 to 63 characters",
            Self::Start => "names start with a lower-case letter",
            Self::End => "names do not end with `-`",
            Self::Character => "names use only `a-z`, `0-9` and `-`",
        })
    }
}

impl Name {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if s.is_empty() || s.len() > 63 {
            return Err(NameError::Length);
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(NameError::Start);
        }
        if s.ends_with('-') {
            return Err(NameError::End);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(NameError::Character);
        }
        Ok(Self(s.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// A node of the tenant tree, or the instance above it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// The whole instance.
    Instance,
    /// An org.
    Org(Name),
    /// An app of an org.
    App(Name, Name),
    /// An env of an app.
    Env(Name, Name, Name),
}

impl Scope {
    /// The enclosing scope (`None` for the instance).
    pub fn parent(&self) -> Option<Scope> {
        match self {
            Self::Instance => None,
            Self::Org(_) => Some(Self::Instance),
            Self::App(o, _) => Some(Self::Org(o.clone())),
            Self::Env(o, a, _) => Some(Self::App(o.clone(), a.clone())),
        }
    }

    /// This scope and its ancestors, nearest first.
    pub fn lineage(&self) -> Vec<Scope> {
        let mut out = vec![self.clone()];
        let mut cur = self.parent();
        while let Some(s) = cur {
            cur = s.parent();
            out.push(s);
        }
        out
    }

    /// Parses the form [`Scope`]'s `Display` writes: `instance`, `org/<o>`,
    /// `org/<o>/app/<a>`, `org/<o>/app/<a>/env/<e>`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "instance" {
            return Some(Self::Instance);
        }
        let parts: Vec<&str> = s.split('/').collect();
        let name = |i: usize| parts.get(i).and_then(|p| Name::parse(p).ok());
        match parts.as_slice() {
            ["org", _] => Some(Self::Org(name(1)?)),
            ["org", _, "app", _] => Some(Self::App(name(1)?, name(3)?)),
            ["org", _, "app", _, "env", _] => Some(Self::Env(name(1)?, name(3)?, name(5)?)),
            _ => None,
        }
    }

    /// The org this scope belongs to, if any.
    pub fn org(&self) -> Option<&Name> {
        match self {
            Self::Instance => None,
            Self::Org(o) | Self::App(o, _) | Self::Env(o, _, _) => Some(o),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Instance => f.write_str("instance"),
            Self::Org(o) => write!(f, "org/{o}"),
            Self::App(o, a) => write!(f, "org/{o}/app/{a}"),
            Self::Env(o, a, e) => write!(f, "org/{o}/app/{a}/env/{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_text() {
        let n = |s: &str| Name::parse(s).unwrap();
        for s in [
            Scope::Instance,
            Scope::Org(n("acme")),
            Scope::App(n("acme"), n("web")),
            Scope::Env(n("acme"), n("web"), n("prod")),
        ] {
            assert_eq!(Scope::parse(&s.to_string()), Some(s));
        }
        for bad in [
            "",
            "org",
            "org/Acme",
            "org/a/env/b",
            "org/a/app/b/env/c/x",
            "instance/x",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_are_dns_labels() {
        for ok in ["a", "acme", "web-2", &format!("a{}", "b".repeat(62))] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Name::parse(""), Err(NameError::Length));
        assert_eq!(Name::parse(&"a".repeat(64)), Err(NameError::Length));
        assert_eq!(Name::parse("9lives"), Err(NameError::Start));
        assert_eq!(Name::parse("-x"), Err(NameError::Start));
        assert_eq!(Name::parse("x-"), Err(NameError::End));
        for bad in ["Acme", "a_b", "a.b", "a/b", "a b", "é"] {
            assert!(Name::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lineage_walks_up_to_the_instance() {
        let n = |s| Name::parse(s).unwrap();
        let env = Scope::Env(n("acme"), n("web"), n("prod"));
        assert_eq!(
            env.lineage(),
            vec![
                env.clone(),
                Scope::App(n("acme"), n("web")),
                Scope::Org(n("acme")),
                Scope::Instance
            ]
        );
        assert_eq!(env.to_string(), "org/acme/app/web/env/prod");
        assert_eq!(env.org(), Some(&n("acme")));
    }
}

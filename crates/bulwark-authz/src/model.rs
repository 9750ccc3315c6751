//! Subjects, relations and tuples.

use std::fmt;
use std::sync::Arc;

use bulwark_core::Scope;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A person (federated through OIDC later; operator-created for now).
    User(Arc<str>),
    /// A service principal (client credentials).
    Service(Arc<str>),
    /// A node (mTLS certificate).
    Node(Arc<str>),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Service(id) => write!(f, "service:{id}"),
            Self::Node(id) => write!(f, "node:{id}"),
        }
    }
}

impl Subject {
    /// Parses `user:<id>`, `service:<id>` or `node:<id>`; ids are 1–64 characters of
    /// `[A-Za-z0-9_-]`.
    pub fn parse(s: &str) -> Option<Self> {
        let (kind, id) = s.split_once(':')?;
        let valid = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return None;
        }
        match kind {
            "user" => Some(Self::User(id.into())),
            "service" => Some(Self::Service(id.into())),
            "node" => Some(Self::Node(id.into())),
            _ => None,
        }
    }

    /// The id without its kind.
    pub fn id(&self) -> &str {
        match self {
            Self::User(id) | Self::Service(id) | Self::Node(id) => id,
        }
    }
}

/// A relation a subject can hold on a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Relation {
    /// Runs the instance (meaningful on the instance scope only).
    Operator,
    /// Administers a scope and everything under it; may grant relations there.
    Admin,
    /// Deploys to an app's or env's workloads.
    Deployer,
    /// Reads secret values of an env (nothing else implies this).
    SecretReader,
    /// Opens exec sessions in an env (explicit only; step-up is checked elsewhere).
    Exec,
    /// Reads the journal entries of a scope.
    Auditor,
    /// Sees a scope's metadata.
    Viewer,
    /// A node bound to an env: reads that env's secrets.
    BoundNode,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 8] = [
        Self::Operator,
        Self::Admin,
        Self::Deployer,
        Self::SecretReader,
        Self::Exec,
        Self::Auditor,
        Self::Viewer,
        Self::BoundNode,
    ];

    /// The wire name (`scope#name@subject`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Admin => "admin",
            Self::Deployer => "deployer",
            Self::SecretReader => "secret_reader",
            Self::Exec => "exec",
            Self::Auditor => "auditor",
            Self::Viewer => "viewer",
            Self::BoundNode => "bound_node",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub(crate) const fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// `scope#relation@subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tuple {
    /// Where.
    pub scope: Scope,
    /// What.
    pub relation: Relation,
    /// Who.
    pub subject: Subject,
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{}@{}",
            self.scope,
            self.relation.as_str(),
            self.subject
        )
    }
}

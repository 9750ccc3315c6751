//! Bulwark's authorization engine.
//!
//! Owns: relation tuples `scope#relation@subject` over the tenant tree (instance → org →
//! app → env), the fixed permission rules of DESIGN.md §4 "Tenancy and authorization", and
//! [`Relations::check`], which answers with the decision **and** the reason: which relation
//! at which scope allowed it, or why nothing did.
//!
//! Must never: perform I/O (the server folds journal entries into a [`Relations`]
//! projection), allow by default, let admin or deploy rights read secret values, or let a
//! token's scopes widen what its subject may do.
//!
//! Invariants (property-tested): granting a relation never removes a permission; revoking
//! one never adds a permission; checking with token scopes never allows more than checking
//! without them; a disabled scope denies everything under it, whatever the relations.

#![forbid(unsafe_code)]

mod model;
mod rules;

pub use model::{Relation, Subject, Tuple};
pub use rules::{Decision, Permission, Reason, Relations};

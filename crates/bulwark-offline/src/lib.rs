//! Bulwark's offline tools: what an operator runs beside (or instead of) a server.
//!
//! Owns: the journal's verifier key and its verification, from a data directory read-only
//! or from a running log over HTTPS ([`audit`]); `backup` and `restore` of the journal
//! ([`audit`]); the audit mirror that follows a log and raises the alarm on a split view
//! ([`mirror`]); the resumable KEK rotation ([`kek_rotation`]); taking the root CA key
//! offline ([`keys`]). They find the data directory's files through `bulwark_fs::layout`
//! and fold the same projections as the server (`bulwark-directory`, `bulwark-secrets`).
//!
//! Must never: link `bulwark-server` (a layering test walks the manifests); write to a
//! data directory while a server holds its lock (commands that write take it first);
//! delete a journal (a replaced one is set aside); retire a KEK that still wraps a live
//! secret.

#![forbid(unsafe_code)]

pub mod audit;
pub mod kek_rotation;
pub mod keys;
pub mod mirror;

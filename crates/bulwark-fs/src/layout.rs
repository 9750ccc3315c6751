//! The files of a server's data directory, by name. The server creates and reads them; the
//! offline tools (`bulwark backup`, `restore`, `audit`, `keys rotate-kek`, `admin
//! export-root-key`) and the admin client find them here, so that a rename happens in one
//! place.

/// The instance's public identifier; written last on first start, so that a directory
/// without it holds no complete key set.
pub const INSTANCE_ID: &str = "instance-id";
/// The root CA certificate (public).
pub const CA_CERT: &str = "ca.pem";
/// The root CA key (absent once taken offline).
pub const CA_KEY: &str = "ca.key";
/// Present when the root key was exported and removed on purpose.
pub const ROOT_OFFLINE: &str = "ca.key.offline";
/// The intermediate CA certificate.
pub const INTERMEDIATE_CERT: &str = "intermediate.pem";
/// The intermediate CA key.
pub const INTERMEDIATE_KEY: &str = "intermediate.key";
/// The server certificate (chain).
pub const SERVER_CERT: &str = "server.pem";
/// The server key.
pub const SERVER_KEY: &str = "server.key";
/// The key-encryption key.
pub const KEK_FILE: &str = "kek.key";
/// The new KEK while a rotation is in progress: the server refuses to start beside it.
pub const KEK_NEXT_FILE: &str = "kek.next.key";
/// The token signing key.
pub const SIGNING_KEY: &str = "signing.key";
/// The journal's checkpoint key.
pub const LEDGER_KEY: &str = "ledger.key";
/// The journal database.
pub const JOURNAL_DB: &str = "journal.db";
/// The secret ciphertext store.
pub const SECRETS_DB: &str = "secrets.db";
/// The lock held by `serve` for its whole life and by offline commands.
pub const LOCK: &str = "lock";
/// The admin socket's default place.
pub const ADMIN_SOCKET: &str = "admin.sock";

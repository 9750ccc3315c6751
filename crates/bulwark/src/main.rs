//! The `bulwark` command line.
//!
//! Owns: argument parsing and dispatch to the library crates. Must never hold logic of its
//! own beyond turning results into output and exit codes.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bulwark_client::admin;
use bulwark_offline::audit as audit_cli;
use bulwark_server::{ServeArgs, hygiene};
use clap::{Parser, Subcommand};

/// Bulwark: the security control plane of a multi-tenant platform.
#[derive(Parser)]
#[command(name = "bulwark", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTPS API on 127.0.0.1:8443 and the admin socket, on embedded storage.
    Serve(Box<ServeArgs>),
    /// Local administration over the admin unix socket.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// The journal: verifier key and offline verification.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write a consistent, verified copy of the journal (safe while the server runs).
    Backup {
        #[command(flatten)]
        data: DataDir,
        /// The backup file to create (0600; never overwritten).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Save a client profile (server URL, CA, credentials, a fresh DPoP key) 0600 and check
    /// it by getting a token. The client secret is read from stdin, never from argv.
    Login {
        /// The API's URL.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The CA certificate to trust (PEM).
        #[arg(long, value_name = "FILE")]
        ca: PathBuf,
        /// The service principal's client id.
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// Where to save the profile [default: $BULWARK_PROFILE or ~/.config/bulwark/profile.json].
        #[arg(long, value_name = "FILE")]
        profile: Option<PathBuf>,
    },
    /// Secrets on a server, with the saved profile.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
        /// The profile to use [default: $BULWARK_PROFILE or ~/.config/bulwark/profile.json].
        #[arg(long, value_name = "FILE", global = true)]
        profile: Option<PathBuf>,
    },
    /// Nodes of an org, with the saved profile (an org admin's).
    Nodes {
        #[command(subcommand)]
        command: NodesCommand,
        /// The profile to use [default: $BULWARK_PROFILE or ~/.config/bulwark/profile.json].
        #[arg(long, value_name = "FILE", global = true)]
        profile: Option<PathBuf>,
    },
    /// Certificates of an org, with the saved profile (an org admin's).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
        /// The profile to use [default: $BULWARK_PROFILE or ~/.config/bulwark/profile.json].
        #[arg(long, value_name = "FILE", global = true)]
        profile: Option<PathBuf>,
    },
    /// The node agent.
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Key management (the server stopped).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Self-checks of this build's process hygiene (for operators and tests).
    #[command(hide = true)]
    Selftest {
        #[command(subcommand)]
        command: SelftestCommand,
    },
    /// Install a backup as the journal, only if it is consistent with a trusted checkpoint.
    Restore {
        #[command(flatten)]
        data: DataDir,
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// A signed checkpoint kept apart from the backup; the backup must contain its tree.
        #[arg(long, value_name = "FILE")]
        trusted_checkpoint: PathBuf,
        /// Verifier key obtained out of band [default: derived from the data directory].
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
        /// Set an existing journal aside (renamed, never deleted) and restore over it.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum NodesCommand {
    /// The org's nodes (identity, certificate end, quarantine).
    List {
        /// The org.
        #[arg(long)]
        org: String,
    },
    /// Quarantine a node: its connections close now, its handshakes are refused.
    Quarantine {
        /// The org.
        #[arg(long)]
        org: String,
        /// The node.
        node: String,
    },
    /// Release a quarantined node.
    Release {
        /// The org.
        #[arg(long)]
        org: String,
        /// The node.
        node: String,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// The org's certificates (serial, SPIFFE id, end, revocation).
    List {
        /// The org.
        #[arg(long)]
        org: String,
    },
    /// Revoke a certificate (and the renewals made from it): refused at the next
    /// handshake, open connections closed, listed in the CRL.
    Revoke {
        /// The org.
        #[arg(long)]
        org: String,
        /// The serial (hex, as `certs list` shows it).
        serial: String,
        /// key_compromise, affiliation_changed, superseded or cessation_of_operation.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Write a new version; the value comes from stdin (raw bytes) or `--file`.
    Put {
        /// `org/app/env`.
        #[arg(long, value_name = "ORG/APP/ENV")]
        env: String,
        /// The secret's name.
        name: String,
        /// Read the value from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Print a value (raw bytes) to stdout, or to `--out` (0600).
    Get {
        /// `org/app/env`.
        #[arg(long, value_name = "ORG/APP/ENV")]
        env: String,
        /// The secret's name.
        name: String,
        /// A version [default: the latest].
        #[arg(long)]
        version: Option<u64>,
        /// Write the value to this file (0600) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// List names and latest versions.
    List {
        /// `org/app/env`.
        #[arg(long, value_name = "ORG/APP/ENV")]
        env: String,
    },
    /// Delete a secret (a journaled tombstone version).
    Delete {
        /// `org/app/env`.
        #[arg(long, value_name = "ORG/APP/ENV")]
        env: String,
        /// The secret's name.
        name: String,
    },
    /// Read every secret of an env (each read journaled) and write the `BULWARK_SECRETS_V1`
    /// file: 0400, in a 0700 directory, replaced atomically.
    Render {
        /// `org/app/env`.
        #[arg(long, value_name = "ORG/APP/ENV")]
        env: String,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum AgentCommand {
    /// Enrol this node: make its key here, send a CSR with the single-use join token, and
    /// store the certificate (the key never leaves the node).
    Enroll {
        /// The API's URL.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The CA certificate to trust (PEM).
        #[arg(long, value_name = "FILE")]
        ca: PathBuf,
        /// The join token (single use, short-lived).
        #[arg(long, value_name = "TOKEN")]
        token: String,
        /// Where the node keeps its identity (created 0700) [default: ./bulwark-agent].
        #[arg(long, value_name = "DIR", default_value = "bulwark-agent")]
        dir: PathBuf,
    },
    /// Run the agent: renew the certificate at half its life, fetch the env's secrets
    /// over mTLS and keep the secrets file (0400 in a 0700 directory) current; retries
    /// with backoff when the server is away, keeping the last good file. JSON logs.
    Run {
        /// The agent's directory (from `agent enroll`).
        #[arg(long, value_name = "DIR", default_value = "bulwark-agent")]
        dir: PathBuf,
        /// The node API's URL [default: the one recorded at enrolment].
        #[arg(long, value_name = "URL")]
        node_api: Option<String>,
        /// The secrets file [default: <dir>/secrets/env].
        #[arg(long, value_name = "FILE")]
        secrets_file: Option<PathBuf>,
        /// Seconds between rounds (jittered by ±10 %).
        #[arg(long, value_name = "SECS", default_value_t = 30)]
        interval: u64,
        /// One round, then exit: 0 if it succeeded.
        #[arg(long)]
        once: bool,
        /// Log level.
        #[arg(long, value_name = "LEVEL", default_value = "info")]
        log_level: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every secret's data key under a new KEK (resumable: run it again after an
    /// interruption). The old KEK is retired only when nothing uses it. Progress: a bar on
    /// a terminal, JSON lines on stderr otherwise.
    RotateKek {
        #[command(flatten)]
        data: DataDir,
    },
}

/// The server's data directory, shared by the commands that read it.
#[derive(clap::Args)]
struct DataDir {
    /// The server's data directory.
    #[arg(
        long = "data-dir",
        visible_alias = "data",
        env = "BULWARK_DATA_DIR",
        default_value = "./bulwark-data",
        value_name = "DIR"
    )]
    path: PathBuf,
}

#[derive(Subcommand)]
enum SelftestCommand {
    /// Panic while holding a secret value: the panic hook must log the location and never
    /// the payload. Exits with the panic's status (101).
    PanicHook,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print the journal's checkpoint verifier key (C2SP vkey format).
    Key {
        #[command(flatten)]
        data: DataDir,
    },
    /// Recompute the whole journal and check every checkpoint; prints a JSON report and
    /// exits 1 if anything diverges.
    Verify {
        #[command(flatten)]
        data: DataDir,
        /// Verify a running log over HTTPS instead (needs auditor access to entry bundles).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// CA certificate(s) for --url [default: <data-dir>/ca.pem].
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Verifier key obtained out of band [default: derived from the data directory].
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
        /// A signed checkpoint saved earlier, trusted to be authentic.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Follow a log's checkpoints and hash tiles into a directory; alarm (exit 2) on a
    /// split view. Runs once: schedule it (cron, systemd timer) to keep following.
    Mirror {
        /// The log's base URL, e.g. https://bulwark.internal:8443.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The mirror directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// CA certificate(s) to trust for the log's TLS certificate.
        #[arg(long, value_name = "FILE")]
        ca: PathBuf,
        /// The log's verifier key, obtained out of band [default: pinned on first use].
        #[arg(long, value_name = "VKEY")]
        vkey: Option<String>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Show the server's status (instance id, version, readiness, uptime).
    Status(AdminArgs),
    /// Create the first operator: a service principal with `operator` rights on the
    /// instance. Its client secret is printed once and stored nowhere (only its Argon2id
    /// hash is journaled). Refused once an operator exists.
    Bootstrap {
        #[command(flatten)]
        admin: AdminArgs,
        /// How the operator's tokens are bound: `dpop` (RFC 9449) or `none` (plain bearer).
        #[arg(long, default_value = "dpop", value_parser = ["dpop", "none"])]
        token_binding: String,
    },
    /// Rotate the access-token signing key. The retired key stays in the JWKS (and keeps
    /// verifying) until every token it signed has expired (15 min + 30 s).
    RotateSigningKey(AdminArgs),
    /// Replace the server certificate of the API and node listeners without a restart:
    /// the given PEM chain and key, or (without them) a fresh one from the intermediate.
    /// Refused, and nothing changes, unless it verifies against the instance root.
    RotateServerCert {
        #[command(flatten)]
        admin: AdminArgs,
        /// The certificate chain (PEM, leaf first).
        #[arg(long, value_name = "FILE", requires = "key")]
        cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "FILE", requires = "cert")]
        key: Option<PathBuf>,
    },
    /// Take the root CA key offline: write it to a new file (0600) and remove it from the
    /// data directory. The server keeps issuing with the intermediate. Run it with the
    /// server stopped; to bring the root back, copy the file to `<data-dir>/ca.key` (0600)
    /// and delete `<data-dir>/ca.key.offline`.
    ExportRootKey {
        #[command(flatten)]
        data: DataDir,
        /// Where to write the root key (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The admin socket [default: <data-dir>/admin.sock].
    #[arg(long, env = "BULWARK_ADMIN_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(flatten)]
    data: DataDir,
    /// Print the raw JSON answer.
    #[arg(long)]
    json: bool,
}

mod ops_cli;
mod secrets_cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => return serve(*args),
        Command::Admin {
            command: AdminCommand::Status(args),
        } => admin_status(args),
        Command::Admin {
            command:
                AdminCommand::Bootstrap {
                    admin,
                    token_binding,
                },
        } => admin_bootstrap(admin, &token_binding),
        Command::Admin {
            command: AdminCommand::RotateSigningKey(args),
        } => admin_rotate(args),
        Command::Admin {
            command: AdminCommand::RotateServerCert { admin, cert, key },
        } => admin_rotate_tls(admin, cert.as_deref(), key.as_deref()),
        Command::Admin {
            command: AdminCommand::ExportRootKey { data, out },
        } => bulwark_offline::keys::export_root_key(&data.path, &out).map(|fp| {
            println!(
                "the root key is in `{}` and no longer in `{}` (root certificate sha256 {fp}); keep it offline",
                out.display(),
                data.path.display()
            );
            ExitCode::SUCCESS
        }),
        Command::Audit { command } => audit(command),
        Command::Keys {
            command: KeysCommand::RotateKek { data },
        } => rotate_kek(&data.path),
        Command::Agent {
            command:
                AgentCommand::Enroll {
                    server,
                    ca,
                    token,
                    dir,
                },
        } => block_on(bulwark_agent::enroll::enroll(&server, &ca, &token, &dir))
            .and_then(|r| r)
            .map(|meta| {
                println!("{meta}");
                ExitCode::SUCCESS
            }),
        Command::Agent {
            command:
                AgentCommand::Run {
                    dir,
                    node_api,
                    secrets_file,
                    interval,
                    once,
                    log_level,
                },
        } => {
            bulwark_server::init_logging(&log_level);
            block_on(bulwark_agent::run(bulwark_agent::RunOptions {
                dir,
                node_api,
                secrets_file,
                interval: std::time::Duration::from_secs(interval.max(1)),
                once,
            }))
            .and_then(|r| r)
            .map(|stopped| {
                if stopped.success() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
        Command::Login {
            server,
            ca,
            client_id,
            profile,
        } => block_on(secrets_cli::login(&server, &ca, &client_id, profile)).and_then(|r| r),
        Command::Secrets { command, profile } => {
            block_on(secrets_cli::run(command, profile)).and_then(|r| r)
        }
        Command::Nodes { command, profile } => {
            block_on(ops_cli::nodes(command, profile)).and_then(|r| r)
        }
        Command::Certs { command, profile } => {
            block_on(ops_cli::certs(command, profile)).and_then(|r| r)
        }
        Command::Selftest {
            command: SelftestCommand::PanicHook,
        } => selftest_panic_hook(),
        Command::Backup { data, out } => {
            audit_cli::backup(&data.path, &out).map(|r| report(&r, true, 1))
        }
        Command::Restore {
            data,
            from,
            trusted_checkpoint,
            vkey,
            replace,
        } => read(&trusted_checkpoint, "--trusted-checkpoint").and_then(|note| {
            audit_cli::restore(&data.path, &from, &note, vkey.as_deref(), replace)
                .map(|r| report(&r, true, 1))
        }),
    };
    result.unwrap_or_else(|e| fail(&e))
}

fn audit(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Key { data } => {
            println!("{}", audit_cli::vkey(&data.path)?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify {
            data,
            url,
            ca,
            vkey,
            checkpoint,
        } => {
            let trusted = checkpoint.map(|c| read(&c, "--checkpoint")).transpose()?;
            let r = match url {
                Some(url) => {
                    let ca_pem = read(&ca.unwrap_or_else(|| data.path.join("ca.pem")), "--ca")?;
                    // From the environment, never argv (process lists are world-readable).
                    let token = std::env::var("BULWARK_ACCESS_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty())
                        .map(zeroize::Zeroizing::new);
                    block_on(audit_cli::verify_url(
                        &url,
                        &ca_pem,
                        vkey.as_deref(),
                        trusted.as_deref(),
                        token,
                    ))??
                }
                None => {
                    // A progress bar on a terminal; nothing otherwise (indicatif hides
                    // itself when stderr is not a terminal).
                    let bar = indicatif::ProgressBar::new(0);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "verifying {bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    let r = audit_cli::verify_data_dir(
                        &data.path,
                        vkey.as_deref(),
                        trusted.as_deref(),
                        |done, total| {
                            bar.set_length(total);
                            bar.set_position(done);
                        },
                    )?;
                    bar.finish_and_clear();
                    r
                }
            };
            Ok(report(&r, r.ok, 1))
        }
        AuditCommand::Mirror {
            from,
            dir,
            ca,
            vkey,
        } => {
            let ca_pem = read(&ca, "--ca")?;
            let r = block_on(bulwark_offline::mirror::run_once(
                &from,
                &dir,
                &ca_pem,
                vkey.as_deref(),
            ))??;
            if let Some(alarm) = &r.alarm {
                eprintln!("bulwark: ALARM: {alarm}");
            }
            Ok(report(&r, r.ok, 2))
        }
    }
}

fn selftest_panic_hook() -> anyhow::Result<ExitCode> {
    bulwark_server::init_logging("info");
    hygiene::install_panic_hook();
    // A stand-in secret, as a decrypt path would hold one.
    let secret = bulwark_server::selftest_secret();
    let value = String::from_utf8_lossy(secret.expose()).into_owned();
    #[expect(clippy::panic, reason = "this self-test exists to panic")]
    {
        panic!("decrypting failed for value {value}");
    }
}

/// Prints a JSON report; the exit code is success when `ok`, else `bad`.
fn report(r: &impl serde::Serialize, ok: bool, bad: u8) -> ExitCode {
    println!(
        "{}",
        serde_json::to_string(r).unwrap_or_else(|_| "{\"ok\":false}".into())
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(bad)
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} `{}`", path.display()))
}

/// Runs a future on a single-threaded runtime (client-side commands).
fn block_on<F: std::future::Future>(f: F) -> anyhow::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    Ok(rt.block_on(f))
}

fn serve(args: ServeArgs) -> ExitCode {
    let cfg = match args
        .with_file()
        .and_then(|a| a.resolve(bulwark_fs::current_uid()))
    {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    bulwark_server::init_logging(&cfg.log_level);
    hygiene::install_panic_hook();
    if let Err(e) = hygiene::disable_core_dumps() {
        return fail(&e.context("cannot disable core dumps"));
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&anyhow::Error::from(e).context("cannot start the runtime")),
    };
    match rt.block_on(bulwark_server::serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn admin_status(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let body = block_on(admin::status(&socket(&args)))??;
    if args.json {
        println!("{body}");
    } else {
        let s = |k: &str| body.get(k).map(ToString::to_string).unwrap_or_default();
        println!("instance   {}", s("instance_id").trim_matches('"'));
        println!("version    {}", s("version").trim_matches('"'));
        println!("ready      {}", s("ready"));
        println!("listen     {}", s("listen").trim_matches('"'));
        println!("uptime     {}s", s("uptime_seconds"));
    }
    Ok(ExitCode::SUCCESS)
}

/// The admin socket: `--socket`, else `<data-dir>/admin.sock`.
fn socket(args: &AdminArgs) -> PathBuf {
    args.socket
        .clone()
        .unwrap_or_else(|| admin::default_socket(&args.data.path))
}

fn admin_bootstrap(args: AdminArgs, token_binding: &str) -> anyhow::Result<ExitCode> {
    let body = block_on(admin::bootstrap(&socket(&args), token_binding))??;
    if args.json {
        let out = serde_json::json!({
            "client_id": body["client_id"],
            "client_secret": body["client_secret"],
        });
        println!("{out}");
    } else {
        let s = |k: &str| body[k].as_str().unwrap_or_default().to_owned();
        println!("client_id       {}", s("client_id"));
        println!("client_secret   {}", s("client_secret"));
        println!("token_binding   {}", s("token_binding"));
        println!("token_endpoint  {}", s("token_endpoint"));
        eprintln!("The secret is shown once: store it now.");
    }
    Ok(ExitCode::SUCCESS)
}

fn rotate_kek(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal as _;
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "re-wrapping {bar:40} {pos}/{len} versions (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let r = block_on(bulwark_offline::kek_rotation::rotate_kek(
        dir,
        |done, total| {
            if terminal {
                bar.set_length(total);
                bar.set_position(done);
            } else {
                eprintln!("{}", serde_json::json!({"rewrapped": done, "total": total}));
            }
        },
    ))??;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(ExitCode::SUCCESS)
}

fn admin_rotate_tls(
    args: AdminArgs,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let body = block_on(admin::rotate_server_cert(&socket(&args), cert, key))??;
    println!("{body}");
    Ok(ExitCode::SUCCESS)
}

fn admin_rotate(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let body = block_on(admin::rotate_signing_key(&socket(&args)))??;
    println!("{body}");
    Ok(ExitCode::SUCCESS)
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("bulwark: {e:#}");
    ExitCode::FAILURE
}

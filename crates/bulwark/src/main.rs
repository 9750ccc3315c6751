//! The `bulwark` command line.
//!
//! Owns: argument parsing and dispatch to the library crates. Must never hold logic of its
//! own beyond turning results into output and exit codes.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_server::{ServeArgs, admin, hygiene};
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
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Show the server's status (instance id, version, readiness, uptime).
    Status(AdminArgs),
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The admin socket [default: <data-dir>/admin.sock].
    #[arg(long, env = "BULWARK_ADMIN_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// The server's data directory.
    #[arg(
        long,
        env = "BULWARK_DATA_DIR",
        default_value = "./bulwark-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// Print the raw JSON answer.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Admin {
            command: AdminCommand::Status(args),
        } => admin_status(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let cfg = match args
        .with_file()
        .and_then(|a| a.resolve(hygiene::current_uid()))
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

fn admin_status(args: AdminArgs) -> ExitCode {
    let socket = args
        .socket
        .unwrap_or_else(|| admin::default_socket(&args.data_dir));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e.into()),
    };
    match rt.block_on(admin::request(&socket, "/v1/admin/status")) {
        Ok((200, body)) if args.json => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((200, body)) => {
            let s = |k: &str| body.get(k).map(ToString::to_string).unwrap_or_default();
            println!("instance   {}", s("instance_id").trim_matches('"'));
            println!("version    {}", s("version").trim_matches('"'));
            println!("ready      {}", s("ready"));
            println!("listen     {}", s("listen").trim_matches('"'));
            println!("uptime     {}s", s("uptime_seconds"));
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("bulwark: admin socket answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("bulwark: {e:#}");
    ExitCode::FAILURE
}

//! `bulwark login` and `bulwark secrets …`: reads what the user gives (stdin, files),
//! calls `bulwark_client`, and writes the output.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use bulwark_client::remote::{self, Session};
use bulwark_client::secrets::{self, SCOPE};
use zeroize::Zeroizing;

use crate::SecretsCommand;

/// `bulwark login`: the secret from stdin's first line.
pub async fn login(
    server: &str,
    ca: &Path,
    client_id: &str,
    profile: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let ca_pem =
        std::fs::read_to_string(ca).with_context(|| format!("cannot read `{}`", ca.display()))?;
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the client secret from stdin")?;
    let secret = Zeroizing::new(line.trim().to_owned());
    let (p, path) = remote::login(server, ca_pem, client_id, secret, SCOPE, profile).await?;
    eprintln!(
        "logged in to {} as {}; profile saved to {}",
        p.server,
        p.client_id,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `bulwark secrets …`.
pub async fn run(command: SecretsCommand, profile: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut s = Session::open(profile, SCOPE).await?;
    match command {
        SecretsCommand::Put { env, name, file } => {
            let value = Zeroizing::new(match file {
                Some(f) => {
                    std::fs::read(&f).with_context(|| format!("cannot read `{}`", f.display()))?
                }
                None => {
                    let mut v = Vec::new();
                    std::io::stdin().read_to_end(&mut v)?;
                    v
                }
            });
            println!("{}", secrets::put(&mut s, &env, &name, &value).await?);
        }
        SecretsCommand::Get {
            env,
            name,
            version,
            out,
        } => {
            let value = secrets::get(&mut s, &env, &name, version).await?;
            match out {
                Some(path) => bulwark_fs::write_in_private_dir(&path, &value, 0o600)?,
                None => std::io::stdout().write_all(&value)?,
            }
        }
        SecretsCommand::List { env } => {
            for (name, version) in secrets::list(&mut s, &env).await? {
                println!("{name}\t{version}");
            }
        }
        SecretsCommand::Delete { env, name } => {
            println!("{}", secrets::delete(&mut s, &env, &name).await?);
        }
        SecretsCommand::Render { env, out } => {
            let (count, bytes) = secrets::render(&mut s, &env).await?;
            bulwark_fs::write_in_private_dir(&out, &bytes, 0o400)?;
            eprintln!("wrote {count} keys to {}", out.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

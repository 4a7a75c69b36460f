//! `ch02 registry serve | login | push | pull`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use lab02::client::{Client, Credentials, PullReport, PushReport};
use lab02::home::Home;
use lab02::reference::Reference;
use lab02::registry::RegistryConfig;

use crate::images::local;
use crate::store;

#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Serve the OCI distribution API until Ctrl-C.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Where to listen (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1:5000")]
    addr: SocketAddr,
    /// Where blobs and manifests are kept (default: HOME/registry).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Users allowed to push (and to pull private repositories): an
    /// htpasswd file with bcrypt entries, as `htpasswd -B` writes.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// Repositories that need credentials to pull too.
    #[arg(long, value_name = "REPO")]
    private: Vec<String>,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The registry, e.g. 127.0.0.1:5000.
    registry: String,
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input (one line) instead of asking.
    #[arg(long)]
    password_stdin: bool,
}

pub fn registry(home: &Home, command: RegistryCommand) -> Result<u8> {
    let RegistryCommand::Serve(args) = command;
    if let Some(users) = &args.users {
        if !users.is_file() {
            bail!("--users {}: no such file", users.display());
        }
    }
    let mut config = RegistryConfig::new(args.root.unwrap_or_else(|| home.registry()));
    config.addr = args.addr;
    config.users = args.users;
    config.private = args.private;
    // Ctrl-C and friends end the wait below; blocked first so none is lost.
    let signals = lab01::signals::block_termination_signals();
    let registry = lab02::registry::RegistryHandle::start(config)?;
    eprintln!(
        "ch02: registry on http://{} (Ctrl-C to stop)",
        registry.addr()
    );
    let _ = signals.wait();
    registry.shutdown()?;
    Ok(0)
}

pub fn client_for(home: &Home, reference: &Reference) -> Result<Client> {
    let registry = reference
        .registry
        .clone()
        .context("the reference names no registry (e.g. 127.0.0.1:5000/kubia:v1)")?;
    let creds = Credentials::load(&home.credentials(), &registry)?;
    Ok(Client::new(creds))
}

/// What a push did, in lines of at most 80 columns; the last is the
/// manifest's digest, the name of the image pushed.
pub fn show_push(r: &PushReport) -> String {
    format!(
        "pushed {}\n  {} blob(s) sent ({}), {} already there\n  {}",
        r.reference,
        r.blobs_sent,
        HumanBytes(r.bytes_sent),
        r.blobs_skipped,
        r.manifest
    )
}

/// What a pull did, in lines of at most 80 columns; the last is the
/// manifest's digest.
pub fn show_pull(r: &PullReport) -> String {
    let stored = if r.local_name == r.reference {
        String::new()
    } else {
        format!("\n  stored as {}", r.local_name)
    };
    format!(
        "pulled {}{stored}\n  {} blob(s) fetched ({}), {} already here\n  {}",
        r.reference,
        r.blobs_fetched,
        HumanBytes(r.bytes_fetched),
        r.blobs_skipped,
        r.manifest
    )
}

pub fn login(home: &Home, args: LoginArgs) -> Result<u8> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    } else {
        eprint!("Password: ");
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("read the password")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    let creds = Credentials::new(args.username, password);
    Client::new(Some(creds.clone()))
        .login_check(&args.registry)
        .with_context(|| format!("log in to {}", args.registry))?;
    std::fs::create_dir_all(home.root())?;
    creds.save(&home.credentials(), &args.registry)?;
    println!("Login Succeeded: {}", args.registry);
    Ok(0)
}

pub fn push(home: &Home, reference: &str) -> Result<u8> {
    let target: Reference = reference
        .parse()
        .with_context(|| format!("bad image reference {reference:?}"))?;
    let store = store(home)?;
    let report = client_for(home, &target)?.push(&store, &local(reference)?, &target)?;
    println!("{}", show_push(&report));
    Ok(0)
}

pub fn pull(home: &Home, reference: &str) -> Result<u8> {
    let source: Reference = reference
        .parse()
        .with_context(|| format!("bad image reference {reference:?}"))?;
    let store = store(home)?;
    let report = client_for(home, &source)?.pull(&store, &source)?;
    println!("{}", show_pull(&report));
    Ok(0)
}

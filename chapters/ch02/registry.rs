//! `ch02 registry serve | login | push | pull`.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use lab02::client::{
    Client, Credentials, Platform, PullReport, PushReport, TlsOptions,
};
use lab02::home::Home;
use lab02::reference::Reference;
use lab02::registry::{Challenge, RegistryConfig};

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
    /// How a 401 asks for credentials: basic (every request carries them)
    /// or bearer (traded for a token at /token, as Docker Hub does).
    #[arg(long, value_enum, default_value = "basic")]
    auth: AuthKind,
    /// Serve HTTPS with this certificate (PEM; the chain, leaf first).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuthKind {
    Basic,
    Bearer,
}

/// Which CAs to trust and which registries may speak plain HTTP.
#[derive(clap::Args)]
pub struct TlsArgs {
    /// Trust this CA (PEM) too, besides HOME/certs.d/HOST/ca.crt and the
    /// system's roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Vec<PathBuf>,
    /// Allow plain HTTP to this registry (HOST or HOST:PORT); loopback
    /// registries are allowed it anyway.
    #[arg(long, value_name = "HOST")]
    insecure_registry: Vec<String>,
}

#[derive(clap::Args)]
pub struct PushArgs {
    /// The image, named as it is to be pushed (127.0.0.1:5000/kubia:v1).
    reference: String,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// The image: busybox, library/busybox, docker.io/busybox (all Docker
    /// Hub's), 127.0.0.1:5000/kubia:v1, NAME@sha256:...
    reference: String,
    /// The platform to pull from a multi-platform image (os/arch[/variant],
    /// e.g. linux/arm64, linux/arm/v7); default: this machine's.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<Platform>,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(clap::Args)]
pub struct LoginArgs {
    /// The registry, e.g. 127.0.0.1:5000 (default: Docker Hub).
    #[arg(default_value = "docker.io")]
    registry: String,
    #[arg(short, long)]
    username: String,
    /// Read the password from standard input (one line) instead of asking.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

pub fn registry(home: &Home, command: RegistryCommand) -> Result<u8> {
    let RegistryCommand::Serve(args) = command;
    if let Some(users) = &args.users {
        if !users.is_file() {
            bail!("--users {}: no such file", users.display());
        }
    }
    let mut config =
        RegistryConfig::new(args.root.unwrap_or_else(|| home.registry()));
    config.addr = args.addr;
    config.users = args.users;
    config.private = args.private;
    if let (Some(cert), Some(key)) = (args.tls_cert, args.tls_key) {
        config.tls = Some(lab02::registry::tls::TlsFiles { cert, key });
    }
    let challenge = match args.auth {
        AuthKind::Basic => Challenge::Basic,
        AuthKind::Bearer => Challenge::Bearer,
    };
    // Ctrl-C and friends end the wait below; blocked first so none is lost.
    let signals = lab01::signals::block_termination_signals();
    let registry =
        lab02::registry::RegistryHandle::start_with(config, challenge)?;
    eprintln!(
        "ch02: registry on {}://{} (Ctrl-C to stop)",
        registry.scheme(),
        registry.addr()
    );
    let _ = signals.wait();
    registry.shutdown()?;
    Ok(0)
}

pub fn client_for(home: &Home, reference: &Reference) -> Result<Client> {
    let registry = reference.registry.clone().context(
        "the reference names no registry (e.g. 127.0.0.1:5000/kubia:v1)",
    )?;
    let creds = Credentials::load(&home.credentials(), &registry)?;
    Ok(Client::new(creds))
}

/// The TLS settings: HOME/certs.d, then the flags.
fn tls_options(home: &Home, args: TlsArgs) -> TlsOptions {
    TlsOptions {
        certs_dir: Some(home.certs_dir()),
        ca_files: args.ca_file,
        insecure: args.insecure_registry,
    }
}

/// A reference as typed, and as Docker resolves it (`busybox` is
/// `docker.io/library/busybox:latest`).
fn parse_remote(reference: &str) -> Result<(Reference, Reference)> {
    let typed: Reference = reference
        .parse()
        .with_context(|| format!("bad image reference {reference:?}"))?;
    let remote = typed.normalized();
    Ok((typed, remote))
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
    let platform = match &r.platform {
        Some(platform) => {
            format!("\n  for {platform}, from a multi-platform index")
        }
        None => String::new(),
    };
    format!(
        "pulled {}{platform}{stored}\n  {} blob(s) fetched ({}), {} already here\n  {}",
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
    // `index.docker.io` and `docker.io` are one registry, saved as docker.io.
    let registry = match args.registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => {
            lab02::reference::DOCKER_HUB.to_string()
        }
        other => other.to_string(),
    };
    Client::new(Some(creds.clone()))
        .tls(tls_options(home, args.tls))
        .login_check(&registry)
        .with_context(|| format!("log in to {registry}"))?;
    std::fs::create_dir_all(home.root())?;
    creds.save(&home.credentials(), &registry)?;
    println!("Login Succeeded: {registry}");
    Ok(0)
}

pub fn push(home: &Home, args: PushArgs) -> Result<u8> {
    let (_, target) = parse_remote(&args.reference)?;
    let store = store(home)?;
    // The local image is the one named as typed (`kubia:v1`), the target as
    // Docker reads it (`docker.io/library/kubia:v1`).
    let report = client_for(home, &target)?
        .tls(tls_options(home, args.tls))
        .push(&store, &local(&args.reference)?, &target)?;
    println!("{}", show_push(&report));
    Ok(0)
}

pub fn pull(home: &Home, args: PullArgs) -> Result<u8> {
    let (_, source) = parse_remote(&args.reference)?;
    let store = store(home)?;
    let mut client =
        client_for(home, &source)?.tls(tls_options(home, args.tls));
    if let Some(platform) = args.platform {
        client = client.platform(platform);
    }
    let report = client.pull(&store, &source)?;
    println!("{}", show_pull(&report));
    Ok(0)
}

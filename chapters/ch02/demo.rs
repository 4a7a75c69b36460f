//! `ch02 demo`: the chapter in one go. Build the kubia image on one
//! computer, push it to a private registry, pull it on a second computer,
//! run it there, and ask it for its hostname from inside its network
//! namespace. The two computers are two kubelings homes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use lab01::namespaces::Namespace;
use std::os::fd::AsRawFd;

use lab01::{Container, RootfsBuilder, Stdio};
use lab02::client::{Client, Credentials};
use lab02::home::Home;
use lab02::layout::ImageStore;
use lab02::reference::Reference;
use lab02::registry::{RegistryConfig, RegistryHandle};
use lab02::run::{container_spec, prepare_rootfs, Assembly};

#[derive(clap::Args)]
pub struct Args {
    /// The kubia binary to put in the image (default: the one beside ch02).
    #[arg(long)]
    kubia: Option<PathBuf>,
}

/// kubia's Dockerfile (the book shows the file).
const DOCKERFILE: &str = include_str!("../kubia/Dockerfile");

const USER: &str = "student";
const PASSWORD: &str = "kubelings-demo";

pub fn run(_home: &Home, args: Args) -> Result<u8> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the demo runs containers with overlayfs and cgroups: run it with sudo");
    }
    let kubia = match args.kubia {
        Some(path) => path,
        None => std::env::current_exe()?
            .with_file_name("kubia")
            .canonicalize()
            .context("no kubia binary beside ch02: build it first (cargo build --bin kubia)")?,
    };
    let work = tempfile::Builder::new()
        .prefix("kubelings-demo-")
        .tempdir()?;
    let laptop = Home::at(work.path().join("laptop"));
    let server = Home::at(work.path().join("server"));

    step(1, "build the kubia image on the first computer");
    let context = work.path().join("context");
    // The app and the shared libraries its ELF headers name: nothing else.
    RootfsBuilder::empty()
        .binary(&kubia, "/kubia")
        .build(&context)
        .context("the build context")?;
    std::fs::write(context.join("Dockerfile"), DOCKERFILE)?;
    let laptop_store = ImageStore::open(&laptop.images())?;
    let steps = lab02::build::parse(DOCKERFILE)?;
    let built = lab02::build::build(
        &laptop,
        &laptop_store,
        &steps,
        &context,
        "kubia:v1",
        &mut |l| indented(&l),
    )?;
    let size: u64 = built.layers.iter().map(|l| l.size).sum();
    println!(
        "    {} layer(s), {} compressed",
        built.layers.len(),
        HumanBytes(size)
    );

    step(2, "start a registry where kubia is private");
    let users = work.path().join("htpasswd");
    // What `htpasswd -B` writes: the user and a bcrypt hash of the password.
    let hash = bcrypt::hash(PASSWORD, bcrypt::DEFAULT_COST)?;
    std::fs::write(&users, format!("{USER}:{hash}\n"))?;
    let mut config = RegistryConfig::new(work.path().join("registry"));
    config.addr = "127.0.0.1:0".parse()?;
    config.users = Some(users);
    config.private = vec!["kubia".into()];
    let registry = RegistryHandle::start(config)?;
    let host = registry.host();
    println!("    listening on {host}");

    step(3, "push it (with credentials)");
    let target: Reference = format!("{host}/kubia:v1").parse()?;
    laptop_store
        .tag(&target.local_name(), &laptop_store.resolve("kubia:v1")?)?;
    let creds = Credentials::new(USER, PASSWORD);
    let client = Client::new(Some(creds)).quiet(true);
    let pushed = client.push(&laptop_store, &target.local_name(), &target)?;
    indented(&crate::registry::show_push(&pushed));

    step(
        4,
        "pull it on the second computer (without credentials: refused)",
    );
    let server_store = ImageStore::open(&server.images())?;
    match Client::new(None).quiet(true).pull(&server_store, &target) {
        Ok(_) => bail!("an anonymous pull of a private repository succeeded"),
        Err(e) => indented(&format!("refused: {e}")),
    }
    let pulled = client.pull(&server_store, &target)?;
    indented(&crate::registry::show_pull(&pulled));

    step(5, "run it on the second computer");
    let desc = server_store.resolve(&target.local_name())?;
    let manifest = server_store.manifest(&desc)?;
    let image_config = server_store.config(&manifest)?;
    let assembly = Assembly::best();
    let rootfs = prepare_rootfs(
        &server,
        &server_store,
        &manifest,
        "kubia-demo",
        assembly,
    )?;
    // kubia's own log goes into a pipe, shown once it has stopped.
    let (log_read, log_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let spec = container_spec(&image_config, rootfs.path(), &[])?
        .hostname("kubia-7d5b")
        .stdio(
            Stdio::Inherit,
            Stdio::Fd(log_write.as_raw_fd()),
            Stdio::Fd(log_write.as_raw_fd()),
        );
    let mut container = Container::spawn(&spec)?;
    drop(log_write);
    println!(
        "    {} as a container, root filesystem by {assembly:?}",
        target
    );

    step(6, "ask it from inside its network namespace");
    let answer = http_get_in(&container.namespace_path(Namespace::Net), 8080);
    container.signal(nix::sys::signal::Signal::SIGTERM)?;
    let status = container.wait()?;
    drop(rootfs);
    registry.shutdown()?;
    println!("    {}", answer?.trim());
    let mut log = String::new();
    std::fs::File::from(log_read).read_to_string(&mut log)?;
    println!("7. stop it: kubia was {status}; its log:");
    for line in log.lines() {
        println!("    | {line}");
    }
    Ok(0)
}

fn step(n: u32, what: &str) {
    println!("{n}. {what}");
}

/// Lines under a step, indented and folded to 80 columns.
fn indented(text: &str) {
    let width = crate::common::cli::WIDTH - 4;
    for line in crate::common::cli::wrap(text, width).lines() {
        println!("    {line}");
    }
}

// ANCHOR: http_get_in
/// `curl http://127.0.0.1:PORT/` as seen from inside the network namespace
/// at `ns`: a thread enters it (setns affects only the calling thread),
/// connects, and ends, taking its namespace with it.
fn http_get_in(ns: &Path, port: u16) -> Result<String> {
    let file = std::fs::File::open(ns);
    let ns = file.with_context(|| format!("open {}", ns.display()))?;
    let worker = std::thread::spawn(move || -> Result<String> {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .context("enter the network namespace")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e).context("connect to kubia"),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: kubia\r\n")?;
        stream.write_all(b"Connection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
        body.context("no HTTP body in the answer")
    });
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the request thread panicked"))?
}
// ANCHOR_END: http_get_in

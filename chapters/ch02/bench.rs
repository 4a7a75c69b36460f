//! `ch02 bench`: build, push, pull and unpack a ~100 MB directory with
//! kubelings, and the same trip with the real tools (umoci repack, skopeo to
//! Debian's docker-registry and back, umoci unpack), in the same run. A
//! benchmark: it prints figures, it asserts nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab01::probe::find_program;
use lab02::client::Client;
use lab02::home::Home;
use lab02::layout::ImageStore;
use lab02::reference::Reference;
use lab02::registry::{RegistryConfig, RegistryHandle};

#[derive(clap::Args)]
pub struct Args {
    /// Size of the directory to ship, in MiB.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=2048))]
    size_mb: u64,
    /// Also write the table to FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    let work = tempfile::Builder::new()
        .prefix("kubelings-bench-")
        .tempdir()?;
    let data = work.path().join("context/data");
    make_payload(&data, args.size_mb)?;
    let mut rows: Vec<(String, Duration)> = Vec::new();

    // kubelings: build → push → pull into an empty store → unpack.
    let ours = {
        let laptop = Home::at(work.path().join("laptop"));
        let server = Home::at(work.path().join("server"));
        let laptop_store = ImageStore::open(&laptop.images())?;
        let server_store = ImageStore::open(&server.images())?;
        let mut config = RegistryConfig::new(work.path().join("registry"));
        config.addr = "127.0.0.1:0".parse()?;
        let registry = RegistryHandle::start(config)?;
        let target: Reference = format!("{}/bench:v1", registry.host()).parse()?;
        let client = Client::new(None).quiet(true);
        let steps = lab02::build::parse("FROM scratch\nCOPY data /data\n")?;

        let start = Instant::now();
        lab02::build::build(
            &laptop,
            &laptop_store,
            &steps,
            &work.path().join("context"),
            &target.local_name(),
            &mut |_| {},
        )?;
        let built = start.elapsed();
        client.push(&laptop_store, &target.local_name(), &target)?;
        let pushed = start.elapsed();
        client.pull(&server_store, &target)?;
        let pulled = start.elapsed();
        let manifest = server_store.manifest(&server_store.resolve(&target.local_name())?)?;
        let rootfs = work.path().join("ours-rootfs");
        std::fs::create_dir_all(&rootfs)?;
        for layer in manifest.layers() {
            let digest = lab02::spec::digest_of(layer)?;
            lab02::unpack::apply_layer(&rootfs, server_store.open_blob(&digest)?)?;
        }
        let total = start.elapsed();
        rows.push(("kubelings build".into(), built));
        rows.push(("kubelings push".into(), pushed - built));
        rows.push(("kubelings pull (empty store)".into(), pulled - pushed));
        rows.push(("kubelings unpack".into(), total - pulled));

        // Everything is present now: a pull only compares digests.
        let mut again = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            client.pull(&server_store, &target)?;
            again.push(t.elapsed());
        }
        again.sort();
        rows.push((
            "kubelings pull (all present), median of 20".into(),
            again[again.len() / 2],
        ));
        registry.shutdown()?;
        total
    };
    rows.push(("kubelings end to end".into(), ours));

    // The real tools, the same trip.
    let peers = match peer_trip(work.path(), &data) {
        Ok((steps, total)) => {
            rows.extend(steps);
            rows.push(("umoci + skopeo + docker-registry end to end".into(), total));
            Some(total)
        }
        Err(e) => {
            eprintln!("ch02 bench: the peer run could not run: {e:#}");
            None
        }
    };

    let mut table = format!(
        "{} MiB directory, build -> push -> pull into an empty store -> unpack, over loopback\n\n",
        args.size_mb
    );
    for (what, took) in &rows {
        table += &format!("{what:<48}{:>12.1} ms\n", took.as_secs_f64() * 1e3);
    }
    if let Some(peer) = peers {
        table += &format!(
            "\nkubelings is {:.1}x faster end to end\n",
            peer.as_secs_f64() / ours.as_secs_f64()
        );
    }
    print!("{table}");
    if let Some(file) = args.save {
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, &table)?;
        std::fs::rename(&tmp, &file)?;
    }
    Ok(0)
}

/// Files of pseudo-random bytes (incompressible, like binaries and media)
/// and of text (compressible), half each, from a fixed seed.
fn make_payload(dir: &Path, size_mb: u64) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..size_mb {
        let mut bytes = vec![0u8; 1 << 20];
        if i % 2 == 0 {
            for chunk in bytes.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
        } else {
            let line = format!("line {i}: the quick brown fox jumps over the lazy dog\n");
            for (j, b) in bytes.iter_mut().enumerate() {
                *b = line.as_bytes()[j % line.len()];
            }
        }
        std::fs::write(dir.join(format!("file-{i:04}")), bytes)?;
    }
    Ok(())
}

/// umoci repack → skopeo copy to docker-registry → skopeo copy back → umoci unpack.
fn peer_trip(work: &Path, data: &Path) -> Result<(Vec<(String, Duration)>, Duration)> {
    for tool in ["umoci", "skopeo", "docker-registry"] {
        if find_program(tool).is_none() {
            bail!("{tool} is not installed (apt-get install {tool})");
        }
    }
    let registry = DockerRegistry::start(&work.join("docker-registry"))?;
    let layout = work.join("umoci-layout");
    let image = format!("{}:bench", layout.display());
    let bundle = work.join("umoci-bundle");
    exec(
        Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout),
    )?;
    exec(Command::new("umoci").args(["new", "--image", &image]))?;
    exec(
        Command::new("umoci")
            .args(["unpack", "--image", &image])
            .arg(&bundle),
    )?;

    let start = Instant::now();
    exec(
        Command::new("cp")
            .arg("-a")
            .arg(data)
            .arg(bundle.join("rootfs/data")),
    )?;
    exec(
        Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&bundle),
    )?;
    let built = start.elapsed();
    let remote = format!("docker://127.0.0.1:{}/bench:v1", registry.port);
    exec(Command::new("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{image}"),
        &remote,
    ]))?;
    let pushed = start.elapsed();
    let back = work.join("umoci-back");
    exec(Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:bench", back.display()),
    ]))?;
    let pulled = start.elapsed();
    exec(
        Command::new("umoci")
            .args(["unpack", "--image", &format!("{}:bench", back.display())])
            .arg(work.join("umoci-rootfs")),
    )?;
    let total = start.elapsed();
    let steps = vec![
        ("umoci repack".to_string(), built),
        ("skopeo copy to docker-registry".to_string(), pushed - built),
        ("skopeo copy back".to_string(), pulled - pushed),
        ("umoci unpack".to_string(), total - pulled),
    ];
    Ok((steps, total))
}

fn exec(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// Debian's docker-registry on a free loopback port with its own config
/// (never the packaged one, which listens on every interface); stopped by
/// pid when dropped.
pub struct DockerRegistry {
    child: Child,
    pub port: u16,
}

impl DockerRegistry {
    pub fn start(dir: &Path) -> Result<DockerRegistry> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start docker-registry")?;
        let registry = DockerRegistry { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.") {
                    return Ok(registry);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("docker-registry did not answer on 127.0.0.1:{port} within 10 s")
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

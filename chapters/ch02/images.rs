//! `ch02 base | build | images | inspect | tag | save | load`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::HumanBytes;
use lab02::home::Home;
use lab02::reference::Reference;

use crate::store;

#[derive(clap::Args)]
pub struct BaseArgs {
    /// Name of the base image.
    #[arg(short, long, default_value = "kubelings/base:latest")]
    tag: String,
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Name of the image, e.g. kubia:v1.
    #[arg(short, long)]
    tag: String,
    /// The Dockerfile (default: DIR/Dockerfile).
    #[arg(short, long)]
    file: Option<PathBuf>,
    /// The build context: the files COPY can see.
    dir: PathBuf,
}

#[derive(clap::Args)]
pub struct SaveArgs {
    /// The archive to write.
    #[arg(short, long)]
    output: PathBuf,
    #[arg(required = true)]
    references: Vec<String>,
}

#[derive(clap::Args)]
pub struct LoadArgs {
    /// The archive to read.
    #[arg(short, long)]
    input: PathBuf,
}

/// The name an image has in the local store.
pub fn local(reference: &str) -> Result<String> {
    Ok(reference
        .parse::<Reference>()
        .with_context(|| format!("bad image reference {reference:?}"))?
        .local_name())
}

pub fn base(home: &Home, args: BaseArgs) -> Result<u8> {
    let store = store(home)?;
    let name = local(&args.tag)?;
    let built = lab02::build::base::build_base(&store, &name)
        .context("build the base image")?;
    println!("{name} {}", built.manifest.digest());
    Ok(0)
}

pub fn build(home: &Home, args: BuildArgs) -> Result<u8> {
    let store = store(home)?;
    let file = args.file.unwrap_or_else(|| args.dir.join("Dockerfile"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("read {}", file.display()))?;
    let steps = lab02::build::parse(&text)
        .with_context(|| file.display().to_string())?;
    let built = lab02::build::builder::build(
        home,
        &store,
        &steps,
        &args.dir,
        &args.tag,
        &mut |l| println!("{l}"),
    )?;
    println!("{} {}", built.name, built.manifest.digest());
    Ok(0)
}

pub fn list(home: &Home) -> Result<u8> {
    let store = store(home)?;
    println!("{:<40} {:<14} SIZE", "IMAGE", "DIGEST");
    for (name, desc) in store.images()? {
        let manifest = store.manifest(&desc)?;
        let size: u64 = manifest.layers().iter().map(|l| l.size()).sum::<u64>()
            + manifest.config().size();
        let digest = desc.digest().to_string();
        let short = digest.strip_prefix("sha256:").unwrap_or(&digest);
        println!(
            "{name:<40} {:<14} {}",
            &short[..12.min(short.len())],
            HumanBytes(size)
        );
    }
    Ok(0)
}

pub fn inspect(home: &Home, reference: &str) -> Result<u8> {
    let store = store(home)?;
    let desc = store.resolve(&local(reference)?)?;
    let manifest = store.manifest(&desc)?;
    let config = store.config(&manifest)?;
    let out = serde_json::json!({
        "name": local(reference)?,
        "digest": desc.digest().to_string(),
        "manifest": manifest,
        "config": config,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

pub fn tag(home: &Home, source: &str, target: &str) -> Result<u8> {
    let store = store(home)?;
    let desc = store.resolve(&local(source)?)?;
    store.tag(&local(target)?, &desc)?;
    Ok(0)
}

pub fn save(home: &Home, args: SaveArgs) -> Result<u8> {
    let store = store(home)?;
    let names: Vec<String> = args
        .references
        .iter()
        .map(|r| local(r))
        .collect::<Result<_>>()?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // Written beside the target and renamed: never a half archive.
    let dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut temp =
        tempfile::NamedTempFile::new_in(dir).context("create the archive")?;
    lab02::archive::save(&store, &names, &mut temp)?;
    temp.persist(&args.output)
        .with_context(|| format!("write {}", args.output.display()))?;
    Ok(0)
}

pub fn load(home: &Home, args: LoadArgs) -> Result<u8> {
    let store = store(home)?;
    let file = std::fs::File::open(&args.input)
        .with_context(|| format!("open {}", args.input.display()))?;
    let names = lab02::archive::load(&store, std::io::BufReader::new(file))
        .with_context(|| format!("load {}", args.input.display()))?;
    if names.is_empty() {
        bail!("{} holds no tagged image", args.input.display());
    }
    for name in names {
        println!("loaded {name}");
    }
    Ok(0)
}

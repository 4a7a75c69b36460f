//! The images the demo, `density` and `bench` run: kubia (built from its
//! Dockerfile, as chapter 2's demo does) and a busybox image for the
//! sidecar and the crashing container, both into a store of their own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use lab01::RootfsBuilder;
use lab02::home::Home;
use lab02::layout::ImageStore;

/// kubia's Dockerfile (the book shows the file).
const KUBIA_DOCKERFILE: &str = include_str!("../kubia/Dockerfile");
/// Busybox's programs, no entrypoint: pods say what to run.
const BUSYBOX_DOCKERFILE: &str = "FROM scratch\nCOPY . /\nCMD [\"sh\"]\n";

/// The book's unhealthy kubia: the same program, told to fail from its
/// sixth request on.
const UNHEALTHY_DOCKERFILE: &str = "FROM scratch\nCOPY . /\nEXPOSE 8080\n\
    ENTRYPOINT [\"/kubia\", \"--addr\", \"0.0.0.0:8080\", \"--unhealthy-after\", \"5\"]\n";

/// The book's v2 of kubia, for chapter 5's rolling update.
const V2_DOCKERFILE: &str = "FROM scratch\nCOPY . /\nEXPOSE 8080\n\
    ENTRYPOINT [\"/kubia\", \"--addr\", \"0.0.0.0:8080\", \"--v2\"]\n";

/// The book's ssd-monitor (chapter 4's DaemonSet): busybox reporting on
/// the disk every 5 s.
const SSD_MONITOR_DOCKERFILE: &str = "FROM scratch\nCOPY . /\n\
    ENTRYPOINT [\"sh\", \"-c\", \"while true; do echo SSD OK; sleep 5; done\"]\n";

/// The book's batch-job (chapter 4's Job), which works for 120 s; ours
/// for 3 s, so that a test of completions runs in seconds.
const BATCH_JOB_DOCKERFILE: &str = "FROM scratch\nCOPY . /\n\
    ENTRYPOINT [\"sh\", \"-c\", \"echo $(date) Batch job starting; sleep 3; \
    echo $(date) Finished succesfully\"]\n";

pub const KUBIA: &str = "kubia:v1";
pub const KUBIA_V2: &str = "kubia:v2";
pub const KUBIA_UNHEALTHY: &str = "kubia-unhealthy:v1";
pub const BUSYBOX: &str = "busybox:1";
pub const SSD_MONITOR: &str = "ssd-monitor:v1";
pub const BATCH_JOB: &str = "batch-job:v1";

/// Every image [`build_all`] makes.
pub const ALL: [&str; 6] = [
    KUBIA,
    KUBIA_UNHEALTHY,
    KUBIA_V2,
    BUSYBOX,
    SSD_MONITOR,
    BATCH_JOB,
];

/// The kubia binary beside this program (cargo builds them together).
pub fn kubia_binary() -> Result<PathBuf> {
    std::env::current_exe()?
        .with_file_name("kubia")
        .canonicalize()
        .context("no kubia binary beside ch03: build it first (cargo build --bin kubia)")
}

fn build(
    home: &Home,
    store: &ImageStore,
    dockerfile: &str,
    context: &Path,
    tag: &str,
) -> Result<()> {
    let steps = lab02::build::parse(dockerfile)?;
    lab02::build::build(home, store, &steps, context, tag, &mut |_| {})
        .with_context(|| format!("build {tag}"))?;
    Ok(())
}

/// Builds kubia (three ways) and busybox (three ways) into `home`'s store
/// (scratch space in `work`).
pub fn build_all(home: &Home, work: &Path) -> Result<()> {
    let store = ImageStore::open(&home.images())?;
    let kubia = work.join("kubia-context");
    // A shell and a few tools beside kubia, as the book's node-based
    // image has: `kubectl exec` and an exec probe need something to run.
    RootfsBuilder::new()
        .busybox(true)
        .programs(["sh", "ls", "touch", "cat", "hostname", "wget"])
        .binary(kubia_binary()?, "/kubia")
        .build(&kubia)
        .context("kubia's build context")?;
    // Where the book's readiness probe looks for its file (/var/ready).
    std::fs::create_dir_all(kubia.join("var")).context("kubia's /var")?;
    build(home, &store, KUBIA_DOCKERFILE, &kubia, KUBIA)?;
    build(home, &store, UNHEALTHY_DOCKERFILE, &kubia, KUBIA_UNHEALTHY)?;
    build(home, &store, V2_DOCKERFILE, &kubia, KUBIA_V2)?;
    let busybox = work.join("busybox-context");
    RootfsBuilder::new()
        .busybox(true)
        .programs([
            "wget", "sh", "sleep", "cat", "ls", "hostname", "ip", "ifconfig",
            "nc", "date", "seq", "nslookup",
        ])
        .build(&busybox)
        .context("busybox's build context")?;
    build(home, &store, BUSYBOX_DOCKERFILE, &busybox, BUSYBOX)?;
    build(home, &store, SSD_MONITOR_DOCKERFILE, &busybox, SSD_MONITOR)?;
    build(home, &store, BATCH_JOB_DOCKERFILE, &busybox, BATCH_JOB)?;
    std::fs::write(recipe_file(home), RECIPE)
        .context("recording the images' recipe")?;
    Ok(())
}

/// What the images are made of, recorded beside the store when they are
/// built: a home whose record differs (built by an older kubelings, say
/// before kubia carried a shell) gets them built again.
const RECIPE: &str =
    "2: kubia with busybox's sh, ls, touch, cat, hostname, wget and /var\n";

fn recipe_file(home: &Home) -> PathBuf {
    home.root().join("book-images.recipe")
}

/// The book's images in `home`'s store, built unless every one is there
/// from the current recipe.
pub fn ensure(home: &Home) -> Result<()> {
    let store = ImageStore::open(&home.images())?;
    let have: Vec<String> =
        store.images()?.into_iter().map(|(n, _)| n).collect();
    let missing = ALL.iter().any(|tag| !have.iter().any(|n| n == tag));
    let current =
        std::fs::read_to_string(recipe_file(home)).is_ok_and(|r| r == RECIPE);
    if missing || !current {
        let work = tempfile::Builder::new()
            .prefix("kubelings-images-")
            .tempdir()?;
        build_all(home, work.path()).context("building the book's images")?;
    }
    Ok(())
}

/// `ch03 images`: the book's images into `home`'s store.
pub fn build_here(home: &Home) -> Result<u8> {
    let work = tempfile::Builder::new()
        .prefix("kubelings-images-")
        .tempdir()?;
    build_all(home, work.path())?;
    for tag in ALL {
        println!("{tag}");
    }
    Ok(0)
}

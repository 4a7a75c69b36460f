//! `ch02 bench`: build, push, pull and unpack a tree like a real base image
//! (about 110 MB of this machine's own shared libraries and documentation,
//! many small files) with kubelings, and the same trip with the real tools
//! (umoci repack, skopeo to Debian's docker-registry and back, umoci
//! unpack), in the same run, with a plain `tar -xzf` of the same layer
//! beside the unpack. A benchmark: it prints figures, it asserts nothing.
//!
//! The table is written and read back by the same code ([`Table::render`],
//! [`Table::parse`]), so `tests/bench_tables.rs` can check the copy saved in
//! the book, and the chart ([`Table::chart_svg`]) is drawn from it.

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
    /// Ship this directory instead of a copy of files from /usr.
    #[arg(long, value_name = "DIR", conflicts_with = "synthetic")]
    tree: Option<PathBuf>,
    /// Ship a made-up directory of big files instead (half random bytes,
    /// half text) of --size-mb MiB.
    #[arg(long)]
    synthetic: bool,
    /// Size of the --synthetic directory, in MiB.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=2048), requires = "synthetic")]
    size_mb: u64,
    /// Trips of each kind, taking turns; each figure is the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=50))]
    rounds: u32,
    /// Also write the table to FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Also draw both trips as an SVG bar chart, step by step, into FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<u8> {
    let work = tempfile::Builder::new()
        .prefix("kubelings-bench-")
        .tempdir()?;
    let context = work.path().join("context");
    let data = context.join("data");
    let source = match &args.tree {
        Some(tree) => {
            copy_tree(tree, &data, u64::MAX, u64::MAX)
                .with_context(|| format!("copy --tree {}", tree.display()))?;
            "--tree".to_string()
        }
        None if args.synthetic => {
            make_payload(&data, args.size_mb)?;
            "synthetic".to_string()
        }
        None => {
            usr_tree(&data)?;
            "from /usr".to_string()
        }
    };
    let (bytes, files) = tree_size(&data)?;

    // Every round makes both trips, from nothing, in fresh directories; the
    // two kinds take turns so that a busy moment of the machine does not
    // fall on one of them only.
    let mut samples: Vec<(String, Result<Vec<Duration>, String>)> = Vec::new();
    let mut add = |name: &str, took: Result<Duration, String>| {
        let at = match samples.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                samples.push((name.to_string(), Ok(Vec::new())));
                samples.len() - 1
            }
        };
        match (&mut samples[at].1, took) {
            (Ok(all), Ok(took)) => all.push(took),
            (entry @ Ok(_), Err(why)) => *entry = Err(why),
            (Err(_), _) => {}
        }
    };
    let mut peers_failed = false;
    for round in 0..args.rounds {
        let dir = work.path().join(format!("round-{round}"));
        for (what, took) in our_trip(&dir, &context)? {
            add(&what, Ok(took));
        }
        if !peers_failed {
            match peer_trip(&dir, &data) {
                Ok((steps, total)) => {
                    for (what, took) in steps {
                        add(&what, Ok(took));
                    }
                    add(PEERS, Ok(total));
                }
                Err(e) => {
                    peers_failed = true;
                    add(PEERS, Err(format!("{e:#}")));
                }
            }
        }
        // Each round's files stay until the end: on ext4 without a journal
        // (this machine's disk) a new inode skips those freed in the last
        // minute, at a cost per skipped inode, so deleting a round's
        // thousands of files would slow the next round's every create.
    }

    let table = Table {
        size_mb: (bytes + (1 << 19)) >> 20,
        files,
        source,
        rounds: args.rounds as usize,
        rows: samples
            .into_iter()
            .map(|(what, all)| (what, all.map(|all| to_table(median(all)))))
            .collect(),
    };
    let text = table.render();
    print!("{text}");
    if let Some(file) = &args.save {
        write_whole(file, &text)?;
    }
    if let Some(file) = &args.chart {
        write_whole(file, &table.chart_svg()?)?;
    }
    Ok(0)
}

fn median(mut all: Vec<Duration>) -> Duration {
    all.sort();
    all.get(all.len() / 2).copied().unwrap_or_default()
}

/// kubelings: build → push → pull into an empty store → unpack, then a
/// pull with everything present; each step's time and the trip's.
fn our_trip(dir: &Path, context: &Path) -> Result<Vec<(String, Duration)>> {
    let laptop = Home::at(dir.join("laptop"));
    let server = Home::at(dir.join("server"));
    let laptop_store = ImageStore::open(&laptop.images())?;
    let server_store = ImageStore::open(&server.images())?;
    let mut config = RegistryConfig::new(dir.join("registry"));
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
        context,
        &target.local_name(),
        &mut |_| {},
    )?;
    let built = start.elapsed();
    client.push(&laptop_store, &target.local_name(), &target)?;
    let pushed = start.elapsed();
    client.pull(&server_store, &target)?;
    let pulled = start.elapsed();
    let manifest =
        server_store.manifest(&server_store.resolve(&target.local_name())?)?;
    let rootfs = dir.join("ours-rootfs");
    std::fs::create_dir_all(&rootfs)?;
    for layer in manifest.layers() {
        let digest = lab02::spec::digest_of(layer)?;
        lab02::unpack::apply_layer(&rootfs, server_store.open_blob(&digest)?)?;
    }
    let total = start.elapsed();

    // The floor for an unpack: GNU tar (and gzip, in a process of its own)
    // extracting the same layer blob, as root keeping owners as we do.
    let plain = dir.join("tar-rootfs");
    std::fs::create_dir_all(&plain)?;
    let t = Instant::now();
    for layer in manifest.layers() {
        let digest = lab02::spec::digest_of(layer)?;
        exec(
            Command::new("tar")
                .arg("-xzf")
                .arg(server_store.blob_path(&digest))
                .arg("-C")
                .arg(&plain),
        )?;
    }
    let tar_took = t.elapsed();

    // Everything is present now: a pull only compares digests.
    let mut again = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        client.pull(&server_store, &target)?;
        again.push(t.elapsed());
    }
    registry.shutdown()?;
    Ok(vec![
        ("kubelings build".into(), built),
        ("kubelings push".into(), pushed - built),
        ("kubelings pull (empty store)".into(), pulled - pushed),
        ("kubelings unpack".into(), total - pulled),
        (TAR.into(), tar_took),
        (
            "kubelings pull (all present), median of 20".into(),
            median(again),
        ),
        (OURS.into(), total),
    ])
}

/// Written whole or not at all.
fn write_whole(file: &Path, text: &str) -> Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .with_context(|| format!("write {}", file.display()))
}

/// The row of lab02's whole trip, and of the real tools'.
pub const OURS: &str = "kubelings end to end";
pub const PEERS: &str = "umoci + skopeo + docker-registry end to end";
/// The row of a plain `tar -xzf` of the layer that `kubelings unpack` read.
pub const TAR: &str = "tar -xzf of the same layer";
pub const UNPACK: &str = "kubelings unpack";
/// The steps of each trip, in order, as the chart stacks them.
const OUR_STEPS: [&str; 4] = [
    "kubelings build",
    "kubelings push",
    "kubelings pull (empty store)",
    "kubelings unpack",
];
const PEER_STEPS: [&str; 4] = [
    "umoci repack",
    "skopeo copy to docker-registry",
    "skopeo copy back",
    "umoci unpack",
];
/// Width of the name column; a row is 63 columns wide.
const NAME: usize = 48;

/// Rounded to the table's precision (0.1 ms), so that the verdict is that
/// of the figures printed, and a table read back renders the same.
fn to_table(d: Duration) -> Duration {
    Duration::from_micros((d.as_micros() as u64 + 50) / 100 * 100)
}

/// The table `ch02 bench` prints and saves.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What was shipped: its size (MiB, rounded), its regular files, and
    /// where it came from ("from /usr", "synthetic", "--tree").
    pub size_mb: u64,
    pub files: u64,
    pub source: String,
    /// How many trips of each kind each figure is the median of.
    pub rounds: usize,
    /// Each step, and each trip's total; a trip that could not run says why.
    pub rows: Vec<(String, Result<Duration, String>)>,
}

/// The second line of every table.
const TRIP: &str = "build, push, pull into an empty store, unpack";

impl Table {
    pub fn get(&self, name: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|(what, _)| what == name)
            .and_then(|(_, took)| took.as_ref().ok().copied())
    }

    fn header(size_mb: u64, files: u64, source: &str) -> String {
        format!(
            "{size_mb} MiB in {files} files ({source}) over loopback:\n{TRIP}"
        )
    }

    /// Which trip was faster, and how many times; a ratio is never below 1.
    pub fn verdict(&self) -> Option<String> {
        let (ours, peers) = (self.get(OURS)?, self.get(PEERS)?);
        let ratio = peers.as_secs_f64() / ours.as_secs_f64();
        Some(if ratio >= 1.0 {
            format!("kubelings is {ratio:.1}x faster end to end")
        } else {
            format!("kubelings is {:.1}x slower end to end", 1.0 / ratio)
        })
    }

    /// How lab02's unpack compares with `tar -xzf` of the same layer.
    pub fn unpack_verdict(&self) -> Option<String> {
        let (ours, tar) = (self.get(UNPACK)?, self.get(TAR)?);
        let ratio = ours.as_secs_f64() / tar.as_secs_f64().max(1e-9);
        Some(format!("unpack took {ratio:.2}x the time of tar -xzf"))
    }

    fn rounds_line(rounds: usize) -> String {
        format!("each figure the median of {rounds} rounds, the two kinds taking turns")
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "{}\n",
            Table::header(self.size_mb, self.files, &self.source)
        );
        if self.rounds > 1 {
            out += &format!("{}\n", Table::rounds_line(self.rounds));
        }
        out.push('\n');
        for (what, took) in &self.rows {
            out += &match took {
                Ok(took) => format!(
                    "{what:<NAME$}{:>12.1} ms\n",
                    took.as_secs_f64() * 1e3
                ),
                Err(why) => format!("{what}\n  failed: {why}\n"),
            };
        }
        let verdicts: Vec<String> = [self.verdict(), self.unpack_verdict()]
            .into_iter()
            .flatten()
            .collect();
        if !verdicts.is_empty() {
            out += &format!("\n{}\n", verdicts.join("\n"));
        }
        out
    }

    /// Reads back what [`Table::render`] wrote.
    #[allow(dead_code)] // by tests/bench_tables.rs
    pub fn parse(text: &str) -> Result<Table> {
        let mut lines = text.lines();
        let first = lines.next().context("empty table")?;
        let second = lines.next().context("no second line")?;
        let bad = || format!("unexpected first lines {first:?}, {second:?}");
        let (size, rest) = first.split_once(" MiB in ").with_context(bad)?;
        let (files, rest) = rest.split_once(" files (").with_context(bad)?;
        let source = rest.strip_suffix(") over loopback:").with_context(bad)?;
        let size_mb: u64 = size.parse().with_context(bad)?;
        let files: u64 = files.parse().with_context(bad)?;
        if format!("{first}\n{second}") != Table::header(size_mb, files, source)
        {
            bail!(bad());
        }
        let mut rounds = 1;
        let mut lines = lines.peekable();
        if let Some(n) = lines
            .peek()
            .and_then(|l| l.strip_prefix("each figure the median of "))
            .and_then(|l| l.split_once(' '))
            .and_then(|(n, _)| n.parse().ok())
        {
            rounds = n;
            let line = lines.next().unwrap_or_default();
            if line != Table::rounds_line(rounds) {
                bail!("unexpected third line {line:?}");
            }
        }
        let mut rows: Vec<(String, Result<Duration, String>)> = Vec::new();
        for line in lines {
            if line.is_empty()
                || line.starts_with("kubelings is ")
                || line.starts_with("unpack took ")
            {
                continue;
            }
            if let Some(why) = line.strip_prefix("  failed: ") {
                let last =
                    rows.last_mut().context("a failure before any row")?;
                last.1 = Err(why.to_string());
                continue;
            }
            match line.strip_suffix(" ms").and_then(|l| l.rsplit_once(' ')) {
                Some((what, took)) => {
                    let ms: f64 =
                        took.parse().with_context(|| format!("in {line:?}"))?;
                    let took =
                        Duration::from_micros((ms * 10.0).round() as u64 * 100);
                    rows.push((what.trim_end().to_string(), Ok(took)));
                }
                None => rows.push((line.to_string(), Err(String::new()))),
            }
        }
        Ok(Table {
            size_mb,
            files,
            source: source.to_string(),
            rounds,
            rows,
        })
    }

    /// Both trips as stacked horizontal bars, one segment per step, so the
    /// totals compare at a glance and each step's share shows.
    pub fn chart_svg(&self) -> Result<String> {
        use plotters::prelude::*;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let trips: Vec<(&str, Vec<f64>)> = [
            ("kubelings", &OUR_STEPS),
            ("umoci + skopeo + registry", &PEER_STEPS),
        ]
        .into_iter()
        .map(|(name, steps)| {
            let ms = steps
                .iter()
                .map(|s| self.get(s).map_or(0.0, |d| d.as_secs_f64() * 1e3))
                .collect();
            (name, ms)
        })
        .collect();
        let longest = trips
            .iter()
            .map(|(_, ms)| ms.iter().sum::<f64>())
            .fold(1.0f64, f64::max);
        // Room right of the longest bar for its total.
        let right = (longest * 1.25 / 500.0).ceil() * 500.0;
        let colours = [
            RGBColor(0x1b, 0x6f, 0xa8),
            RGBColor(0xd9, 0x5f, 0x02),
            RGBColor(0x1b, 0x9e, 0x77),
            RGBColor(0x75, 0x70, 0xb3),
        ];
        let legend = [
            "build / repack",
            "push / copy to",
            "pull / copy back",
            "unpack",
        ];
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, 340))
                .into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    format!(
                        "{} MiB in {} files over loopback: build, push, pull, unpack",
                        self.size_mb, self.files
                    ),
                    ("sans-serif", 20),
                )
                .margin(12)
                .x_label_area_size(44)
                .y_label_area_size(200)
                // Discrete ranges include their end: 0..=2 is a row for
                // each trip and one on top, for the legend.
                .build_cartesian_2d(0.0..right, (0..trips.len()).into_segmented())?;
            let names: Vec<&str> =
                trips.iter().rev().map(|(n, _)| *n).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(trips.len())
                .y_label_style(("sans-serif", 15))
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => {
                        names.get(*i).unwrap_or(&"").to_string()
                    }
                    _ => String::new(),
                })
                .x_label_style(("sans-serif", 13))
                .x_label_formatter(&|v| format!("{v:.0}"))
                .x_desc("milliseconds")
                .axis_desc_style(("sans-serif", 14))
                .bold_line_style(RGBColor(220, 220, 220))
                .light_line_style(TRANSPARENT)
                .draw()?;
            for (step, colour) in colours.iter().enumerate() {
                let mut bars = Vec::new();
                for (i, (_, ms)) in trips.iter().rev().enumerate() {
                    let from: f64 = ms[..step].iter().sum();
                    let mut bar = Rectangle::new(
                        [
                            (from, SegmentValue::Exact(i)),
                            (from + ms[step], SegmentValue::Exact(i + 1)),
                        ],
                        colour.filled(),
                    );
                    bar.set_margin(14, 14, 0, 1);
                    bars.push(bar);
                }
                chart.draw_series(bars)?.label(legend[step]).legend(
                    move |(x, y)| {
                        Rectangle::new(
                            [(x, y - 6), (x + 14, y + 6)],
                            colour.filled(),
                        )
                    },
                );
            }
            let totals = [OURS, PEERS]
                .map(|t| self.get(t).map(|d| d.as_secs_f64() * 1e3));
            for (i, ((_, ms), total)) in
                trips.iter().zip(totals).rev().enumerate()
            {
                // The trip's own total: the steps' rounded figures may not add up to it.
                let total = total.unwrap_or_else(|| ms.iter().sum());
                chart.draw_series(std::iter::once(Text::new(
                    format!("{total:.1} ms"),
                    (total + right / 80.0, SegmentValue::CenterOf(i)),
                    ("sans-serif", 14)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                )))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(200, 200, 200))
                .draw()?;
            root.present()?;
        }
        Ok(svg)
    }
}

/// Where the default tree comes from, and how many bytes of regular files
/// each gives: shared libraries, then documentation, as in a base image.
fn usr_sources() -> [(String, u64); 2] {
    [
        (
            format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH),
            60_000_000,
        ),
        ("/usr/share/doc".to_string(), 50_000_000),
    ]
}

/// Files bigger than this are left out: a base image is mostly small files,
/// and a few huge ones (LLVM, ICU data) would make it a test of bandwidth.
const USR_FILE_CAP: u64 = 1 << 20;

/// A copy of files from this machine's /usr under `data` (`data/usr/...`):
/// each source walked in sorted order, taking regular files, directories and
/// symlinks until its budget is spent, skipping what cannot be read and
/// special files, so every run on a machine ships the same tree.
fn usr_tree(data: &Path) -> Result<()> {
    for (source, budget) in usr_sources() {
        let source = Path::new(&source);
        if !source.is_dir() {
            continue;
        }
        let to = data.join(source.strip_prefix("/").unwrap_or(source));
        let mut budget = Budget {
            left: budget,
            cap: USR_FILE_CAP,
            spent: false,
        };
        copy_walk(source, &to, &mut budget)
            .with_context(|| format!("copy {}", source.display()))?;
    }
    let (_, files) = tree_size(data)?;
    if files == 0 {
        bail!(
            "found no files to copy under {}: pass a tree with --tree DIR",
            usr_sources().map(|(s, _)| s).join(" or ")
        );
    }
    Ok(())
}

struct Budget {
    /// Bytes of regular files still to take.
    left: u64,
    /// The largest regular file taken.
    cap: u64,
    /// Set once a file did not fit: the walk stops there.
    spent: bool,
}

/// `from` copied to `to`, all of it: what `--tree DIR` ships.
fn copy_tree(from: &Path, to: &Path, left: u64, cap: u64) -> Result<()> {
    if !from.is_dir() {
        bail!("not a directory");
    }
    let mut budget = Budget {
        left,
        cap,
        spent: false,
    };
    copy_walk(from, to, &mut budget)
}

fn copy_walk(from: &Path, to: &Path, budget: &mut Budget) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to)
        .with_context(|| format!("create {}", to.display()))?;
    let Ok(entries) = std::fs::read_dir(from) else {
        // Unreadable: left out, like an unreadable file.
        return Ok(());
    };
    let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.sort();
    for name in names {
        if budget.spent {
            break;
        }
        let (src, dst) = (from.join(&name), to.join(&name));
        let Ok(meta) = src.symlink_metadata() else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            copy_walk(&src, &dst, budget)?;
            let mode = meta.permissions().mode() & 0o7777;
            std::fs::set_permissions(
                &dst,
                std::fs::Permissions::from_mode(mode),
            )?;
        } else if kind.is_symlink() {
            if let Ok(target) = std::fs::read_link(&src) {
                std::os::unix::fs::symlink(target, &dst)
                    .with_context(|| format!("symlink {}", dst.display()))?;
            }
        } else if kind.is_file() {
            if meta.len() > budget.cap {
                continue;
            }
            if meta.len() > budget.left {
                budget.spent = true;
                break;
            }
            // std::fs::copy keeps the mode; an unreadable file is skipped.
            if std::fs::copy(&src, &dst).is_ok() {
                budget.left -= meta.len();
            } else {
                let _ = std::fs::remove_file(&dst);
            }
        }
    }
    Ok(())
}

/// Bytes of regular files under `dir`, and how many there are.
fn tree_size(dir: &Path) -> Result<(u64, u64)> {
    let (mut bytes, mut files) = (0, 0);
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
    {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        if meta.is_dir() {
            let (b, f) = tree_size(&entry.path())?;
            bytes += b;
            files += f;
        } else if meta.is_file() {
            bytes += meta.len();
            files += 1;
        }
    }
    Ok((bytes, files))
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
            let line = format!(
                "line {i}: the quick brown fox jumps over the lazy dog\n"
            );
            for (j, b) in bytes.iter_mut().enumerate() {
                *b = line.as_bytes()[j % line.len()];
            }
        }
        std::fs::write(dir.join(format!("file-{i:04}")), bytes)?;
    }
    Ok(())
}

/// umoci repack → skopeo copy to docker-registry → skopeo copy back → umoci unpack.
fn peer_trip(
    work: &Path,
    data: &Path,
) -> Result<(Vec<(String, Duration)>, Duration)> {
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

//! `ch01 startup`: how long it takes to start `true` and see it exit, with
//! more and more isolation around it. A benchmark, not a test: it prints
//! figures for the book. It fails only when the container row itself could
//! not be measured; any other row that fails says so in the table.
//!
//! The table is written and read back by the same code ([`Table::render`],
//! [`Table::parse`]), so `tests/bench_tables.rs` can check the copy saved in
//! the book, and the chart ([`Table::chart_svg`]) is drawn from it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use lab01::{Container, ContainerSpec, Resources, RootfsBuilder};

#[derive(clap::Args)]
pub struct Args {
    /// Runs per row (the VM row does at most 3).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    runs: u32,
    /// Leave out the VM row (it takes a minute or more without KVM).
    #[arg(long)]
    skip_vm: bool,
    /// Also write the table, with a line describing this machine, to FILE.
    #[arg(long, value_name = "FILE")]
    save: Option<PathBuf>,
    /// Also draw the medians as an SVG bar chart (log scale) into FILE.
    #[arg(long, value_name = "FILE")]
    chart: Option<PathBuf>,
}

/// The row every other is compared with.
pub const CONTAINER: &str = "ch01 container";
/// The most VM boots a run makes: each takes seconds under emulation.
const VM_RUNS: usize = 3;
/// Widths of the table's columns; a row is 68 columns wide.
const NAME: usize = 26;
const FIGURE: usize = 13;
const RATIO: usize = 16;
/// Longest line of the table, as the book's listings.
pub const WIDTH: usize = 80;

pub fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("ch01 startup needs root (namespaces, cgroups, runc): run it with sudo");
    }
    let temp = tempfile::Builder::new()
        .prefix("kubelings-startup-")
        .tempdir()
        .context("create a temporary directory")?;
    let rootfs = temp.path().join("rootfs");
    RootfsBuilder::new()
        .build(&rootfs)
        .context("build the rootfs")?;
    let runs = args.runs as usize;

    let container =
        ContainerSpec::new(["true"])
            .rootfs(&rootfs)
            .resources(Resources {
                memory: Some(64 << 20),
                pids: Some(64),
                cpu: None,
            });
    let mut lanes: Vec<(String, Outcome<Once>)> = vec![
        (
            "plain process".into(),
            Outcome::Measured(Box::new(|| {
                Command::new("true")
                    .status()
                    .map_err(|e| e.to_string())
                    .and_then(|s| exited_well("true", s))
            })),
        ),
        (
            "namespaces only".into(),
            Outcome::Measured(Box::new(|| {
                let mut spec = ContainerSpec::new(["true"]);
                spec.cgroup = false;
                run_container(&spec)
            })),
        ),
        (
            CONTAINER.into(),
            Outcome::Measured(Box::new(|| run_container(&container))),
        ),
    ];
    lanes.push(match lab01::probe::find_program("runc") {
        Some(runc) => {
            let name = runc_version(&runc);
            match runc_once(runc, &rootfs, temp.path()) {
                Ok(once) => (name, Outcome::Measured(once)),
                Err(why) => (name, Outcome::Failed(why)),
            }
        }
        None => (
            "runc".into(),
            Outcome::Skipped(
                "runc is not installed (apt-get install runc)".into(),
            ),
        ),
    });
    let mut rows = take_turns(lanes, runs);
    let mut notes = Vec::new();
    if args.skip_vm {
        rows.push(Row::skipped("VM boot (qemu)", "--skip-vm"));
    } else {
        let (row, note) = vm_boot(runs.min(VM_RUNS));
        rows.push(row);
        notes.extend(note);
    }
    let table = Table {
        machine: machine(),
        runs,
        vm_runs: (!args.skip_vm && runs > VM_RUNS).then_some(VM_RUNS),
        lines: rows.iter().map(Row::line).collect(),
        notes,
    };
    let text = table.render();
    print!("{text}");
    if let Some(Line {
        outcome: Outcome::Failed(why),
        ..
    }) = table.line(CONTAINER)
    {
        // Nothing to compare with: save neither table nor chart.
        bail!("the {CONTAINER} row failed: {why}");
    }
    if let Some(file) = &args.save {
        write_whole(file, &text)?;
    }
    if let Some(file) = &args.chart {
        write_whole(file, &table.chart_svg()?)?;
    }
    Ok(())
}

/// Written whole or not at all.
fn write_whole(file: &Path, text: &str) -> Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, file)
        .with_context(|| format!("write {}", file.display()))
}

/// One line on what the figures were measured on.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let host = lab01::probe::probe();
    format!(
        "{model}, {cores} cores, Linux {}, cgroups {}",
        host.kernel, host.cgroups
    )
}

fn exited_well(what: &str, status: impl ExitedWell) -> Result<(), String> {
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} {status}"))
    }
}

/// The standard library's exit status and lab01's alike.
trait ExitedWell: std::fmt::Display {
    fn success(&self) -> bool;
}

impl ExitedWell for std::process::ExitStatus {
    fn success(&self) -> bool {
        std::process::ExitStatus::success(self)
    }
}

impl ExitedWell for lab01::ExitStatus {
    fn success(&self) -> bool {
        lab01::ExitStatus::success(self)
    }
}

fn run_container(spec: &ContainerSpec) -> Result<(), String> {
    let mut c = Container::spawn(spec).map_err(|e| e.to_string())?;
    let status = c.wait().map_err(|e| e.to_string())?;
    exited_well("true", status)
}

fn time(
    runs: usize,
    mut once: impl FnMut() -> Result<(), String>,
) -> Result<Vec<Duration>, String> {
    once()?; // warm-up: page cache, first-use allocations
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        once()?;
        all.push(start.elapsed());
    }
    Ok(all)
}

/// One start of one row, to be timed.
type Once<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;

/// Times every row's start `runs` times, the rows taking turns (one run of
/// each, then the next round), so that a busy moment of the machine falls
/// on all of them alike rather than on whichever row was running. A row
/// that fails once is measured no more and reads "failed".
fn take_turns(lanes: Vec<(String, Outcome<Once>)>, runs: usize) -> Vec<Row> {
    let mut lanes: Vec<(String, Outcome<Once>, Vec<Duration>)> = lanes
        .into_iter()
        .map(|(name, mut once)| {
            // Warm-up: page cache, first-use allocations.
            if let Outcome::Measured(f) = &mut once {
                if let Err(why) = f() {
                    once = Outcome::Failed(why);
                }
            }
            (name, once, Vec::with_capacity(runs))
        })
        .collect();
    for _ in 0..runs {
        for (_, once, all) in &mut lanes {
            if let Outcome::Measured(f) = once {
                let start = Instant::now();
                match f() {
                    Ok(()) => all.push(start.elapsed()),
                    Err(why) => *once = Outcome::Failed(why),
                }
            }
        }
    }
    lanes
        .into_iter()
        .map(|(name, once, all)| Row {
            name,
            result: match once {
                Outcome::Measured(_) => Outcome::Measured(all),
                Outcome::Skipped(why) => Outcome::Skipped(why),
                Outcome::Failed(why) => Outcome::Failed(why),
            },
        })
        .collect()
}

fn runc_version(runc: &str) -> String {
    Command::new(runc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| l.replace(" version", ""))
        })
        .filter(|name| name.starts_with("runc") && name.len() < NAME)
        .unwrap_or_else(|| "runc".into())
}

/// runc runs an OCI bundle of the same rootfs. Its cgroups go beneath ours:
/// left alone, runc would create them at the root of every hierarchy.
fn runc_once<'a>(
    runc: String,
    rootfs: &Path,
    work: &Path,
) -> Result<Once<'a>, String> {
    let bundle = work.join("bundle");
    let state = work.join("runc-state");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let status = Command::new(&runc)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .map_err(|e| format!("runc spec: {e}"))?;
    if !status.success() {
        return Err(format!("runc spec exited with {status}"));
    }
    let config_path = bundle.join("config.json");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| e.to_string())?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["root"]["path"] = rootfs.display().to_string().into();
    let cgroups =
        lab01::cgroup::peer::PeerCgroups::new().map_err(|e| e.to_string())?;
    let mut n = 0;
    Ok(Box::new(move || {
        n += 1;
        let id = format!("kubelings-bench-{}-{n}", std::process::id());
        config["linux"]["cgroupsPath"] = cgroups.path_for(&id).into();
        std::fs::write(&config_path, config.to_string())
            .map_err(|e| e.to_string())?;
        let status = Command::new(&runc)
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("runc run: {e}"))?;
        exited_well("runc run", status)
    }))
}

/// Boots a kernel under qemu until it gives up looking for a root
/// filesystem: the part of a VM's start that a container never has.
/// KVM where it works, else QEMU's software emulation (TCG), which the
/// note returned says, with the reason.
fn vm_boot(runs: usize) -> (Row, Option<String>) {
    let Some(qemu) = lab01::probe::find_program("qemu-system-x86_64") else {
        let why = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 linux-image-amd64)";
        return (Row::skipped("VM boot (qemu)", why), None);
    };
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
    });
    let Some(kernel) = kernel else {
        let why =
            "no kernel image in /boot (apt-get install linux-image-amd64)";
        return (Row::skipped("VM boot (qemu)", why), None);
    };
    let boot = |accel: &str, timeout: Duration| -> Result<(), String> {
        let mut child = Command::new(&qemu)
            .args([
                "-accel", accel, "-m", "256", "-display", "none", "-monitor",
                "none",
            ])
            .args(["-serial", "null", "-no-reboot", "-kernel"])
            .arg(&kernel)
            // No root filesystem: the kernel panics once booted, and
            // -no-reboot turns its reboot into qemu's exit.
            .args(["-append", "console=ttyS0 panic=-1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("qemu: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "no exit within {} s",
                        timeout.as_secs()
                    ));
                }
            }
        }
    };
    // A KVM boot takes a second or two; one that has not ended by then
    // hangs (as it does on some nested virtual machines).
    let kvm = if Path::new("/dev/kvm").exists() {
        boot("kvm", KVM_TIMEOUT)
    } else {
        Err("there is no /dev/kvm".into())
    };
    match kvm {
        Ok(()) => (
            Row::measured(
                "VM boot (qemu, kvm)",
                time(runs, || boot("kvm", VM_TIMEOUT)),
            ),
            None,
        ),
        Err(why) => {
            let why = why.replace("no exit", "its boot did not end");
            let note =
                format!("tcg: QEMU emulates the processor in software (TCG), without KVM: {why}.");
            (
                Row::measured(
                    "VM boot (qemu, tcg)",
                    time(runs, || boot("tcg", VM_TIMEOUT)),
                ),
                Some(note),
            )
        }
    }
}

const KVM_TIMEOUT: Duration = Duration::from_secs(15);
const VM_TIMEOUT: Duration = Duration::from_secs(60);

/// A row as measured: every run's time, or why there is none.
struct Row {
    name: String,
    result: Outcome<Vec<Duration>>,
}

impl Row {
    fn measured(name: &str, result: Result<Vec<Duration>, String>) -> Row {
        let result = match result {
            Ok(all) => Outcome::Measured(all),
            Err(why) => Outcome::Failed(why),
        };
        Row {
            name: name.into(),
            result,
        }
    }

    fn skipped(name: &str, why: &str) -> Row {
        Row {
            name: name.into(),
            result: Outcome::Skipped(why.into()),
        }
    }

    /// The row as the table shows it: median and p90, to 10 µs.
    fn line(&self) -> Line {
        let outcome = match &self.result {
            Outcome::Measured(all) => {
                let mut d = all.clone();
                d.sort();
                Outcome::Measured(Figures {
                    median: to_table(percentile(&d, 0.5)),
                    p90: to_table(percentile(&d, 0.9)),
                })
            }
            Outcome::Skipped(why) => Outcome::Skipped(why.clone()),
            Outcome::Failed(why) => Outcome::Failed(why.clone()),
        };
        Line {
            name: self.name.clone(),
            outcome,
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Rounded to the table's precision (0.01 ms), so that the ratios are those
/// of the figures printed, and a table read back renders the same.
fn to_table(d: Duration) -> Duration {
    Duration::from_micros((d.as_micros() as u64 + 5) / 10 * 10)
}

/// What became of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    Measured(T),
    /// Not attempted (a tool missing, or left out on purpose).
    Skipped(String),
    /// Attempted, and it went wrong.
    Failed(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub median: Duration,
    pub p90: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub outcome: Outcome<Figures>,
}

/// The table `ch01 startup` prints and saves.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// CPU, cores, kernel, cgroups.
    pub machine: String,
    pub runs: usize,
    /// How many boots the VM row made, when fewer than the other rows' runs.
    pub vm_runs: Option<usize>,
    pub lines: Vec<Line>,
    /// Remarks printed below the rows (how the VM row was measured).
    pub notes: Vec<String>,
}

const HEADER_INTRO: &str = "start-to-exit latency of `true`, ";

impl Table {
    pub fn line(&self, name: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.name == name)
    }

    fn container_median(&self) -> Option<Duration> {
        match self.line(CONTAINER)?.outcome {
            Outcome::Measured(f) => Some(f.median),
            _ => None,
        }
    }

    /// A row's median over the container's, as the table prints it.
    pub fn ratio(&self, name: &str) -> Option<String> {
        let c = self.container_median()?;
        match self.line(name)?.outcome {
            Outcome::Measured(f) if !c.is_zero() => {
                let r = f.median.as_secs_f64() / c.as_secs_f64();
                // Two decimals where one would round a small ratio to 0.0x.
                Some(if r < 0.095 {
                    format!("{r:.2}x")
                } else {
                    format!("{r:.1}x")
                })
            }
            _ => None,
        }
    }

    pub fn render(&self) -> String {
        let mut out = wrap(&format!("machine: {}", self.machine), 2);
        out.push('\n');
        let vm = self
            .vm_runs
            .map(|n| format!(", {n} for the VM"))
            .unwrap_or_default();
        out +=
            &wrap(&format!("{HEADER_INTRO}{} runs per row{vm}", self.runs), 2);
        out.push('\n');
        out += &format!(
            "{:<NAME$}{:>FIGURE$}{:>FIGURE$}{:>RATIO$}\n",
            "", "median", "p90", "vs container"
        );
        for line in &self.lines {
            match &line.outcome {
                Outcome::Measured(f) => {
                    out += &format!(
                        "{:<NAME$}{:>FIGURE$}{:>FIGURE$}{:>RATIO$}\n",
                        line.name,
                        ms(f.median),
                        ms(f.p90),
                        self.ratio(&line.name).unwrap_or_else(|| "-".into())
                    )
                }
                Outcome::Skipped(why) => {
                    out += &wrap(
                        &format!("{:<NAME$}  skipped: {why}", line.name),
                        NAME + 2,
                    )
                }
                Outcome::Failed(why) => {
                    out += &wrap(
                        &format!("{:<NAME$}  failed: {why}", line.name),
                        NAME + 2,
                    )
                }
            }
        }
        for note in &self.notes {
            out.push('\n');
            out += &wrap(note, 2);
        }
        out
    }

    /// Reads back what [`Table::render`] wrote.
    #[allow(dead_code)] // by tests/bench_tables.rs
    pub fn parse(text: &str) -> Result<Table> {
        let paragraphs = paragraphs(text);
        let mut parts = paragraphs.iter();
        let machine = parts
            .next()
            .and_then(|p| p.first())
            .and_then(|l| l.strip_prefix("machine: "))
            .context("no `machine:` line first")?
            .to_string();
        let runs_line = parts
            .next()
            .and_then(|p| p.first())
            .and_then(|l| l.strip_prefix(HEADER_INTRO))
            .context("no line saying how many runs")?;
        let (runs, vm) = runs_line
            .split_once(" runs per row")
            .context("no `runs per row`")?;
        let runs: usize = runs.parse().context("runs per row")?;
        let vm_runs = match vm.strip_prefix(", ") {
            Some(n) => Some(
                n.strip_suffix(" for the VM")
                    .and_then(|n| n.parse().ok())
                    .with_context(|| {
                        format!("unexpected {vm:?} after `runs per row`")
                    })?,
            ),
            None if vm.is_empty() => None,
            None => bail!("unexpected {vm:?} after `runs per row`"),
        };
        let rows = parts.next().context("no rows")?;
        let (header, rows) = rows.split_first().context("no header")?;
        if header.split_whitespace().collect::<Vec<_>>()
            != ["median", "p90", "vs", "container"]
        {
            bail!("unexpected header {header:?}");
        }
        let mut lines = Vec::new();
        for row in rows {
            let (name, rest) = row
                .split_once("  ")
                .with_context(|| format!("no columns in {row:?}"))?;
            let rest = rest.trim_start();
            let outcome = if let Some(why) = rest.strip_prefix("skipped: ") {
                Outcome::Skipped(why.into())
            } else if let Some(why) = rest.strip_prefix("failed: ") {
                Outcome::Failed(why.into())
            } else {
                let cells: Vec<&str> = rest.split_whitespace().collect();
                let [median, "ms", p90, "ms", _ratio] = cells[..] else {
                    bail!("row {row:?} is not `NAME  N ms  N ms  N.Nx`");
                };
                Outcome::Measured(Figures {
                    median: parse_ms(median)?,
                    p90: parse_ms(p90)?,
                })
            };
            lines.push(Line {
                name: name.trim().into(),
                outcome,
            });
        }
        let notes = parts.map(|p| p.join(" ")).collect();
        Ok(Table {
            machine,
            runs,
            vm_runs,
            lines,
            notes,
        })
    }

    /// The medians as horizontal bars on a log scale, one per row in the
    /// table's order; a row without figures says why it has no bar.
    pub fn chart_svg(&self) -> Result<String> {
        use plotters::prelude::*;
        use plotters::style::text_anchor::{HPos, Pos, VPos};
        let n = self.lines.len();
        let max = self
            .lines
            .iter()
            .filter_map(|l| match l.outcome {
                Outcome::Measured(f) => Some(f.median.as_secs_f64() * 1e3),
                _ => None,
            })
            .fold(1.0f64, f64::max);
        // Whole decades, with room right of the longest bar for its label.
        let top = 10f64.powf((max * 8.0).log10().ceil());
        let bottom = 0.1;
        let height = 90 + 44 * n as u32;
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (800, height))
                .into_drawing_area();
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(
                    "start-to-exit latency of `true`, median",
                    ("sans-serif", 20),
                )
                .margin(12)
                .margin_right(36)
                .x_label_area_size(44)
                .y_label_area_size(190)
                // Discrete ranges include their end: n rows are 0..=n-1.
                .build_cartesian_2d(
                    (bottom..top).log_scale(),
                    (0..n.saturating_sub(1)).into_segmented(),
                )?;
            let names: Vec<&str> =
                self.lines.iter().rev().map(|l| l.name.as_str()).collect();
            chart
                .configure_mesh()
                .disable_y_mesh()
                .y_labels(n)
                .y_label_style(("sans-serif", 15))
                .y_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => {
                        names.get(*i).unwrap_or(&"").to_string()
                    }
                    _ => String::new(),
                })
                .x_label_style(("sans-serif", 13))
                .x_label_formatter(&|v| match *v {
                    v if v >= 1000.0 => format!("{:.0} s", v / 1000.0),
                    v if v >= 1.0 => format!("{v:.0} ms"),
                    v => format!("{v} ms"),
                })
                .x_desc("log scale: each line 10 times the one before")
                .axis_desc_style(("sans-serif", 14))
                .bold_line_style(RGBColor(220, 220, 220))
                .light_line_style(TRANSPARENT)
                .draw()?;
            for (i, line) in self.lines.iter().rev().enumerate() {
                match &line.outcome {
                    Outcome::Measured(f) => {
                        let v = (f.median.as_secs_f64() * 1e3).max(bottom);
                        let colour = if line.name == CONTAINER {
                            RGBColor(0xd9, 0x5f, 0x02)
                        } else {
                            RGBColor(0x1b, 0x6f, 0xa8)
                        };
                        let mut bar = Rectangle::new(
                            [
                                (bottom, SegmentValue::Exact(i)),
                                (v, SegmentValue::Exact(i + 1)),
                            ],
                            colour.filled(),
                        );
                        bar.set_margin(9, 9, 0, 0);
                        chart.draw_series(std::iter::once(bar))?;
                        chart.draw_series(std::iter::once(Text::new(
                            format!("{} ms", fmt_ms(f.median)),
                            (v * 1.15, SegmentValue::CenterOf(i)),
                            ("sans-serif", 14)
                                .into_font()
                                .color(&BLACK)
                                .pos(Pos::new(HPos::Left, VPos::Center)),
                        )))?;
                    }
                    Outcome::Skipped(_) | Outcome::Failed(_) => {
                        let what = match line.outcome {
                            Outcome::Skipped(_) => "skipped",
                            _ => "failed",
                        };
                        chart.draw_series(std::iter::once(Text::new(
                            what.to_string(),
                            (bottom * 1.2, SegmentValue::CenterOf(i)),
                            ("sans-serif", 14)
                                .into_font()
                                .color(&RGBColor(120, 120, 120)),
                        )))?;
                    }
                }
            }
            root.present()?;
        }
        Ok(svg)
    }
}

/// A duration as the table prints it, in milliseconds.
fn fmt_ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn ms(d: Duration) -> String {
    format!("{} ms", fmt_ms(d))
}

fn parse_ms(text: &str) -> Result<Duration> {
    let v: f64 = text.parse().with_context(|| format!("{text:?} ms"))?;
    Ok(Duration::from_micros((v * 100.0).round() as u64 * 10))
}

/// Breaks `text` at spaces into lines of at most [`WIDTH`] columns, every
/// line but the first indented by `indent`; each line ends in a newline.
/// Spaces inside a line (a row's padding) are kept.
pub fn wrap(text: &str, indent: usize) -> String {
    let prefix = " ".repeat(indent);
    let options = textwrap::Options::new(WIDTH)
        .subsequent_indent(&prefix)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        .break_words(false);
    // fill() would squeeze nothing, but trims each line's end; a row's
    // inner padding stays.
    let mut out = textwrap::fill(text, options);
    out.push('\n');
    out
}

/// Blank-line-separated paragraphs, each a list of logical lines: a line
/// indented by [`wrap`] is joined to the one before.
fn paragraphs(text: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new()];
    for raw in text.lines() {
        if raw.trim().is_empty() {
            if out.last().is_some_and(|p| !p.is_empty()) {
                out.push(Vec::new());
            }
            continue;
        }
        let current = out.last_mut().expect("never empty");
        match current.last_mut() {
            Some(last) if raw.starts_with(' ') => {
                last.push(' ');
                last.push_str(raw.trim_start());
            }
            _ => current.push(raw.to_string()),
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

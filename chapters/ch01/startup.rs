//! `ch01 startup`: how long it takes to start `true` and see it exit, with
//! more and more isolation around it. A benchmark, not a test: it prints
//! figures for the book and asserts nothing.

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
}

struct Row {
    name: String,
    result: Result<Vec<Duration>, String>,
}

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

    let mut rows = vec![
        Row {
            name: "plain process".into(),
            result: time(runs, || {
                Command::new("true")
                    .status()
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
        },
        Row {
            name: "namespaces only".into(),
            result: time(runs, || {
                let mut spec = ContainerSpec::new(["true"]);
                spec.cgroup = false;
                run_container(&spec)
            }),
        },
        Row {
            name: "ch01 container".into(),
            result: time(runs, || {
                let spec = ContainerSpec::new(["true"])
                    .rootfs(&rootfs)
                    .resources(Resources {
                        memory: Some(64 << 20),
                        pids: Some(64),
                        cpu: None,
                    });
                run_container(&spec)
            }),
        },
    ];
    rows.push(match lab01::probe::find_program("runc") {
        Some(runc) => Row {
            name: runc_version(&runc),
            result: runc_rows(&runc, &rootfs, temp.path(), runs),
        },
        None => Row {
            name: "runc".into(),
            result: Err("skipped: runc is not installed (apt-get install runc)".into()),
        },
    });
    let (name, result) = if args.skip_vm {
        ("VM boot (qemu)".into(), Err("skipped: --skip-vm".into()))
    } else {
        vm_boot(runs.min(3))
    };
    rows.push(Row { name, result });
    let table = format!("{}\n{}", machine(), table(&rows, runs));
    print!("{table}");
    if let Some(file) = args.save {
        // Written whole or not at all.
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, &table).with_context(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &file).with_context(|| format!("write {}", file.display()))?;
    }
    Ok(())
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
        "machine: {model}, {cores} cores, Linux {}, cgroups {}\n",
        host.kernel, host.cgroups
    )
}

fn run_container(spec: &ContainerSpec) -> Result<(), String> {
    let mut c = Container::spawn(spec).map_err(|e| e.to_string())?;
    let status = c.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("true {status}"))
    }
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
        .unwrap_or_else(|| "runc".into())
}

/// runc runs an OCI bundle of the same rootfs. Its cgroups go beneath ours:
/// left alone, runc would create them at the root of every hierarchy.
fn runc_rows(runc: &str, rootfs: &Path, work: &Path, runs: usize) -> Result<Vec<Duration>, String> {
    let bundle = work.join("bundle");
    let state = work.join("runc-state");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let status = Command::new(runc)
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .map_err(|e| format!("runc spec: {e}"))?;
    if !status.success() {
        return Err("runc spec failed".into());
    }
    let config_path = bundle.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["root"]["path"] = rootfs.display().to_string().into();
    let cgroups = lab01::cgroup::peer::PeerCgroups::new().map_err(|e| e.to_string())?;
    let mut n = 0;
    time(runs, || {
        n += 1;
        let id = format!("kubelings-bench-{}-{n}", std::process::id());
        config["linux"]["cgroupsPath"] = cgroups.path_for(&id).into();
        std::fs::write(&config_path, config.to_string()).map_err(|e| e.to_string())?;
        let status = Command::new(runc)
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("runc run: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("runc run exited with {status}"))
        }
    })
}

/// Boots a kernel under qemu until it gives up looking for a root
/// filesystem: the part of a VM's start that a container never has.
/// KVM where it works, else QEMU's software emulation (TCG).
fn vm_boot(runs: usize) -> (String, Result<Vec<Duration>, String>) {
    let name = |accel: &str| format!("VM boot (qemu, {accel})");
    let Some(qemu) = lab01::probe::find_program("qemu-system-x86_64") else {
        let why = "skipped: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86 linux-image-amd64)";
        return ("VM boot (qemu)".into(), Err(why.into()));
    };
    let kernel = std::fs::read_dir("/boot").ok().and_then(|d| {
        d.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
        })
    });
    let Some(kernel) = kernel else {
        let why = "skipped: no kernel image in /boot (apt-get install linux-image-amd64)";
        return ("VM boot (qemu)".into(), Err(why.into()));
    };
    let boot = |accel: &str| -> Result<(), String> {
        let mut child = Command::new(&qemu)
            .args([
                "-accel", accel, "-m", "256", "-display", "none", "-monitor", "none",
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
        let deadline = Instant::now() + VM_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("no exit within {}s", VM_TIMEOUT.as_secs()));
                }
            }
        }
    };
    if Path::new("/dev/kvm").exists() && boot("kvm").is_ok() {
        return (name("kvm"), time(runs, || boot("kvm")));
    }
    (name("tcg"), time(runs, || boot("tcg")))
}

const VM_TIMEOUT: Duration = Duration::from_secs(60);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn table(rows: &[Row], runs: usize) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "start-to-exit latency of `true`, {runs} runs per row\n"
    );
    let _ = writeln!(
        out,
        "{:<26}{:>12}{:>12}{:>16}",
        "", "median", "p90", "vs container"
    );
    let container_median = rows
        .iter()
        .find(|r| r.name == "ch01 container")
        .and_then(|r| r.result.as_ref().ok())
        .map(|d| {
            let mut d = d.clone();
            d.sort();
            percentile(&d, 0.5)
        });
    for row in rows {
        match &row.result {
            Ok(durations) => {
                let mut d = durations.clone();
                d.sort();
                let median = percentile(&d, 0.5);
                let ratio = container_median
                    .map(|c| format!("{:.1}x", median.as_secs_f64() / c.as_secs_f64()))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{:<26}{:>12}{:>12}{:>16}",
                    row.name,
                    ms(median),
                    ms(percentile(&d, 0.9)),
                    ratio
                );
            }
            Err(why) => {
                let _ = writeln!(out, "{:<26}  {why}", row.name);
            }
        }
    }
    out
}

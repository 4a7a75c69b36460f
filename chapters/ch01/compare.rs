//! `ch01 compare`: the chapter's demo. The same small shell script runs
//! twice, once as a plain process on the host and once in a container, and
//! the two views are printed side by side.

use anyhow::{Context, Result};
use lab01::{run_captured_inspect, ContainerSpec, Resources, RootfsBuilder};

// ANCHOR: script
/// What a process can see of the machine it runs on.
const SCRIPT: &str = r#"
echo "kernel release=$(uname -r)"
echo "hostname=$(hostname)"
echo "PID of this shell=$$"
set -- /proc/[0-9]*; echo "processes visible=$#"
echo "network interfaces=$(echo $(ls /sys/class/net))"
echo "mounts=$(wc -l < /proc/self/mounts)"
echo "/ holds=$(echo $(ls /))"
echo "user ID=$(id -u)"
echo "capabilities=$(grep CapEff /proc/self/status | { read -r _ caps; echo "$caps"; })"
"#;
// ANCHOR_END: script

const LIMIT: u64 = 64 << 20;

/// The two views, as rows of (what, in the container, on the host).
pub fn rows() -> Result<Vec<(String, String, String)>> {
    let host = std::process::Command::new("sh")
        .args(["-c", SCRIPT])
        .output()
        .context("run the script on the host")?;
    let host = String::from_utf8_lossy(&host.stdout).into_owned();

    let temp = tempfile::Builder::new()
        .prefix("kubelings-compare-")
        .tempdir()
        .context("create a temporary directory")?;
    let rootfs = temp.path().join("rootfs");
    RootfsBuilder::new()
        .build(&rootfs)
        .context("build the rootfs")?;
    let is_root = nix::unistd::geteuid().is_root();
    let mut spec = ContainerSpec::new(["sh", "-c", SCRIPT])
        .rootfs(&rootfs)
        .user_namespace(!is_root);
    if is_root {
        spec = spec.resources(Resources {
            memory: Some(LIMIT),
            ..Resources::default()
        });
    }
    let (out, limit) = run_captured_inspect(&spec, |c| c.cgroup().and_then(|cg| cg.memory_limit()))
        .context("run the script in a container (needs root, or user namespaces)")?;

    let parse = |text: &str| -> Vec<(String, String)> {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    };
    let inside = parse(&out.stdout);
    let outside = parse(&host);
    let mut rows: Vec<(String, String, String)> = inside
        .into_iter()
        .map(|(what, value)| {
            let host_value = outside
                .iter()
                .find(|(k, _)| *k == what)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (what, value, host_value)
        })
        .collect();
    let show =
        |limit: Option<u64>| limit.map_or("none".to_string(), |b| format!("{} MiB", b >> 20));
    rows.push((
        "memory limit".into(),
        show(limit),
        show(lab01::cgroup::own_memory_limit()),
    ));
    Ok(rows)
}

/// The table, with fixed column widths so it reads the same everywhere.
pub fn table() -> Result<String> {
    let rows = rows()?;
    let mut out = format!("{:<20}{:<42}{}\n", "", "in the container", "on the host");
    for (what, inside, host) in &rows {
        out += &format!("{what:<20}{:<42}{}\n", clip(inside, 40), clip(host, 40));
    }
    if let Some((_, inside, host)) = rows.iter().find(|(w, _, _)| w == "kernel release") {
        out += if inside == host {
            "\nOne kernel: the container's system calls go to the host's own kernel.\n"
        } else {
            "\nThe kernels differ?! This is not a container.\n"
        };
    }
    Ok(out)
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let cut: String = text.chars().take(width - 1).collect();
        format!("{cut}…")
    }
}

pub fn print() -> Result<i32> {
    print!("{}", table()?);
    Ok(0)
}

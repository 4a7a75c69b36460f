//! `ch01 compare`: the chapter's demo. The same small shell script runs
//! twice, once as a plain process on the host and once in a container, and
//! the two views are printed side by side.

use anyhow::{Context, Result};
use indicatif::HumanBytes;
use lab01::{run_captured_inspect, ContainerSpec, Resources, RootfsBuilder};

/// What a process can see of the machine it runs on (the book shows the file).
const SCRIPT: &str = include_str!("compare.sh");

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
    let (out, limit) = run_captured_inspect(&spec, |c| {
        c.cgroup().and_then(|cg| cg.memory_limit())
    })
    .context(
        "run the script in a container (needs root, or user namespaces)",
    )?;

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
            if what == "capabilities" {
                (what, with_count(&value), with_count(&host_value))
            } else {
                (what, value, host_value)
            }
        })
        .collect();
    let show = |limit: Option<u64>| {
        limit.map_or("none".to_string(), |b| HumanBytes(b).to_string())
    };
    rows.push((
        "memory limit".into(),
        show(limit),
        show(lab01::cgroup::own_memory_limit()),
    ));
    Ok(rows)
}

/// Column widths: what, in the container, on the host (clipped), 80 in all.
const WHAT: usize = 13;
const INSIDE: usize = 40;
const HOST: usize = 27;

/// The table, with fixed column widths so it reads the same everywhere.
pub fn table() -> Result<String> {
    let rows = rows()?;
    let mut out = format!(
        "{:<WHAT$}{:<INSIDE$}{}\n",
        "", "in the container", "on the host"
    );
    for (what, inside, host) in &rows {
        let inside = clip(inside, INSIDE - 1);
        out += &format!("{what:<WHAT$}{inside:<INSIDE$}{}\n", clip(host, HOST));
    }
    if let Some((_, inside, host)) = rows.iter().find(|(w, _, _)| w == "kernel")
    {
        out += if inside == host {
            "\nOne kernel: the container's system calls go to the host's own kernel.\n"
        } else {
            "\nThe kernels differ?! This is not a container.\n"
        };
    }
    Ok(out)
}

/// `CapEff`'s hexadecimal mask, with how many capabilities it holds.
fn with_count(mask: &str) -> String {
    match u64::from_str_radix(mask, 16) {
        Ok(bits) => format!("{} ({mask})", bits.count_ones()),
        Err(_) => mask.to_string(),
    }
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

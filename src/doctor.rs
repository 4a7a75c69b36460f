//! `kubelings doctor`: what this machine can do, and so which self-checks
//! run here and which skip.

use std::path::PathBuf;

use anyhow::Result;
use kubelings_probe::{ci, find_program, probe, CgroupMode, Host};

use crate::workspace::Workspace;

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub fn run(ws: &Workspace) -> Result<bool> {
    let host = probe();
    let ci = ci();
    println!("This machine");
    println!("  os                  {}", host.os);
    println!("  kernel              {}", host.kernel);
    println!("  root                {}", yes_no(host.is_root));
    println!("  user namespaces     {}", yes_no(host.userns));
    println!("  cgroups             {}", host.cgroups);
    println!("  overlayfs           {}", yes_no(host.overlayfs));
    println!(
        "  runc                {}",
        host.runc.as_deref().unwrap_or("not found")
    );
    println!(
        "  qemu-system-x86_64  {}",
        host.qemu.as_deref().unwrap_or("not found")
    );
    if ci {
        println!("  CI                  yes: a self-check that cannot run here fails instead of skipping");
    }
    println!();
    print!("{}", tiers(&host, &VmTools::find(&host), ci));

    for lab in ws.manifest.labs() {
        println!();
        match ws.labs.get(lab) {
            Some(l) => println!("{lab} ({})", l.dir.display()),
            None => println!("{lab} (no crate named {lab} under labs/)"),
        }
        for e in ws.manifest.exercises.iter().filter(|e| e.lab == lab) {
            let need = format!("{:?}", e.privilege).to_lowercase();
            let sudo = crate::check::mode(e.privilege, &host) == crate::check::Mode::Sudo;
            match host.allows(e.privilege) {
                Ok(()) => println!("  runs   {}  (needs: {need})", e.id),
                // `kubelings check` runs it through sudo; cargo test skips it.
                Err(_) if sudo => println!("  runs   {}  (needs: {need}; through sudo)", e.id),
                Err(why) => {
                    let verb = if ci { "FAILS" } else { "skips" };
                    println!("  {verb:<5}  {}  (needs: {need}): {why}", e.id);
                }
            }
        }
    }
    // Informational: `kubelings verify` and the tests decide what fails.
    Ok(true)
}

/// What the pure cgroup v2 tier (lab01's `tests/vm_cgroup_v2.rs`) needs,
/// as found on this machine: it boots a kernel under qemu with busybox in
/// an initramfs that cpio packs.
#[derive(Debug, Clone, Default)]
pub struct VmTools {
    pub qemu: Option<String>,
    pub kernel: Option<PathBuf>,
    pub busybox: Option<String>,
    pub cpio: Option<String>,
}

impl VmTools {
    /// Looked up as the VM test looks them up: `KUBELINGS_VM_KERNEL`, else
    /// the newest readable /boot/vmlinuz-*.
    pub fn find(host: &Host) -> VmTools {
        VmTools {
            qemu: host.qemu.clone(),
            kernel: kubelings_probe::vm_kernel(),
            busybox: find_program("busybox"),
            cpio: find_program("cpio"),
        }
    }
}

/// The two tiers of lab01's cgroup tests: on this machine's own layout,
/// and in a VM whose only hierarchy is cgroup v2 (what most students'
/// machines run), with what each needs and whether it runs here.
pub fn tiers(host: &Host, vm: &VmTools, ci: bool) -> String {
    let on_host = match host.cgroups {
        CgroupMode::Unified => "the v2 path (pure cgroup v2 here)",
        CgroupMode::Hybrid => "the v1 path (hybrid here: v2 without controllers)",
        CgroupMode::Legacy => "the v1 path (cgroup v1 only here)",
        CgroupMode::Unavailable => "nothing: no cgroup file system here",
    };
    let root = match (host.cgroups, host.is_root) {
        (CgroupMode::Unavailable, _) => "",
        (_, true) => "",
        (_, false) => ", as root",
    };
    let mut out = String::from("Test tiers (lab01's cgroup tests)\n");
    out += &format!("  host tier           {on_host}{root}\n");
    let mut missing: Vec<(&str, &str)> = Vec::new();
    if vm.qemu.is_none() {
        missing.push(("qemu-system-x86_64", "qemu-system-x86"));
    }
    if vm.kernel.is_none() {
        missing.push(("a kernel in /boot", "linux-image-amd64"));
    }
    if vm.busybox.is_none() {
        missing.push(("busybox", "busybox"));
    }
    if vm.cpio.is_none() {
        missing.push(("cpio", "cpio"));
    }
    let vm_line = match &vm.kernel {
        Some(kernel) if missing.is_empty() => format!(
            "runs: the v2 path, in {} under qemu (TCG)",
            kernel.file_name().unwrap_or_default().to_string_lossy()
        ),
        _ => {
            let verb = if ci { "FAILS" } else { "skips" };
            let (what, packages): (Vec<&str>, Vec<&str>) = missing.into_iter().unzip();
            format!(
                "{verb}: needs {}\n                      (apt-get install {})",
                what.join(", "),
                packages.join(" ")
            )
        }
    };
    out += &format!("  pure cgroup v2 VM   {vm_line}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(cgroups: CgroupMode, is_root: bool) -> Host {
        Host {
            os: "linux",
            kernel: "6.1.0".into(),
            is_root,
            userns: true,
            cgroups,
            overlayfs: true,
            runc: None,
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
        }
    }

    #[test]
    fn tiers_name_the_layout_and_the_vm() {
        let all = VmTools {
            qemu: Some("/usr/bin/qemu-system-x86_64".into()),
            kernel: Some("/boot/vmlinuz-6.1.0-57-amd64".into()),
            busybox: Some("/usr/bin/busybox".into()),
            cpio: Some("/usr/bin/cpio".into()),
        };
        let none = VmTools::default();
        let mut out = String::new();
        for (mode, root, vm, ci) in [
            (CgroupMode::Hybrid, true, &all, false),
            (CgroupMode::Unified, false, &none, false),
            (CgroupMode::Legacy, true, &none, true),
            (CgroupMode::Unavailable, true, &all, false),
        ] {
            out += &format!("# {mode}, root: {root}, CI: {ci}\n");
            out += &tiers(&host(mode, root), vm, ci);
        }
        insta::assert_snapshot!(out);
    }
}

//! `kubelings doctor`: what this machine can do, and so which self-checks
//! run here and which skip.

use anyhow::Result;
use kubelings_probe::{ci, probe};

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

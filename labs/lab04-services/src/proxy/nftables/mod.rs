//! The nftables proxy: kube-proxy's `--proxy-mode=nftables`, in the
//! node's network namespace. Each sync writes one transaction to
//! `nft -f -`; the kernel then rewrites each new connection to a
//! Service's address (and NodePort) to one of its endpoints, with no
//! process of ours on the path.
//!
//! - [`ruleset`]: the text, from a [`ServiceTable`] (pure);
//! - [`nft`](run_nft): the `nft` binary, run inside the namespace;
//! - `route`: what the node's namespace needs besides rules (a route for
//!   the service range, forwarding on);
//! - [`bench`]: how long programming takes for many Services.
//!
//! The first sync (and one after a failed sync) writes the whole table;
//! later ones only what [`ServiceTable::changed`] names.

use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lab03::network::run_in;

use super::{Proxier, ProxyError, ServiceTable, SyncReport};
use crate::allocator::service_cidr;

pub mod bench;
mod route;
pub mod ruleset;

pub use bench::{bench, BenchRow};

/// The proxy of one node.
pub struct NftablesProxy {
    netns: PathBuf,
    node_ip: Ipv4Addr,
    /// What the kernel holds, when we know it (after a good sync).
    current: Option<ServiceTable>,
    /// What the namespace had before we changed it, to put back.
    setup: Option<route::Setup>,
}

impl NftablesProxy {
    /// A proxy for the node whose network namespace is the file `netns`
    /// (which has the bridge `kube0`) and whose own address, where
    /// NodePorts open, is `node_ip`. Turns forwarding on and routes the
    /// service range to the bridge; no rules until the first sync.
    pub fn new(
        netns: &Path,
        node_ip: Ipv4Addr,
    ) -> Result<NftablesProxy, ProxyError> {
        // Fail here, not at the first sync, if nft is missing.
        run_nft(netns, &["--version"], None)?;
        let setup = route::prepare(netns, service_cidr())?;
        Ok(NftablesProxy {
            netns: netns.to_path_buf(),
            node_ip,
            current: None,
            setup: Some(setup),
        })
    }

    /// Our table as `nft list table` prints it.
    pub fn list(&self) -> Result<String, ProxyError> {
        run_nft(&self.netns, &["list", "table", "ip", ruleset::TABLE], None)
    }

    fn apply(&self, text: &str) -> Result<(), ProxyError> {
        run_nft(&self.netns, &["-f", "-"], Some(text)).map(drop)
    }

    fn full(&mut self, table: &ServiceTable) -> Result<(), ProxyError> {
        let text =
            ruleset::full(table, self.node_ip, &service_cidr().to_string());
        self.apply(&text)?;
        self.current = Some(table.clone());
        Ok(())
    }
}

impl Proxier for NftablesProxy {
    fn mode(&self) -> &'static str {
        "nftables"
    }

    // ANCHOR: sync
    fn sync(&mut self, table: &ServiceTable) -> Result<SyncReport, ProxyError> {
        // Until this sync succeeds, what the kernel holds is unknown.
        let Some(old) = self.current.take() else {
            self.full(table)?;
            return Ok(SyncReport {
                changed: table.services.len(),
                full: true,
            });
        };
        let changed = old.changed(table);
        let text = ruleset::incremental(&old, table, &changed);
        if text.is_empty() {
            self.current = Some(table.clone());
            return Ok(SyncReport {
                changed: 0,
                full: false,
            });
        }
        match self.apply(&text) {
            Ok(()) => {
                self.current = Some(table.clone());
                Ok(SyncReport {
                    changed: changed.len(),
                    full: false,
                })
            }
            // Someone changed our table behind our back (or we are
            // wrong): a full sync puts everything right.
            Err(_) => {
                self.full(table)?;
                Ok(SyncReport {
                    changed: table.services.len(),
                    full: true,
                })
            }
        }
    }
    // ANCHOR_END: sync

    fn shutdown(&mut self) -> Result<(), ProxyError> {
        self.current = None;
        // `add` first, so that `delete` always finds a table.
        let t = format!("ip {}", ruleset::TABLE);
        let rules = self
            .apply(&format!("add table {t}\ndelete table {t}\n"))
            .map(drop);
        let setup = match self.setup.take() {
            Some(s) => route::restore(&self.netns, s),
            None => Ok(()),
        };
        rules.and(setup)
    }
}

impl Drop for NftablesProxy {
    fn drop(&mut self) {
        if self.setup.is_some() {
            // Best effort: the namespace may be gone already.
            let _ = self.shutdown();
        }
    }
}

/// Runs `nft` with `args` on a thread in the network namespace `netns`,
/// feeding it `input` on stdin; answers its stdout. The child inherits
/// the namespace of the thread that spawns it, so nft's netlink socket
/// talks to `netns` and nothing of ours changes namespace.
pub fn run_nft(
    netns: &Path,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, ProxyError> {
    let what = format!("nft {} in {}", args.join(" "), netns.display());
    let out = run_in(netns, || -> io::Result<std::process::Output> {
        let mut child = Command::new("nft")
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Written from another thread, so that a chatty nft (errors
        // for a large input) cannot fill its pipes while we write.
        std::thread::scope(|s| {
            let writer = child.stdin.take().map(|mut stdin| {
                let text = input.unwrap_or_default();
                s.spawn(move || stdin.write_all(text.as_bytes()))
            });
            let out = child.wait_with_output();
            if let Some(w) = writer {
                // A broken pipe means nft stopped reading: its
                // stderr says why.
                let _ = w.join();
            }
            out
        })
    })
    .map_err(|e| ProxyError::Other(format!("{what}: {e}")))?
    .map_err(|source| ProxyError::Io {
        what: what.clone(),
        source,
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        // A transaction's errors quote its lines: the first few say it.
        let first: Vec<&str> = err.lines().take(12).collect();
        return Err(ProxyError::Other(format!(
            "{what} failed ({}):\n{}",
            out.status,
            first.join("\n")
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

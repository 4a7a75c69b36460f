//! What a sandbox gives its containers: the namespaces they join, and the
//! files the kubelet writes for every pod (/etc/hosts, /etc/hostname,
//! /etc/resolv.conf).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use lab01::namespaces::Namespace;

use crate::cri::{DnsConfig, NamespaceMode, NamespaceOption};

/// Namespaces to join: their kind and their file under `/proc`.
pub type Joins = Vec<(Namespace, PathBuf)>;

// ANCHOR: join_sandbox
/// The namespaces a container of a sandbox joins, as `/proc` paths of the
/// sandbox's pause (`pause_pid`): the network namespace and, following it,
/// the UTS namespace when the pod has one network (the usual case); the IPC
/// namespace when the pod shares it; the PID namespace only when the pod
/// shares one (`shareProcessNamespace: true`). Joined in that order.
pub fn sandbox_joins(pause_pid: i32, options: &NamespaceOption) -> Joins {
    // EXERCISE: lab03-join-sandbox
    let of_pause = |kind: Namespace| {
        let path = format!("/proc/{pause_pid}/ns/{}", kind.proc_name());
        (kind, PathBuf::from(path))
    };
    let mut joins = Vec::new();
    if options.network == NamespaceMode::Pod {
        joins.push(of_pause(Namespace::Net));
        // One hostname per network: UTS goes with it, as in the CRI.
        joins.push(of_pause(Namespace::Uts));
    }
    if options.ipc == NamespaceMode::Pod {
        joins.push(of_pause(Namespace::Ipc));
    }
    if options.pid == NamespaceMode::Pod {
        joins.push(of_pause(Namespace::Pid));
    }
    joins
    // EXERCISE_END: lab03-join-sandbox
}
// ANCHOR_END: join_sandbox

/// The namespaces a container creates for itself: always its own mount
/// namespace (its own root filesystem) and cgroup namespace, and each
/// shared kind the pod gives every container separately (`Container`).
/// `Node` means the node's own: neither joined nor created.
pub fn own_namespaces(options: &NamespaceOption) -> Vec<Namespace> {
    let mut own = vec![Namespace::Mount, Namespace::Cgroup];
    if options.network == NamespaceMode::Container {
        own.extend([Namespace::Net, Namespace::Uts]);
    }
    if options.ipc == NamespaceMode::Container {
        own.push(Namespace::Ipc);
    }
    if options.pid == NamespaceMode::Container {
        own.push(Namespace::Pid);
    }
    own
}

/// The `clone(2)` flags of the sandbox's pause: a namespace for each kind
/// the pod shares.
pub fn sandbox_clone_flags(options: &NamespaceOption) -> nix::sched::CloneFlags {
    use nix::sched::CloneFlags as F;
    let mut flags = F::empty();
    if options.network == NamespaceMode::Pod {
        flags |= F::CLONE_NEWNET | F::CLONE_NEWUTS;
    }
    if options.ipc == NamespaceMode::Pod {
        flags |= F::CLONE_NEWIPC;
    }
    if options.pid == NamespaceMode::Pod {
        flags |= F::CLONE_NEWPID;
    }
    flags
}

// ANCHOR: hosts_file
/// The pod's /etc/hosts, as the kubelet writes it (its "managed hosts
/// file"): localhost, the IPv6 names, and the pod's own IP and hostname.
pub fn hosts_file(ip: Option<Ipv4Addr>, hostname: &str) -> String {
    let mut text = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if let Some(ip) = ip {
        let _ = writeln!(text, "{ip}\t{hostname}");
    }
    text
}
// ANCHOR_END: hosts_file

/// The pod's /etc/resolv.conf from the CRI's DNS config; without one, the
/// node's own (the kubelet's `dnsPolicy: Default`).
pub fn resolv_conf(dns: Option<&DnsConfig>) -> String {
    let Some(dns) = dns else {
        return std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    };
    let mut text = String::new();
    for server in &dns.servers {
        let _ = writeln!(text, "nameserver {server}");
    }
    if !dns.searches.is_empty() {
        let _ = writeln!(text, "search {}", dns.searches.join(" "));
    }
    if !dns.options.is_empty() {
        let _ = writeln!(text, "options {}", dns.options.join(" "));
    }
    text
}

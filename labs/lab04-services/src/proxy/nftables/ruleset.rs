//! From a [`ServiceTable`], the text `nft -f` reads: pure functions, no
//! kernel. [`full`] writes the whole table; [`incremental`] only what
//! differs between two tables.
//!
//! The layout is kube-proxy's nftables mode (KEP-3866), in a table of our
//! own, `ip kubelings`:
//!
//! - the map `service-ips` takes `ip daddr . meta l4proto . th dport` to
//!   a `goto` of the Service port's chain, `service-nodeports` does the
//!   same for `meta l4proto . th dport` on the node's own address;
//! - a Service port's chain sends a client it remembers (ClientIP
//!   affinity) to the same endpoint again, others to one endpoint chain
//!   picked by `numgen random mod N`;
//! - an endpoint chain marks the connection for masquerade, remembers the
//!   client in its affinity set, and DNATs to the endpoint;
//! - a Service port without usable endpoints has an element in
//!   `no-endpoint-services` instead, which rejects new connections in the
//!   filter hooks (a refusal, at once, not a timeout);
//! - postrouting masquerades what was marked.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use data_encoding::BASE32;
use sha2::{Digest, Sha256};

use crate::proxy::{Endpoint, ServicePortInfo, ServicePortName, ServiceTable};

/// Our table: `ip kubelings`, beside whatever else the node has.
pub const TABLE: &str = "kubelings";

/// The mark bit that asks postrouting to masquerade (kube-proxy's).
pub const MASQUERADE_MARK: u32 = 0x4000;

/// The longest name part after the hash; nft allows 256 bytes.
const NAME_MAX: usize = 200;

/// The chain a Service port's map elements go to.
pub fn service_chain(id: &ServicePortName) -> String {
    hashed("service", &port_base(id))
}

/// The chain that DNATs to one endpoint of a Service port.
pub fn endpoint_chain(id: &ServicePortName, to: SocketAddrV4) -> String {
    hashed("endpoint", &endpoint_base(id, to))
}

/// The set of clients that one endpoint of a Service port has served
/// lately (ClientIP affinity).
pub fn affinity_set(id: &ServicePortName, to: SocketAddrV4) -> String {
    hashed("affinity", &endpoint_base(id, to))
}

/// `ns/name/proto/port`, as kube-proxy names a Service port's chains.
fn port_base(id: &ServicePortName) -> String {
    format!(
        "{}/{}/{}/{}",
        id.namespace,
        id.name,
        id.protocol.as_str(),
        id.port
    )
}

/// `ns/name/proto/port__ip/port`: the endpoint after the port's base.
fn endpoint_base(id: &ServicePortName, to: SocketAddrV4) -> String {
    format!("{}__{}/{}", port_base(id), to.ip(), to.port())
}

/// `prefix-HASH-base`: eight characters of the base's SHA-256 (in
/// base32) keep names unique however the readable part is cut or
/// cleaned; the readable part is for the person reading `nft list`.
fn hashed(prefix: &str, base: &str) -> String {
    let digest = Sha256::digest(base.as_bytes());
    let hash = BASE32.encode(&digest);
    // nft identifiers are letters, digits and `/_.-`; Kubernetes names
    // are already, anything else is replaced.
    let readable: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "/_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(NAME_MAX)
        .collect();
    format!("{prefix}-{}-{readable}", &hash[..8])
}

/// What the service chain needs to know of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointTarget {
    /// The endpoint's chain.
    pub chain: String,
    /// Its affinity set, when the Service has ClientIP affinity.
    pub affinity: Option<String>,
}

// ANCHOR: service_chain_rules
/// The rules of a Service port's chain, in order: for affinity, one rule
/// per endpoint that sends a client found in the endpoint's set back to
/// that endpoint; then one rule that picks an endpoint chain at random.
/// No endpoints, no rules (such a port is in `no-endpoint-services`).
pub fn service_chain_rules(endpoints: &[EndpointTarget]) -> Vec<String> {
    // EXERCISE: lab04-nft-service
    if endpoints.is_empty() {
        return Vec::new();
    }
    let mut rules: Vec<String> = endpoints
        .iter()
        .filter_map(|e| {
            let set = e.affinity.as_ref()?;
            Some(format!("ip saddr @{set} goto {}", e.chain))
        })
        .collect();
    let arms: Vec<String> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{i} : goto {}", e.chain))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        endpoints.len(),
        arms.join(", ")
    ));
    rules
    // EXERCISE_END: lab04-nft-service
}
// ANCHOR_END: service_chain_rules

// ANCHOR: endpoint_chain_rules
/// The rules of an endpoint's chain: masquerade (see the book on the
/// return path), remember the client, rewrite the destination.
pub fn endpoint_chain_rules(
    id: &ServicePortName,
    to: SocketAddrV4,
    affinity: Option<&str>,
) -> Vec<String> {
    let mut rules = vec!["jump mark-for-masquerade".to_string()];
    if let Some(set) = affinity {
        rules.push(format!("update @{set} {{ ip saddr }}"));
    }
    rules.push(format!(
        "meta l4proto {} dnat to {to}",
        id.protocol.as_str()
    ));
    rules
}
// ANCHOR_END: endpoint_chain_rules

/// One regular chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub rules: Vec<String>,
}

/// One ClientIP affinity set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AffinitySet {
    pub name: String,
    pub timeout: Duration,
}

/// One element of one of the verdict maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    pub map: &'static str,
    /// `198.19.0.10 . tcp . 80`
    pub key: String,
    /// `goto service-…`
    pub verdict: String,
}

/// Everything one Service port puts in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortRules {
    /// The endpoint chains, then the service chain (which refers to them).
    pub chains: Vec<Chain>,
    pub sets: Vec<AffinitySet>,
    pub elements: Vec<Element>,
}

/// What a Service port puts in the table, given its usable endpoints.
pub fn port_rules(
    id: &ServicePortName,
    info: &ServicePortInfo,
    usable: &[Endpoint],
) -> PortRules {
    let proto = id.protocol.as_str();
    let vip_key = format!("{} . {proto} . {}", info.cluster_ip, info.port);
    let node_key = info.node_port.map(|p| format!("{proto} . {p}"));
    // One endpoint per address and port, whatever its conditions said.
    let targets: BTreeSet<SocketAddrV4> = usable
        .iter()
        .map(|e| SocketAddrV4::new(e.ip, e.port))
        .collect();
    let mut out = PortRules::default();
    if targets.is_empty() {
        let reject = "goto reject-chain".to_string();
        out.elements.push(Element {
            map: "no-endpoint-services",
            key: vip_key,
            verdict: reject.clone(),
        });
        if let Some(key) = node_key {
            out.elements.push(Element {
                map: "no-endpoint-nodeports",
                key,
                verdict: reject,
            });
        }
        return out;
    }
    let mut service_targets = Vec::new();
    for to in targets {
        let chain = endpoint_chain(id, to);
        let affinity = info.affinity.map(|timeout| AffinitySet {
            name: affinity_set(id, to),
            timeout,
        });
        out.chains.push(Chain {
            name: chain.clone(),
            rules: endpoint_chain_rules(
                id,
                to,
                affinity.as_ref().map(|s| s.name.as_str()),
            ),
        });
        service_targets.push(EndpointTarget {
            chain,
            affinity: affinity.as_ref().map(|s| s.name.clone()),
        });
        out.sets.extend(affinity);
    }
    let chain = service_chain(id);
    out.chains.push(Chain {
        name: chain.clone(),
        rules: service_chain_rules(&service_targets),
    });
    let verdict = format!("goto {chain}");
    out.elements.push(Element {
        map: "service-ips",
        key: vip_key,
        verdict: verdict.clone(),
    });
    if let Some(key) = node_key {
        out.elements.push(Element {
            map: "service-nodeports",
            key,
            verdict,
        });
    }
    out
}

/// The rules of every Service port of `table`, in the table's order.
fn all_ports(table: &ServiceTable) -> impl Iterator<Item = PortRules> + '_ {
    table
        .services
        .iter()
        .map(|(id, info)| port_rules(id, info, &table.usable(id)))
}

/// What one port of `table` puts in the table; empty if it has none.
fn rules_of(table: &ServiceTable, id: &ServicePortName) -> PortRules {
    table
        .services
        .get(id)
        .map(|info| port_rules(id, info, &table.usable(id)))
        .unwrap_or_default()
}

// ANCHOR: base
/// The part that does not depend on the Services: the hooks, the maps,
/// the checks, masquerading. `service_cidr` is the whole service range:
/// a new connection to an address in it that no rule rewrote is refused.
fn base(out: &mut String, node_ip: Ipv4Addr, service_cidr: &str) {
    let t = format!("ip {TABLE}");
    let _ = writeln!(
        out,
        "add table {t} {{ comment \"kubelings service proxy\" ; }}"
    );
    // The hooks. nat prerouting: pods' traffic, from the bridge; nat
    // output: the node's own clients; postrouting: masquerading. The
    // filter hooks run before nat (-110 < -100) and refuse what has no
    // endpoint; `filter-output-post-dnat` after it (-90).
    let hooks = [
        ("nat-prerouting", "nat hook prerouting priority dstnat"),
        ("nat-output", "nat hook output priority -100"),
        ("nat-postrouting", "nat hook postrouting priority srcnat"),
        ("filter-forward", "filter hook forward priority -110"),
        ("filter-input", "filter hook input priority -110"),
        ("filter-output", "filter hook output priority -110"),
        ("filter-output-post-dnat", "filter hook output priority -90"),
    ];
    for (chain, hook) in hooks {
        let _ = writeln!(out, "add chain {t} {chain} {{ type {hook} ; }}");
    }
    let key = "ipv4_addr . inet_proto . inet_service";
    let port_key = "inet_proto . inet_service";
    for (map, key) in [
        ("service-ips", key),
        ("service-nodeports", port_key),
        ("no-endpoint-services", key),
        ("no-endpoint-nodeports", port_key),
    ] {
        let _ = writeln!(out, "add map {t} {map} {{ type {key} : verdict ; }}");
    }
    let _ = writeln!(out, "add set {t} nodeport-ips {{ type ipv4_addr ; }}");
    let _ = writeln!(out, "add element {t} nodeport-ips {{ {node_ip} }}");
    let dest = "ip daddr . meta l4proto . th dport";
    let node_dest = "ip daddr @nodeport-ips meta l4proto . th dport";
    let mark = format!("{MASQUERADE_MARK:#x}");
    // Every chain is declared before a rule refers to it.
    let chains: [(&str, &[String]); 14] = [
        ("nat-prerouting", &["jump services".into()]),
        ("nat-output", &["jump services".into()]),
        ("nat-postrouting", &["jump masquerading".into()]),
        (
            "filter-forward",
            &[
                "ct state new jump service-endpoints-check".into(),
                "ct state new jump cluster-ips-check".into(),
            ],
        ),
        (
            "filter-input",
            &["ct state new jump nodeport-endpoints-check".into()],
        ),
        (
            "filter-output",
            &["ct state new jump service-endpoints-check".into()],
        ),
        (
            "filter-output-post-dnat",
            &["ct state new jump cluster-ips-check".into()],
        ),
        (
            "services",
            &[
                format!("{dest} vmap @service-ips"),
                format!("{node_dest} vmap @service-nodeports"),
            ],
        ),
        (
            "service-endpoints-check",
            &[format!("{dest} vmap @no-endpoint-services")],
        ),
        (
            "nodeport-endpoints-check",
            &[format!("{node_dest} vmap @no-endpoint-nodeports")],
        ),
        // Addressed to the service range and rewritten by no rule: no
        // such Service (or port).
        (
            "cluster-ips-check",
            &[format!("ip daddr {service_cidr} goto reject-chain")],
        ),
        // A TCP client gets a reset: the ICMP error `reject` sends
        // otherwise is rate-limited by the kernel, and a client whose
        // error was not sent waits for its connect to time out.
        (
            "reject-chain",
            &[
                "meta l4proto tcp reject with tcp reset".into(),
                "reject".into(),
            ],
        ),
        (
            "mark-for-masquerade",
            &[format!("meta mark set meta mark | {mark}")],
        ),
        (
            "masquerading",
            &[
                format!("meta mark & {mark} == 0 return"),
                // Clear the bit: a packet that is routed on again is not
                // masqueraded twice.
                format!("meta mark set meta mark ^ {mark}"),
                "masquerade fully-random".into(),
            ],
        ),
    ];
    for (chain, _) in &chains[hooks.len()..] {
        let _ = writeln!(out, "add chain {t} {chain}");
    }
    for (chain, rules) in chains {
        for rule in rules {
            let _ = writeln!(out, "add rule {t} {chain} {rule}");
        }
    }
}
// ANCHOR_END: base

/// The whole table, in one transaction: the `add table` makes sure the
/// `delete table` finds something, so the old table (if any) goes and the
/// new one takes its place at once.
pub fn full(
    table: &ServiceTable,
    node_ip: Ipv4Addr,
    service_cidr: &str,
) -> String {
    let t = format!("ip {TABLE}");
    let mut out = format!("add table {t}\ndelete table {t}\n");
    base(&mut out, node_ip, service_cidr);
    let ports: Vec<PortRules> = all_ports(table).collect();
    for p in &ports {
        for s in &p.sets {
            add_set(&mut out, s);
        }
        for c in &p.chains {
            let _ = writeln!(out, "add chain {t} {}", c.name);
        }
        for c in &p.chains {
            add_rules(&mut out, c);
        }
    }
    // One `add element` per map keeps the text (and nft's parsing) short.
    let elements: Vec<&Element> =
        ports.iter().flat_map(|p| &p.elements).collect();
    for map in [
        "service-ips",
        "service-nodeports",
        "no-endpoint-services",
        "no-endpoint-nodeports",
    ] {
        let of_map: Vec<String> = elements
            .iter()
            .filter(|e| e.map == map)
            .map(|e| format!("{} : {}", e.key, e.verdict))
            .collect();
        if !of_map.is_empty() {
            let _ = writeln!(
                out,
                "add element {t} {map} {{ {} }}",
                of_map.join(", ")
            );
        }
    }
    out
}

// ANCHOR: incremental
/// Only what differs for the ports in `changed`, from a kernel that holds
/// `old` to one that holds `new`, in an order nft accepts in one
/// transaction: drop the old map elements (nothing leads into the old
/// chains any more), add and flush the chains, replace the sets whose
/// timeout changed, write the rules, delete the chains and sets no one
/// refers to now, add the new elements. Empty when nothing changed.
pub fn incremental(
    old: &ServiceTable,
    new: &ServiceTable,
    changed: &[ServicePortName],
) -> String {
    let t = format!("ip {TABLE}");
    let mut out = String::new();
    for id in changed {
        let (before, after) = (rules_of(old, id), rules_of(new, id));
        for e in before
            .elements
            .iter()
            .filter(|e| !after.elements.contains(e))
        {
            let _ =
                writeln!(out, "delete element {t} {} {{ {} }}", e.map, e.key);
        }
        let new_names: BTreeSet<&str> =
            after.chains.iter().map(|c| c.name.as_str()).collect();
        for c in &after.chains {
            let _ = writeln!(out, "add chain {t} {}", c.name);
        }
        for c in &before.chains {
            let _ = writeln!(out, "flush chain {t} {}", c.name);
        }
        // A set that stays as it was keeps its clients (affinity holds
        // across syncs); one whose timeout changed is made anew.
        for s in before.sets.iter().filter(|s| !after.sets.contains(s)) {
            let _ = writeln!(out, "delete set {t} {}", s.name);
        }
        for s in after.sets.iter().filter(|s| !before.sets.contains(s)) {
            add_set(&mut out, s);
        }
        for c in &after.chains {
            add_rules(&mut out, c);
        }
        for c in before
            .chains
            .iter()
            .filter(|c| !new_names.contains(c.name.as_str()))
        {
            let _ = writeln!(out, "delete chain {t} {}", c.name);
        }
        for e in after
            .elements
            .iter()
            .filter(|e| !before.elements.contains(e))
        {
            let _ = writeln!(
                out,
                "add element {t} {} {{ {} : {} }}",
                e.map, e.key, e.verdict
            );
        }
    }
    out
}
// ANCHOR_END: incremental

fn add_set(out: &mut String, s: &AffinitySet) {
    let _ = writeln!(
        out,
        "add set ip {TABLE} {} {{ type ipv4_addr ; flags dynamic,timeout ; \
         timeout {}s ; }}",
        s.name,
        s.timeout.as_secs().max(1)
    );
}

fn add_rules(out: &mut String, c: &Chain) {
    for r in &c.rules {
        let _ = writeln!(out, "add rule ip {TABLE} {} {r}", c.name);
    }
}

//! The cluster's DNS data, as CoreDNS's `kubernetes` plugin serves it:
//! the names Services, their endpoints and pods have under the cluster
//! domain, and the answer to a question about one of them. Pure: the
//! server (`super::server`) puts these answers on the wire.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::endpoints::{can_be_endpoint, SERVICE_NAME_LABEL};

/// The cluster domain, the kubelet's `--cluster-domain` default.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// How long a resolver may keep an answer: the plugin's default `ttl`.
pub const TTL: u32 = 5;

/// The data of one record; only the types this zone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    /// An alias: the name is another name (an ExternalName Service).
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        refresh: u32,
        retry: u32,
        expire: u32,
        minimum: u32,
    },
}

/// One resource record; names are absolute (`kubia.default.svc.cluster.
/// local.`). Displayed as dig and zone files write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

impl Record {
    fn a(name: &str, ip: Ipv4Addr) -> Record {
        Record {
            name: name.to_string(),
            ttl: TTL,
            data: RecordData::A(ip),
        }
    }
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} IN ", self.name, self.ttl)?;
        match &self.data {
            RecordData::A(ip) => write!(f, "A {ip}"),
            RecordData::Cname(target) => write!(f, "CNAME {target}"),
            RecordData::Srv {
                priority,
                weight,
                port,
                target,
            } => write!(f, "SRV {priority} {weight} {port} {target}"),
            RecordData::Soa {
                mname,
                rname,
                serial,
                refresh,
                retry,
                expire,
                minimum,
            } => write!(
                f,
                "SOA {mname} {rname} {serial} {refresh} {retry} {expire} \
                 {minimum}"
            ),
        }
    }
}

/// What a question asks for. Types the zone never holds are `Other` (by
/// number) and get an empty answer where the name exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    A,
    Srv,
    Soa,
    Other(u16),
}

/// The response codes this server gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The name exists (maybe with no records of the asked type).
    NoError,
    /// No such name inside the cluster domain.
    NxDomain,
    /// Not our zone: nothing here forwards.
    Refused,
}

/// A whole answer: code and the three sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    pub answers: Vec<Record>,
    /// The zone's SOA when there is no answer, so resolvers know how long
    /// to remember that (negative caching).
    pub authority: Vec<Record>,
    /// Addresses of SRV targets, so no second question is needed.
    pub additionals: Vec<Record>,
}

/// A port as DNS names it: `_<name>._<protocol>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsPort {
    /// The port's name; empty for an unnamed port (no SRV name of its own).
    pub name: String,
    /// Lower case: `tcp`, `udp`, `sctp`.
    pub protocol: String,
    pub port: u16,
}

/// A ready endpoint of a Service, as DNS names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DnsEndpoint {
    /// Its label under the Service: the endpoint's `hostname`, else its IP
    /// with dashes (`198-18-1-2`).
    pub name: String,
    pub ip: Ipv4Addr,
    /// The ports of the slice it is in (target ports, in the pod).
    pub ports: Vec<DnsPort>,
}

/// One Service as the zone holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsService {
    pub namespace: String,
    pub name: String,
    /// `None` for a headless Service (`clusterIP: None`).
    pub cluster_ip: Option<Ipv4Addr>,
    pub ports: Vec<DnsPort>,
    /// Ready endpoints only, sorted.
    pub endpoints: Vec<DnsEndpoint>,
}

/// A name under `svc.<zone>` taken apart, as the plugin reads it:
/// `[<endpoint>|_<port>._<proto>.]<service>.<namespace>.svc.<zone>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceQuery {
    pub namespace: String,
    pub service: String,
    pub endpoint: Option<String>,
    /// The port name and protocol, underscores taken off.
    pub port: Option<(String, String)>,
}

/// Where a name inside the cluster domain points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterName {
    /// The zone itself.
    Apex,
    /// `svc.<zone>` or `pod.<zone>`.
    Branch,
    /// `<ns>.svc.<zone>` or `<ns>.pod.<zone>`.
    Namespace(String),
    Service(ServiceQuery),
    /// `<a-b-c-d>.<ns>.pod.<zone>`.
    Pod {
        namespace: String,
        ip: Ipv4Addr,
    },
    /// Nothing can be there (another branch, too many labels, a pod label
    /// that is no address).
    Invalid,
}

/// Takes `qname` apart; `None` when it is outside `domain`. Both may end
/// with a dot; case does not matter.
pub fn parse_name(qname: &str, domain: &str) -> Option<ClusterName> {
    let name = qname.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if name == domain {
        return Some(ClusterName::Apex);
    }
    let base = name.strip_suffix(&domain)?.strip_suffix('.')?;
    // From the right: branch, namespace, service, then one endpoint label
    // or a port and a protocol label; anything longer names nothing.
    let labels: Vec<&str> = base.split('.').rev().collect();
    let branch = labels[0];
    if branch != "svc" && branch != "pod" {
        return Some(ClusterName::Invalid);
    }
    let Some(&namespace) = labels.get(1) else {
        return Some(ClusterName::Branch);
    };
    let namespace = namespace.to_string();
    let Some(&third) = labels.get(2) else {
        return Some(ClusterName::Namespace(namespace));
    };
    if branch == "pod" {
        return Some(match (labels.len(), third.replace('-', ".").parse()) {
            (3, Ok(ip)) => ClusterName::Pod { namespace, ip },
            _ => ClusterName::Invalid,
        });
    }
    let strip = |s: &str| s.strip_prefix('_').unwrap_or(s).to_string();
    let (endpoint, port) = match labels.len() {
        3 => (None, None),
        4 => (Some(labels[3].to_string()), None),
        5 => (None, Some((strip(labels[4]), strip(labels[3])))),
        _ => return Some(ClusterName::Invalid),
    };
    Some(ClusterName::Service(ServiceQuery {
        namespace,
        service: third.to_string(),
        endpoint,
        port,
    }))
}

/// What a name under `svc.<zone>` holds: its A and SRV records and the
/// addresses of the SRV targets. All empty: the name does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub a: Vec<Record>,
    pub srv: Vec<Record>,
    pub extra: Vec<Record>,
}

impl Found {
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.srv.is_empty()
    }
}

/// Whether a query's port part (if any) matches `port`: names and
/// protocols compare without case, an absent part matches every port.
pub fn port_matches(query: &ServiceQuery, port: &DnsPort) -> bool {
    query.port.as_ref().is_none_or(|(name, protocol)| {
        name.eq_ignore_ascii_case(&port.name)
            && protocol.eq_ignore_ascii_case(&port.protocol)
    })
}

/// The absolute name of a Service (`kubia.default.svc.cluster.local.`).
pub fn service_fqdn(service: &DnsService, domain: &str) -> String {
    format!(
        "{}.{}.svc.{}.",
        service.name,
        service.namespace,
        domain.trim_end_matches('.')
    )
}

/// The SRV weight the plugin gives each of `count` records of one
/// priority: their weights (100 each) shared out of 100, at least 1.
pub fn srv_weight(count: usize) -> u16 {
    (100 / count.max(1)).max(1) as u16
}

/// One place a name leads to: the name of the target (the Service's or
/// an endpoint's), its address, and the port, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub ip: Ipv4Addr,
    /// `None` for an endpoint in a slice without ports: an address with no
    /// SRV record.
    pub port: Option<u16>,
}

// ANCHOR: targets
/// Where a name under `svc.<zone>` (`query`, parsed) leads, in `service`,
/// the Service it names.
///
/// A ClusterIP Service's own name (or a port of it) leads to its
/// ClusterIP, once per matching port, under the Service's name. A headless
/// Service's name, and an endpoint's name under any Service, lead to the
/// endpoints' own addresses, once per endpoint and matching port, under
/// the endpoint's name. Nothing matches: the name does not exist.
pub fn targets(
    service: &DnsService,
    query: &ServiceQuery,
    domain: &str,
) -> Vec<Target> {
    // EXERCISE: lab04-dns-answer
    let fqdn = service_fqdn(service, domain);
    match (service.cluster_ip, &query.endpoint) {
        (Some(ip), None) => service
            .ports
            .iter()
            .filter(|p| port_matches(query, p))
            .map(|p| Target {
                name: fqdn.clone(),
                ip,
                port: Some(p.port),
            })
            .collect(),
        (_, endpoint) => service
            .endpoints
            .iter()
            .filter(|e| endpoint.as_ref().is_none_or(|name| *name == e.name))
            .flat_map(|e| {
                let name = format!("{}.{fqdn}", e.name);
                let ports: Vec<Option<u16>> = if e.ports.is_empty() {
                    vec![None]
                } else {
                    let matching =
                        e.ports.iter().filter(|p| port_matches(query, p));
                    matching.map(|p| Some(p.port)).collect()
                };
                ports.into_iter().map(move |port| Target {
                    name: name.clone(),
                    ip: e.ip,
                    port,
                })
            })
            .collect(),
    }
    // EXERCISE_END: lab04-dns-answer
}
// ANCHOR_END: targets

// ANCHOR: service_records
/// The records at `qname`, a name under `svc.<zone>` that `query` is the
/// parsed form of, for `service`, the Service it names.
pub fn service_records(
    service: &DnsService,
    query: &ServiceQuery,
    qname: &str,
    domain: &str,
) -> Found {
    found(qname, &targets(service, query, domain))
}
// ANCHOR_END: service_records

/// The records for `targets`: an A record of each address at `qname`, an
/// SRV record of each target with a port, and the targets' addresses.
/// Duplicates are dropped, as the plugin drops them; the SRV weights count
/// every target, as its do.
fn found(qname: &str, targets: &[Target]) -> Found {
    let mut out = Found::default();
    let with_port = targets.iter().filter(|t| t.port.is_some()).count();
    let mut seen = BTreeSet::new();
    for t in targets {
        let a = Record::a(qname, t.ip);
        if !out.a.contains(&a) {
            out.a.push(a);
        }
        let Some(port) = t.port else {
            continue;
        };
        if !seen.insert((t.name.clone(), port)) {
            continue;
        }
        out.srv.push(Record {
            name: qname.to_string(),
            ttl: TTL,
            data: RecordData::Srv {
                priority: 0,
                weight: srv_weight(with_port),
                port,
                target: t.name.clone(),
            },
        });
        let extra = Record::a(&t.name, t.ip);
        if !out.extra.contains(&extra) {
            out.extra.push(extra);
        }
    }
    out
}

/// Everything the zone holds, built from the API objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDns {
    domain: String,
    serial: u32,
    services: BTreeMap<(String, String), DnsService>,
    /// ExternalName Services: (namespace, name) → the absolute name.
    aliases: BTreeMap<(String, String), String>,
    /// (namespace, IP) of every pod that has an IP and has not ended.
    pods: BTreeSet<(String, Ipv4Addr)>,
    namespaces: BTreeSet<String>,
}

fn namespace_of(ns: &Option<String>) -> String {
    ns.clone().unwrap_or_else(|| "default".into())
}

fn dns_port(name: Option<&str>, protocol: Option<&str>, port: i32) -> DnsPort {
    DnsPort {
        name: name.unwrap_or_default().to_string(),
        protocol: protocol.unwrap_or("TCP").to_ascii_lowercase(),
        port: u16::try_from(port).unwrap_or(0),
    }
}

impl ClusterDns {
    /// An empty zone for `domain` (`cluster.local`).
    pub fn empty(domain: &str) -> ClusterDns {
        ClusterDns::build(domain, &[], &[], &[], 0)
    }

    /// The zone for `domain` from every Service, EndpointSlice and pod.
    /// Services without an address yet have no records; an ExternalName
    /// one is an alias (CNAME) of its `externalName`. `serial` goes into
    /// the SOA: the plugin uses the time of the last change it saw.
    pub fn build(
        domain: &str,
        services: &[Service],
        slices: &[EndpointSlice],
        pods: &[Pod],
        serial: u32,
    ) -> ClusterDns {
        let mut zone = ClusterDns {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            serial,
            services: BTreeMap::new(),
            aliases: BTreeMap::new(),
            pods: BTreeSet::new(),
            namespaces: BTreeSet::from(["default".to_string()]),
        };
        for svc in services {
            let Some(spec) = svc.spec.as_ref() else {
                continue;
            };
            let namespace = namespace_of(&svc.metadata.namespace);
            let name = svc.metadata.name.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                if let Some(target) = spec.external_name.as_deref() {
                    let target = format!("{}.", target.trim_end_matches('.'));
                    zone.namespaces.insert(namespace.clone());
                    zone.aliases.insert((namespace, name), target);
                }
                continue;
            }
            let cluster_ip = match spec.cluster_ip.as_deref() {
                Some("None") => None,
                Some(ip) => match ip.parse() {
                    Ok(ip) => Some(ip),
                    Err(_) => continue,
                },
                None => continue,
            };
            let ports = spec
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    dns_port(p.name.as_deref(), p.protocol.as_deref(), p.port)
                })
                .collect();
            zone.namespaces.insert(namespace.clone());
            zone.services.insert(
                (namespace.clone(), name.clone()),
                DnsService {
                    namespace,
                    name,
                    cluster_ip,
                    ports,
                    endpoints: Vec::new(),
                },
            );
        }
        for slice in slices {
            let namespace = namespace_of(&slice.metadata.namespace);
            let Some(name) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let Some(service) =
                zone.services.get_mut(&(namespace, name.clone()))
            else {
                continue;
            };
            let ports: Vec<DnsPort> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let port = p.port?;
                    Some(dns_port(
                        p.name.as_deref(),
                        p.protocol.as_deref(),
                        port,
                    ))
                })
                .collect();
            for e in &slice.endpoints {
                // No condition means ready, as the API defines it.
                let ready = e.conditions.as_ref().and_then(|c| c.ready);
                if ready == Some(false) {
                    continue;
                }
                for ip in &e.addresses {
                    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                        continue;
                    };
                    let name = e
                        .hostname
                        .clone()
                        .unwrap_or_else(|| ip.to_string().replace('.', "-"));
                    service.endpoints.push(DnsEndpoint {
                        name,
                        ip,
                        ports: ports.clone(),
                    });
                }
            }
        }
        for service in zone.services.values_mut() {
            service.endpoints.sort();
            service.endpoints.dedup();
        }
        for pod in pods.iter().filter(|p| can_be_endpoint(p)) {
            let namespace = namespace_of(&pod.metadata.namespace);
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let Some(Ok(ip)) = ip.map(str::parse::<Ipv4Addr>) {
                zone.namespaces.insert(namespace.clone());
                zone.pods.insert((namespace, ip));
            }
        }
        zone
    }

    /// The cluster domain, without the final dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The Services in the zone, by (namespace, name).
    pub fn services(&self) -> impl Iterator<Item = &DnsService> {
        self.services.values()
    }

    /// The zone's SOA record, as the plugin makes it.
    pub fn soa(&self) -> Record {
        Record {
            name: format!("{}.", self.domain),
            ttl: TTL,
            data: RecordData::Soa {
                mname: format!("ns.dns.{}.", self.domain),
                rname: format!("hostmaster.{}.", self.domain),
                serial: self.serial,
                refresh: 7200,
                retry: 1800,
                expire: 86400,
                minimum: TTL,
            },
        }
    }

    /// The answer to a question for `qname` of type `qtype`.
    pub fn answer(&self, qname: &str, qtype: QueryType) -> Answer {
        let Some(parsed) = parse_name(qname, &self.domain) else {
            return Answer {
                rcode: Rcode::Refused,
                answers: Vec::new(),
                authority: Vec::new(),
                additionals: Vec::new(),
            };
        };
        let qname =
            format!("{}.", qname.trim_end_matches('.')).to_ascii_lowercase();
        let found = match parsed {
            ClusterName::Apex if qtype == QueryType::Soa => {
                return Answer {
                    rcode: Rcode::NoError,
                    answers: vec![self.soa()],
                    authority: Vec::new(),
                    additionals: Vec::new(),
                };
            }
            ClusterName::Apex | ClusterName::Branch => Some(Found::default()),
            ClusterName::Namespace(ns) => {
                self.namespaces.contains(&ns).then(Found::default)
            }
            ClusterName::Pod { namespace, ip } => {
                self.pods.contains(&(namespace, ip)).then(|| Found {
                    a: vec![Record::a(&qname, ip)],
                    ..Found::default()
                })
            }
            ClusterName::Service(query)
                if query.endpoint.is_none() && query.port.is_none() =>
            {
                let key = (query.namespace.clone(), query.service.clone());
                if let Some(target) = self.aliases.get(&key) {
                    // An alias answers every type with itself; the
                    // resolver follows it (outside: REFUSED, here).
                    return Answer {
                        rcode: Rcode::NoError,
                        answers: vec![Record {
                            name: qname,
                            ttl: TTL,
                            data: RecordData::Cname(target.clone()),
                        }],
                        authority: Vec::new(),
                        additionals: Vec::new(),
                    };
                }
                self.service_found(&query, &qname)
            }
            ClusterName::Service(query) => self.service_found(&query, &qname),
            ClusterName::Invalid => None,
        };
        let Some(found) = found else {
            return self.negative(Rcode::NxDomain);
        };
        let (answers, additionals) = match qtype {
            QueryType::A => (found.a, Vec::new()),
            QueryType::Srv => (found.srv, found.extra),
            _ => (Vec::new(), Vec::new()),
        };
        if answers.is_empty() {
            return self.negative(Rcode::NoError);
        }
        Answer {
            rcode: Rcode::NoError,
            answers,
            authority: Vec::new(),
            additionals,
        }
    }

    /// The records of a name under a Service; `None`: no such name.
    fn service_found(
        &self,
        query: &ServiceQuery,
        qname: &str,
    ) -> Option<Found> {
        self.services
            .get(&(query.namespace.clone(), query.service.clone()))
            .map(|s| service_records(s, query, qname, &self.domain))
            .filter(|f| !f.is_empty())
    }

    /// No records: the code, and the SOA in the authority section.
    fn negative(&self, rcode: Rcode) -> Answer {
        Answer {
            rcode,
            answers: Vec::new(),
            authority: vec![self.soa()],
            additionals: Vec::new(),
        }
    }
}

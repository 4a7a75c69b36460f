//! Cluster DNS: the records CoreDNS's kubernetes plugin would serve for
//! Services, endpoints and pods (pure), then the server answering real
//! `dig` on loopback and, as root, on a service IP in a throwaway network
//! namespace through a pod's resolv.conf.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kubelings_probe as probe;
use lab04::dns::records::{
    parse_name, targets, ClusterName, ServiceQuery, Target,
};
use lab04::dns::{Answer, ClusterDns, DnsServer, QueryType, Rcode};
use lab04::endpoints::{endpoint_slices, MAX_ENDPOINTS_PER_SLICE};
use lab04::manifest::parse_service;

mod support;
use support::pod;

/// A Service from tests/services, in `default`, with `cluster_ip` (as
/// the allocator would have set it) unless it is headless.
fn service(file: &str, cluster_ip: Option<&str>) -> Service {
    let path = format!("{}/tests/services/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut s = parse_service(&text).unwrap();
    s.metadata.namespace = Some("default".into());
    s.metadata.uid = Some(format!("uid-{file}"));
    if let Some(ip) = cluster_ip {
        s.spec.as_mut().unwrap().cluster_ip = Some(ip.into());
    }
    s
}

/// Three kubia pods (two ready), `kubia` with named ports at
/// 198.19.0.12, and the headless `kubia-headless`.
struct Cluster {
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    pods: Vec<Pod>,
}

fn cluster() -> Cluster {
    let pods = vec![
        pod("kubia-a", "198.18.1.2", true),
        pod("kubia-b", "198.18.1.3", true),
        pod("kubia-c", "198.18.1.4", false),
    ];
    let services = vec![
        service("kubia-svc-named-ports.yaml", Some("198.19.0.12")),
        service("kubia-headless.yaml", None),
    ];
    let slices = services
        .iter()
        .flat_map(|s| endpoint_slices(s, &pods, MAX_ENDPOINTS_PER_SLICE))
        .collect();
    Cluster {
        services,
        slices,
        pods,
    }
}

fn zone(c: &Cluster) -> ClusterDns {
    ClusterDns::build("cluster.local", &c.services, &c.slices, &c.pods, 1)
}

fn lines(answer: &Answer) -> Vec<String> {
    answer.answers.iter().map(|r| r.to_string()).collect()
}

/// An answer as dig sections it, for the snapshot.
fn show(question: &str, qtype: QueryType, answer: &Answer) -> String {
    let mut out = format!("; {question} {qtype:?}\n;; {:?}\n", answer.rcode);
    for (title, records) in [
        ("ANSWER", &answer.answers),
        ("AUTHORITY", &answer.authority),
        ("ADDITIONAL", &answer.additionals),
    ] {
        if !records.is_empty() {
            writeln!(out, ";; {title}").unwrap();
            for r in records {
                writeln!(out, "{r}").unwrap();
            }
        }
    }
    out
}

#[test]
fn names_are_taken_apart_as_the_plugin_does() {
    let domain = "cluster.local";
    let query =
        |ns: &str, svc: &str, ep: Option<&str>, port: Option<(&str, &str)>| {
            Some(ClusterName::Service(ServiceQuery {
                namespace: ns.into(),
                service: svc.into(),
                endpoint: ep.map(Into::into),
                port: port.map(|(p, t)| (p.into(), t.into())),
            }))
        };
    assert_eq!(
        parse_name("Kubia.Default.svc.cluster.local.", domain),
        query("default", "kubia", None, None)
    );
    assert_eq!(
        parse_name("_http._tcp.kubia.default.svc.cluster.local", domain),
        query("default", "kubia", None, Some(("http", "tcp")))
    );
    assert_eq!(
        parse_name("198-18-1-2.kubia.default.svc.cluster.local", domain),
        query("default", "kubia", Some("198-18-1-2"), None)
    );
    assert_eq!(
        parse_name("198-18-1-2.default.pod.cluster.local", domain),
        Some(ClusterName::Pod {
            namespace: "default".into(),
            ip: Ipv4Addr::new(198, 18, 1, 2)
        })
    );
    assert_eq!(
        parse_name("cluster.local.", domain),
        Some(ClusterName::Apex)
    );
    assert_eq!(
        parse_name("svc.cluster.local", domain),
        Some(ClusterName::Branch)
    );
    assert_eq!(
        parse_name("default.svc.cluster.local", domain),
        Some(ClusterName::Namespace("default".into()))
    );
    for nothing in [
        "a.b._http._tcp.kubia.default.svc.cluster.local",
        "kubia.default.nodes.cluster.local",
        "not-an-ip.default.pod.cluster.local",
    ] {
        assert_eq!(
            parse_name(nothing, domain),
            Some(ClusterName::Invalid),
            "{nothing}"
        );
    }
    assert_eq!(parse_name("example.com", domain), None);
    assert_eq!(parse_name("xcluster.local", domain), None);
}

#[test]
fn a_service_name_is_its_cluster_ip() {
    let zone = zone(&cluster());
    let answer = zone.answer("kubia.default.svc.cluster.local", QueryType::A);
    assert_eq!(answer.rcode, Rcode::NoError);
    assert_eq!(
        lines(&answer),
        ["kubia.default.svc.cluster.local. 5 IN A 198.19.0.12"]
    );
    // A port's name holds the same address.
    let answer =
        zone.answer("_http._tcp.kubia.default.svc.cluster.local", QueryType::A);
    assert_eq!(
        lines(&answer),
        ["_http._tcp.kubia.default.svc.cluster.local. 5 IN A 198.19.0.12"]
    );
}

#[test]
fn named_ports_have_srv_records_pointing_at_the_service() {
    let zone = zone(&cluster());
    let answer = zone.answer(
        "_https._tcp.kubia.default.svc.cluster.local",
        QueryType::Srv,
    );
    assert_eq!(
        lines(&answer),
        [
            "_https._tcp.kubia.default.svc.cluster.local. 5 IN SRV 0 100 443 \
          kubia.default.svc.cluster.local."
        ]
    );
    assert_eq!(
        answer
            .additionals
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["kubia.default.svc.cluster.local. 5 IN A 198.19.0.12"]
    );
    // The bare name holds every port, the weight shared between them.
    let answer = zone.answer("kubia.default.svc.cluster.local", QueryType::Srv);
    assert_eq!(
        lines(&answer),
        [
            "kubia.default.svc.cluster.local. 5 IN SRV 0 50 80 \
             kubia.default.svc.cluster.local.",
            "kubia.default.svc.cluster.local. 5 IN SRV 0 50 443 \
             kubia.default.svc.cluster.local.",
        ]
    );
    // A port the Service does not have, or another protocol: no name.
    for absent in ["_grpc._tcp", "_http._udp"] {
        let name = format!("{absent}.kubia.default.svc.cluster.local");
        assert_eq!(zone.answer(&name, QueryType::Srv).rcode, Rcode::NxDomain);
    }
}

#[test]
fn a_headless_name_is_every_ready_endpoint() {
    let zone = zone(&cluster());
    let answer =
        zone.answer("kubia-headless.default.svc.cluster.local", QueryType::A);
    // kubia-c is not ready: not there.
    assert_eq!(
        lines(&answer),
        [
            "kubia-headless.default.svc.cluster.local. 5 IN A 198.18.1.2",
            "kubia-headless.default.svc.cluster.local. 5 IN A 198.18.1.3",
        ]
    );
    let answer =
        zone.answer("kubia-headless.default.svc.cluster.local", QueryType::Srv);
    assert_eq!(
        lines(&answer),
        [
            "kubia-headless.default.svc.cluster.local. 5 IN SRV 0 50 8080 \
             198-18-1-2.kubia-headless.default.svc.cluster.local.",
            "kubia-headless.default.svc.cluster.local. 5 IN SRV 0 50 8080 \
             198-18-1-3.kubia-headless.default.svc.cluster.local.",
        ]
    );
    // Each endpoint has its own name, under any Service.
    let one = zone.answer(
        "198-18-1-3.kubia-headless.default.svc.cluster.local",
        QueryType::A,
    );
    assert_eq!(
        lines(&one),
        [
            "198-18-1-3.kubia-headless.default.svc.cluster.local. 5 IN A \
          198.18.1.3"
        ]
    );
    let under_cluster_ip =
        zone.answer("198-18-1-2.kubia.default.svc.cluster.local", QueryType::A);
    assert_eq!(
        lines(&under_cluster_ip),
        ["198-18-1-2.kubia.default.svc.cluster.local. 5 IN A 198.18.1.2"]
    );
    let not_ready =
        zone.answer("198-18-1-4.kubia.default.svc.cluster.local", QueryType::A);
    assert_eq!(not_ready.rcode, Rcode::NxDomain);
}

#[test]
fn an_endpoint_with_a_hostname_is_named_by_it() {
    let mut c = cluster();
    for slice in &mut c.slices {
        for (e, host) in slice.endpoints.iter_mut().zip(["web-0", "web-1"]) {
            e.hostname = Some(host.into());
        }
    }
    let zone = zone(&c);
    let answer = zone.answer(
        "web-1.kubia-headless.default.svc.cluster.local",
        QueryType::A,
    );
    assert_eq!(
        lines(&answer),
        ["web-1.kubia-headless.default.svc.cluster.local. 5 IN A 198.18.1.3"]
    );
    let service = zone
        .services()
        .find(|s| s.name == "kubia-headless")
        .expect("kubia-headless");
    let query = ServiceQuery {
        namespace: "default".into(),
        service: "kubia-headless".into(),
        endpoint: Some("web-0".into()),
        port: None,
    };
    assert_eq!(
        targets(service, &query, "cluster.local"),
        [Target {
            name: "web-0.kubia-headless.default.svc.cluster.local.".into(),
            ip: Ipv4Addr::new(198, 18, 1, 2),
            port: Some(8080),
        }]
    );
}

#[test]
fn an_external_name_service_is_an_alias() {
    let mut c = cluster();
    let external = parse_service(
        "apiVersion: v1\nkind: Service\nmetadata: {name: external-api}\n\
         spec: {type: ExternalName, externalName: api.example.com}\n",
    )
    .unwrap();
    c.services.push(external);
    let zone = zone(&c);
    for qtype in [QueryType::A, QueryType::Srv] {
        let answer =
            zone.answer("external-api.default.svc.cluster.local", qtype);
        assert_eq!(
            lines(&answer),
            ["external-api.default.svc.cluster.local. 5 IN CNAME \
              api.example.com."]
        );
    }
}

#[test]
fn pod_names_need_a_pod_with_that_address() {
    let zone = zone(&cluster());
    let answer =
        zone.answer("198-18-1-4.default.pod.cluster.local", QueryType::A);
    assert_eq!(
        lines(&answer),
        ["198-18-1-4.default.pod.cluster.local. 5 IN A 198.18.1.4"]
    );
    for absent in [
        "198-18-1-9.default.pod.cluster.local",
        "198-18-1-4.other.pod.cluster.local",
    ] {
        assert_eq!(zone.answer(absent, QueryType::A).rcode, Rcode::NxDomain);
    }
}

#[test]
fn absent_names_other_types_and_other_zones() {
    let zone = zone(&cluster());
    let absent = zone.answer("nope.default.svc.cluster.local", QueryType::A);
    assert_eq!(absent.rcode, Rcode::NxDomain);
    assert_eq!(
        absent
            .authority
            .iter()
            .map(|r| r.to_string())
            .collect::<Vec<_>>(),
        ["cluster.local. 5 IN SOA ns.dns.cluster.local. \
          hostmaster.cluster.local. 1 7200 1800 86400 5"]
    );
    // AAAA (28) for a name that exists: no error, no records, the SOA.
    let no_data =
        zone.answer("kubia.default.svc.cluster.local", QueryType::Other(28));
    assert_eq!(no_data.rcode, Rcode::NoError);
    assert!(no_data.answers.is_empty());
    assert_eq!(no_data.authority.len(), 1);
    // A known namespace exists; an unknown one does not.
    assert_eq!(
        zone.answer("default.svc.cluster.local", QueryType::A).rcode,
        Rcode::NoError
    );
    assert_eq!(
        zone.answer("nowhere.svc.cluster.local", QueryType::A).rcode,
        Rcode::NxDomain
    );
    let outside = zone.answer("example.com.", QueryType::A);
    assert_eq!(outside.rcode, Rcode::Refused);
    assert!(outside.authority.is_empty());
}

#[test]
fn the_answers_for_kubia() {
    let zone = zone(&cluster());
    let mut out = String::new();
    for (name, qtype) in [
        ("kubia.default.svc.cluster.local", QueryType::A),
        ("_http._tcp.kubia.default.svc.cluster.local", QueryType::Srv),
        ("kubia-headless.default.svc.cluster.local", QueryType::A),
        ("kubia-headless.default.svc.cluster.local", QueryType::Srv),
        ("198-18-1-2.default.pod.cluster.local", QueryType::A),
        ("kubia.default.svc.cluster.local", QueryType::Other(28)),
        ("nope.default.svc.cluster.local", QueryType::A),
        ("example.com", QueryType::A),
        ("cluster.local", QueryType::Soa),
    ] {
        out.push_str(&show(name, qtype, &zone.answer(name, qtype)));
        out.push('\n');
    }
    insta::assert_snapshot!(out);
}

// ---- the server, asked by dig ----

/// Whether dig is there (a skip, or a failure under CI, if not).
fn have_dig() -> bool {
    probe::require_program("dig")
}

/// `dig @server -p PORT <args>`, bounded: one try of one second.
fn dig(server: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=1", "+tries=1"])
        .args(args)
        .output()
        .expect("running dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn short(server: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut all = vec!["+short"];
    all.extend_from_slice(args);
    let mut lines: Vec<String> =
        dig(server, &all).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// The status dig read (`NOERROR`, `NXDOMAIN`, …).
fn status(server: SocketAddr, args: &[&str]) -> String {
    let text = dig(server, args);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no answer)")
        .to_string()
}

/// A server on loopback with the cluster's records; stopped however the
/// test ends (DnsServer's Drop).
fn loopback_server() -> DnsServer {
    let server =
        DnsServer::start("127.0.0.1:0".parse().unwrap(), "cluster.local")
            .expect("start the DNS server");
    let c = cluster();
    server.update(&c.services, &c.slices, &c.pods);
    server
}

#[test]
fn dig_asks_the_server_over_udp_and_tcp() {
    if !have_dig() {
        return;
    }
    let server = loopback_server();
    let at = server.addr();
    assert_eq!(
        short(at, &["kubia.default.svc.cluster.local"]),
        ["198.19.0.12"]
    );
    assert_eq!(
        short(at, &["+tcp", "kubia.default.svc.cluster.local"]),
        ["198.19.0.12"]
    );
    assert_eq!(
        short(at, &["SRV", "_http._tcp.kubia.default.svc.cluster.local"]),
        ["0 100 80 kubia.default.svc.cluster.local."]
    );
    assert_eq!(
        short(at, &["kubia-headless.default.svc.cluster.local"]),
        ["198.18.1.2", "198.18.1.3"]
    );
    assert_eq!(
        short(at, &["198-18-1-3.default.pod.cluster.local"]),
        ["198.18.1.3"]
    );
    assert_eq!(status(at, &["nope.default.svc.cluster.local"]), "NXDOMAIN");
    assert_eq!(
        status(at, &["AAAA", "kubia.default.svc.cluster.local"]),
        "NOERROR"
    );
    assert_eq!(status(at, &["example.com"]), "REFUSED");
    server.shutdown().expect("stop the DNS server");
}

#[test]
fn dig_follows_an_external_name_to_the_edge_of_the_cluster() {
    if !have_dig() {
        return;
    }
    let server = loopback_server();
    let c = cluster();
    let mut services = c.services.clone();
    services.push(
        parse_service(
            "apiVersion: v1\nkind: Service\nmetadata: {name: external-api}\n\
             spec: {type: ExternalName, externalName: api.example.com}\n",
        )
        .unwrap(),
    );
    server.update(&services, &c.slices, &c.pods);
    // The alias, and nothing for its target: that is outside.
    assert_eq!(
        short(server.addr(), &["external-api.default.svc.cluster.local"]),
        ["api.example.com."]
    );
    server.shutdown().expect("stop the DNS server");
}

#[test]
fn updates_are_seen_live_and_a_deleted_service_is_gone() {
    if !have_dig() {
        return;
    }
    let server = loopback_server();
    let at = server.addr();
    let name = "kubia.default.svc.cluster.local";
    assert_eq!(short(at, &[name]), ["198.19.0.12"]);
    // kubia deleted, its slices with it.
    let c = cluster();
    let rest: Vec<Service> = c
        .services
        .iter()
        .filter(|s| s.metadata.name.as_deref() != Some("kubia"))
        .cloned()
        .collect();
    let slices = rest
        .iter()
        .flat_map(|s| endpoint_slices(s, &c.pods, MAX_ENDPOINTS_PER_SLICE))
        .collect::<Vec<_>>();
    server.update(&rest, &slices, &c.pods);
    assert_eq!(status(at, &[name]), "NXDOMAIN");
    // A pod of the headless Service gets ready: one more address.
    let mut pods = c.pods.clone();
    pods[2] = pod("kubia-c", "198.18.1.4", true);
    let slices = rest
        .iter()
        .flat_map(|s| endpoint_slices(s, &pods, MAX_ENDPOINTS_PER_SLICE))
        .collect::<Vec<_>>();
    server.update(&rest, &slices, &pods);
    assert_eq!(
        short(at, &["kubia-headless.default.svc.cluster.local"]),
        ["198.18.1.2", "198.18.1.3", "198.18.1.4"]
    );
    server.shutdown().expect("stop the DNS server");
    // The port is free again: the sockets were closed. Another test's
    // client may take it as its ephemeral port for a moment (a resolver
    // bound to 0.0.0.0:that port blocks ours), so a few tries; a socket
    // left open would block every one.
    let mut tries = 0;
    while let Err(e) = std::net::UdpSocket::bind(at) {
        tries += 1;
        assert!(tries < 30, "the port is not free after shutdown: {e}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn dig_output_for_kubia() {
    if !have_dig() {
        return;
    }
    let server = loopback_server();
    let at = server.addr();
    // What changes from run to run: dig's version, the message id, the
    // port, the time and how long it took.
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"DiG \S+", "DiG [version]");
    settings.add_filter(r"id: \d+", "id: [id]");
    settings.add_filter(r"#\d+", "#[port]");
    settings.add_filter(r"-p \d+", "-p [port]");
    settings.add_filter(r"Query time: \d+ msec", "Query time: [ms] msec");
    settings.add_filter(r";; WHEN: .*", ";; WHEN: [time]");
    // The SOA serial is the time of the last update.
    settings.add_filter(r" \d{9,10} 7200 ", " [serial] 7200 ");
    settings.add_filter(r"\d{9,10} ; serial", "[serial] ; serial");
    // The book shows these: 80 columns at most, so no command echo
    // (+nocmd), and the SOA on lines of its own (+multiline).
    settings.bind(|| {
        insta::assert_snapshot!(
            "dig_a",
            dig(at, &["+nocmd", "kubia.default.svc.cluster.local"])
        );
        insta::assert_snapshot!(
            "dig_nxdomain",
            dig(
                at,
                &["+nocmd", "+multiline", "kubia.other.svc.cluster.local"]
            )
        );
        let mut transcript = String::new();
        for args in [
            &["kubia.default.svc.cluster.local"][..],
            &["SRV", "_http._tcp.kubia.default.svc.cluster.local"],
            &["SRV", "kubia.default.svc.cluster.local"],
            &["kubia-headless.default.svc.cluster.local"],
            &["SRV", "kubia-headless.default.svc.cluster.local"],
            &["198-18-1-2.default.pod.cluster.local"],
            &["example.com"],
        ] {
            transcript.push_str(&format!("$ dig +short {}\n", args.join(" ")));
            for line in short(at, args) {
                transcript.push_str(&format!("{line}\n"));
            }
        }
        insta::assert_snapshot!("dig_short", transcript);
    });
    server.shutdown().expect("stop the DNS server");
}

// ---- as root: a service IP in a network namespace, a pod's resolv.conf ----

/// A throwaway network namespace, held by a descriptor: the kernel frees
/// it when this is dropped and the server's sockets in it are closed.
struct Netns(std::fs::File);

impl Netns {
    fn new() -> Netns {
        let file = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("unshare a network namespace");
                std::fs::File::open("/proc/thread-self/ns/net")
                    .expect("open the new namespace")
            })
            .join()
            .expect("the thread ran")
        });
        Netns(file)
    }

    fn path(&self) -> std::path::PathBuf {
        use std::os::fd::AsRawFd;
        format!("/proc/self/fd/{}", self.0.as_raw_fd()).into()
    }
}

/// Runs `program args` in the namespace (a child forked on a thread that
/// entered it is in it too) and returns its standard output.
fn run_in(ns: &Netns, program: &str, args: &[&str]) -> String {
    let out = lab03::network::run_in(&ns.path(), || {
        Command::new(program).args(args).output()
    })
    .expect("enter the namespace")
    .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dig +search +short NAME` as a pod would run it: /etc/resolv.conf is
/// the pod's, bind-mounted in a mount namespace of dig's own (private,
/// so nothing is seen outside, and gone when dig exits).
fn pod_dig(ns: &Netns, resolv: &std::path::Path, name: &str) -> Vec<String> {
    let script = r#"mount --bind "$0" /etc/resolv.conf &&
        exec dig +search +short +time=1 +tries=1 "$1""#;
    let resolv = resolv.to_str().expect("a UTF-8 temp path");
    let out = run_in(
        ns,
        "unshare",
        &["--mount", "sh", "-c", script, resolv, name],
    );
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_pod_finds_kubia_by_its_short_name_on_the_service_ip() {
    use probe::Privilege;
    if !probe::require(Privilege::Root)
        || !have_dig()
        || !probe::require_program("ip")
        || !probe::require_program("unshare")
    {
        return;
    }
    let dns_ip = Ipv4Addr::new(198, 19, 0, 10);
    let ns = Netns::new();
    // The DNS Service's address on the namespace's loopback, as a node
    // holds the addresses it answers on.
    run_in(&ns, "ip", &["link", "set", "lo", "up"]);
    run_in(&ns, "ip", &["addr", "add", "198.19.0.10/32", "dev", "lo"]);
    let server = DnsServer::start_in(
        &ns.path(),
        SocketAddr::from((dns_ip, 53)),
        "cluster.local",
    )
    .expect("start the DNS server in the namespace");
    let c = cluster();
    server.update(&c.services, &c.slices, &c.pods);

    let dir = tempfile::tempdir().expect("a temp dir");
    let resolv = dir.path().join("resolv.conf");
    let text = lab04::env::resolv_conf("default", &[dns_ip], "cluster.local");
    std::fs::write(&resolv, text).expect("write resolv.conf");

    // Fewer dots than ndots:5: the search path is tried first.
    assert_eq!(pod_dig(&ns, &resolv, "kubia"), ["198.19.0.12"]);
    assert_eq!(pod_dig(&ns, &resolv, "kubia.default"), ["198.19.0.12"]);
    assert_eq!(
        pod_dig(&ns, &resolv, "kubia-headless"),
        ["198.18.1.2", "198.18.1.3"]
    );

    // The cost of ndots:5: a name outside the cluster with fewer dots is
    // asked under every search domain first; with its final dot, once.
    let before = server.questions();
    assert!(pod_dig(&ns, &resolv, "api.example.com").is_empty());
    let searched = server.questions() - before;
    let before = server.questions();
    assert!(pod_dig(&ns, &resolv, "api.example.com.").is_empty());
    let absolute = server.questions() - before;
    insta::assert_snapshot!(
        "questions_per_lookup",
        format!(
            "dig +search api.example.com:  {searched} questions\n\
             dig +search api.example.com.: {absolute} question\n"
        )
    );

    // kubia deleted: its name is gone at the next question.
    let rest: Vec<Service> = c.services[1..].to_vec();
    let slices: Vec<EndpointSlice> = rest
        .iter()
        .flat_map(|s| endpoint_slices(s, &c.pods, MAX_ENDPOINTS_PER_SLICE))
        .collect();
    server.update(&rest, &slices, &c.pods);
    assert!(pod_dig(&ns, &resolv, "kubia").is_empty());
    assert_eq!(
        pod_dig(&ns, &resolv, "kubia-headless"),
        ["198.18.1.2", "198.18.1.3"]
    );
    server.shutdown().expect("stop the DNS server");
}

#[test]
fn a_server_that_cannot_start_says_where() {
    // Not an address of this namespace: nothing is bound, the error names
    // the socket and the address.
    let addr: SocketAddr = "198.19.0.10:53".parse().unwrap();
    let err = DnsServer::start(addr, "cluster.local")
        .err()
        .expect("198.19.0.10 is no address here");
    let text = err.to_string();
    assert!(
        text.contains("UDP") && text.contains("198.19.0.10:53"),
        "{text}"
    );
    let missing = std::path::Path::new("/nonexistent/netns");
    let err = DnsServer::start_in(missing, addr, "cluster.local")
        .err()
        .expect("there is no such namespace");
    assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
}

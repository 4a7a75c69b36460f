//! Pod IPs from a node's CIDR: handed out once, taken back, remembered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use lab03::ipam::{node_cidr, pick, Cidr, CidrError, Ipam, IpamError, Range, STATE_FILE};

fn ip(text: &str) -> Ipv4Addr {
    text.parse().expect("an address")
}

fn cidr(text: &str) -> Cidr {
    text.parse().expect("a CIDR")
}

#[test]
fn cidrs_parse_and_name_their_addresses() {
    let c = cidr("198.18.1.0/24");
    assert_eq!(c, node_cidr(1));
    assert_eq!(c.to_string(), "198.18.1.0/24");
    assert_eq!(c.gateway(), ip("198.18.1.1"));
    assert_eq!(c.broadcast(), ip("198.18.1.255"));
    assert_eq!(c.pod_range(), Some((ip("198.18.1.2"), ip("198.18.1.254"))));
    assert_eq!(c.capacity(), 253);
    assert_eq!(cidr("10.0.0.0/30").capacity(), 1);
    assert_eq!(cidr("10.0.0.0/31").capacity(), 0);
    assert!(c.within(&cidr("198.18.0.0/15")));
    assert!(!cidr("198.20.0.0/24").within(&cidr("198.18.0.0/15")));
    for bad in [
        "198.18.1.0",
        "198.18.1/24",
        "198.18.1.0/",
        "198.18.1.0/x",
        "a/24",
    ] {
        assert!(
            matches!(bad.parse::<Cidr>(), Err(CidrError::Syntax(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        "198.18.1.0/33".parse::<Cidr>(),
        Err(CidrError::Prefix(_))
    ));
    let err = "198.18.1.7/24".parse::<Cidr>().expect_err("host bits");
    assert_eq!(
        err.to_string(),
        "\"198.18.1.7/24\" has host bits set; the network is 198.18.1.0/24"
    );
}

#[test]
fn pick_skips_network_gateway_and_broadcast() {
    let c = cidr("198.18.1.0/24");
    let mut taken = BTreeMap::new();
    assert_eq!(pick(&c, &taken, None), Some(ip("198.18.1.2")));
    taken.insert(ip("198.18.1.2"), "a".to_string());
    taken.insert(ip("198.18.1.3"), "b".to_string());
    assert_eq!(pick(&c, &taken, None), Some(ip("198.18.1.4")));
    // After the last one handed out, even if lower ones are free.
    assert_eq!(
        pick(&c, &BTreeMap::new(), Some(ip("198.18.1.9"))),
        Some(ip("198.18.1.10"))
    );
    // Past the end it wraps round, never to .255, .0 or .1.
    assert_eq!(
        pick(&c, &taken, Some(ip("198.18.1.254"))),
        Some(ip("198.18.1.4"))
    );
    // A last address outside the range starts at the beginning.
    assert_eq!(
        pick(&c, &taken, Some(ip("10.0.0.1"))),
        Some(ip("198.18.1.4"))
    );
}

#[test]
fn pick_finds_every_address_then_none() {
    let c = cidr("198.18.7.0/28");
    let mut taken = BTreeMap::new();
    let mut last = None;
    let mut got = Vec::new();
    while let Some(a) = pick(&c, &taken, last) {
        assert!(c.contains(a) && a != c.network() && a != c.gateway() && a != c.broadcast());
        assert!(taken.insert(a, format!("pod-{a}")).is_none(), "{a} twice");
        last = Some(a);
        got.push(a);
    }
    assert_eq!(got.len(), 13);
    assert_eq!(got.first(), Some(&ip("198.18.7.2")));
    assert_eq!(got.last(), Some(&ip("198.18.7.14")));
    // One released: that one comes back, wherever the search starts.
    taken.remove(&ip("198.18.7.5"));
    assert_eq!(pick(&c, &taken, last), Some(ip("198.18.7.5")));
    assert_eq!(
        pick(&c, &taken, Some(ip("198.18.7.9"))),
        Some(ip("198.18.7.5"))
    );
}

#[test]
fn allocate_release_lookup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ipam = Ipam::open(dir.path(), node_cidr(1), Range::BenchmarkOnly).expect("opens");
    let a = ipam.allocate("uid-a").expect("a");
    let b = ipam.allocate("uid-b").expect("b");
    assert_eq!((a, b), (ip("198.18.1.2"), ip("198.18.1.3")));
    // Asking again answers the same address.
    assert_eq!(ipam.allocate("uid-a").expect("a again"), a);
    assert_eq!(ipam.lookup("uid-b").expect("lookup"), Some(b));
    assert_eq!(ipam.release("uid-a").expect("release"), Some(a));
    assert_eq!(ipam.release("uid-a").expect("release twice"), None);
    assert_eq!(ipam.lookup("uid-a").expect("lookup"), None);
    // A released address rests: the next pod gets a fresh one.
    assert_eq!(ipam.allocate("uid-c").expect("c"), ip("198.18.1.4"));
    let all: Vec<_> = ipam.list().expect("list").into_values().collect();
    assert_eq!(all, ["uid-b", "uid-c"]);
}

#[test]
fn allocations_survive_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let before: Vec<Ipv4Addr> = {
        let ipam = Ipam::open(dir.path(), node_cidr(2), Range::BenchmarkOnly).expect("opens");
        (0..5)
            .map(|i| ipam.allocate(&format!("pod-{i}")).expect("alloc"))
            .collect()
    };
    // A crash between writing the temporary file and renaming it leaves
    // the temporary file behind: the old state still counts.
    let temp = dir.path().join(format!("{STATE_FILE}.tmp"));
    std::fs::write(&temp, b"{ half written").expect("write");
    let ipam = Ipam::open(dir.path(), node_cidr(2), Range::BenchmarkOnly).expect("reopens");
    for (i, a) in before.iter().enumerate() {
        assert_eq!(ipam.lookup(&format!("pod-{i}")).expect("lookup"), Some(*a));
    }
    let new = ipam.allocate("pod-new").expect("alloc");
    assert!(!before.contains(&new), "{new} handed out twice");
    assert_eq!(new, ip("198.18.2.7"));
}

#[test]
fn exhaustion_names_the_cidr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ipam = Ipam::open(dir.path(), cidr("198.18.9.0/29"), Range::BenchmarkOnly).expect("opens");
    for i in 0..5 {
        ipam.allocate(&format!("pod-{i}")).expect("room");
    }
    let err = ipam.allocate("one-too-many").expect_err("full");
    assert!(matches!(err, IpamError::Exhausted { taken: 5, .. }));
    assert_eq!(
        err.to_string(),
        "no free address in 198.18.9.0/29: all 5 pod addresses are taken"
    );
    // Releasing one makes room again.
    ipam.release("pod-2").expect("release");
    assert_eq!(
        ipam.allocate("one-too-many").expect("room"),
        ip("198.18.9.4")
    );
}

#[test]
fn cidrs_outside_the_benchmark_range_need_permission() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lan = cidr("192.168.1.0/24");
    let err = Ipam::open(dir.path(), lan, Range::BenchmarkOnly).expect_err("refused");
    assert!(matches!(err, IpamError::OutsideBenchmark(_)));
    assert!(
        err.to_string()
            .starts_with("192.168.1.0/24 is outside 198.18.0.0/15"),
        "{err}"
    );
    // A network larger than the block is outside it too.
    assert!(Ipam::open(dir.path(), cidr("198.16.0.0/12"), Range::BenchmarkOnly).is_err());
    let ipam = Ipam::open(dir.path(), lan, Range::AnyAllowed).expect("allowed");
    assert_eq!(ipam.allocate("x").expect("alloc"), ip("192.168.1.2"));
    let tiny = Ipam::open(dir.path(), cidr("198.18.0.0/31"), Range::BenchmarkOnly);
    assert!(matches!(tiny, Err(IpamError::TooSmall(_))));
}

#[test]
fn the_state_belongs_to_one_cidr() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ipam = Ipam::open(dir.path(), node_cidr(1), Range::BenchmarkOnly).expect("opens");
    ipam.allocate("a").expect("alloc");
    let err = Ipam::open(dir.path(), node_cidr(3), Range::BenchmarkOnly).expect_err("other");
    assert!(matches!(err, IpamError::OtherCidr { .. }), "{err}");
    std::fs::write(dir.path().join(STATE_FILE), b"not json").expect("write");
    let err = Ipam::open(dir.path(), node_cidr(1), Range::BenchmarkOnly).expect_err("corrupt");
    assert!(matches!(err, IpamError::Corrupt { .. }), "{err}");
}

#[test]
fn concurrent_allocators_never_share_an_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Each thread opens its own allocator, as separate processes would:
    // flock excludes separate opens of the lock file, in one process or many.
    let got: Vec<(String, Ipv4Addr)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let dir = dir.path();
                s.spawn(move || {
                    let ipam = Ipam::open(dir, node_cidr(4), Range::BenchmarkOnly).expect("opens");
                    (0..25)
                        .map(|i| {
                            let uid = format!("t{t}-{i}");
                            let a = ipam.allocate(&uid).expect("alloc");
                            (uid, a)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect()
    });
    let distinct: BTreeSet<Ipv4Addr> = got.iter().map(|(_, a)| *a).collect();
    assert_eq!(distinct.len(), 100, "an address went to two pods");
    // And the file agrees with what each was told.
    let ipam = Ipam::open(dir.path(), node_cidr(4), Range::BenchmarkOnly).expect("opens");
    let all = ipam.list().expect("list");
    for (uid, a) in &got {
        assert_eq!(all.get(a), Some(uid));
    }
}

#[test]
fn the_state_file_is_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ipam = Ipam::open(dir.path(), node_cidr(1), Range::BenchmarkOnly).expect("opens");
    ipam.allocate("0b6c-kubia").expect("alloc");
    ipam.allocate("5e1d-sidecar").expect("alloc");
    let text = std::fs::read_to_string(ipam.state_path()).expect("read");
    insta::assert_snapshot!(text);
}

/// Where the child process keeps its state, and what it does.
const CHILD_DIR: &str = "LAB03_IPAM_CHILD_DIR";
const CHILD_NAME: &str = "LAB03_IPAM_CHILD_NAME";
const CHILD_COUNT: &str = "LAB03_IPAM_CHILD_COUNT";

/// The child process of the tests below (run through `--ignored`): it
/// allocates `CHILD_COUNT` addresses and prints them, or with a count of 0
/// allocates and releases for ever, until it is killed.
#[test]
#[ignore = "the child process of processes_never_share_an_address and a_killed_allocator_leaves_a_sound_state"]
fn ipam_child() {
    let dir = std::env::var(CHILD_DIR).expect("run as a child");
    let name = std::env::var(CHILD_NAME).expect("run as a child");
    let count: usize = std::env::var(CHILD_COUNT)
        .expect("run as a child")
        .parse()
        .expect("a count");
    let ipam = Ipam::open(dir.as_ref(), node_cidr(5), Range::BenchmarkOnly).expect("opens");
    for i in 0.. {
        if count > 0 && i == count {
            break;
        }
        let uid = format!("{name}-{i}");
        let a = ipam.allocate(&uid).expect("alloc");
        println!("ALLOC {uid} {a}");
        if count == 0 && i >= 5 {
            ipam.release(&format!("{name}-{}", i - 5)).expect("release");
        }
    }
}

fn child(dir: &std::path::Path, name: &str, count: usize) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "ipam_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_NAME, name)
        .env(CHILD_COUNT, count.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn the child")
}

fn allocations(out: &str) -> Vec<(String, Ipv4Addr)> {
    out.lines()
        // The test harness may have printed its "test ... " on the same line.
        .filter_map(|l| l.split_once("ALLOC ").map(|(_, rest)| rest))
        .map(|l| {
            let (uid, a) = l.split_once(' ').expect("uid and address");
            (uid.to_string(), ip(a))
        })
        .collect()
}

#[test]
fn processes_never_share_an_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let children: Vec<_> = (0..3)
        .map(|i| child(dir.path(), &format!("p{i}"), 40))
        .collect();
    let mut got = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("child ran");
        assert!(out.status.success(), "a child failed");
        got.extend(allocations(&String::from_utf8_lossy(&out.stdout)));
    }
    assert_eq!(got.len(), 120);
    let distinct: BTreeSet<Ipv4Addr> = got.iter().map(|(_, a)| *a).collect();
    let mut by_ip: BTreeMap<Ipv4Addr, Vec<&str>> = BTreeMap::new();
    for (uid, a) in &got {
        by_ip.entry(*a).or_default().push(uid);
    }
    by_ip.retain(|_, uids| uids.len() > 1);
    assert!(by_ip.is_empty(), "handed out twice: {by_ip:?}");
    assert_eq!(distinct.len(), 120);
    let ipam = Ipam::open(dir.path(), node_cidr(5), Range::BenchmarkOnly).expect("opens");
    assert_eq!(ipam.list().expect("list").len(), 120);
}

#[test]
fn a_killed_allocator_leaves_a_sound_state() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut c = child(dir.path(), "k", 0);
    let stdout = c.stdout.take().expect("piped");
    // Let it work a while, then kill it (SIGKILL) wherever it is: between
    // two writes, inside one, or holding the lock.
    let seen = std::io::BufReader::new(stdout).lines().take(300).count();
    c.kill().expect("kill the child");
    c.wait().expect("reap the child");
    assert_eq!(seen, 300, "the child stopped early");
    // The lock died with it and the state is whole: it opens, and lists the
    // child's last few pods, each with its own address.
    let ipam = Ipam::open(dir.path(), node_cidr(5), Range::BenchmarkOnly).expect("reopens");
    let all = ipam.list().expect("list");
    assert!((5..=7).contains(&all.len()), "{} allocations", all.len());
    let owners: BTreeSet<&String> = all.values().collect();
    assert_eq!(owners.len(), all.len(), "a pod holds two addresses");
    let new = ipam.allocate("after-the-crash").expect("alloc");
    assert!(!all.contains_key(&new), "{new} handed out twice");
}

//! The userspace proxy's load balancer, on a clock the test moves: round
//! robin across the usable endpoints, ClientIP affinity with its timeout,
//! a failed endpoint letting go of its clients, live endpoint changes.

use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use lab04::proxy::pick::RoundRobin;

fn ep(last: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(198, 18, 1, last), 8080)
}

fn client(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 1, last)
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn round_robin_takes_turns() {
    let now = Instant::now();
    let mut rr = RoundRobin::new(vec![ep(2), ep(3), ep(4)], None);
    // Turns go round whoever asks: without affinity the client is
    // nobody in particular.
    let picks: Vec<SocketAddrV4> = (0..7)
        .map(|i| rr.pick(client(10 + i % 2), now).expect("an endpoint"))
        .collect();
    assert_eq!(picks, [ep(2), ep(3), ep(4), ep(2), ep(3), ep(4), ep(2)]);
    assert_eq!(rr.session(client(10)), None, "no affinity, no sessions");

    let mut one = RoundRobin::new(vec![ep(2)], None);
    assert_eq!(one.pick(client(10), now), Some(ep(2)));
    assert_eq!(one.pick(client(10), now), Some(ep(2)));

    let mut none = RoundRobin::new(vec![], Some(HOUR));
    assert_eq!(none.pick(client(10), now), None);
    assert_eq!(none.session(client(10)), None);
}

#[test]
fn affinity_pins_a_client_until_it_expires() {
    let t0 = Instant::now();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let ttl = Duration::from_secs(10);
    let mut rr = RoundRobin::new(vec![ep(2), ep(3), ep(4)], Some(ttl));
    let (x, y) = (client(10), client(11));
    assert_eq!(rr.pick(x, at(0)), Some(ep(2)));
    assert_eq!(rr.pick(y, at(1)), Some(ep(3)));
    // x comes back within the timeout: the same endpoint, and the
    // session is younger again.
    assert_eq!(rr.pick(x, at(5)), Some(ep(2)));
    assert_eq!(rr.session(x).map(|s| s.last_used), Some(at(5)));
    // 9 s after its last use: still pinned.
    assert_eq!(rr.pick(x, at(14)), Some(ep(2)));
    assert_eq!(rr.pick(y, at(9)), Some(ep(3)));
    // Exactly the timeout after its last use: expired, and round robin
    // goes on where it was (ep(4)), which becomes x's new session.
    assert_eq!(rr.pick(x, at(24)), Some(ep(4)));
    assert_eq!(rr.session(x).map(|s| s.endpoint), Some(ep(4)));
    assert_eq!(rr.pick(x, at(25)), Some(ep(4)));
    // A new client takes the next turn.
    assert_eq!(rr.pick(client(12), at(25)), Some(ep(2)));
}

#[test]
fn a_failed_endpoint_lets_its_client_go() {
    let now = Instant::now();
    let mut rr = RoundRobin::new(vec![ep(2), ep(3)], Some(HOUR));
    let x = client(10);
    assert_eq!(rr.pick(x, now), Some(ep(2)));
    // Another endpoint failing is none of x's business.
    rr.failed(x, ep(3));
    assert_eq!(rr.pick(x, now), Some(ep(2)));
    // Its own failing sends it on to the next turn.
    rr.failed(x, ep(2));
    assert_eq!(rr.session(x), None);
    assert_eq!(rr.pick(x, now), Some(ep(3)));
    assert_eq!(rr.pick(x, now), Some(ep(3)));
}

#[test]
fn new_endpoints_keep_the_sessions_that_still_fit() {
    let now = Instant::now();
    let mut rr = RoundRobin::new(vec![ep(2), ep(3), ep(4)], Some(HOUR));
    let (x, y) = (client(10), client(11));
    assert_eq!(rr.pick(x, now), Some(ep(2)));
    assert_eq!(rr.pick(y, now), Some(ep(3)));
    // ep(2) goes away, ep(5) comes: x loses its session, y keeps its.
    rr.set_endpoints(vec![ep(3), ep(4), ep(5)]);
    assert_eq!(rr.endpoints(), [ep(3), ep(4), ep(5)]);
    assert_eq!(rr.session(x), None);
    assert_eq!(rr.pick(y, now), Some(ep(3)));
    // A changed list starts its turns from the top.
    assert_eq!(rr.pick(x, now), Some(ep(3)));
    assert_eq!(rr.pick(client(12), now), Some(ep(4)));
    // The same list again changes nothing, the turn included.
    rr.set_endpoints(vec![ep(3), ep(4), ep(5)]);
    assert_eq!(rr.pick(client(13), now), Some(ep(5)));
    // Affinity off: every session is forgotten, turns go on.
    rr.set_affinity(None);
    assert_eq!(rr.session(y), None);
    assert_eq!(rr.pick(y, now), Some(ep(3)));
}

#[test]
fn expired_sessions_are_swept() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(10);
    let mut rr = RoundRobin::new(vec![ep(2), ep(3)], Some(ttl));
    rr.pick(client(10), t0);
    rr.pick(client(11), t0 + Duration::from_secs(5));
    rr.sweep(t0 + Duration::from_secs(12));
    assert_eq!(rr.session(client(10)), None);
    assert!(rr.session(client(11)).is_some());
}

/// A client's day with a Service of three pods and a 10 s affinity:
/// which endpoint each connection got, and why.
#[test]
fn a_day_of_picks() {
    let t0 = Instant::now();
    let ttl = Duration::from_secs(10);
    let mut rr = RoundRobin::new(vec![ep(2), ep(3), ep(4)], Some(ttl));
    let visits: [(u64, u8); 8] = [
        (0, 10),
        (1, 11),
        (3, 10),
        (12, 10),
        (13, 12),
        (23, 10),
        (40, 11),
        (41, 10),
    ];
    let mut text = String::from("time  client       endpoint          how\n");
    for (secs, who) in visits {
        let now = t0 + Duration::from_secs(secs);
        let before = rr.session(client(who));
        let got = rr.pick(client(who), now).expect("an endpoint");
        let how = match before {
            Some(s) if now.duration_since(s.last_used) < ttl => {
                "affinity (session refreshed)"
            }
            Some(_) => "round robin (session expired)",
            None => "round robin (new session)",
        };
        writeln!(text, "{secs:>3}s  {:<11}  {got:<16}  {how}", client(who))
            .expect("write");
    }
    insta::assert_snapshot!(text);
}

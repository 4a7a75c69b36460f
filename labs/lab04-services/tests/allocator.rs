//! ClusterIP and NodePort bitmaps.

use std::net::Ipv4Addr;

use lab04::allocator::{
    pick_free, service_cidr, static_band, AllocError, Bitmap,
    ClusterIpAllocator, NodePortAllocator, NODE_PORTS,
};

/// "Random" numbers from a list, then always 0.
fn script(values: &[usize]) -> impl FnMut(usize) -> usize + '_ {
    let mut i = 0;
    move |n| {
        let v = values.get(i).copied().unwrap_or(0);
        i += 1;
        if n == 0 {
            0
        } else {
            v % n
        }
    }
}

#[test]
fn the_static_band_is_a_sixteenth_within_bounds() {
    assert_eq!(static_band(256, 16, 16, 256), 16);
    assert_eq!(static_band(65536, 16, 16, 256), 256);
    assert_eq!(static_band(8, 16, 16, 256), 0);
    assert_eq!(static_band(2768, 32, 16, 128), 86);
}

#[test]
fn pick_free_prefers_the_upper_band_from_a_random_start() {
    let mut map = Bitmap::new(10);
    // offset 4: the upper band is 4..10; start 3 means slot 7 first.
    assert_eq!(pick_free(&map, 4, &mut script(&[3])), Some(7));
    map.set(7);
    map.set(8);
    assert_eq!(
        pick_free(&map, 4, &mut script(&[3])),
        Some(9),
        "scans upward"
    );
    map.set(9);
    assert_eq!(
        pick_free(&map, 4, &mut script(&[3])),
        Some(4),
        "wraps within the band"
    );
    for i in 4..10 {
        map.set(i);
    }
    // Upper band full: the static band, from its own random start.
    assert_eq!(pick_free(&map, 4, &mut script(&[0, 2])), Some(2));
    for i in 0..4 {
        map.set(i);
    }
    assert_eq!(pick_free(&map, 4, &mut script(&[])), None);
    assert_eq!(pick_free(&Bitmap::new(3), 0, &mut script(&[1])), Some(1));
}

#[test]
fn cluster_ips_come_from_the_service_range() {
    let mut a = ClusterIpAllocator::new(service_cidr());
    assert_eq!(a.first(), Ipv4Addr::new(198, 19, 0, 1));
    assert_eq!(a.static_band(), 256);
    a.allocate(a.first()).unwrap();
    assert_eq!(
        a.allocate(Ipv4Addr::new(198, 19, 0, 1))
            .unwrap_err()
            .to_string(),
        "provided IP is already allocated"
    );
    let err = a.allocate(Ipv4Addr::new(10, 0, 0, 1)).unwrap_err();
    assert!(matches!(err, AllocError::NotInRange { .. }));
    assert_eq!(err.to_string(), "the provided IP (10.0.0.1) is not in the valid range. The range of valid IPs is 198.19.0.0/16");
    assert!(
        a.allocate(Ipv4Addr::new(198, 19, 255, 255)).is_err(),
        "broadcast"
    );
    assert!(a.allocate(Ipv4Addr::new(198, 19, 0, 0)).is_err(), "network");
    let ip = a.allocate_next(&mut script(&[0])).unwrap();
    assert_eq!(
        ip,
        Ipv4Addr::new(198, 19, 1, 1),
        "the upper band's first slot"
    );
    assert!(a.has(ip));
    assert!(a.release(ip));
    assert!(!a.release(ip));
    assert_eq!(a.used(), 1);
}

#[test]
fn a_full_range_says_so() {
    let mut a = ClusterIpAllocator::new(
        lab03::ipam::Cidr::new(Ipv4Addr::new(198, 19, 7, 0), 29).unwrap(),
    );
    let mut got = Vec::new();
    while let Ok(ip) = a.allocate_next(&mut lab04::allocator::system_random) {
        got.push(ip);
    }
    got.sort();
    assert_eq!(got.len(), 6);
    assert_eq!(got[0], Ipv4Addr::new(198, 19, 7, 1));
    assert_eq!(a.allocate_next(&mut script(&[])), Err(AllocError::Full));
}

#[test]
fn node_ports_come_from_their_range() {
    let mut p = NodePortAllocator::new(NODE_PORTS);
    p.allocate(30123).unwrap();
    assert_eq!(
        p.allocate(30123).unwrap_err().to_string(),
        "provided port is already allocated"
    );
    assert_eq!(
        p.allocate(80).unwrap_err().to_string(),
        "the provided port (80) is not in the valid range. The range of valid ports is 30000-32767"
    );
    assert_eq!(p.allocate_next(&mut script(&[0])).unwrap(), 30086);
    assert!(p.release(30123));
    assert_eq!(p.used(), 1);
}

#[test]
fn a_bitmap_round_trips_through_bytes() {
    let mut m = Bitmap::new(70);
    for i in [0, 5, 64, 69] {
        m.set(i);
    }
    assert_eq!(Bitmap::from_bytes(70, &m.to_bytes()), m);
}

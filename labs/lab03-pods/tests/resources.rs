//! Quantities, and the cgroup settings a container's resources become.

use lab01::limits::{CpuQuota, Resources};
use lab03::manifest::parse_pod;
use lab03::resources::{container_cgroup, cpu_settings, parse_quantity, QuantityError};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/pods/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn quantities_parse_exactly() {
    let amount = |t: &str| parse_quantity(t).unwrap_or_else(|e| panic!("{t}: {e}"));
    let unit: i128 = 1_000_000_000;
    assert_eq!(amount("500m").nanos, unit / 2);
    assert_eq!(amount("1").nanos, unit);
    assert_eq!(amount("0.5").nanos, unit / 2);
    assert_eq!(amount("64Mi").nanos, (64 << 20) * unit);
    assert_eq!(amount("1G").nanos, 1_000_000_000 * unit);
    assert_eq!(amount("1e3").nanos, 1000 * unit);
    assert_eq!(amount("1.5Ki").nanos, 1536 * unit);
    assert_eq!(amount("-2").nanos, -2 * unit);
    assert_eq!(amount("250u").milli(), 1, "MilliValue rounds up");
    assert_eq!(amount("100m").to_string(), "100m");
    assert_eq!(amount("2000m").to_string(), "2");
    assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
    assert!(matches!(
        parse_quantity("lots"),
        Err(QuantityError::Format(_))
    ));
    assert!(matches!(
        parse_quantity("1.2.3"),
        Err(QuantityError::Format(_))
    ));
    assert!(matches!(
        parse_quantity("5Xi"),
        Err(QuantityError::Suffix(..))
    ));
    assert!(matches!(
        parse_quantity("1e40"),
        Err(QuantityError::Overflow(_))
    ));
}

#[test]
fn cpu_request_becomes_shares_and_weight() {
    // (request, shares, weight) from the kubelet's and runc's formulas.
    let table = [
        (None, 2, 1),
        (Some(0), 2, 1),
        (Some(1), 2, 1),
        (Some(10), 10, 1),
        (Some(100), 102, 4),
        (Some(250), 256, 10),
        (Some(500), 512, 20),
        (Some(1000), 1024, 39),
        (Some(2000), 2048, 79),
        (Some(256_000), 262_144, 10_000),
        (Some(1_000_000), 262_144, 10_000),
    ];
    for (request, shares, weight) in table {
        let cpu = cpu_settings(request, None);
        assert_eq!(
            (cpu.shares, cpu.weight),
            (shares, weight),
            "request {request:?}m"
        );
        assert_eq!(cpu.quota, None);
    }
}

#[test]
fn cpu_limit_becomes_a_quota() {
    let quota = |milli| {
        cpu_settings(Some(milli), Some(milli))
            .quota
            .map(|q| q.quota_us)
    };
    assert_eq!(quota(500), Some(50_000));
    assert_eq!(quota(1000), Some(100_000));
    assert_eq!(quota(2500), Some(250_000));
    assert_eq!(quota(5), Some(1000), "at least 1 ms");
    assert_eq!(cpu_settings(None, Some(0)).quota, None);
    let period = cpu_settings(None, Some(200)).quota.map(|q| q.period_us);
    assert_eq!(period, Some(100_000));
}

#[test]
fn the_pair_pods_kubia_gets_these_files() {
    let pod = parse_pod(&fixture("kubia-two-containers.yaml")).expect("pod");
    let spec = pod.spec.expect("spec");
    let cgroup = container_cgroup(&spec.containers[0]).expect("resources");
    assert_eq!(
        cgroup.resources(),
        Resources {
            memory: Some(64 << 20),
            pids: None,
            cpu: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 100_000
            }),
        }
    );
    let show = |files: Vec<(&str, String)>| -> String {
        files
            .iter()
            .map(|(f, v)| format!("{f:<22} {v}\n"))
            .collect()
    };
    insta::assert_snapshot!("kubia_v1", show(cgroup.v1_files()));
    insta::assert_snapshot!("kubia_v2", show(cgroup.v2_files()));
    // The fetcher asks for nothing: the fewest shares, no limits.
    let fetcher = container_cgroup(&spec.containers[1]).expect("resources");
    insta::assert_snapshot!("fetcher_v2", show(fetcher.v2_files()));
    assert!(fetcher.resources().is_empty());
}

#[test]
fn a_limit_alone_is_the_request_too() {
    let pod = parse_pod(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: n}\nspec:\n  containers:\n  - {name: c, image: kubia, resources: {limits: {cpu: 250m, memory: 1G}}}\n",
    )
    .expect("pod");
    let cgroup = container_cgroup(&pod.spec.expect("spec").containers[0]).expect("resources");
    assert_eq!((cgroup.cpu.shares, cgroup.cpu.weight), (256, 10));
    assert_eq!(cgroup.memory_bytes, Some(1_000_000_000));
}

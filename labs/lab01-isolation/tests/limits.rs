//! Self-checks for §1.4: limits as data. Pure code: runs anywhere.

use lab01::limits::{parse_cpus, parse_pids, parse_size, ParseError};

#[test]
fn parses_sizes_with_units() {
    let cases = ["1048576", "512K", "64M", "64m", "1G", "2GiB", " 16M "];
    let parsed: Vec<String> = cases
        .iter()
        .map(|c| format!("{c:>9} -> {:?}", parse_size(c)))
        .collect();
    insta::assert_snapshot!(parsed.join("\n"));
}

#[test]
fn rejects_bad_sizes() {
    assert_eq!(parse_size(""), Err(ParseError::Empty));
    assert_eq!(parse_size("64X"), Err(ParseError::BadUnit("X".into())));
    assert_eq!(parse_size("M"), Err(ParseError::NotANumber("M".into())));
    assert_eq!(parse_size("0"), Err(ParseError::Zero));
    assert_eq!(parse_size("99999999999999G"), Err(ParseError::Overflow));
    assert_eq!(parse_size("-5M"), Err(ParseError::NotANumber("-5M".into())));
}

#[test]
fn parses_cpu_shares_and_pid_counts() {
    assert_eq!(
        parse_cpus("0.5").map(|q| (q.quota_us, q.period_us)),
        Ok((50_000, 100_000))
    );
    assert_eq!(parse_cpus("2").map(|q| q.quota_us), Ok(200_000));
    assert_eq!(parse_cpus("0.001").map(|q| q.quota_us), Ok(1_000));
    assert!(parse_cpus("half").is_err());
    assert_eq!(parse_cpus("0"), Err(ParseError::Zero));
    assert_eq!(parse_pids("32"), Ok(32));
    assert!(parse_pids("lots").is_err());
}

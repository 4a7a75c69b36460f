//! Self-checks for §2.2: content addressing.

use lab02::digest::{Digest, DigestError};

#[test]
fn digests_of_known_bytes() {
    // The SHA-256 of nothing, and of "hello\n", as `sha256sum` prints them.
    let cases = [&b""[..], b"hello\n", b"You've hit kubia\n"];
    let lines: Vec<String> = cases
        .iter()
        .map(|c| format!("{:?} -> {}", String::from_utf8_lossy(c), Digest::of(c)))
        .collect();
    insta::assert_snapshot!(lines.join("\n"));
}

#[test]
fn verify_catches_a_changed_byte() {
    let digest = Digest::of(b"layer bytes");
    assert_eq!(digest.verify(b"layer bytes"), Ok(()));
    assert!(matches!(
        digest.verify(b"layer bytez"),
        Err(DigestError::Mismatch { .. })
    ));
    let parsed: Digest = digest.to_string().parse().expect("round trip");
    assert_eq!(parsed, digest);
}

#[test]
fn malformed_digests_are_named() {
    assert!(matches!(
        "sha256:xyz".parse::<Digest>(),
        Err(DigestError::Malformed(_))
    ));
    assert!(matches!(
        "md5:abc".parse::<Digest>(),
        Err(DigestError::Algorithm(_))
    ));
    assert!(matches!(
        "nocolon".parse::<Digest>(),
        Err(DigestError::Malformed(_))
    ));
}

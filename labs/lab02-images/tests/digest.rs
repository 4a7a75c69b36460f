//! Self-checks for §2.1: content addressing.

use std::io::{self, Write};

use lab02::digest::{Digest, DigestError, DigestWriter};

#[test]
fn digests_of_known_bytes() {
    // The SHA-256 of nothing, and of "hello\n", as `sha256sum` prints them.
    let cases = [&b""[..], b"hello\n", b"You've hit kubia\n"];
    let lines: Vec<String> = cases
        .iter()
        .map(|c| {
            format!("{:?}\n  {}", String::from_utf8_lossy(c), Digest::of(c))
        })
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

/// SHA-256 of "hello\n", as `printf 'hello\n' | sha256sum` prints it.
const HELLO: &str =
    "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

#[test]
fn digest_writer_passes_every_write_through() {
    let mut writer = DigestWriter::new(Vec::new());
    for piece in [&b"he"[..], b"", b"llo", b"\n"] {
        writer.write_all(piece).expect("write to a Vec");
    }
    assert_eq!(writer.len(), 6, "bytes counted so far");
    let (inner, digest, len) = writer.finish();
    assert_eq!(inner, b"hello\n", "what reached the inner writer");
    assert_eq!(digest.to_string(), HELLO);
    assert_eq!(len, 6);
}

/// Takes at most `step` bytes per write, and refuses anything past `room`.
struct Narrow {
    got: Vec<u8>,
    step: usize,
    room: usize,
}

impl Write for Narrow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.step).min(self.room - self.got.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "full"));
        }
        self.got.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn digest_writer_hashes_only_what_the_inner_writer_took() {
    // write_all calls write again with the rest of what was not taken.
    let narrow = Narrow {
        got: Vec::new(),
        step: 4,
        room: usize::MAX,
    };
    let mut writer = DigestWriter::new(narrow);
    writer.write_all(b"hello\n").expect("write_all");
    let (inner, digest, len) = writer.finish();
    assert_eq!(inner.got, b"hello\n");
    assert_eq!((digest.to_string(), len), (HELLO.to_string(), 6));

    // A write that fails adds nothing; what went before stays counted.
    let full = Narrow {
        got: Vec::new(),
        step: 4,
        room: 3,
    };
    let mut writer = DigestWriter::new(full);
    assert!(
        writer.write_all(b"hello\n").is_err(),
        "the inner writer is full"
    );
    let (inner, digest, len) = writer.finish();
    assert_eq!(inner.got, b"hel");
    assert_eq!(len, 3, "only the bytes that went through");
    assert_eq!(
        digest.to_string(),
        "sha256:d6a81f224bbf2f7c22baddbd5d40730eb20cfb0b3d74e10cab61788214caceb1"
    );
}

//! Self-checks for §1.2: a network namespace with only a loopback device, up.

mod common;

use lab01::namespaces::Namespace;

/// Only a network namespace (and a user namespace when not root): no
/// rootfs, so it needs none of the later exercises. /proc/net shows the
/// reader's own network namespace even on the host's /proc, and a connection
/// to 127.0.0.1 tells an up loopback (refused: nobody listens on port 9)
/// from a down one (unreachable).
#[test]
fn only_loopback_and_it_is_up() {
    if !common::userns() {
        return;
    }
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; \
                  (echo > /dev/tcp/127.0.0.1/9) 2>&1 | sed 's/.*: //' | sort -u";
    let out = common::run(common::bare(&["bash", "-c", script], &[Namespace::Net]));
    assert!(out.status.success() || !out.stdout.is_empty(), "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

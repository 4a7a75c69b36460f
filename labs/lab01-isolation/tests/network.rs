//! Self-checks for §1.2: a network namespace with only a loopback device, up.

mod common;

#[test]
fn only_loopback_and_it_is_up() {
    if !common::root() {
        return;
    }
    // flags 0x9 = IFF_UP | IFF_LOOPBACK; a fresh namespace has 0x8 (down).
    let out = common::sh(
        "for d in /sys/class/net/*; do echo ${d##*/} $(cat $d/flags) $(cat $d/operstate); done",
    );
    assert!(out.status.success(), "{out:?}");
    insta::assert_snapshot!(out.stdout);
}

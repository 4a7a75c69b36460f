#!/bin/sh
# PID 1 of the cgroup v2 VM (vm_cgroup_v2.rs). Its output is the serial
# console, which the test on the host reads back; the last line it prints
# is the end marker with the number of failures, then the VM powers off.
export PATH=/bin
# The initramfs itself cannot be pivot_root's old root (containers need
# that): copy it onto a tmpfs and start again from there.
if [ ! -e /.on-tmpfs ]; then
    mkdir /newroot
    mount -t tmpfs -o mode=755 root /newroot
    for f in /*; do [ "$f" = /newroot ] || cp -a "$f" /newroot/; done
    touch /newroot/.on-tmpfs
    exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t cgroup2 none /sys/fs/cgroup
cg=/sys/fs/cgroup
failed=0
check() {
    what=$1
    shift
    if "$@"; then echo "VM-CHECK ok: $what"; else echo "VM-CHECK FAILED: $what"; failed=$((failed + 1)); fi
}
has_all() { # FILE WORD...: every word is in the file
    file=$1
    shift
    for w in "$@"; do grep -qw "$w" "$file" || return 1; done
}

echo "VM: kernel $(uname -r), cgroup2 at $cg, controllers: $(cat $cg/cgroup.controllers)"
pure_v2() { [ -e $cg/cgroup.controllers ] && [ ! -d $cg/memory ]; }
check "a pure cgroup v2 layout (no v1 hierarchy)" pure_v2
# What systemd does at boot: every controller handed to the root's children.
for c in $(cat $cg/cgroup.controllers); do echo "+$c" > $cg/cgroup.subtree_control; done
check "root subtree_control has memory pids cpu" has_all $cg/cgroup.subtree_control memory pids cpu

# Like a login session's scope: this shell and the tests it runs share one
# non-root cgroup, so v2's "no internal processes" rule applies to it (the
# root is exempt) and lab01 has to move them into a leaf.
session=$cg/session.scope
mkdir $session
echo $$ > $session/cgroup.procs
check "the tests start in a cgroup with no controllers enabled" [ -z "$(cat $session/cgroup.subtree_control)" ]

while read -r binary name; do
    [ -n "$binary" ] || continue
    echo "VM-TEST start: $binary $name"
    CI=true RUST_BACKTRACE=1 KUBELINGS_SOLVED="$(cat /tests/solved)" "/tests/$binary" --exact "$name" --test-threads=1 --nocapture </dev/null
    status=$?
    if [ $status -eq 0 ]; then echo "VM-TEST ok: $binary $name"; else
        echo "VM-TEST FAILED: $binary $name (exit status $status)"; failed=$((failed + 1)); fi
done < /tests/list

check "lab01 enabled memory pids cpu for the containers" has_all $session/cgroup.subtree_control memory pids cpu
check "lab01 moved the processes into the leaf kubelings-supervisor" [ -d $session/kubelings-supervisor ]
check "the session cgroup itself holds no process" [ -z "$(cat $session/cgroup.procs)" ]
left=$(find $cg -mindepth 1 -type d -name 'kubelings-*' ! -name kubelings-supervisor)
check "no kubelings-* cgroup left behind" [ -z "$left" ]
[ -z "$left" ] || echo "left behind: $left"
echo "VM: this shell is in $(cat /proc/self/cgroup)"

echo "KUBELINGS-VM-END failed=$failed"
sync
poweroff -f

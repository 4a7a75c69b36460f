//! Root's powers, split into capabilities; a container keeps only a few.

/// The capabilities a container keeps: Docker's and containerd's default set.
/// Missing on purpose: CAP_SYS_ADMIN (mount, sethostname, …), CAP_NET_ADMIN,
/// CAP_SYS_PTRACE, CAP_SYS_MODULE, CAP_SYS_TIME and the rest.
pub const DEFAULT: [(u32, &str); 14] = [
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (8, "CAP_SETPCAP"),
    (10, "CAP_NET_BIND_SERVICE"),
    (13, "CAP_NET_RAW"),
    (18, "CAP_SYS_CHROOT"),
    (27, "CAP_MKNOD"),
    (29, "CAP_AUDIT_WRITE"),
    (31, "CAP_SETFCAP"),
];

/// [`DEFAULT`] as a bit mask.
pub fn default_mask() -> u64 {
    DEFAULT.iter().fold(0, |m, (bit, _)| m | 1 << bit)
}

/// The highest capability this kernel knows.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

// ANCHOR: drop_capabilities
/// Keeps only the capabilities in `keep` (a bit mask), for this process and
/// everything it executes, and forbids gaining any back through setuid or
/// file capabilities.
#[cfg(target_os = "linux")]
pub fn drop_capabilities(keep: u64, last_cap: u32) -> nix::Result<()> {
    use nix::errno::Errno;
    // The bounding set limits what any later exec can grant.
    for cap in 0..=last_cap {
        if keep & (1 << cap) == 0 {
            let (op, cap) = (libc::PR_CAPBSET_DROP, cap as libc::c_ulong);
            // SAFETY: prctl with integer arguments only.
            Errno::result(unsafe { libc::prctl(op, cap, 0, 0, 0) })?;
        }
    }
    let (op, all) = (libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL);
    // SAFETY: prctl with integer arguments only.
    Errno::result(unsafe { libc::prctl(op, all as libc::c_ulong, 0, 0, 0) })?;
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| (keep >> shift) as u32;
    let data = [
        CapData {
            effective: half(0),
            permitted: half(0),
            inheritable: 0,
        },
        CapData {
            effective: half(32),
            permitted: half(32),
            inheritable: 0,
        },
    ];
    let capset = libc::SYS_capset;
    // SAFETY: capset reads a version-3 header and the two data structs
    // that version needs, both alive for the call.
    Errno::result(unsafe { libc::syscall(capset, &header, data.as_ptr()) })?;
    nix::sys::prctl::set_no_new_privs()?;
    Ok(())
}
// ANCHOR_END: drop_capabilities

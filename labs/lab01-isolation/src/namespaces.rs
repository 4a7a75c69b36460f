//! Linux namespaces: each gives a process its own copy of one kind of
//! global resource (hostname, process IDs, mounts, network, …).

use std::fmt;

/// The kinds of namespace a container can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Namespace {
    /// Hostname and domain name (UNIX Time-sharing System).
    Uts,
    /// Process IDs: the first process inside is PID 1.
    Pid,
    /// The mount table.
    Mount,
    /// Network devices, addresses, routes, ports.
    Net,
    /// System V IPC and POSIX message queues.
    Ipc,
    /// User and group IDs: root inside, an ordinary user outside.
    User,
    /// The view of the cgroup tree: the container's cgroup looks like the root.
    Cgroup,
}

impl Namespace {
    pub const ALL: [Namespace; 7] = [
        Namespace::Uts,
        Namespace::Pid,
        Namespace::Mount,
        Namespace::Net,
        Namespace::Ipc,
        Namespace::User,
        Namespace::Cgroup,
    ];

    /// Its name under `/proc/PID/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Namespace::Uts => "uts",
            Namespace::Pid => "pid",
            Namespace::Mount => "mnt",
            Namespace::Net => "net",
            Namespace::Ipc => "ipc",
            Namespace::User => "user",
            Namespace::Cgroup => "cgroup",
        }
    }

    /// The flag that asks `clone(2)` or `unshare(2)` for a new one.
    #[cfg(target_os = "linux")]
    pub fn clone_flag(self) -> nix::sched::CloneFlags {
        use nix::sched::CloneFlags as F;
        match self {
            Namespace::Uts => F::CLONE_NEWUTS,
            Namespace::Pid => F::CLONE_NEWPID,
            Namespace::Mount => F::CLONE_NEWNS,
            Namespace::Net => F::CLONE_NEWNET,
            Namespace::Ipc => F::CLONE_NEWIPC,
            Namespace::User => F::CLONE_NEWUSER,
            Namespace::Cgroup => F::CLONE_NEWCGROUP,
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.proc_name())
    }
}

/// The namespaces a container gets by default: all but the user namespace,
/// which is only needed when the caller is not root.
pub const DEFAULT: [Namespace; 6] = [
    Namespace::Uts,
    Namespace::Pid,
    Namespace::Mount,
    Namespace::Net,
    Namespace::Ipc,
    Namespace::Cgroup,
];

/// The `clone(2)` flags for a set of new namespaces.
#[cfg(target_os = "linux")]
pub fn clone_flags(new: &[Namespace]) -> nix::sched::CloneFlags {
    new.iter()
        .fold(nix::sched::CloneFlags::empty(), |flags, ns| {
            flags | ns.clone_flag()
        })
}

/// Why a name cannot be a container's hostname. Kubernetes holds a pod's
/// hostname to the rules of a DNS label (RFC 1123), and so do we.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("a hostname cannot be empty")]
    Empty,
    #[error("{0} characters is too long: a DNS label has at most 63")]
    TooLong(usize),
    #[error("{ch:?} at position {at}: only a-z, 0-9 and '-' may appear")]
    BadCharacter { ch: char, at: usize },
    #[error("{0:?} cannot start a hostname: it must start with a-z or 0-9")]
    BadStart(char),
    #[error("{0:?} cannot end a hostname: it must end with a-z or 0-9")]
    BadEnd(char),
}

/// The longest DNS label, in characters.
pub const MAX_HOSTNAME: usize = 63;

// ANCHOR: check_hostname
/// Checks `name` as Kubernetes checks a pod's hostname: an RFC 1123 DNS
/// label of at most 63 characters, lowercase letters, digits and '-',
/// starting and ending with a letter or digit. Says which rule it breaks.
pub fn check_hostname(name: &str) -> Result<(), HostnameError> {
    // EXERCISE: lab01-hostname
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let Some(first) = name.chars().next() else {
        return Err(HostnameError::Empty);
    };
    let last = name.chars().last().unwrap_or(first);
    let len = name.chars().count();
    if len > MAX_HOSTNAME {
        return Err(HostnameError::TooLong(len));
    }
    if let Some((at, ch)) = name
        .chars()
        .enumerate()
        .find(|&(_, c)| !alnum(c) && c != '-')
    {
        return Err(HostnameError::BadCharacter { ch, at });
    }
    if !alnum(first) {
        return Err(HostnameError::BadStart(first));
    }
    if !alnum(last) {
        return Err(HostnameError::BadEnd(last));
    }
    Ok(())
    // EXERCISE_END: lab01-hostname
}
// ANCHOR_END: check_hostname

// ANCHOR: set_hostname
/// Sets the hostname of the UTS namespace the calling process is in, once
/// [`check_hostname`] accepts it (EINVAL otherwise). Runs inside the new
/// container, before the command starts.
#[cfg(target_os = "linux")]
pub fn set_hostname(name: &std::ffi::CStr) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let text = name.to_str().map_err(|_| nix::errno::Errno::EINVAL)?;
    check_hostname(text).map_err(|_| nix::errno::Errno::EINVAL)?;
    // The new UTS namespace holds a copy of the host's name: this changes
    // only the copy.
    nix::unistd::sethostname(std::ffi::OsStr::from_bytes(name.to_bytes()))
}
// ANCHOR_END: set_hostname

//! Pod IPs from a node's pod CIDR, the job of CNI's `host-local` IPAM
//! plugin: hand out addresses, take them back, never give one address to
//! two pods, and remember across crashes.
//!
//! Node N's CIDR defaults to 198.18.N.0/24, inside 198.18.0.0/15, the block
//! RFC 2544 reserves for benchmarking networks, so pod addresses never
//! collide with the reader's LAN. In each CIDR the first address names the
//! network, the last is the broadcast address and the one after the first
//! is the node's bridge (the pods' gateway); the rest go to pods.
//!
//! The allocations live in one JSON file in the node's state directory,
//! changed only under an exclusive `flock` on a lock file beside it (two
//! processes never pick at once) and replaced atomically (a temporary
//! file, fsync, rename, fsync of the directory), so a crash at any point
//! leaves either the old state or the new one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// An IPv4 network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

/// A CIDR that does not parse or cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `a.b.c.d/n`.
    #[error("{0:?} is not a CIDR (want a.b.c.d/n, such as 198.18.1.0/24)")]
    Syntax(String),
    /// The prefix is over 32.
    #[error("{0:?}: the prefix length must be 0 to 32")]
    Prefix(String),
    /// Bits set after the prefix.
    #[error("{text:?} has host bits set; the network is {network}")]
    HostBits {
        /// What was given.
        text: String,
        /// What was meant, probably.
        network: Cidr,
    },
}

impl Cidr {
    /// A network from its address and prefix; host bits must be zero.
    pub fn new(network: Ipv4Addr, prefix: u8) -> Result<Cidr, CidrError> {
        let text = format!("{network}/{prefix}");
        if prefix > 32 {
            return Err(CidrError::Prefix(text));
        }
        let cidr = Cidr {
            network: Ipv4Addr::from(u32::from(network) & mask(prefix)),
            prefix,
        };
        if cidr.network != network {
            return Err(CidrError::HostBits {
                text,
                network: cidr,
            });
        }
        Ok(cidr)
    }

    /// The network address (the first).
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address (the last).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }

    /// The node's bridge, the pods' gateway: the first address after the
    /// network's.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network).wrapping_add(1))
    }

    /// Whether the network holds an address.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the network lies wholly inside another.
    pub fn within(&self, outer: &Cidr) -> bool {
        self.prefix >= outer.prefix && outer.contains(self.network)
    }

    /// The first and the last address a pod may have (after the gateway,
    /// before the broadcast address), or None if the network is too small.
    pub fn pod_range(&self) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let first = u32::from(self.network).checked_add(2)?;
        let last = u32::from(self.broadcast()).checked_sub(1)?;
        (self.prefix <= 30 && first <= last).then(|| (first.into(), last.into()))
    }

    /// How many pods the network has room for.
    pub fn capacity(&self) -> u32 {
        self.pod_range()
            .map_or(0, |(a, b)| u32::from(b) - u32::from(a) + 1)
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        let syntax = || CidrError::Syntax(text.to_string());
        let (addr, prefix) = text.split_once('/').ok_or_else(syntax)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| syntax())?;
        if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(syntax());
        }
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| CidrError::Prefix(text.to_string()))?;
        Cidr::new(addr, prefix).map_err(|e| match e {
            CidrError::HostBits { network, .. } => CidrError::HostBits {
                text: text.to_string(),
                network,
            },
            CidrError::Prefix(_) => CidrError::Prefix(text.to_string()),
            other => other,
        })
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// 198.18.0.0/15, RFC 2544's benchmarking block, where pod CIDRs belong.
pub const BENCHMARK_BLOCK: Cidr = Cidr {
    network: Ipv4Addr::new(198, 18, 0, 0),
    prefix: 15,
};

/// The default pod CIDR of node N: 198.18.N.0/24.
pub fn node_cidr(n: u8) -> Cidr {
    Cidr {
        network: Ipv4Addr::new(198, 18, n, 0),
        prefix: 24,
    }
}

/// Which CIDRs [`Ipam::open`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Range {
    /// Only CIDRs inside [`BENCHMARK_BLOCK`].
    #[default]
    BenchmarkOnly,
    /// Any CIDR: the caller knows it collides with nothing.
    AnyAllowed,
}

/// Why an allocation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Every pod address is taken.
    #[error("no free address in {cidr}: all {taken} pod addresses are taken")]
    Exhausted {
        /// The network.
        cidr: Cidr,
        /// How many are taken (all of them).
        taken: usize,
    },
    /// The CIDR is outside 198.18.0.0/15.
    #[error(
        "{0} is outside {BENCHMARK_BLOCK}, the range pod networks use so they \
         cannot collide with real networks; allow it explicitly to use it"
    )]
    OutsideBenchmark(Cidr),
    /// The CIDR has no room for a single pod.
    #[error("{0} is too small: it needs room for the network, gateway, broadcast and a pod (/30 at most)")]
    TooSmall(Cidr),
    /// The state belongs to another CIDR.
    #[error("{path} holds allocations from {found}, not {wanted}; release them or remove the file first")]
    OtherCidr {
        /// The state file.
        path: PathBuf,
        /// Its CIDR.
        found: Cidr,
        /// The one asked for.
        wanted: Cidr,
    },
    /// The state file is damaged.
    #[error("{path}: not an allocation file: {source}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
    /// Reading, writing or locking failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn io_error<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> IpamError + 'a {
    move |source| IpamError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The state file's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The network the addresses come from.
    pub cidr: Option<Cidr>,
    /// The address handed out last; the search for a free one starts
    /// after it, so a released address rests before it is reused.
    pub last: Option<Ipv4Addr>,
    /// Address to pod UID.
    pub allocations: BTreeMap<Ipv4Addr, String>,
}

// ANCHOR: pick
/// The next free pod address in `cidr`: the first one after `last` that is
/// not taken, wrapping round past the end; None if every one is taken.
pub fn pick(
    cidr: &Cidr,
    taken: &BTreeMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    // EXERCISE: lab03-allocate-ip
    let (first, end) = cidr.pod_range()?;
    let (first, end) = (u32::from(first), u32::from(end));
    // Start right after the last one handed out, if that is still ours.
    let start = match last.map(u32::from) {
        Some(l) if (first..end).contains(&l) => l + 1,
        _ => first,
    };
    (start..=end)
        .chain(first..start)
        .map(Ipv4Addr::from)
        .find(|ip| !taken.contains_key(ip))
    // EXERCISE_END: lab03-allocate-ip
}
// ANCHOR_END: pick

/// The allocator of one node.
#[derive(Debug)]
pub struct Ipam {
    cidr: Cidr,
    state: PathBuf,
    lock: PathBuf,
}

/// The state file's name in the state directory.
pub const STATE_FILE: &str = "ipam.json";
/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "ipam.lock";

impl Ipam {
    /// The allocator for `cidr`, keeping its state in `dir` (created if
    /// missing). A CIDR outside 198.18.0.0/15 needs [`Range::AnyAllowed`].
    pub fn open(dir: &Path, cidr: Cidr, range: Range) -> Result<Ipam, IpamError> {
        if range == Range::BenchmarkOnly && !cidr.within(&BENCHMARK_BLOCK) {
            return Err(IpamError::OutsideBenchmark(cidr));
        }
        if cidr.capacity() == 0 {
            return Err(IpamError::TooSmall(cidr));
        }
        std::fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
        let ipam = Ipam {
            cidr,
            state: dir.join(STATE_FILE),
            lock: dir.join(LOCK_FILE),
        };
        // Refuse now, not at the first allocation, if the state is another
        // network's or damaged.
        ipam.locked(|_| Ok(None))?;
        Ok(ipam)
    }

    /// The network.
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// The state file.
    pub fn state_path(&self) -> &Path {
        &self.state
    }

    // ANCHOR: allocate
    /// The address of pod `uid`: the one it has already, or a new one.
    pub fn allocate(&self, uid: &str) -> Result<Ipv4Addr, IpamError> {
        let cidr = self.cidr;
        self.locked(|state| {
            if let Some(ip) = find(state, uid) {
                return Ok(Some(Change::Keep(ip)));
            }
            let ip = pick(&cidr, &state.allocations, state.last).ok_or(IpamError::Exhausted {
                cidr,
                taken: state.allocations.len(),
            })?;
            state.allocations.insert(ip, uid.to_string());
            state.last = Some(ip);
            Ok(Some(Change::Write(ip)))
        })
        .map(|ip| ip.expect("allocate always answers"))
    }
    // ANCHOR_END: allocate

    /// Takes pod `uid`'s address back; answers which it was, if any.
    pub fn release(&self, uid: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        self.locked(|state| {
            Ok(find(state, uid).map(|ip| {
                state.allocations.remove(&ip);
                Change::Write(ip)
            }))
        })
    }

    /// Pod `uid`'s address, if it has one.
    pub fn lookup(&self, uid: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        self.locked(|state| Ok(find(state, uid).map(Change::Keep)))
    }

    /// Every allocation, address to pod UID.
    pub fn list(&self) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
        let mut all = BTreeMap::new();
        self.locked(|state| {
            all = state.allocations.clone();
            Ok(None)
        })?;
        Ok(all)
    }

    /// Runs `f` on the state under the lock; writes the state back if it
    /// answers [`Change::Write`].
    fn locked(
        &self,
        f: impl FnOnce(&mut State) -> Result<Option<Change>, IpamError>,
    ) -> Result<Option<Ipv4Addr>, IpamError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io_error("opening", &self.lock))?;
        // Blocks until no other process holds it; the lock goes with the
        // descriptor, so a crashed holder releases it by dying.
        let _guard = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_error("locking", &self.lock)(errno.into()))?;
        let mut state = self.load()?;
        match f(&mut state)? {
            None => Ok(None),
            Some(Change::Keep(ip)) => Ok(Some(ip)),
            Some(Change::Write(ip)) => {
                state.cidr = Some(self.cidr);
                self.store(&state)?;
                Ok(Some(ip))
            }
        }
    }

    fn load(&self) -> Result<State, IpamError> {
        let text = match std::fs::read(&self.state) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(io_error("reading", &self.state)(e)),
        };
        let state: State = serde_json::from_slice(&text).map_err(|source| IpamError::Corrupt {
            path: self.state.clone(),
            source,
        })?;
        match state.cidr {
            Some(found) if found != self.cidr && !state.allocations.is_empty() => {
                Err(IpamError::OtherCidr {
                    path: self.state.clone(),
                    found,
                    wanted: self.cidr,
                })
            }
            // An old network with nothing allocated: start afresh.
            Some(found) if found != self.cidr => Ok(State::default()),
            _ => Ok(state),
        }
    }

    // ANCHOR: store
    /// Replaces the state file atomically: write a temporary file, fsync
    /// it, rename it over the old one, fsync the directory (the rename
    /// itself is only durable once the directory is).
    fn store(&self, state: &State) -> Result<(), IpamError> {
        let temp = self.state.with_extension("json.tmp");
        let corrupt = |source| IpamError::Corrupt {
            path: self.state.clone(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(state).map_err(corrupt)?;
        text.push(b'\n');
        let mut file = File::create(&temp).map_err(io_error("creating", &temp))?;
        file.write_all(&text).map_err(io_error("writing", &temp))?;
        file.sync_all().map_err(io_error("syncing", &temp))?;
        drop(file);
        let renaming = io_error("renaming into", &self.state);
        std::fs::rename(&temp, &self.state).map_err(renaming)?;
        let dir = self.state.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error("syncing", dir))
    }
    // ANCHOR_END: store
}

enum Change {
    /// Answer this address; nothing changed.
    Keep(Ipv4Addr),
    /// Answer this address and write the state back.
    Write(Ipv4Addr),
}

fn find(state: &State, uid: &str) -> Option<Ipv4Addr> {
    state
        .allocations
        .iter()
        .find(|(_, owner)| owner.as_str() == uid)
        .map(|(ip, _)| *ip)
}

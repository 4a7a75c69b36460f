//! ClusterIPs and NodePorts, allocated as kube-apiserver allocates them:
//! one bit per address (or port) of the range, a low *static band* kept
//! for values users ask for, and random picks from the band above it
//! first (KEP-3070), so a chosen address rarely collides with a dynamic
//! one.

use std::fmt;
use std::net::Ipv4Addr;

use lab03::ipam::Cidr;

/// The service range: 198.19.0.0/16, in the block reserved for
/// benchmarking networks, beside the pods' 198.18.0.0/16.
pub fn service_cidr() -> Cidr {
    Cidr::new(Ipv4Addr::new(198, 19, 0, 0), 16)
        .expect("198.19.0.0/16 has no host bits")
}
/// NodePorts, as kube-apiserver's default `--service-node-port-range`.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// Why an allocation was refused, in kube-apiserver's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("range is full")]
    Full,
    #[error("provided {what} is already allocated")]
    Allocated { what: &'static str },
    #[error("the provided {what} ({value}) is not in the valid range. The range of valid {what}s is {range}")]
    NotInRange {
        what: &'static str,
        value: String,
        range: String,
    },
}

/// A set of `size` slots, one bit each.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    size: usize,
    used: usize,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitmap({}/{} used)", self.used, self.size)
    }
}

impl Bitmap {
    pub fn new(size: usize) -> Bitmap {
        Bitmap {
            words: vec![0; size.div_ceil(64)],
            size,
            used: 0,
        }
    }
    pub fn size(&self) -> usize {
        self.size
    }
    pub fn used(&self) -> usize {
        self.used
    }
    pub fn is_set(&self, i: usize) -> bool {
        i < self.size && self.words[i / 64] & (1 << (i % 64)) != 0
    }
    /// Sets slot `i`; false if it was set already.
    pub fn set(&mut self, i: usize) -> bool {
        if self.is_set(i) {
            return false;
        }
        self.words[i / 64] |= 1 << (i % 64);
        self.used += 1;
        true
    }
    /// Clears slot `i`; false if it was clear.
    pub fn clear(&mut self, i: usize) -> bool {
        if !self.is_set(i) {
            return false;
        }
        self.words[i / 64] &= !(1 << (i % 64));
        self.used -= 1;
        true
    }
    /// The bits as bytes, for storing (kube-apiserver keeps them in a
    /// `RangeAllocation` object).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
    pub fn from_bytes(size: usize, bytes: &[u8]) -> Bitmap {
        let mut map = Bitmap::new(size);
        for i in 0..size {
            if bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0) {
                map.set(i);
            }
        }
        map
    }
}

/// The size of the static band of a range of `size` values: a sixteenth
/// (IPs) or a thirty-second (ports) of it, within [min, max].
pub fn static_band(size: usize, step: usize, min: usize, max: usize) -> usize {
    if size < min {
        return 0;
    }
    (size / step).clamp(min, max)
}

// ANCHOR: pick_free
/// A free slot of `map`, chosen as kube-apiserver does: from a random
/// start in the band above `offset`, scanning upward and wrapping within
/// that band; only when it is full, the same within `[0, offset)`.
/// `random(n)` answers a number in `[0, n)`. `None` when every slot is
/// taken.
pub fn pick_free(
    map: &Bitmap,
    offset: usize,
    random: &mut dyn FnMut(usize) -> usize,
) -> Option<usize> {
    // EXERCISE: lab04-pick-free
    let max = map.size();
    if map.used() >= max {
        return None;
    }
    let upper = max - offset;
    let start = random(upper);
    if let Some(at) = (0..upper)
        .map(|i| offset + (start + i) % upper)
        .find(|&at| !map.is_set(at))
    {
        return Some(at);
    }
    let start = random(offset);
    (0..offset)
        .map(|i| (start + i) % offset)
        .find(|&at| !map.is_set(at))
    // EXERCISE_END: lab04-pick-free
}
// ANCHOR_END: pick_free

/// A system random number in `[0, n)`; 0 for `n == 0`.
pub fn system_random(n: usize) -> usize {
    use std::hash::{BuildHasher, RandomState};
    if n == 0 {
        return 0;
    }
    (RandomState::new().hash_one(std::time::SystemTime::now()) % n as u64)
        as usize
}

/// ClusterIPs from a service CIDR.
#[derive(Debug, Clone)]
pub struct ClusterIpAllocator {
    cidr: Cidr,
    map: Bitmap,
    offset: usize,
}

impl ClusterIpAllocator {
    /// Every address of `cidr` but its network and broadcast addresses.
    pub fn new(cidr: Cidr) -> ClusterIpAllocator {
        let full = 1usize << (32 - cidr.prefix());
        let size = full.saturating_sub(2);
        ClusterIpAllocator {
            cidr,
            map: Bitmap::new(size),
            offset: static_band(full, 16, 16, 256),
        }
    }
    pub fn cidr(&self) -> Cidr {
        self.cidr
    }
    /// The first address of the range, which the `kubernetes` Service gets.
    pub fn first(&self) -> Ipv4Addr {
        self.address(0)
    }
    pub fn used(&self) -> usize {
        self.map.used()
    }
    pub fn free(&self) -> usize {
        self.map.size() - self.map.used()
    }
    pub fn static_band(&self) -> usize {
        self.offset
    }
    fn address(&self, slot: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1 + slot as u32)
    }
    fn slot(&self, ip: Ipv4Addr) -> Result<usize, AllocError> {
        let slot = u32::from(ip)
            .wrapping_sub(u32::from(self.cidr.network()) + 1)
            as usize;
        if !self.cidr.contains(ip) || slot >= self.map.size() {
            return Err(AllocError::NotInRange {
                what: "IP",
                value: ip.to_string(),
                range: format!(
                    "{}/{}",
                    self.cidr.network(),
                    self.cidr.prefix()
                ),
            });
        }
        Ok(slot)
    }
    /// Takes the address a Service asked for.
    pub fn allocate(&mut self, ip: Ipv4Addr) -> Result<(), AllocError> {
        let slot = self.slot(ip)?;
        if !self.map.set(slot) {
            return Err(AllocError::Allocated { what: "IP" });
        }
        Ok(())
    }
    /// Takes a free address.
    pub fn allocate_next(
        &mut self,
        random: &mut dyn FnMut(usize) -> usize,
    ) -> Result<Ipv4Addr, AllocError> {
        let slot = pick_free(&self.map, self.offset, random)
            .ok_or(AllocError::Full)?;
        self.map.set(slot);
        Ok(self.address(slot))
    }
    /// Gives an address back; false if it was not taken.
    pub fn release(&mut self, ip: Ipv4Addr) -> bool {
        self.slot(ip).is_ok_and(|slot| self.map.clear(slot))
    }
    pub fn has(&self, ip: Ipv4Addr) -> bool {
        self.slot(ip).is_ok_and(|slot| self.map.is_set(slot))
    }
}

/// NodePorts from a port range.
#[derive(Debug, Clone)]
pub struct NodePortAllocator {
    range: (u16, u16),
    map: Bitmap,
    offset: usize,
}

impl NodePortAllocator {
    pub fn new(range: (u16, u16)) -> NodePortAllocator {
        let size = usize::from(range.1.saturating_sub(range.0)) + 1;
        NodePortAllocator {
            range,
            map: Bitmap::new(size),
            offset: static_band(size, 32, 16, 128),
        }
    }
    fn slot(&self, port: u16) -> Result<usize, AllocError> {
        if port < self.range.0 || port > self.range.1 {
            return Err(AllocError::NotInRange {
                what: "port",
                value: port.to_string(),
                range: format!("{}-{}", self.range.0, self.range.1),
            });
        }
        Ok(usize::from(port - self.range.0))
    }
    pub fn allocate(&mut self, port: u16) -> Result<(), AllocError> {
        let slot = self.slot(port)?;
        if !self.map.set(slot) {
            return Err(AllocError::Allocated { what: "port" });
        }
        Ok(())
    }
    pub fn allocate_next(
        &mut self,
        random: &mut dyn FnMut(usize) -> usize,
    ) -> Result<u16, AllocError> {
        let slot = pick_free(&self.map, self.offset, random)
            .ok_or(AllocError::Full)?;
        self.map.set(slot);
        Ok(self.range.0 + slot as u16)
    }
    pub fn release(&mut self, port: u16) -> bool {
        self.slot(port).is_ok_and(|slot| self.map.clear(slot))
    }
    pub fn used(&self) -> usize {
        self.map.used()
    }
}

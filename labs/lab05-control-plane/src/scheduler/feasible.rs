//! How many nodes to look at, where to start, and which to pick.
//!
//! In a large cluster kube-scheduler stops filtering once it has found
//! "enough" feasible nodes (percentageOfNodesToScore), and it starts each
//! search where the last one stopped, so that every node gets its turn.
//! Among the best-scored nodes it picks one at random.

/// Below this many nodes, all are searched; never fewer are wanted.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

// ANCHOR: num_feasible
/// How many feasible nodes to find among `all` (numFeasibleNodesToFind).
/// `percentage` 0 means adaptive: 50% minus 1% per 125 nodes, at least 5%.
/// 1000 nodes → 420, 5000 → 500, 15000 → 750.
pub fn num_feasible_nodes_to_find(percentage: u32, all: usize) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND {
        return all;
    }
    let mut pct = percentage as usize;
    if pct == 0 {
        pct = 50usize
            .saturating_sub(all / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE);
    }
    let wanted = all * pct.min(100) / 100;
    wanted.max(MIN_FEASIBLE_NODES_TO_FIND)
}
// ANCHOR_END: num_feasible

/// A small random source (xorshift64*): ties between best nodes are
/// broken at random, as upstream's reservoir sampling does; a fixed seed
/// makes a test's choice repeatable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// Seeded from the clock.
    pub fn from_time() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng::seeded(nanos)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// selectHost: the index of a node with the highest total; among `k`
/// nodes sharing it, each is chosen with probability 1/k (reservoir
/// sampling: the i-th tie replaces the choice with probability 1/i).
pub fn select_host(totals: &[i64], rng: &mut Rng) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    let mut ties = 0u64;
    for (i, &score) in totals.iter().enumerate() {
        match best {
            Some((_, b)) if score < b => {}
            Some((_, b)) if score == b => {
                ties += 1;
                if rng.below(ties) == 0 {
                    best = Some((i, score));
                }
            }
            _ => {
                best = Some((i, score));
                ties = 1;
            }
        }
    }
    best.map(|(i, _)| i)
}

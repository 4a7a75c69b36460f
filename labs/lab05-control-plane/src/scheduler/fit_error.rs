//! The message of a pod that fits no node, in kube-scheduler's shape
//! (FitError.Error, 1.32): `0/3 nodes are available: ` then every
//! node's reasons counted, as "count reason", sorted as strings, joined
//! with ", " and ended with "."; then what preemption found, if anything:
//!
//! ```text
//! 0/3 nodes are available: 1 node(s) had untolerated taint {gpu: true},
//! 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption
//! is not helpful for scheduling, 2 No preemption victims found for
//! incoming pod.
//! ```

use std::collections::BTreeMap;
use std::fmt;

use super::filter::Rejection;

/// The reason preemption gives a node it would not look at (its
/// rejection cannot be undone by evicting pods).
pub const PREEMPTION_NOT_HELPFUL: &str =
    "Preemption is not helpful for scheduling";
/// The reason for a node with no pod of lower priority to evict.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Why a pod fits no node: each node's rejection, and preemption's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_all_nodes: usize,
    /// (node name, why), for the nodes that were tried.
    pub rejections: Vec<(String, Rejection)>,
    /// The reasons of the nodes not in `rejections` (preemption's
    /// "Preemption is not helpful for scheduling").
    pub absent_reasons: Vec<String>,
    /// DefaultPreemption's message (`preemption: …`), if it had one.
    pub post_filter: Option<String>,
}

impl FitError {
    /// The counted reasons, "3 Insufficient cpu", sorted as upstream's
    /// sort.Strings sorts them: as text, so "10 …" comes before "2 …".
    pub fn histogram(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, r) in &self.rejections {
            for reason in &r.reasons {
                *counts.entry(reason).or_default() += 1;
            }
        }
        let absent = self.num_all_nodes.saturating_sub(self.rejections.len());
        if absent > 0 {
            for reason in &self.absent_reasons {
                *counts.entry(reason).or_default() += absent;
            }
        }
        let mut lines: Vec<String> =
            counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        lines.sort();
        lines
    }
}

// ANCHOR: display
impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let histogram = self.histogram();
        if !histogram.is_empty() {
            write!(f, " {}.", histogram.join(", "))?;
        }
        if let Some(post) = &self.post_filter {
            write!(f, " {post}")?;
        }
        Ok(())
    }
}
// ANCHOR_END: display

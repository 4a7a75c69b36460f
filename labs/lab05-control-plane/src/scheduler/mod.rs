//! The scheduler: for each pod with no node, find one, and tell the API
//! server with a binding. Built as kube-scheduler is, in small parts:
//!
//! - [`node_info`]: a node's allocatable and requested resources, pods,
//!   host ports and images; a pod's requests, read once.
//! - [`affinity`]: nodeSelector and node affinity terms.
//! - [`filter`]: the filter plugins (which nodes can take the pod).
//! - [`score`]: the score plugins and their weights (which is best).
//! - [`feasible`]: percentageOfNodesToScore, the tie-break.
//! - [`fit_error`]: the FailedScheduling message.
//! - [`cycle`]: one scheduling cycle over a snapshot of the nodes.
//! - [`queue`], [`cache`], [`run`]: the running scheduler: the queue of
//!   pending pods, the nodes with assumed pods, informers and binders.
//! - [`bench`]: scheduler_perf's SchedulingBasic, in memory and through
//!   an API server.

pub mod affinity;
pub mod bench;
pub mod cache;
pub mod cycle;
pub mod feasible;
pub mod filter;
pub mod fit_error;
pub mod node_info;
pub mod queue;
pub mod run;
pub mod score;

pub use cycle::{Algorithm, Placement, ScheduleError, Snapshot};
pub use fit_error::FitError;
pub use node_info::{NodeInfo, PodInfo};
pub use run::{Scheduler, SchedulerError, SchedulerOptions};

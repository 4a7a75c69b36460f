//! The node agent's pod logic: what the kubelet does with a pod once it is
//! on its node, driving a runtime only through [`crate::cri`].
//!
//! - [`cluster`]: what a node knows of Services and the cluster's DNS.
//! - [`config`]: a Pod into the CRI's sandbox and container configs.
//! - [`worker`]: one [`PodWorker`] per pod, a non-blocking step function
//!   that creates the sandbox, runs init containers in order, starts and
//!   restarts app containers with back-off, probes them, and terminates
//!   the pod gracefully.
//! - [`status`]: the pod's `status` as the API has it.
//! - [`probe`]: liveness, readiness and startup probes.
//! - [`events`]: what `describe pod` lists.
//! - [`jobs`]: where the slow calls run.
//! - [`fake`]: an in-memory runtime to test all of it against.
//!
//! A node drives its workers like this: subscribe to
//! [`RuntimeService::events`](crate::cri::RuntimeService::events), make a
//! worker per pod, call [`PodWorker::sync`] once, then again whenever an
//! event names the worker's [`PodWorker::sandbox_id`], whenever the
//! [`jobs::Waker`] names its uid, and when the time `sync` returned has
//! come (or on a tick). To delete a pod call [`PodWorker::terminate`] and
//! keep syncing until [`PodWorker::is_terminated`]. [`Workers`] is that
//! bookkeeping for a whole node.

pub mod cluster;
pub mod config;
pub mod events;
pub mod fake;
pub mod jobs;
pub mod probe;
pub mod status;
pub mod worker;
pub mod workers;

pub use cluster::PodEnvironment;
pub use config::NodeLayout;
pub use events::{EventType, Events, PodEvent};
pub use worker::{PodWorker, WorkerError, WorkerOptions};
pub use workers::Workers;

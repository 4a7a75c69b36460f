//! lab04: services.
//!
//! Chapter 4 of the kubelings book builds this crate on lab03 (pods). A
//! Service gives a changing set of pods one address that never changes:
//!
//! - [`manifest`] and [`validate`]: Service YAML into `k8s-openapi`'s
//!   types, checked as the API server checks it, with field paths.
//! - [`selector`]: label selectors, equality- and set-based.
//! - [`endpoints`]: the EndpointSlices the endpoint-slice controller makes
//!   from a Service and the pods it selects.
//! - [`allocator`]: ClusterIPs and NodePorts, from bitmaps as
//!   kube-apiserver allocates them.
//! - [`proxy::userspace`]: kube-proxy's first mode, a process that owns
//!   the ClusterIPs and copies bytes to an endpoint [`proxy::pick`] picks
//!   (round robin, ClientIP affinity).
//! - [`proxy::nftables`]: kube-proxy's nftables mode in a node's network
//!   namespace: verdict maps, per-endpoint DNAT chains, affinity sets,
//!   written by full and incremental `nft -f` transactions.
//! - [`dns`] and [`env`]: how a pod finds a Service: CoreDNS's names under
//!   `cluster.local` and a server for them, the kubelet's service
//!   variables and its `resolv.conf`.

pub mod allocator;
pub mod dns;
pub mod endpoints;
pub mod env;
pub mod manifest;
pub mod proxy;
pub mod selector;
pub mod validate;

//! The userspace proxy's load balancer: which endpoint the next connection
//! of a Service port goes to. Pure code, no sockets and no clock of its
//! own: the caller says what time it is, so tests can move time on.
//!
//! Round robin, as kube-proxy's userspace mode did it: a cursor walks the
//! list of usable endpoints and wraps. With `sessionAffinity: ClientIP`
//! a client that came recently goes back to the endpoint it had, until it
//! has been away for the affinity's timeout.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

/// Where one client was sent, and when it last came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub endpoint: SocketAddrV4,
    pub last_used: Instant,
}

/// The balancer of one Service port.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    endpoints: Vec<SocketAddrV4>,
    /// The index the next round-robin pick takes (modulo the length).
    next: usize,
    /// `Some(timeout)` with ClientIP affinity.
    affinity: Option<Duration>,
    /// Client address to its endpoint; only with affinity.
    sessions: HashMap<Ipv4Addr, Session>,
}

impl RoundRobin {
    /// A balancer over `endpoints`, with ClientIP affinity for `affinity`.
    pub fn new(
        endpoints: Vec<SocketAddrV4>,
        affinity: Option<Duration>,
    ) -> RoundRobin {
        RoundRobin {
            endpoints,
            next: 0,
            affinity,
            sessions: HashMap::new(),
        }
    }

    /// The endpoints it picks from, in order.
    pub fn endpoints(&self) -> &[SocketAddrV4] {
        &self.endpoints
    }

    /// The session of `client`, expired or not.
    pub fn session(&self, client: Ipv4Addr) -> Option<Session> {
        self.sessions.get(&client).copied()
    }

    /// Swaps the endpoint list, live. Sessions pinned to an endpoint that
    /// is gone are dropped; the others stay. A changed list starts the
    /// cursor from its first endpoint again, as kube-proxy did.
    pub fn set_endpoints(&mut self, endpoints: Vec<SocketAddrV4>) {
        if endpoints == self.endpoints {
            return;
        }
        self.sessions.retain(|_, s| endpoints.contains(&s.endpoint));
        self.endpoints = endpoints;
        self.next = 0;
    }

    /// Changes the affinity; turning it off forgets every session.
    pub fn set_affinity(&mut self, affinity: Option<Duration>) {
        if affinity.is_none() {
            self.sessions.clear();
        }
        self.affinity = affinity;
    }

    /// Forgets `client`'s session if it points at `endpoint`: a connect
    /// there failed, so the retry must be free to go elsewhere (kube-proxy's
    /// `sessionAffinityReset`).
    pub fn failed(&mut self, client: Ipv4Addr, endpoint: SocketAddrV4) {
        if self.session(client).is_some_and(|s| s.endpoint == endpoint) {
            self.sessions.remove(&client);
        }
    }

    /// Drops the sessions that have expired by `now`, so a Service with
    /// many clients does not keep them all forever.
    pub fn sweep(&mut self, now: Instant) {
        if let Some(ttl) = self.affinity {
            self.sessions.retain(|_, s| {
                now.saturating_duration_since(s.last_used) < ttl
            });
        }
    }

    // ANCHOR: pick
    /// The endpoint for a new connection from `client` at `now`; `None`
    /// when there is none. With affinity, a client whose session is
    /// younger than the timeout gets its endpoint again (and its session
    /// is refreshed); otherwise the cursor's endpoint, which then becomes
    /// the client's session.
    pub fn pick(
        &mut self,
        client: Ipv4Addr,
        now: Instant,
    ) -> Option<SocketAddrV4> {
        // EXERCISE: lab04-round-robin
        if self.endpoints.is_empty() {
            return None;
        }
        if let Some(ttl) = self.affinity {
            if let Some(s) = self.sessions.get_mut(&client) {
                if now.saturating_duration_since(s.last_used) < ttl {
                    s.last_used = now;
                    return Some(s.endpoint);
                }
            }
        }
        let endpoint = self.endpoints[self.next % self.endpoints.len()];
        self.next = (self.next + 1) % self.endpoints.len();
        if self.affinity.is_some() {
            let last_used = now;
            self.sessions.insert(
                client,
                Session {
                    endpoint,
                    last_used,
                },
            );
        }
        Some(endpoint)
        // EXERCISE_END: lab04-round-robin
    }
    // ANCHOR_END: pick
}

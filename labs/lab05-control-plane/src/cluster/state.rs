//! What `ch05 up` records: the processes it started (by pid and start
//! time) and the namespaces they run in, in `state.json`, so that
//! `status`, `stop-node`, `down` and the next `up` find them.
//!
//! A pid alone is not an identity: once a process is gone its pid can be
//! given to another. The start time (`/proc/<pid>/stat`'s 22nd field, in
//! clock ticks since boot) goes with it, and a pid whose process started
//! at another time is not ours, so it is never signalled.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A process, as recorded: its pid and when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// Its pid.
    pub pid: u32,
    /// Its start time, in clock ticks after boot.
    pub start_time: u64,
}

impl ProcessId {
    /// The running process `pid`, if there is one.
    pub fn of(pid: u32) -> Option<ProcessId> {
        Some(ProcessId {
            pid,
            start_time: start_time(pid)?,
        })
    }

    /// Whether this very process still runs (not a zombie, not another
    /// process with its pid).
    pub fn is_alive(&self) -> bool {
        let Ok(stat) =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
        else {
            return false;
        };
        parse_stat(&stat).is_some_and(|(state, start)| {
            state != 'Z' && start == self.start_time
        })
    }
}

/// The start time of process `pid`, if it runs.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, start)| start)
}

/// The state (field 3) and start time (field 22) of a `/proc/<pid>/stat`
/// line. The command (field 2) is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4 … 21 come before the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// One process of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// `etcd`, `apiserver`, `scheduler`, `controller-manager`, `node-1`…
    pub name: String,
    /// Its process.
    pub process: ProcessId,
    /// The network namespace it runs in, if not the root one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// Its log file.
    pub log: PathBuf,
}

/// `state.json`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The process that owns the others and cleans up.
    pub supervisor: Option<ProcessId>,
    /// The store: `embedded` or `etcd`.
    pub store: String,
    /// How many nodes `up` made.
    pub nodes: u8,
    /// The cluster network's directory.
    pub network: PathBuf,
    /// The admin's kubeconfig.
    pub kubeconfig: PathBuf,
    /// The processes, in the order they were started.
    pub components: Vec<Component>,
    /// Whether `up` finished (the nodes were Ready).
    #[serde(default)]
    pub ready: bool,
    /// How long from the supervisor's start to the nodes Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// Why the cluster did not come up (whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why the state file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {source}")]
pub struct StateError {
    what: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl ClusterState {
    /// Reads the state file; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<ClusterState>, StateError> {
        let err = |what, source| StateError {
            what,
            path: path.to_path_buf(),
            source,
        };
        let text = match std::fs::read(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err("reading", e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| err("parsing", e.into()))
    }

    /// Writes it whole or not at all.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |what, source| StateError {
            what,
            path: path.to_path_buf(),
            source,
        };
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| err("encoding", e.into()))?;
        text.push(b'\n');
        let temp = path.with_extension("json.tmp");
        let mut file =
            std::fs::File::create(&temp).map_err(|e| err("creating", e))?;
        file.write_all(&text).map_err(|e| err("writing", e))?;
        file.sync_all().map_err(|e| err("syncing", e))?;
        std::fs::rename(&temp, path).map_err(|e| err("renaming", e))
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command() {
        let line = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(line), Some(('S', 123456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = ProcessId::of(std::process::id()).expect("our own stat");
        assert!(me.is_alive());
        let other = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.is_alive());
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        assert_eq!(ClusterState::load(&path).expect("load"), None);
        let state = ClusterState {
            store: "embedded".into(),
            nodes: 2,
            components: vec![Component {
                name: "node-1".into(),
                process: ProcessId {
                    pid: 7,
                    start_time: 9,
                },
                netns: Some("/x/netns/node-1".into()),
                log: "/x/logs/node-1.log".into(),
            }],
            ..ClusterState::default()
        };
        state.save(&path).expect("save");
        assert_eq!(ClusterState::load(&path).expect("load"), Some(state));
    }
}

//! Identities and their bearer tokens.
//!
//! A bearer token is a random secret: whoever shows it *is* the identity
//! it was issued to. kube-apiserver can read such tokens from a CSV file
//! (`--token-auth-file`), one `token,user,uid,"group1,group2"` a line;
//! we keep ours in the same shape, readable only by its owner (0600), in
//! the control plane's data directory.
//!
//! The identities `ch05` issues are the ones a cluster's components have:
//! the admin (group `system:masters`), one per node agent
//! (`system:node:<name>`, group `system:nodes`), the scheduler
//! (`system:kube-scheduler`) and the controller manager
//! (`system:kube-controller-manager`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;

use super::AuthError;
use crate::apiserver::guard::User;

/// The file's name in the data directory.
pub const TOKEN_FILE: &str = "tokens.csv";

/// The group every authenticated identity is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group that may do anything.
pub const MASTERS: &str = "system:masters";
/// The group of node agents.
pub const NODES: &str = "system:nodes";
/// A node agent's user name is this prefix and the node's name.
pub const NODE_PREFIX: &str = "system:node:";
pub const SCHEDULER: &str = "system:kube-scheduler";
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";

/// One identity, as a line of the token file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// The identity as the API server's handlers see it: its groups and
    /// `system:authenticated`.
    pub fn user(&self) -> User {
        let mut groups = self.groups.clone();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        User {
            name: self.name.clone(),
            groups,
        }
    }
}

/// The identities `ch05` knows how to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    /// A node agent, by node name.
    Node(String),
    Scheduler,
    ControllerManager,
}

impl Role {
    /// `admin`, `node:NAME`, `scheduler`, `controller-manager`.
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "admin" => Ok(Role::Admin),
            "scheduler" => Ok(Role::Scheduler),
            "controller-manager" => Ok(Role::ControllerManager),
            _ => match text.strip_prefix("node:") {
                Some(name) if valid_node_name(name) => {
                    Ok(Role::Node(name.to_string()))
                }
                Some(name) => Err(format!(
                    "{name:?} is not a node name (lower case letters, digits, \
                     '-' and '.', at most 253)"
                )),
                None => Err(format!(
                    "unknown user {text:?}: expected admin, node:NAME, \
                     scheduler or controller-manager"
                )),
            },
        }
    }

    /// The user name the token file holds.
    pub fn user_name(&self) -> String {
        match self {
            Role::Admin => "admin".into(),
            Role::Node(name) => format!("{NODE_PREFIX}{name}"),
            Role::Scheduler => SCHEDULER.into(),
            Role::ControllerManager => CONTROLLER_MANAGER.into(),
        }
    }

    fn groups(&self) -> Vec<String> {
        match self {
            Role::Admin => vec![MASTERS.into()],
            Role::Node(_) => vec![NODES.into()],
            Role::Scheduler | Role::ControllerManager => Vec::new(),
        }
    }

    /// A short name for files and kubeconfig entries (`node-1`).
    pub fn short_name(&self) -> String {
        match self {
            Role::Admin => "admin".into(),
            Role::Node(name) => name.clone(),
            Role::Scheduler => "scheduler".into(),
            Role::ControllerManager => "controller-manager".into(),
        }
    }
}

/// A DNS subdomain, as node names are.
fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
                })
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The token file, as loaded.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    entries: Vec<(String, Identity)>,
    /// The file's mtime and length when we read it: a change means
    /// another process added a token.
    seen: Option<(SystemTime, u64)>,
}

impl TokenFile {
    /// The token file of a data directory; a missing file has no tokens.
    pub fn open(dir: &Path) -> Result<TokenFile, AuthError> {
        let mut file = TokenFile {
            path: dir.join(TOKEN_FILE),
            entries: Vec::new(),
            seen: None,
        };
        file.reload()?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again.
    pub fn reload(&mut self) -> Result<(), AuthError> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.entries.clear();
                self.seen = None;
                return Ok(());
            }
            Err(e) => return Err(AuthError::io(&self.path, e)),
        };
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let entry =
                parse_line(line).map_err(|reason| AuthError::TokenFile {
                    path: self.path.clone(),
                    line: i + 1,
                    reason,
                })?;
            entries.push(entry);
        }
        self.entries = entries;
        self.seen = stamp(&self.path);
        Ok(())
    }

    /// Whether the file is not as we read it.
    pub fn changed_on_disk(&self) -> bool {
        stamp(&self.path) != self.seen
    }

    /// The identity whose token this is. Every token is compared, each in
    /// time independent of where it differs, so how long the answer takes
    /// tells a guesser nothing.
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        let mut found = None;
        for (known, id) in &self.entries {
            if constant_time_eq(known.as_bytes(), token.as_bytes()) {
                found = Some(id);
            }
        }
        found
    }

    /// The token of `role`: the one it has, else a new one, saved.
    pub fn issue(&mut self, role: &Role) -> Result<String, AuthError> {
        self.reload()?;
        let name = role.user_name();
        if let Some((token, _)) =
            self.entries.iter().find(|(_, id)| id.name == name)
        {
            return Ok(token.clone());
        }
        let token = random_token()?;
        let id = Identity {
            name,
            uid: random_uid()?,
            groups: role.groups(),
        };
        self.entries.push((token.clone(), id));
        self.save()?;
        Ok(token)
    }

    /// Writes every entry, through a new file renamed into place, so a
    /// reader never sees half a file.
    fn save(&mut self) -> Result<(), AuthError> {
        let mut text = String::new();
        for (token, id) in &self.entries {
            text.push_str(&format_line(token, id));
            text.push('\n');
        }
        let tmp = self.path.with_extension("csv.new");
        let io = |e| AuthError::io(&tmp, e);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path)
            .map_err(|e| AuthError::io(&self.path, e))?;
        self.seen = stamp(&self.path);
        Ok(())
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Equal or not, looking at every byte whatever the first difference.
/// (A length difference shows, but tokens all have the same length.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 32 random bytes in base64url: 43 characters, no padding.
pub fn random_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// A random UUID (version 4), as Kubernetes' uids look: the API
/// server's own.
fn random_uid() -> Result<String, AuthError> {
    crate::apiserver::meta::new_uid().map_err(|e| AuthError::Random(e.message))
}

/// `token,user,uid,"group1,group2"` (the groups column is optional).
fn parse_line(line: &str) -> Result<(String, Identity), String> {
    let fields = split_csv(line)?;
    if fields.len() < 3 || fields.len() > 4 {
        return Err(format!(
            "expected token,user,uid[,\"groups\"], found {} fields",
            fields.len()
        ));
    }
    if fields[0].is_empty() || fields[1].is_empty() {
        return Err("a token and a user name are required".into());
    }
    let groups = fields
        .get(3)
        .map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok((
        fields[0].clone(),
        Identity {
            name: fields[1].clone(),
            uid: fields[2].clone(),
            groups,
        },
    ))
}

/// Comma separated fields; a field in double quotes may hold commas, and
/// `""` inside one is a quote.
fn split_csv(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', false) if field.is_empty() => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    fields.push(field);
    Ok(fields)
}

fn format_line(token: &str, id: &Identity) -> String {
    let mut line = format!("{token},{},{}", id.name, id.uid);
    if !id.groups.is_empty() {
        line.push_str(&format!(",\"{}\"", id.groups.join(",")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_kube_apiserver_reads_them() {
        let (token, id) =
            parse_line(r#"abc,system:node:node-1,u1,"system:nodes,x""#)
                .unwrap();
        assert_eq!(token, "abc");
        assert_eq!(id.name, "system:node:node-1");
        assert_eq!(id.groups, vec!["system:nodes", "x"]);
        let (_, id) = parse_line("t,bob,u2").unwrap();
        assert!(id.groups.is_empty());
        assert!(parse_line("t,bob").is_err());
        assert!(parse_line(r#"t,bob,u,"open"#).is_err());
        let line = format_line("abc", &id);
        assert_eq!(parse_line(&line).unwrap().1, id);
    }

    #[test]
    fn tokens_are_issued_once_saved_private_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = TokenFile::open(dir.path()).unwrap();
        let admin = file.issue(&Role::Admin).unwrap();
        assert_eq!(admin.len(), 43);
        assert_eq!(file.issue(&Role::Admin).unwrap(), admin);
        let node = file.issue(&Role::Node("node-1".into())).unwrap();
        assert_ne!(node, admin);
        let mode = fs::metadata(file.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);

        let other = TokenFile::open(dir.path()).unwrap();
        let id = other.authenticate(&node).unwrap();
        assert_eq!(id.name, "system:node:node-1");
        assert_eq!(id.user().groups, vec![NODES, AUTHENTICATED]);
        assert!(other.authenticate("nope").is_none());
        assert!(!other.changed_on_disk());
        let mut writer = TokenFile::open(dir.path()).unwrap();
        writer.issue(&Role::Scheduler).unwrap();
        assert!(other.changed_on_disk());
    }

    #[test]
    fn roles_parse_from_the_command_line() {
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert_eq!(Role::parse("node:node-2"), Ok(Role::Node("node-2".into())));
        assert!(Role::parse("node:Node_2").is_err());
        assert!(Role::parse("root").is_err());
        assert_eq!(
            Role::ControllerManager.user_name(),
            "system:kube-controller-manager"
        );
    }
}

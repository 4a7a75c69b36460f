//! Who may do what: users from an htpasswd file (bcrypt entries, as
//! `htpasswd -B` writes them), HTTP Basic credentials, and optionally the
//! bearer-token flow that Docker Hub uses.
//!
//! The rules: without a users file, everyone may do everything. With one,
//! pushing always needs credentials, and so does pulling from a private
//! repository; public repositories can be pulled anonymously.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

use super::errors::{ApiError, ErrorCode, RegistryError};

/// The realm in Basic challenges, and the service in bearer ones.
pub const REALM: &str = "kubelings";
/// How long a bearer token is good for.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Which challenge the registry answers 401 with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Challenge {
    /// `WWW-Authenticate: Basic realm="kubelings"`: credentials on every request.
    #[default]
    Basic,
    /// `WWW-Authenticate: Bearer realm=".../token",...`: the client trades its
    /// credentials for a short-lived signed token at /token.
    Bearer,
}

/// What a request wants to do to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
        }
    }
}

/// Who sent a request, once its credentials are checked.
#[derive(Debug, Clone)]
pub enum Who {
    Anonymous,
    User(String),
    Token(Claims),
}

/// The users of an htpasswd file.
pub struct Users {
    hashes: HashMap<String, String>,
    /// (user, SHA-256 of the password) pairs that passed bcrypt already:
    /// bcrypt is slow on purpose, and one push makes dozens of requests.
    verified: Mutex<HashSet<(String, [u8; 32])>>,
}

impl Users {
    /// Reads `user:$2y$...` lines; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Users, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            RegistryError::Users {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let mut hashes = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| RegistryError::UsersLine {
                path: path.to_path_buf(),
                line: index + 1,
                reason: reason.to_string(),
            };
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| bad("expected user:hash"))?;
            if !["$2a$", "$2b$", "$2x$", "$2y$"]
                .iter()
                .any(|prefix| hash.starts_with(prefix))
            {
                return Err(bad(
                    "only bcrypt entries are supported (htpasswd -B)",
                ));
            }
            hashes.insert(user.to_string(), hash.to_string());
        }
        Ok(Users {
            hashes,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether `password` is `user`'s. Runs bcrypt, so call it off the
    /// async workers.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let Some(hash) = self.hashes.get(user) else {
            return false;
        };
        let key =
            (user.to_string(), Sha256::digest(password.as_bytes()).into());
        if self.lock().contains(&key) {
            return true;
        }
        let ok = bcrypt::verify(password, hash).unwrap_or(false);
        if ok {
            self.lock().insert(key);
        }
        ok
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, [u8; 32])>> {
        self.verified.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The access rules of one running registry.
pub struct Access {
    users: Option<Arc<Users>>,
    private: Vec<String>,
    challenge: Challenge,
    /// Where clients fetch tokens: `http://<addr>/token`.
    token_realm: String,
    /// Signs tokens; random per run, so tokens die with the registry.
    key: [u8; 32],
}

impl Access {
    pub fn new(
        users: Option<Users>,
        private: Vec<String>,
        challenge: Challenge,
        token_realm: String,
    ) -> Result<Access, RegistryError> {
        if users.is_none() && !private.is_empty() {
            return Err(RegistryError::PrivateWithoutUsers(private.join(", ")));
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|err| {
            RegistryError::Runtime(std::io::Error::other(err))
        })?;
        Ok(Access {
            users: users.map(Arc::new),
            private,
            challenge,
            token_realm,
            key,
        })
    }

    pub fn challenge_kind(&self) -> Challenge {
        self.challenge
    }

    /// Whether credentials are configured at all.
    pub fn enabled(&self) -> bool {
        self.users.is_some()
    }

    /// A repository is private when its name is listed, or lies beneath a
    /// listed name (`team` covers `team/app`).
    pub fn is_private(&self, repository: &str) -> bool {
        self.private.iter().any(|p| {
            repository == p
                || (repository.starts_with(p.as_str())
                    && repository.as_bytes().get(p.len()) == Some(&b'/'))
        })
    }

    // ANCHOR: identify
    /// Checks the credentials a request carries, if any. Wrong ones are
    /// refused even where none are needed: a client should learn that its
    /// password is wrong.
    pub async fn identify(&self, headers: &HeaderMap) -> Result<Who, ApiError> {
        let Some(users) = &self.users else {
            return Ok(Who::Anonymous);
        };
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(Who::Anonymous);
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        match (self.challenge, scheme.to_ascii_lowercase().as_str()) {
            (Challenge::Basic, "basic") => {
                let (user, password) =
                    decode_basic(rest.trim()).ok_or_else(|| {
                        self.refuse(None, "malformed Basic credentials")
                    })?;
                // Some clients (skopeo) send an empty user and password when
                // they have none: that is an anonymous request, not a wrong one.
                if user.is_empty() && password.is_empty() {
                    return Ok(Who::Anonymous);
                }
                if check_off_runtime(users, &user, password).await {
                    Ok(Who::User(user))
                } else {
                    Err(self.refuse(None, "invalid username or password"))
                }
            }
            (Challenge::Bearer, "bearer") => {
                match self.verify_token(rest.trim()) {
                    Some(claims) => Ok(Who::Token(claims)),
                    None => Err(self.refuse(None, "invalid or expired token")),
                }
            }
            _ => Err(self.refuse(None, "unsupported authorization scheme")),
        }
    }
    // ANCHOR_END: identify

    /// Whether `who` may do `action` to `repository`.
    pub fn permits(&self, who: &Who, repository: &str, action: Action) -> bool {
        if self.users.is_none() {
            return true;
        }
        let anonymous_ok =
            action == Action::Pull && !self.is_private(repository);
        match who {
            Who::Anonymous => anonymous_ok,
            Who::User(_) => true,
            Who::Token(claims) => {
                anonymous_ok || claims.allows(repository, action)
            }
        }
    }

    /// Identifies the sender and checks it may do `action` to `repository`;
    /// if not, answers 401 with a challenge naming what it would need.
    pub async fn require(
        &self,
        headers: &HeaderMap,
        repository: &str,
        action: Action,
    ) -> Result<Who, ApiError> {
        let who = self.identify(headers).await?;
        if self.permits(&who, repository, action) {
            Ok(who)
        } else {
            Err(self
                .refuse(Some((repository, action)), "authentication required"))
        }
    }

    /// For `/v2/` and the catalog: anyone with valid credentials, or anyone
    /// at all when no users file is configured.
    pub async fn require_login(
        &self,
        headers: &HeaderMap,
    ) -> Result<Who, ApiError> {
        let who = self.identify(headers).await?;
        match who {
            Who::Anonymous if self.enabled() => {
                Err(self.refuse(None, "authentication required"))
            }
            // An anonymous token is no login either.
            Who::Token(claims) if claims.sub.is_empty() => {
                Err(self.refuse(None, "authentication required"))
            }
            who => Ok(who),
        }
    }

    /// 401 UNAUTHORIZED with the challenge: for bearer, the scope the client
    /// should ask its token for (pushers need pull too: they HEAD blobs).
    pub fn refuse(
        &self,
        scope: Option<(&str, Action)>,
        message: &str,
    ) -> ApiError {
        let challenge = match self.challenge {
            Challenge::Basic => format!("Basic realm=\"{REALM}\""),
            Challenge::Bearer => {
                let mut c = format!(
                    "Bearer realm=\"{}\",service=\"{REALM}\"",
                    self.token_realm
                );
                if let Some((repository, action)) = scope {
                    let actions = match action {
                        Action::Pull => "pull",
                        Action::Push => "pull,push",
                    };
                    c.push_str(&format!(
                        ",scope=\"repository:{repository}:{actions}\""
                    ));
                }
                c
            }
        };
        let mut error = ApiError::new(ErrorCode::Unauthorized, message)
            .header(header::WWW_AUTHENTICATE, challenge);
        if let Some((repository, action)) = scope {
            error = error.detail(serde_json::json!([{
                "Type": "repository",
                "Name": repository,
                "Action": action.as_str(),
            }]));
        }
        error
    }

    /// The /token endpoint: grants each requested scope's actions that the
    /// sender may do, in a token signed with this run's key.
    pub async fn issue_token(
        &self,
        headers: &HeaderMap,
        scopes: &[&str],
    ) -> Result<String, ApiError> {
        // ANCHOR: token
        let who = match self.identify_basic(headers).await? {
            Some(user) => Who::User(user),
            None => Who::Anonymous,
        };
        let mut access = Vec::new();
        for scope in scopes {
            let Some((repository, actions)) = parse_scope(scope) else {
                continue;
            };
            let granted: Vec<String> = actions
                .iter()
                .filter(|&&action| self.permits(&who, repository, action))
                .map(|action| action.as_str().to_string())
                .collect();
            access.push(Grant {
                kind: "repository".into(),
                name: repository.to_string(),
                actions: granted,
            });
        }
        let claims = Claims {
            sub: match &who {
                Who::User(user) => user.clone(),
                _ => String::new(),
            },
            access,
            exp: now_secs() + TOKEN_LIFETIME.as_secs(),
        };
        let payload = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&claims)
                .map_err(|err| ApiError::internal("signing a token", err))?,
        );
        let signature = URL_SAFE_NO_PAD
            .encode(mac(&self.key, &payload).finalize().into_bytes());
        Ok(format!("{payload}.{signature}"))
        // ANCHOR_END: token
    }

    /// Basic credentials for /token (which works in bearer mode too).
    async fn identify_basic(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        let Some(users) = &self.users else {
            return Ok(None);
        };
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let basic_refusal = || {
            ApiError::new(
                ErrorCode::Unauthorized,
                "invalid username or password",
            )
            .header(
                header::WWW_AUTHENTICATE,
                format!("Basic realm=\"{REALM}\""),
            )
        };
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(basic_refusal());
        }
        let (user, password) =
            decode_basic(rest.trim()).ok_or_else(basic_refusal)?;
        // As in `identify`: empty credentials mean none.
        if user.is_empty() && password.is_empty() {
            return Ok(None);
        }
        if check_off_runtime(users, &user, password).await {
            Ok(Some(user))
        } else {
            Err(basic_refusal())
        }
    }

    fn verify_token(&self, token: &str) -> Option<Claims> {
        let (payload, signature) = token.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        // verify_slice compares in constant time (the subtle crate), so
        // timing says nothing about how much of a forged signature matched.
        mac(&self.key, payload).verify_slice(&signature).ok()?;
        let claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?)
                .ok()?;
        (claims.exp > now_secs()).then_some(claims)
    }
}

/// What a token grants.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub sub: String,
    pub access: Vec<Grant>,
    pub exp: u64,
}

/// Actions on one repository, as in Docker's token format.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Claims {
    fn allows(&self, repository: &str, action: Action) -> bool {
        self.access.iter().any(|grant| {
            grant.kind == "repository"
                && grant.name == repository
                && grant.actions.iter().any(|a| a == action.as_str())
        })
    }
}

/// `repository:team/app:pull,push` → ("team/app", [Pull, Push]).
fn parse_scope(scope: &str) -> Option<(&str, Vec<Action>)> {
    let rest = scope.strip_prefix("repository:")?;
    let (repository, actions) = rest.rsplit_once(':')?;
    let actions = actions
        .split(',')
        .filter_map(|a| match a {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            _ => None,
        })
        .collect();
    Some((repository, actions))
}

/// bcrypt takes milliseconds of CPU on purpose: not on an async worker.
async fn check_off_runtime(
    users: &Arc<Users>,
    user: &str,
    password: String,
) -> bool {
    let (users, user) = (users.clone(), user.to_string());
    tokio::task::spawn_blocking(move || users.check(&user, &password))
        .await
        .unwrap_or(false)
}

fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let text = String::from_utf8(STANDARD.decode(encoded).ok()?).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// HMAC-SHA256 (RFC 2104) of `payload` under `key`, to finalize or verify.
fn mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length: new_from_slice cannot fail for it.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 1: a 20-byte key of 0x0b.
        let mac = mac(&[0x0bu8; 20], "Hi There").finalize().into_bytes();
        assert_eq!(
            hex::encode(mac),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn scopes_parse() {
        let (repo, actions) =
            parse_scope("repository:team/app:pull,push").unwrap();
        assert_eq!(repo, "team/app");
        assert_eq!(actions, [Action::Pull, Action::Push]);
        assert!(parse_scope("registry:catalog:*").is_none());
    }
}

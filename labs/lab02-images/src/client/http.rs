//! One conversation with one registry: HTTPS (or, on this machine, plain
//! HTTP) requests through ureq, plus what the registry's 401 challenges
//! teach (Basic credentials, or bearer tokens fetched from its token realm
//! and then sent instead), and the redirects of blob downloads.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use indicatif::ProgressBar;
use percent_encoding::{utf8_percent_encode, AsciiSet};
use ureq::http;

use super::errors::ClientError;
use super::tls::{certificate_problem, TlsOptions, Transport};
use super::Credentials;
use crate::reference::api_host;

pub type Response = http::Response<ureq::Body>;

/// The longest error body or token answer the client reads: they are
/// small JSON documents, and a broken server must not fill memory.
const SMALL_BODY: u64 = 1 << 20;

/// Redirects followed for one request before giving up (Docker's
/// distribution client allows 10; blob storage needs one or two).
pub const MAX_REDIRECTS: usize = 5;

/// An agent for one registry: no proxy (a proxy from the environment must
/// not see loopback traffic), bounded waits, redirects left to
/// [`Conn::call`] (which must drop credentials for other hosts), and the
/// given TLS settings.
pub fn agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .user_agent("kubelings-lab02")
        .tls_config(tls)
        .build()
        .into()
}

/// What a request is about, for the token it needs.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'s> {
    pub repository: &'s str,
    pub push: bool,
}

impl Scope<'_> {
    fn as_token_scope(&self) -> String {
        let actions = if self.push { "pull,push" } else { "pull" };
        format!("repository:{}:{actions}", self.repository)
    }
}

/// A request body that can be sent again (after a 401 taught the client
/// how to authenticate).
pub enum Payload<'p> {
    Empty,
    Bytes(&'p [u8]),
    /// `len` bytes of a file from `offset`, counted on `bar`.
    File {
        path: &'p Path,
        offset: u64,
        len: u64,
        bar: &'p ProgressBar,
    },
}

#[derive(Debug, Clone, Default)]
enum Scheme {
    /// No 401 seen yet: send nothing.
    #[default]
    Unknown,
    Basic,
    /// Tokens, fetched from the realm each challenge names.
    Bearer,
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

// ANCHOR: parse_challenge
/// `Basic realm="x"` or `Bearer realm="http://…/token",service="…",scope="…"`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) =
        header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut fields = HashMap::new();
    let mut rest = params.trim();
    // key="value" pairs, separated by commas; values may contain commas
    // (scope="repository:x:pull,push"), so read quoted strings whole.
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        fields.insert(key, value.to_string());
        rest = after.trim_start_matches(',').trim();
    }
    Some(Challenge::Bearer {
        realm: fields.remove("realm")?,
        service: fields.remove("service"),
        scope: fields.remove("scope"),
    })
}
// ANCHOR_END: parse_challenge

/// One registry, one push or pull (or login).
pub struct Conn<'c> {
    agent: ureq::Agent,
    creds: Option<&'c Credentials>,
    tls: &'c TlsOptions,
    /// `127.0.0.1:5000`, `docker.io`.
    pub registry: String,
    /// What the conversation is for (`docker.io/library/busybox:latest`),
    /// named in certificate and redirect errors.
    reference: String,
    /// `https://registry-1.docker.io`, or `http://…` once a loopback or
    /// insecure registry turned out to speak plain HTTP.
    base: RefCell<String>,
    /// Whether the next failure to speak HTTPS may still mean "plain HTTP".
    may_fall_back: Cell<bool>,
    scheme: RefCell<Scheme>,
    /// Bearer tokens by repository ("" for the version check), with whether
    /// they allow push.
    tokens: RefCell<HashMap<String, (String, bool)>>,
}

impl<'c> Conn<'c> {
    pub fn new(
        tls: &'c TlsOptions,
        creds: Option<&'c Credentials>,
        registry: &str,
        reference: &str,
    ) -> Result<Self, ClientError> {
        let agent = agent(tls.config_for(registry)?);
        Ok(Conn {
            agent,
            creds,
            tls,
            registry: registry.to_string(),
            reference: reference.to_string(),
            base: RefCell::new(format!("https://{}", api_host(registry))),
            may_fall_back: Cell::new(
                tls.transport(registry) == Transport::HttpsOrHttp,
            ),
            scheme: RefCell::new(Scheme::Unknown),
            tokens: RefCell::new(HashMap::new()),
        })
    }

    /// `https://host[:port]` (or `http://`), the registry's API root.
    pub fn base(&self) -> String {
        self.base.borrow().clone()
    }

    /// An absolute URL for a path or a Location header (which registries
    /// may send as a path or as a full URL).
    pub fn url(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{location}", self.base())
        } else {
            format!("{}/{location}", self.base())
        }
    }

    /// The version check: is a registry there, and what auth does it use?
    /// A 401 without credentials is fine here: public pulls need none.
    pub fn ping(&self) -> Result<u16, ClientError> {
        let response = self.call("GET", "/v2/", &[], Payload::Empty, None)?;
        match response.status().as_u16() {
            200 => Ok(200),
            401 if self.creds.is_none() => Ok(401),
            _ => self
                .expect(response, &[200], || format!("GET {}/v2/", self.base()))
                .map(|_| 200),
        }
    }

    // ANCHOR: call
    /// Sends a request; on a 401 it learns the challenge, gets what it asks
    /// for (credentials, or a token), and sends the request again.
    pub fn call(
        &self,
        method: &str,
        location: &str,
        headers: &[(&str, String)],
        payload: Payload,
        scope: Option<Scope>,
    ) -> Result<Response, ClientError> {
        let mut retried = false;
        loop {
            let authorization = self.authorization(scope);
            let (url, response) = self.send(
                method,
                location,
                headers,
                &payload,
                authorization.clone(),
            )?;
            let response = if method == "GET" || method == "HEAD" {
                self.follow(method, &url, response, headers, authorization)?
            } else {
                response
            };
            if response.status() != 401 || retried {
                return Ok(response);
            }
            retried = true;
            let challenge = response
                .headers()
                .get(http::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            if !self.learn(challenge, scope)? {
                return Ok(response);
            }
        }
    }
    // ANCHOR_END: call

    /// Sends to the registry itself; for a loopback or insecure registry
    /// whose first answer is not TLS at all, again in plain HTTP (and so
    /// from then on). A refused certificate is an error, never a fallback.
    fn send(
        &self,
        method: &str,
        location: &str,
        headers: &[(&str, String)],
        payload: &Payload,
        authorization: Option<String>,
    ) -> Result<(String, Response), ClientError> {
        let url = self.url(location);
        let first = self.send_once(
            method,
            &url,
            headers,
            payload,
            authorization.clone(),
        );
        let https_base = format!("https://{}", api_host(&self.registry));
        match first {
            Err(ClientError::Http { .. })
                if self.may_fall_back.get() && url.starts_with(&https_base) =>
            {
                self.may_fall_back.set(false);
                let http_base = format!("http://{}", api_host(&self.registry));
                *self.base.borrow_mut() = http_base.clone();
                let url = format!("{http_base}{}", &url[https_base.len()..]);
                let response = self.send_once(
                    method,
                    &url,
                    headers,
                    payload,
                    authorization,
                )?;
                Ok((url, response))
            }
            other => {
                let response = other?;
                self.may_fall_back.set(false);
                Ok((url, response))
            }
        }
    }

    /// Follows a GET's redirects (registries send blob downloads to
    /// storage elsewhere with 307): at most [`MAX_REDIRECTS`], never in a
    /// loop, only to http(s) URLs (plain HTTP only where a registry could be
    /// plain HTTP too), and credentials go only to the origin they were
    /// meant for.
    fn follow(
        &self,
        method: &str,
        url: &str,
        mut response: Response,
        headers: &[(&str, String)],
        authorization: Option<String>,
    ) -> Result<Response, ClientError> {
        let origin = origin(url);
        let mut chain = vec![url.to_string()];
        while matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308)
        {
            let refuse = |reason: String| ClientError::Redirect {
                what: format!("{}: {method} {url}", self.reference),
                reason,
            };
            let location = header(&response, "Location");
            if location.is_empty() {
                return Err(refuse(format!(
                    "{} without a Location",
                    response.status()
                )));
            }
            // ANCHOR: follow
            let current = chain.last().map_or(url, String::as_str);
            let next = resolve(current, location);
            let scheme = next.split_once("://").map(|(s, _)| s);
            match scheme {
                Some(s) if s.eq_ignore_ascii_case("https") => {}
                Some(s) if s.eq_ignore_ascii_case("http") => {
                    if !self.tls.allows_http(&authority(&next)) {
                        return Err(refuse(format!(
                            "refused a redirect to plain HTTP: {next}"
                        )));
                    }
                }
                _ => {
                    return Err(refuse(format!(
                        "refused a redirect to {next}: only http(s) is followed"
                    )))
                }
            }
            if chain.contains(&next) {
                chain.push(next);
                return Err(refuse(format!(
                    "a redirect loop: {}",
                    chain.join(" -> ")
                )));
            }
            if chain.len() > MAX_REDIRECTS {
                return Err(refuse(format!(
                    "more than {MAX_REDIRECTS} redirects: {} -> {next}",
                    chain.join(" -> ")
                )));
            }
            // Blob storage elsewhere gets a pre-signed URL, not our password.
            let same_origin = origin == self::origin(&next);
            let auth = if same_origin {
                authorization.clone()
            } else {
                None
            };
            response =
                self.send_once(method, &next, headers, &Payload::Empty, auth)?;
            chain.push(next);
            // ANCHOR_END: follow
        }
        Ok(response)
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload,
        authorization: Option<String>,
    ) -> Result<Response, ClientError> {
        let http_error =
            |source: ureq::Error| match certificate_problem(&source) {
                Some(problem) => self.certificate_error(url, problem),
                None => ClientError::Http {
                    method: method.to_string(),
                    url: url.to_string(),
                    cause: Box::new(source),
                },
            };
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        let result = match payload {
            Payload::Empty
                if method == "GET"
                    || method == "HEAD"
                    || method == "DELETE" =>
            {
                let request =
                    builder.body(()).map_err(|e| http_error(e.into()))?;
                self.agent.run(request)
            }
            Payload::Empty => {
                let request = builder
                    .header(http::header::CONTENT_LENGTH, "0")
                    .body(&[][..])
                    .map_err(|e| http_error(e.into()))?;
                self.agent.run(request)
            }
            Payload::Bytes(bytes) => {
                let request = builder
                    .header(
                        http::header::CONTENT_LENGTH,
                        bytes.len().to_string(),
                    )
                    .body(*bytes)
                    .map_err(|e| http_error(e.into()))?;
                self.agent.run(request)
            }
            Payload::File {
                path,
                offset,
                len,
                bar,
            } => {
                let read_error = |source| ClientError::Read {
                    path: path.to_path_buf(),
                    source,
                };
                let mut file = std::fs::File::open(path).map_err(read_error)?;
                file.seek(SeekFrom::Start(*offset)).map_err(read_error)?;
                // A retry starts the chunk again.
                bar.set_position(*offset);
                let reader = bar.wrap_read(file.take(*len));
                let request = builder
                    .header(http::header::CONTENT_LENGTH, len.to_string())
                    .body(ureq::SendBody::from_owned_reader(reader))
                    .map_err(|e| http_error(e.into()))?;
                self.agent.run(request)
            }
        };
        result.map_err(http_error)
    }

    fn certificate_error(&self, url: &str, problem: String) -> ClientError {
        let host = authority(url);
        let hint = match &self.tls.certs_dir {
            Some(dir) => dir.join(&host).join("ca.crt").display().to_string(),
            None => format!("certs.d/{host}/ca.crt"),
        };
        ClientError::Certificate {
            reference: self.reference.clone(),
            registry: host,
            problem,
            hint,
        }
    }

    fn authorization(&self, scope: Option<Scope>) -> Option<String> {
        match &*self.scheme.borrow() {
            Scheme::Unknown => None,
            Scheme::Basic => self.creds.map(|c| {
                format!(
                    "Basic {}",
                    STANDARD.encode(format!("{}:{}", c.user, c.password))
                )
            }),
            Scheme::Bearer => {
                let tokens = self.tokens.borrow();
                let repository = scope.map_or("", |s| s.repository);
                match tokens.get(repository) {
                    Some((token, push))
                        if *push || !scope.is_some_and(|s| s.push) =>
                    {
                        Some(format!("Bearer {token}"))
                    }
                    _ => None,
                }
            }
        }
    }

    /// Takes in a 401's challenge; true if sending again may now work.
    fn learn(
        &self,
        challenge: Option<Challenge>,
        scope: Option<Scope>,
    ) -> Result<bool, ClientError> {
        match challenge {
            Some(Challenge::Basic) => {
                let already = matches!(*self.scheme.borrow(), Scheme::Basic);
                *self.scheme.borrow_mut() = Scheme::Basic;
                // Without credentials, or with ones just refused, no retry helps.
                Ok(self.creds.is_some() && !already)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope: asked,
            }) => {
                *self.scheme.borrow_mut() = Scheme::Bearer;
                // A pusher asks for push at once (the registry's challenge to
                // a HEAD names only pull), so one token serves the whole push.
                let wanted = match scope {
                    Some(s) if s.push => Some(s.as_token_scope()),
                    _ => asked.or_else(|| scope.map(|s| s.as_token_scope())),
                };
                let token = self.fetch_token(
                    &realm,
                    service.as_deref(),
                    wanted.as_deref(),
                )?;
                let key =
                    scope.map_or(String::new(), |s| s.repository.to_string());
                let push =
                    wanted.as_deref().is_some_and(|w| w.contains("push"));
                self.tokens.borrow_mut().insert(key, (token, push));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    // ANCHOR: fetch_token
    /// Trades the credentials (if any: anonymous tokens exist too) for a
    /// bearer token at the realm the registry named.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
    ) -> Result<String, ClientError> {
        if realm.starts_with("http://")
            && !self.tls.allows_http(&authority(realm))
        {
            return Err(ClientError::Protocol {
                what: format!("{}: token realm {realm}", self.reference),
                reason: "refused to send credentials there in plain HTTP"
                    .into(),
            });
        }
        let mut url = realm.to_string();
        let mut params = Vec::new();
        if let Some(service) = service {
            params.push(format!("service={}", encode(service)));
        }
        if let Some(scope) = scope {
            params.push(format!("scope={}", encode(scope)));
        }
        if !params.is_empty() {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&params.join("&"));
        }
        let authorization = self.creds.map(|c| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.user, c.password))
            )
        });
        let response =
            self.send_once("GET", &url, &[], &Payload::Empty, authorization)?;
        let mut response =
            self.expect(response, &[200], || format!("GET {realm} (token)"))?;
        let text = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY)
            .read_to_string()
            .map_err(|source| ClientError::Http {
                method: "GET".into(),
                url: realm.to_string(),
                cause: Box::new(source),
            })?;
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|err| {
                ClientError::Protocol {
                    what: format!("token from {realm}"),
                    reason: format!("not JSON: {err}"),
                }
            })?;
        answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Protocol {
                what: format!("token from {realm}"),
                reason: "the answer has no token".into(),
            })
    }
    // ANCHOR_END: fetch_token

    /// The response if its status is one of `ok`; otherwise the registry's
    /// error, read from its `{"errors":[…]}` body.
    pub fn expect(
        &self,
        mut response: Response,
        ok: &[u16],
        what: impl FnOnce() -> String,
    ) -> Result<Response, ClientError> {
        let status = response.status().as_u16();
        if ok.contains(&status) {
            return Ok(response);
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(SMALL_BODY)
            .read_to_string()
            .unwrap_or_default();
        let first = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["errors"].get(0).cloned());
        let code = first
            .as_ref()
            .and_then(|e| e["code"].as_str())
            .unwrap_or("")
            .to_string();
        let message = first
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(200).collect());
        if status == 401 {
            return Err(ClientError::Unauthorized {
                registry: self.registry.clone(),
                anonymous: self.creds.is_none(),
                message,
            });
        }
        Err(ClientError::Registry {
            what: what(),
            status,
            code,
            message,
        })
    }
}

/// A header's value, or "".
pub fn header<'r>(response: &'r Response, name: &str) -> &'r str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `host[:port]` of an absolute URL.
pub fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // Credentials in a URL (user@host) are not part of the host.
    let host = &rest[..end];
    host.rsplit_once('@')
        .map_or(host, |(_, h)| h)
        .to_ascii_lowercase()
}

/// `scheme://host[:port]`: what must match for credentials to be sent.
fn origin(url: &str) -> String {
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    format!("{}://{}", scheme.to_ascii_lowercase(), authority(url))
}

/// A Location resolved against the URL it came from.
fn resolve(current: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = current.split_once("://").map_or("https", |(s, _)| s);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{}{location}", authority(current));
    }
    // A relative path: beside the current one.
    let path = current.split(['?', '#']).next().unwrap_or(current);
    match path.rfind('/') {
        Some(i) if i > scheme.len() + 2 => format!("{}/{location}", &path[..i]),
        _ => format!("{path}/{location}"),
    }
}

/// `url` with `key=value` added to its query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode(value))
}

/// ':', ',' and '/' are kept: registries expect scopes and digests as is.
const QUERY_VALUE: &AsciiSet = &crate::registry::names::QUERY_VALUE
    .remove(b':')
    .remove(b',')
    .remove(b'/');

fn encode(text: &str) -> String {
    utf8_percent_encode(text, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge("Basic realm=\"kubelings\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                "Bearer realm=\"http://127.0.0.1:1/token\",service=\"kubelings\",scope=\"repository:a/b:pull,push\""
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some("kubelings".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }
}

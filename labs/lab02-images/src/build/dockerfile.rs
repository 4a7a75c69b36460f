//! A Dockerfile, read into instructions. Only the subset a build of ours
//! can honour is accepted; anything else is refused with its line number,
//! never skipped silently.

use std::fmt;

/// A command as a Dockerfile writes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Command {
    /// `["/kubia", "--addr", "0.0.0.0:8080"]`: run as is.
    Exec(Vec<String>),
    /// `echo hi > /file`: run through `/bin/sh -c`.
    Shell(String),
}

impl Command {
    /// The argument vector to execute.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(args) => args.clone(),
            Command::Shell(line) => {
                vec!["/bin/sh".into(), "-c".into(), line.clone()]
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Instruction {
    /// `FROM scratch` or `FROM kubia:v1`.
    From(String),
    /// `COPY src... dest` (`ADD` of local files is the same here).
    Copy {
        sources: Vec<String>,
        dest: String,
    },
    Run(Command),
    Entrypoint(Command),
    Cmd(Command),
    Env(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
}

/// An instruction and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub line: usize,
    pub instruction: Instruction,
}

/// What is wrong, and on which line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

const SUPPORTED: &str =
    "FROM, COPY, ADD, RUN, ENTRYPOINT, CMD, ENV, WORKDIR, USER, EXPOSE, LABEL";

/// Reads a Dockerfile. The first instruction must be FROM.
pub fn parse(text: &str) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::new();
    for (line, content) in logical_lines(text) {
        let err = |message: String| ParseError { line, message };
        let (keyword, rest) = match content.split_once(char::is_whitespace) {
            Some((k, r)) => (k, r.trim()),
            None => (content.as_str(), ""),
        };
        let keyword = keyword.to_ascii_uppercase();
        if rest.is_empty() {
            return Err(err(format!("{keyword} needs arguments")));
        }
        let instruction = match keyword.as_str() {
            "FROM" => {
                let words = split_words(rest).map_err(err)?;
                match words.as_slice() {
                    [image] => Instruction::From(image.clone()),
                    [_, as_kw, _] if as_kw.eq_ignore_ascii_case("as") => {
                        return Err(err(
                            "multi-stage builds (FROM ... AS name) are not supported".into(),
                        ))
                    }
                    _ => return Err(err("FROM takes one image".into())),
                }
            }
            "COPY" | "ADD" => {
                let mut words = match json_array(rest) {
                    Some(words) => words.map_err(err)?,
                    None => split_words(rest).map_err(err)?,
                };
                if let Some(flag) = words.iter().find(|w| w.starts_with("--")) {
                    return Err(err(format!(
                        "{keyword} {flag} is not supported"
                    )));
                }
                if keyword == "ADD" {
                    if let Some(url) = words.iter().find(|w| w.contains("://"))
                    {
                        return Err(err(format!("ADD from a URL ({url}) is not supported: download it first and COPY it")));
                    }
                }
                if words.len() < 2 {
                    return Err(err(format!(
                        "{keyword} needs a source and a destination"
                    )));
                }
                let dest = words.pop().unwrap_or_default();
                Instruction::Copy {
                    sources: words,
                    dest,
                }
            }
            "RUN" => Instruction::Run(command(rest).map_err(err)?),
            "ENTRYPOINT" => {
                Instruction::Entrypoint(command(rest).map_err(err)?)
            }
            "CMD" => Instruction::Cmd(command(rest).map_err(err)?),
            "ENV" => Instruction::Env(pairs(rest, true).map_err(err)?),
            "LABEL" => Instruction::Label(pairs(rest, false).map_err(err)?),
            "WORKDIR" => Instruction::Workdir(single(rest).map_err(err)?),
            "USER" => Instruction::User(single(rest).map_err(err)?),
            "EXPOSE" => {
                let ports = split_words(rest).map_err(err)?;
                for port in &ports {
                    let (number, proto) =
                        port.split_once('/').unwrap_or((port, "tcp"));
                    if number.parse::<u16>().is_err()
                        || !matches!(proto, "tcp" | "udp" | "sctp")
                    {
                        return Err(err(format!(
                            "EXPOSE {port}: expected PORT or PORT/tcp|udp|sctp"
                        )));
                    }
                }
                Instruction::Expose(ports)
            }
            "ARG" | "VOLUME" | "HEALTHCHECK" | "ONBUILD" | "STOPSIGNAL"
            | "SHELL" | "MAINTAINER" => {
                return Err(err(format!(
                    "{keyword} is not supported (supported: {SUPPORTED})"
                )))
            }
            other => {
                return Err(err(format!(
                    "unknown instruction {other:?} (supported: {SUPPORTED})"
                )))
            }
        };
        if steps.is_empty() && !matches!(instruction, Instruction::From(_)) {
            return Err(err(format!(
                "the first instruction must be FROM, not {keyword}"
            )));
        }
        if !steps.is_empty() && matches!(instruction, Instruction::From(_)) {
            return Err(err(
                "a second FROM (multi-stage builds) is not supported".into(),
            ));
        }
        steps.push(Step { line, instruction });
    }
    if steps.is_empty() {
        return Err(ParseError {
            line: 1,
            message: "the Dockerfile has no instructions".into(),
        });
    }
    Ok(steps)
}

/// Joins `\`-continued lines, drops comments and blank lines; keeps the
/// number of the line each logical line starts on.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if current.is_none() && (trimmed.is_empty() || trimmed.starts_with('#'))
        {
            continue;
        }
        if current.is_some() && trimmed.starts_with('#') {
            continue; // comment lines inside a continuation are ignored
        }
        let (start, mut text) =
            current.take().unwrap_or((i + 1, String::new()));
        if let Some(part) = trimmed.strip_suffix('\\') {
            text.push_str(part);
            text.push(' ');
            current = Some((start, text));
        } else {
            text.push_str(trimmed);
            out.push((start, text.trim().to_string()));
        }
    }
    if let Some((start, text)) = current {
        out.push((start, text.trim().to_string()));
    }
    out
}

/// `["a", "b"]`, if the text is a JSON array of strings.
fn json_array(text: &str) -> Option<Result<Vec<String>, String>> {
    if !text.starts_with('[') {
        return None;
    }
    Some(
        serde_json::from_str::<Vec<String>>(text)
            .map_err(|e| format!("bad JSON array: {e}")),
    )
}

fn command(text: &str) -> Result<Command, String> {
    match json_array(text) {
        Some(Ok(args)) if args.is_empty() => Err("an empty command".into()),
        Some(Ok(args)) => Ok(Command::Exec(args)),
        Some(Err(e)) => Err(e),
        None => Ok(Command::Shell(text.to_string())),
    }
}

fn single(text: &str) -> Result<String, String> {
    let words = split_words(text)?;
    match words.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err("expected exactly one value".into()),
    }
}

/// `K=V K2="a b"`, or for ENV also the old `K value with spaces` form.
fn pairs(
    text: &str,
    legacy_allowed: bool,
) -> Result<Vec<(String, String)>, String> {
    let words = split_words(text)?;
    if legacy_allowed && !words[0].contains('=') {
        let (key, value) = text
            .split_once(char::is_whitespace)
            .ok_or("ENV needs a name and a value")?;
        return Ok(vec![(key.to_string(), value.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("expected KEY=VALUE, got {w:?}")),
        })
        .collect()
}

/// Splits on white space, honouring "double", 'single' quotes and `\` escapes.
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            (Some(_), c) => word.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Exec(args) => {
                write!(f, "{}", serde_json::to_string(args).unwrap_or_default())
            }
            Command::Shell(line) => f.write_str(line),
        }
    }
}

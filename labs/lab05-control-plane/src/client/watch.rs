//! One watch: the events of a streaming response, a line each, as
//! k8s-openapi's `WatchEvent`.

use std::io::{BufRead, BufReader, Read};
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use serde::de::DeserializeOwned;

use super::ClientError;

/// The events of one watch, as they arrive; ends when the server ends
/// the response (its timeout, or it went away). A watcher then watches
/// again from the last resourceVersion it saw.
pub struct Watch<T> {
    url: String,
    lines: BufReader<Box<dyn Read + Send>>,
    line: String,
    _kind: PhantomData<fn() -> T>,
}

impl<T> Watch<T> {
    pub(super) fn new(url: String, body: Box<dyn Read + Send>) -> Self {
        Watch {
            url,
            lines: BufReader::new(body),
            line: String::new(),
            _kind: PhantomData,
        }
    }
}

impl<T> Watch<T> {
    /// The next event's line as it came, not decoded: for a watcher that
    /// needs one field of a large stream (the benchmarks).
    pub fn next_line(&mut self) -> Option<Result<String, ClientError>> {
        loop {
            self.line.clear();
            match self.lines.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) if self.line.trim().is_empty() => continue,
                Ok(_) => return Some(Ok(self.line.clone())),
                Err(e) => {
                    return Some(Err(ClientError::Transport {
                        method: "GET".into(),
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }))
                }
            }
        }
    }
}

impl<T: DeserializeOwned> Iterator for Watch<T> {
    type Item = Result<WatchEvent<T>, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            match self.lines.read_line(&mut self.line) {
                // The server ended the watch.
                Ok(0) => return None,
                Ok(_) if self.line.trim().is_empty() => continue,
                Ok(_) => {
                    return Some(serde_json::from_str(&self.line).map_err(
                        |e| ClientError::Decode {
                            url: self.url.clone(),
                            reason: format!("a watch event: {e}"),
                        },
                    ))
                }
                Err(e) => {
                    return Some(Err(ClientError::Transport {
                        method: "GET".into(),
                        url: self.url.clone(),
                        reason: e.to_string(),
                    }))
                }
            }
        }
    }
}

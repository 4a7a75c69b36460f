//! A pod's events, as the kubelet records them for `describe pod`.
//!
//! The kubelet's event recorder folds an event that repeats (same reason,
//! same message, same object) into the first one, counting it; `kubectl
//! describe` then shows `(x4 over 2m)`.

use std::time::SystemTime;

/// `Normal` or `Warning`, the two types of the API's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event about a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub type_: EventType,
    /// `Pulled`, `Created`, `Started`, `Killing`, `Unhealthy`, `BackOff`,
    /// `Failed`, …
    pub reason: String,
    pub message: String,
    /// The part of the pod it is about (`involvedObject.fieldPath`), e.g.
    /// `spec.containers{kubia}`; `None` for the pod itself.
    pub field_path: Option<String>,
    pub first_at: SystemTime,
    pub last_at: SystemTime,
    pub count: u32,
    /// Orders events that happened at the same time: the recorder's
    /// count of events when this one last happened.
    pub seq: u64,
}

/// A pod's events, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Events {
    list: Vec<PodEvent>,
    recorded: u64,
}

/// How many events a pod keeps; older ones fall off, as the API server's
/// one-hour TTL makes them.
pub const MAX_EVENTS: usize = 100;

impl Events {
    /// Records an event, folding it into an equal earlier one.
    pub fn record(
        &mut self,
        at: SystemTime,
        type_: EventType,
        reason: &str,
        field_path: Option<String>,
        message: String,
    ) {
        self.recorded += 1;
        let seq = self.recorded;
        if let Some(e) = self.list.iter_mut().find(|e| {
            e.type_ == type_
                && e.reason == reason
                && e.message == message
                && e.field_path == field_path
        }) {
            e.count += 1;
            e.last_at = at;
            e.seq = seq;
            return;
        }
        self.list.push(PodEvent {
            type_,
            reason: reason.to_string(),
            message,
            field_path,
            first_at: at,
            last_at: at,
            count: 1,
            seq,
        });
        if self.list.len() > MAX_EVENTS {
            self.list.remove(0);
        }
    }

    /// All of them, oldest first.
    pub fn list(&self) -> &[PodEvent] {
        &self.list
    }

    /// Ordered as `describe` shows them: by the time each last happened.
    pub fn by_last_seen(&self) -> Vec<&PodEvent> {
        let mut v: Vec<&PodEvent> = self.list.iter().collect();
        v.sort_by_key(|e| (e.last_at, e.seq));
        v
    }
}

/// The kubelet's field path of a container: `spec.containers{name}` or
/// `spec.initContainers{name}`.
pub fn field_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// A span as kubectl prints ages (`HumanDuration`): `45s`, `2m30s`,
/// `12m`, `3h4m`, `5d`.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..600 if !s.is_multiple_of(60) => format!("{}m{}s", s / 60, s % 60),
        120..10_800 => format!("{}m", s / 60),
        10_800..28_800 if !(s / 60).is_multiple_of(60) => format!("{}h{}m", s / 3600, s / 60 % 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// The events as `kubectl describe pod` ends: a table, or `<none>`.
pub fn describe(events: &Events, now: SystemTime) -> String {
    let list = events.by_last_seen();
    if list.is_empty() {
        return "Events:  <none>\n".to_string();
    }
    let age = |t: SystemTime| human_duration(now.duration_since(t).unwrap_or_default());
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|e| {
            let when = if e.count > 1 {
                format!("{} (x{} over {})", age(e.last_at), e.count, age(e.first_at))
            } else {
                age(e.first_at)
            };
            [
                e.type_.as_str().to_string(),
                e.reason.clone(),
                when,
                "kubelet".to_string(),
                e.message.clone(),
            ]
        })
        .collect();
    let head = ["Type", "Reason", "Age", "From", "Message"];
    let rule = ["----", "------", "----", "----", "-------"];
    let mut width = [0usize; 4];
    for row in rows
        .iter()
        .map(|r| r.each_ref().map(String::as_str))
        .chain([head, rule])
    {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::from("Events:\n");
    // kubectl's tabwriter: two spaces of indent, two between columns.
    let line = |c: [&str; 5]| {
        let [w0, w1, w2, w3] = width;
        let l = format!(
            "  {:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            c[0], c[1], c[2], c[3], c[4]
        );
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head));
    out.push_str(&line(rule));
    for r in &rows {
        out.push_str(&line(r.each_ref().map(String::as_str)));
    }
    out
}

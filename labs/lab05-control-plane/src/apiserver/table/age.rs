//! Ages as kubectl prints them: apimachinery's `duration.HumanDuration`
//! (k8s.io/apimachinery/pkg/util/duration), exact to the second at first
//! and coarser as time goes by.

use std::time::{Duration, SystemTime};

use k8s_openapi::chrono::{DateTime, Utc};

/// `d` in HumanDuration's bands: `45s`, `2m30s`, `12m`, `3h4m`, `10h`,
/// `3d4h`, `30d`, `2y10d`, `9y`.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        return match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        return match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        return match h % 24 {
            0 => format!("{}d", h / 24),
            r => format!("{}d{r}h", h / 24),
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        return match (h / 24) % 365 {
            0 => format!("{}y", h / 24 / 365),
            r => format!("{}y{r}d", h / 24 / 365),
        };
    }
    format!("{}y", h / 24 / 365)
}

/// The span between two instants; a `later` before `earlier` (clocks
/// that disagree) is 0s, as HumanDuration rounds small negatives.
pub fn between(earlier: SystemTime, later: SystemTime) -> String {
    human_duration(later.duration_since(earlier).unwrap_or_default())
}

/// How long ago `t` was at `now`; `<unknown>` when there is no `t`
/// (printers' `translateTimestampSince`).
pub fn since(t: Option<&DateTime<Utc>>, now: SystemTime) -> String {
    match t {
        Some(t) => between(SystemTime::from(*t), now),
        None => "<unknown>".into(),
    }
}

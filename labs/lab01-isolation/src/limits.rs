//! Resource limits as plain data: what `--memory 64M --cpus 0.5 --pids 32` mean.
//! Nothing here touches the kernel, so it builds and runs anywhere.

use std::fmt;

/// The limits a container runs under. `None` means "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory in bytes, swap included (a container gets no swap).
    pub memory: Option<u64>,
    /// Most processes and threads alive at once.
    pub pids: Option<u64>,
    /// CPU time per scheduling period.
    pub cpu: Option<CpuQuota>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// `quota` microseconds of CPU time in every `period` microseconds:
/// 50 000 / 100 000 is half a CPU, 200 000 / 100 000 two CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    pub const PERIOD_US: u64 = 100_000;

    /// The share of one CPU, e.g. 0.5.
    pub fn cpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }
}

impl fmt::Display for CpuQuota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} CPUs", self.cpus())
    }
}

/// Why a limit did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty value")]
    Empty,
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("unknown unit {0:?} (use K, M or G)")]
    BadUnit(String),
    #[error("too large")]
    Overflow,
    #[error("must be greater than zero")]
    Zero,
}

// ANCHOR: parse_size
/// Parses a size such as `512K`, `64M`, `1G` or `1048576` into bytes.
/// Units are powers of 1024, as `docker run --memory` reads them.
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    // EXERCISE: lab01-parse-size
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    if digits.is_empty() {
        return Err(ParseError::NotANumber(text.to_string()));
    }
    let number: u64 = digits.parse().map_err(|_| ParseError::Overflow)?;
    let multiplier: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(ParseError::BadUnit(unit.to_string())),
    };
    let bytes = number.checked_mul(multiplier).ok_or(ParseError::Overflow)?;
    if bytes == 0 {
        return Err(ParseError::Zero);
    }
    Ok(bytes)
    // EXERCISE_END: lab01-parse-size
}
// ANCHOR_END: parse_size

/// Parses a CPU share such as `0.5` or `2` into a quota per 100 ms period.
pub fn parse_cpus(text: &str) -> Result<CpuQuota, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    let cpus: f64 = text
        .parse()
        .map_err(|_| ParseError::NotANumber(text.to_string()))?;
    if !cpus.is_finite() {
        return Err(ParseError::NotANumber(text.to_string()));
    }
    if cpus <= 0.0 {
        return Err(ParseError::Zero);
    }
    if cpus > 1024.0 {
        return Err(ParseError::Overflow);
    }
    // The kernel refuses quotas under 1 ms.
    let quota_us = ((cpus * CpuQuota::PERIOD_US as f64).round() as u64).max(1_000);
    Ok(CpuQuota {
        quota_us,
        period_us: CpuQuota::PERIOD_US,
    })
}

/// Parses a process count such as `32`.
pub fn parse_pids(text: &str) -> Result<u64, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::Empty);
    }
    match text.parse::<u64>() {
        Ok(0) => Err(ParseError::Zero),
        Ok(n) => Ok(n),
        Err(_) => Err(ParseError::NotANumber(text.to_string())),
    }
}

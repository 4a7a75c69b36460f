//! Requests and limits, and the cgroup settings the kubelet makes of them.
//!
//! A quantity (`500m`, `1`, `64Mi`, `1G`, `0.5`, `1e3`) is a decimal
//! number with a suffix. We hold it exactly, in billionths (nano units), as
//! Kubernetes rounds nothing finer than that. From the cpu request the
//! kubelet derives `cpu.shares` (cgroup v1) or `cpu.weight` (v2), from the
//! cpu limit a CFS quota per 100 ms period, from the memory limit the
//! memory limit in bytes (pkg/kubelet/cm/helpers_linux.go and the runtime's
//! `calculateLinuxResources`).

use std::fmt;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use lab01::limits::{CpuQuota, Resources};

/// A quantity, exactly: `nanos` billionths of its unit (cores, bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Amount {
    pub nanos: i128,
}

const NANO: i128 = 1_000_000_000;

impl Amount {
    /// In thousandths, rounded up as Kubernetes' `MilliValue` does: a
    /// request of 0.1m cpu is still 1m.
    pub fn milli(&self) -> i128 {
        ceil_div(self.nanos, NANO / 1000)
    }
    /// In whole units, rounded up (`Value`): 1.5 bytes is 2.
    pub fn value(&self) -> i128 {
        ceil_div(self.nanos, NANO)
    }
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 {
        q + 1
    } else {
        q
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANO == 0 {
            write!(f, "{}", self.nanos / NANO)
        } else if self.nanos % (NANO / 1000) == 0 {
            write!(f, "{}m", self.nanos / (NANO / 1000))
        } else {
            write!(f, "{}n", self.nanos)
        }
    }
}

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("{0:?}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format(String),
    #[error(
        "{0:?}: unknown suffix {1:?} (use n, u, m, k, M, G, T, P, E, Ki … Ei or an exponent e3)"
    )]
    Suffix(String, String),
    #[error("{0:?}: too large")]
    Overflow(String),
}

/// Parses a Kubernetes quantity into an exact [`Amount`].
pub fn parse_quantity(text: &str) -> Result<Amount, QuantityError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(QuantityError::Empty);
    }
    let format = || QuantityError::Format(text.to_string());
    let overflow = || QuantityError::Overflow(text.to_string());
    let (negative, unsigned) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let split = unsigned
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(format());
    }
    // The number as an integer of digits, and how many of them follow the
    // point: 0.5 is 5 with scale 1.
    let digits = format!("{whole}{fraction}");
    let mantissa: i128 = digits.parse().map_err(|_| overflow())?;
    let scale = fraction.len() as i32;
    // ANCHOR: parse_quantity
    // Each suffix is (binary multiplier, power of ten).
    let (binary, exponent): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| format())?;
            (1, exp)
        }
        s => return Err(QuantityError::Suffix(text.to_string(), s.to_string())),
    };
    // nanos = mantissa * binary * 10^(exponent - scale + 9), rounded up.
    let power = exponent - scale + 9;
    let scaled = mantissa.checked_mul(binary).ok_or_else(overflow)?;
    let nanos = if power >= 0 {
        10i128
            .checked_pow(power as u32)
            .and_then(|p| scaled.checked_mul(p))
            .ok_or_else(overflow)?
    } else {
        match 10i128.checked_pow((-power) as u32) {
            Some(p) => ceil_div(scaled, p),
            None => i128::from(scaled > 0),
        }
    };
    // ANCHOR_END: parse_quantity
    Ok(Amount {
        nanos: if negative { -nanos } else { nanos },
    })
}

/// The kubelet's constants (pkg/kubelet/cm/helpers_linux.go).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
pub const SHARES_PER_CPU: u64 = 1024;
pub const QUOTA_PERIOD_US: u64 = 100_000;
pub const MIN_QUOTA_US: u64 = 1000;

/// What the cpu request and limit become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSettings {
    /// `cpu.shares` on cgroup v1: the weight under contention.
    pub shares: u64,
    /// `cpu.weight` on cgroup v2, converted from the shares as runc does.
    pub weight: u64,
    /// `cpu.cfs_quota_us`/`cpu.cfs_period_us` (v1), `cpu.max` (v2); `None`
    /// without a limit.
    pub quota: Option<CpuQuota>,
}

// ANCHOR: cpu_settings
/// The kubelet's cpu settings from a request and a limit in millicores.
/// No request (or 0) gives the fewest shares, 2; shares are the request's
/// share of 1024 per CPU, between 2 and 262144. The quota is the limit's
/// share of the 100 ms period, at least 1 ms.
pub fn cpu_settings(
    request_milli: Option<u64>, // the cpu request in millicores
    limit_milli: Option<u64>,   // the cpu limit in millicores
) -> CpuSettings {
    // EXERCISE: lab03-cpu-shares
    let shares = match request_milli {
        None | Some(0) => MIN_SHARES,
        Some(milli) => {
            let shares = milli.saturating_mul(SHARES_PER_CPU) / 1000;
            shares.clamp(MIN_SHARES, MAX_SHARES)
        }
    };
    // runc's ConvertCPUSharesToCgroupV2Value maps [2, 262144] onto
    // [1, 10000].
    let weight = 1 + ((shares - 2) * 9999) / 262_142;
    let quota = match limit_milli {
        None | Some(0) => None,
        Some(milli) => {
            let quota_us = milli.saturating_mul(QUOTA_PERIOD_US) / 1000;
            Some(CpuQuota {
                quota_us: quota_us.max(MIN_QUOTA_US),
                period_us: QUOTA_PERIOD_US,
            })
        }
    };
    CpuSettings {
        shares,
        weight,
        quota,
    }
    // EXERCISE_END: lab03-cpu-shares
}
// ANCHOR_END: cpu_settings

/// A container's cgroup settings, as the kubelet asks the runtime for them.
///
/// lab01's [`Resources`] has a quota and a memory limit but no cpu weight,
/// so the weight and shares live here beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerCgroup {
    pub cpu: CpuSettings,
    /// `memory.limit_in_bytes` (v1), `memory.max` (v2).
    pub memory_bytes: Option<u64>,
}

impl ContainerCgroup {
    /// The part lab01's cgroup code can apply: quota and memory limit.
    pub fn resources(&self) -> Resources {
        Resources {
            memory: self.memory_bytes,
            pids: None,
            cpu: self.cpu.quota,
        }
    }

    /// The files and their contents on cgroup v2 (`cpu.max` is "max" with
    /// no limit, as the kernel writes it).
    pub fn v2_files(&self) -> Vec<(&'static str, String)> {
        let max = match self.cpu.quota {
            Some(q) => format!("{} {}", q.quota_us, q.period_us),
            None => format!("max {QUOTA_PERIOD_US}"),
        };
        let memory = self
            .memory_bytes
            .map_or_else(|| "max".to_string(), |b| b.to_string());
        vec![
            ("cpu.weight", self.cpu.weight.to_string()),
            ("cpu.max", max),
            ("memory.max", memory),
        ]
    }

    /// The files and their contents on cgroup v1 (-1 means no limit).
    pub fn v1_files(&self) -> Vec<(&'static str, String)> {
        let (quota, period) = match self.cpu.quota {
            Some(q) => (q.quota_us as i64, q.period_us),
            None => (-1, QUOTA_PERIOD_US),
        };
        let memory = self.memory_bytes.map_or(-1, |b| b as i64);
        vec![
            ("cpu.shares", self.cpu.shares.to_string()),
            ("cpu.cfs_quota_us", quota.to_string()),
            ("cpu.cfs_period_us", period.to_string()),
            ("memory.limit_in_bytes", memory.to_string()),
        ]
    }
}

/// Why a container's resources cannot become cgroup settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("resources.{map}[{name}]: {error}")]
    Quantity {
        map: &'static str,
        name: String,
        error: QuantityError,
    },
    #[error("resources.{map}[{name}]: {value} is negative")]
    Negative {
        map: &'static str,
        name: String,
        value: String,
    },
}

/// Reads `resources.{requests,limits}[name]` of a container.
pub fn quantity_of(
    container: &Container,
    map: &'static str,
    name: &str,
) -> Result<Option<Amount>, ResourceError> {
    let resources = container.resources.as_ref();
    let list = match map {
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => resources.and_then(|r| r.limits.as_ref()),
    };
    let Some(Quantity(text)) = list.and_then(|l| l.get(name)) else {
        return Ok(None);
    };
    let amount = parse_quantity(text).map_err(|error| ResourceError::Quantity {
        map,
        name: name.to_string(),
        error,
    })?;
    if amount.nanos < 0 {
        return Err(ResourceError::Negative {
            map,
            name: name.to_string(),
            value: text.clone(),
        });
    }
    Ok(Some(amount))
}

/// `Result` with a [`ResourceError`] unless told otherwise.
pub type Result<T, E = ResourceError> = std::result::Result<T, E>;

/// An amount as a u64, negatives as 0 and the too large as the largest.
fn saturate(n: i128) -> u64 {
    u64::try_from(n.max(0)).unwrap_or(u64::MAX)
}

// ANCHOR: container_cgroup
/// What the kubelet makes of a container's requests and limits. A cpu
/// limit without a request counts as the request too (the API server
/// defaults it so, and the kubelet repeats that for old pods).
pub fn container_cgroup(container: &Container) -> Result<ContainerCgroup> {
    let milli = |a: Option<Amount>| a.map(|a| saturate(a.milli()));
    let cpu_limit = milli(quantity_of(container, "limits", "cpu")?);
    let cpu_request = match milli(quantity_of(container, "requests", "cpu")?) {
        None | Some(0) => cpu_limit,
        request => request,
    };
    let memory = quantity_of(container, "limits", "memory")?
        .map(|a| saturate(a.value()))
        .filter(|&bytes| bytes > 0);
    Ok(ContainerCgroup {
        cpu: cpu_settings(cpu_request, cpu_limit),
        memory_bytes: memory,
    })
}
// ANCHOR_END: container_cgroup

//! Platforms, as image indexes name them (Go's names: `linux/amd64`,
//! `linux/arm/v7`), and which index entry fits one: the rules of
//! containerd's platforms matcher, where `arm64` means `arm64/v8`, `arm`
//! means `arm/v7`, and an arm/v7 machine also runs v6 and v5 images.

use std::fmt;
use std::str::FromStr;

/// `os/architecture[/variant]`, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// `v7`, `v8`, or empty where the architecture has none.
    pub variant: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("platform {text:?}: {reason} (write os/arch[/variant], e.g. linux/arm64 or linux/arm/v7)")]
pub struct PlatformError {
    pub text: String,
    pub reason: String,
}

impl Platform {
    /// Normalizes names as containerd does: `x86_64` is `amd64`, `aarch64`
    /// is `arm64`, and each architecture's default variant is spelled out.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) =
            match (architecture.to_ascii_lowercase().as_str(), variant) {
                ("x86_64" | "x86-64" | "amd64", "") => ("amd64", ""),
                ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v),
                ("i386" | "386", _) => ("386", ""),
                ("aarch64" | "arm64", "" | "8" | "v8") => ("arm64", "v8"),
                ("aarch64" | "arm64", v) => ("arm64", v),
                ("armhf", _) => ("arm", "v7"),
                ("armel", _) => ("arm", "v6"),
                ("arm", "" | "7" | "v7") => ("arm", "v7"),
                ("arm", "5" | "6" | "8") => {
                    return Platform {
                        os,
                        architecture: "arm".into(),
                        variant: format!("v{variant}"),
                    }
                }
                ("arm", v) => ("arm", v),
                (other, v) => {
                    return Platform {
                        os,
                        architecture: other.to_string(),
                        variant: v.to_string(),
                    }
                }
            };
        Platform {
            os,
            architecture: architecture.into(),
            variant: variant.into(),
        }
    }

    /// The platform of this machine: Linux on its CPU.
    pub fn host() -> Platform {
        let (os, arch) = super::pull::host_platform();
        Platform::new(os, arch, "")
    }

    /// How well an index entry's platform fits this one: `None` if it does
    /// not run here, else a rank (0 is the exact match; for arm, an older
    /// variant ranks after the newer ones).
    pub fn rank(&self, entry: &Platform) -> Option<usize> {
        if entry.os != self.os || entry.architecture != self.architecture {
            return None;
        }
        if entry.variant == self.variant {
            return Some(0);
        }
        // An arm/vN machine runs arm/v(N-1) … v5 images.
        if self.architecture == "arm" {
            let level = |v: &str| v.strip_prefix('v')?.parse::<u8>().ok();
            if let (Some(want), Some(have)) =
                (level(&self.variant), level(&entry.variant))
            {
                if have < want && have >= 5 {
                    return Some(usize::from(want - have));
                }
            }
        }
        None
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(text: &str) -> Result<Platform, PlatformError> {
        let bad = |reason: &str| PlatformError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = text.split('/').collect();
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, ""),
            [os, arch, variant] => (*os, *arch, *variant),
            _ => return Err(bad("expected two or three parts")),
        };
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
                })
        };
        if !part_ok(os)
            || !part_ok(arch)
            || (!variant.is_empty() && !part_ok(variant))
        {
            return Err(bad("each part is letters, digits, '_' or '-'"));
        }
        Ok(Platform::new(os, arch, variant))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

//! CNI spec versions: parsing, comparison, and what each version allows.

use super::error::{CniError, code};

/// Every version this host can speak, oldest first.
pub const ALL: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version this host implements (what VERSION reports as `cniVersion`,
/// like the Go skel does).
pub const CURRENT: &str = "1.1.0";

/// A parsed `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// Parses a version; an empty string means 0.1.0, as in the Go library.
    pub fn parse(text: &str) -> Result<Version, CniError> {
        if text.is_empty() {
            return Ok(Version(0, 1, 0));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let number = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) { None } else { s.parse().ok() }
        };
        match parts.as_slice() {
            [major, minor, patch] => match (number(major), number(minor), number(patch)) {
                (Some(a), Some(b), Some(c)) => Ok(Version(a, b, c)),
                _ => Err(invalid(text)),
            },
            _ => Err(invalid(text)),
        }
    }

    pub fn at_least(self, other: Version) -> bool {
        (self.0, self.1, self.2) >= (other.0, other.1, other.2)
    }
}

fn invalid(text: &str) -> CniError {
    CniError::new(
        code::DECODING_FAILURE,
        format!("invalid version {text:?}: the version must be of the form major.minor.patch"),
    )
}

pub const V0_3_0: Version = Version(0, 3, 0);
pub const V0_4_0: Version = Version(0, 4, 0);
pub const V1_0_0: Version = Version(1, 0, 0);
pub const V1_1_0: Version = Version(1, 1, 0);

/// The config version must be one the plugin lists, exactly (as skel does).
pub fn check_supported(config_version: &str, supported: &[String]) -> Result<(), CniError> {
    if supported.iter().any(|v| v == config_version) {
        return Ok(());
    }
    let list = supported.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(" ");
    Err(CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions")
        .with_details(format!("config is {config_version:?}, plugin supports [{list}]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_version_is_0_1_0() {
        assert_eq!(Version::parse("").unwrap(), Version(0, 1, 0));
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.4.0").unwrap());
        assert!(Version::parse("1.1.0").unwrap().at_least(V1_0_0));
    }

    #[test]
    fn malformed_versions_are_decoding_errors() {
        for text in ["1", "1.0", "a.b.c", "1.0.0.0", "1..0", "-1.0.0"] {
            assert_eq!(Version::parse(text).unwrap_err().code, code::DECODING_FAILURE, "{text}");
        }
    }
}

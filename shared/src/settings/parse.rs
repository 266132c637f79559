//! The one parser of each kind of setting value, shared by the Lambdas' environment
//! ([`Env`](super::Env)), the AWS resource settings
//! ([`AwsSettings`](crate::aws::AwsSettings)) and `hookhub dev`'s flags (as clap value
//! parsers), so a value means the same wherever it is given. Errors name the variable.

use std::time::Duration;

use super::{invalid, SettingsError};

/// Booleans: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, in any case.
pub fn flag(var: &'static str, v: &str) -> Result<bool, SettingsError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(var, format!("expected true or false, got {v:?}"))),
    }
}

/// A positive humantime duration (`30s`, `10m`, `24h`).
pub fn duration(var: &'static str, v: &str) -> Result<Duration, SettingsError> {
    match humantime::parse_duration(v.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(invalid(
            var,
            format!("expected a duration such as 30s or 10m, got {v:?}"),
        )),
    }
}

/// A positive number of bytes.
pub fn bytes(var: &'static str, v: &str) -> Result<usize, SettingsError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            var,
            format!("expected a positive number of bytes, got {v:?}"),
        )),
    }
}

/// A positive count (connections, items).
pub fn count(var: &'static str, v: &str) -> Result<usize, SettingsError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(invalid(
            var,
            format!("expected a positive number, got {v:?}"),
        )),
    }
}

/// Most days of retention: ten years.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// A whole number within `range`.
pub fn number_in(
    var: &'static str,
    v: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, SettingsError> {
    match v.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(invalid(
            var,
            format!(
                "expected a number from {} to {}, got {v:?}",
                range.start(),
                range.end()
            ),
        )),
    }
}

/// Days of retention, `0` to [`MAX_RETENTION_DAYS`]; `0` keeps everything.
pub fn retention_days(var: &'static str, v: &str) -> Result<u32, SettingsError> {
    match v.trim().parse::<u32>() {
        Ok(n) if n <= MAX_RETENTION_DAYS => Ok(n),
        _ => Err(invalid(
            var,
            format!("expected a number of days from 0 (keep forever) to {MAX_RETENTION_DAYS}, got {v:?}"),
        )),
    }
}

/// The retention of a number of days as a TTL; `0` (forever) is a TTL far beyond any
/// deployment's life.
pub fn retention(days: u32) -> Duration {
    let days = if days == 0 { 36_500 } else { days };
    Duration::from_secs(u64::from(days) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans() {
        let cases = [
            ("true", Some(true)),
            ("TRUE", Some(true)),
            ("1", Some(true)),
            ("yes", Some(true)),
            ("on", Some(true)),
            (" false ", Some(false)),
            ("0", Some(false)),
            ("no", Some(false)),
            ("Off", Some(false)),
            ("y", None),
            ("maybe", None),
            ("", None),
        ];
        for (input, expected) in cases {
            assert_eq!(flag("V", input).ok(), expected, "{input:?}");
        }
    }

    #[test]
    fn durations_bytes_counts_and_days() {
        assert_eq!(duration("V", "90m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(
            duration("V", "200ms").ok(),
            Some(Duration::from_millis(200))
        );
        for bad in ["0s", "soon", "", "-1s"] {
            assert!(duration("V", bad).is_err(), "{bad:?}");
        }
        assert_eq!(bytes("V", "1024").ok(), Some(1024));
        for bad in ["0", "-1", "256k"] {
            assert!(bytes("V", bad).is_err(), "{bad:?}");
            assert!(count("V", bad).is_err(), "{bad:?}");
        }
        assert_eq!(retention_days("V", "0").ok(), Some(0));
        assert_eq!(retention_days("V", "3650").ok(), Some(3650));
        assert!(retention_days("V", "3651").is_err());
        assert!(retention_days("V", "a month").is_err());
        assert_eq!(retention(0), Duration::from_secs(36_500 * 86_400));
        assert_eq!(retention(30), Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn errors_name_the_variable() {
        let err = flag("HOOKHUB_X", "maybe").unwrap_err();
        assert!(err.to_string().contains("HOOKHUB_X"), "{err}");
    }
}

//! The bounds of every numeric setting of a run: the command line refuses
//! values beyond them (clap ranges built from these constants), and
//! [`crate::run`] checks a [`Config`] against them for programs, so that no
//! value reaches a division, a cast or librdkafka that it would break
//! (`--window-secs 2305843009213693952` divided by zero; `--partitions
//! 3000000000` became a negative partition count that librdkafka asserts
//! on).

use std::time::Duration;

use crate::{Config, DemoError, Result};

/// Most input events of a run.
pub const MAX_EVENTS: u64 = 1_000_000_000;
/// Most distinct users.
pub const MAX_USERS: u32 = 100_000_000;
/// Most distinct pages.
pub const MAX_PAGES: u32 = 10_000_000;
/// Most partitions per topic: each is a database per store in this one
/// process.
pub const MAX_PARTITIONS: u32 = 256;
/// Longest tumbling window, seconds (a year).
pub const MAX_WINDOW_SECS: u64 = 365 * 24 * 60 * 60;
/// Most input records per checkpoint.
pub const MAX_COMMIT_EVERY: u64 = 100_000_000;
/// Longest a finished run keeps serving, seconds (a year).
pub const MAX_LINGER_SECS: u64 = 365 * 24 * 60 * 60;

/// Checks every numeric setting of `cfg`; the first one out of bounds is
/// [`DemoError::Config`], naming the setting, its value and its bounds.
pub(crate) fn check(cfg: &Config) -> Result<()> {
    let out_of = |name: &str, value: String, bounds: String| {
        Err(DemoError::Config(format!("{name} is {value}; it must be {bounds}")))
    };
    if !(1..=MAX_EVENTS).contains(&cfg.events) {
        return out_of("events", cfg.events.to_string(), format!("1..={MAX_EVENTS}"));
    }
    if !(1..=MAX_USERS).contains(&cfg.users) {
        return out_of("users", cfg.users.to_string(), format!("1..={MAX_USERS}"));
    }
    if !(1..=MAX_PAGES).contains(&cfg.pages) {
        return out_of("pages", cfg.pages.to_string(), format!("1..={MAX_PAGES}"));
    }
    if !(1..=MAX_PARTITIONS).contains(&cfg.partitions) {
        return out_of(
            "partitions",
            cfg.partitions.to_string(),
            format!("1..={MAX_PARTITIONS}"),
        );
    }
    // Windows are whole milliseconds: less than one would be a zero divisor.
    if !(Duration::from_millis(1)..=Duration::from_secs(MAX_WINDOW_SECS)).contains(&cfg.window) {
        return out_of(
            "the window",
            format!("{:?}", cfg.window),
            format!("between 1 ms and {MAX_WINDOW_SECS} s"),
        );
    }
    if !(1..=MAX_COMMIT_EVERY).contains(&(cfg.commit_every as u64)) {
        return out_of(
            "commit-every",
            cfg.commit_every.to_string(),
            format!("1..={MAX_COMMIT_EVERY}"),
        );
    }
    if !(0.0..1.0).contains(&cfg.crash_at) {
        return out_of("crash-at", cfg.crash_at.to_string(), "in [0, 1)".into());
    }
    Ok(())
}

/// `--crash-at`: a fraction in [0, 1).
pub fn parse_crash_at(s: &str) -> std::result::Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if (0.0..1.0).contains(&f) => Ok(f),
        _ => Err(format!(
            "{s:?} is not a fraction in [0, 1) (0 for no crash, 0.5 to crash half-way)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_out_of_bounds_is_named() {
        let ok = Config::default();
        assert!(check(&ok).is_ok());
        let cases: Vec<(Config, &str)> = vec![
            (
                Config {
                    events: 0,
                    ..Config::default()
                },
                "events is 0",
            ),
            (
                Config {
                    users: 0,
                    ..Config::default()
                },
                "users is 0",
            ),
            (
                Config {
                    pages: 0,
                    ..Config::default()
                },
                "pages is 0",
            ),
            (
                Config {
                    partitions: 0,
                    ..Config::default()
                },
                "partitions is 0",
            ),
            (
                Config {
                    partitions: 3_000_000_000,
                    ..Config::default()
                },
                "partitions is 3000000000",
            ),
            (
                Config {
                    window: Duration::from_micros(500),
                    ..Config::default()
                },
                "the window is 500µs",
            ),
            (
                Config {
                    window: Duration::from_secs(2305843009213693952),
                    ..Config::default()
                },
                "the window",
            ),
            (
                Config {
                    commit_every: 0,
                    ..Config::default()
                },
                "commit-every is 0",
            ),
            (
                Config {
                    crash_at: f64::NAN,
                    ..Config::default()
                },
                "crash-at is NaN",
            ),
            (
                Config {
                    crash_at: 1.0,
                    ..Config::default()
                },
                "crash-at is 1",
            ),
        ];
        for (cfg, says) in cases {
            let e = check(&cfg).unwrap_err().to_string();
            assert!(e.contains(says), "{e:?} should say {says:?}");
        }
    }

    #[test]
    fn crash_at_is_a_fraction() {
        assert_eq!(parse_crash_at("0.25"), Ok(0.25));
        assert_eq!(parse_crash_at("0"), Ok(0.0));
        for bad in ["1", "-0.1", "NaN", "inf", "half"] {
            assert!(parse_crash_at(bad).is_err(), "{bad}");
        }
    }
}

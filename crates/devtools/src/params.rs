//! [`Params`]: the size of a benchmark run, from the environment (`N`, `K`,
//! `C`), shared by the workloads of `bench` and the `takeover` workload.

/// N records over K keys, a checkpoint every C records.
#[derive(Clone, Copy, Debug)]
pub struct Params {
    pub n: u64,
    pub k: u64,
    pub c: u64,
}

impl Params {
    /// `N`, `K` and `C` from the environment (defaults 1,000,000, 100,000
    /// and 10,000); each must be above 0.
    pub fn from_env() -> Result<Params, String> {
        let p = Params {
            n: env_u64("N", 1_000_000)?,
            k: env_u64("K", 100_000)?,
            c: env_u64("C", 10_000)?,
        };
        if p.n == 0 || p.k == 0 || p.c == 0 {
            return Err("N, K and C must be > 0".into());
        }
        Ok(p)
    }
}

/// The environment variable `name` as a number (`_` separators allowed),
/// or `default` when it is not set.
pub fn env_u64(name: &str, default: u64) -> Result<u64, String> {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a positive integer")),
        Err(_) => Ok(default),
    }
}

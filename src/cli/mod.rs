//! The command line's larger subcommands.
pub mod audit;
pub mod eval;
pub mod gpu;
pub mod live;
pub mod purge;
pub mod redact;
#[cfg(feature = "server")]
pub mod serve;
pub mod vad;

/// `--partial-budget`: a share of real time, 0 to 1.
pub fn parse_budget(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("expected a share of real time from 0 to 1 (e.g. 0.15), got {text}")),
    }
}

//! The filter's own counters: how many requests each sampling verdict got,
//! and how many bodies were longer than the cap. With the `decision` stats
//! tag of local/envoy.yaml, `/stats/prometheus` shows
//! `mcp_access_log_requests_total{decision="dropped"} 42`.

use crate::sampling::Verdict;
use mesh_core::metrics::labeled;

pub const REQUESTS: &str = "mcp_access_log_requests_total";
pub const BODY_TRUNCATED: &str = "mcp_access_log_body_truncated_total";

/// Every verdict with its label value, in one place.
pub const VERDICTS: [(Verdict, &str); 3] = [
    (Verdict::Always, "always"),
    (Verdict::Sampled, "sampled"),
    (Verdict::Dropped, "dropped"),
];

/// The metric name counting requests that got `verdict`.
pub fn requests_metric(verdict: Verdict) -> String {
    let label = VERDICTS
        .iter()
        .find(|(v, _)| *v == verdict)
        .map_or("unknown", |(_, label)| label);
    labeled(REQUESTS, &[("decision", label)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_decision_label() {
        assert_eq!(
            requests_metric(Verdict::Dropped),
            "decision=.=dropped;.;mcp_access_log_requests_total"
        );
        assert_eq!(
            requests_metric(Verdict::Always),
            "decision=.=always;.;mcp_access_log_requests_total"
        );
    }
}

//! What a reconciler run reports: the summary (`stockbridge status`, the
//! `stockbridge.reconciliation` event) and the CloudWatch metrics.

use stockbridge_domain::invariants::{Discrepancy, Repair};

use super::CheckReport;

/// The last run's summary is kept under this checkpoint (for `stockbridge status`).
pub const LAST_RUN_CHECKPOINT: &str = "last_reconcile";

pub use crate::ports::RunSummary;

impl RunSummary {
    /// Builds the summary of a run.
    pub fn of(
        at: stockbridge_domain::Timestamp,
        dry_run: bool,
        events: Option<&crate::reconcile::recovery::RecoveryReport>,
        checks: &CheckReport,
        catalog: Option<&crate::catalog_sync::CatalogCheckReport>,
    ) -> Self {
        let all: Vec<&Discrepancy> = checks
            .discrepancies
            .iter()
            .chain(catalog.into_iter().flat_map(|c| c.discrepancies.iter()))
            .collect();
        let mut by_check = std::collections::BTreeMap::new();
        for d in &all {
            *by_check.entry(d.what.to_owned()).or_insert(0) += 1;
        }
        let recovered = events.map_or(0, |e| e.recovered);
        let left_alone = all
            .iter()
            .filter(|d| d.action == Repair::LeaveAlone)
            .count();
        Self {
            at: crate::message::rfc3339(at),
            dry_run,
            events_recovered: recovered,
            cursor: events.and_then(|e| e.cursor.clone()),
            cursor_age_days: events.and_then(|e| e.cursor_age_days),
            discrepancies: all.len() - left_alone,
            left_alone,
            repaired: checks.repaired + catalog.map_or(0, |c| c.repaired),
            pipeline_broken: recovered > 0
                || by_check.contains_key("paid_session_has_order")
                || by_check.contains_key("awaiting_order_settled")
                || by_check.contains_key("catalog_matches_stripe"),
            by_check,
            findings: all
                .iter()
                .take(20)
                .map(|d| {
                    format!(
                        "{} {}: expected {}, found {}",
                        d.what, d.subject, d.expected, d.found
                    )
                })
                .collect(),
            parked: 0,
            errors: Vec::new(),
            controls: crate::ports::Controls::default(),
            unfinished: Vec::new(),
        }
    }
}

/// The run's counts as one CloudWatch embedded-metric-format log line (namespace
/// `stockbridge`, dimension `Function`): `EventsRecovered`, `Discrepancies`, `Repaired` and
/// `PipelineBroken` (0 or 1). Printed by the reconciler Lambda; CloudWatch turns it into
/// metrics (the template alarms on them).
pub fn emf_line(
    function: &str,
    summary: &RunSummary,
    now: stockbridge_domain::Timestamp,
) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now.0,
            "CloudWatchMetrics": [{
                "Namespace": "stockbridge",
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "EventsRecovered", "Unit": "Count"},
                    {"Name": "Discrepancies", "Unit": "Count"},
                    {"Name": "Repaired", "Unit": "Count"},
                    {"Name": "PipelineBroken", "Unit": "Count"},
                    {"Name": "Parked", "Unit": "Count"},
                    {"Name": "Errors", "Unit": "Count"},
                    {"Name": "LeftAlone", "Unit": "Count"},
                ],
            }],
        },
        "Function": function,
        "EventsRecovered": summary.events_recovered,
        "Discrepancies": summary.discrepancies,
        "Repaired": summary.repaired,
        "PipelineBroken": u8::from(summary.pipeline_broken),
        "Parked": summary.parked,
        "Errors": summary.errors.len(),
        "LeftAlone": summary.left_alone,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_line_is_embedded_metric_format_with_the_counts() {
        let check = CheckReport {
            repaired: 2,
            ..CheckReport::default()
        };
        let events = crate::reconcile::recovery::RecoveryReport {
            recovered: 3,
            ..Default::default()
        };
        let summary = RunSummary::of(
            stockbridge_domain::Timestamp(5),
            false,
            Some(&events),
            &check,
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&emf_line(
            "reconciler",
            &summary,
            stockbridge_domain::Timestamp(5),
        ))
        .unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 5);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "stockbridge"
        );
        assert_eq!(
            (
                v["EventsRecovered"].as_u64(),
                v["Discrepancies"].as_u64(),
                v["Repaired"].as_u64(),
                v["PipelineBroken"].as_u64()
            ),
            (Some(3), Some(0), Some(2), Some(1))
        );
        assert_eq!(v["Function"], "reconciler");
    }
}

//! CloudWatch embedded-metric-format lines: one JSON line on stdout in Lambda becomes a metric
//! in the namespace `stockbridge`, with no dimension, so every function adds to one metric the
//! template alarms on.

use serde_json::{Value, json};

/// `count` of `metric` at `at`, with `fields` (level, message, ...) beside it in the log line.
pub fn count_line(metric: &str, count: usize, at: std::time::SystemTime, fields: Value) -> String {
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut line = json!({
        "_aws": {
            "Timestamp": ms,
            "CloudWatchMetrics": [{
                "Namespace": "stockbridge",
                "Dimensions": [[]],
                "Metrics": [{"Name": metric, "Unit": "Count"}],
            }],
        },
        metric: count,
    });
    if let (Some(out), Value::Object(extra)) = (line.as_object_mut(), fields) {
        out.extend(extra);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_one_metric_without_dimension_beside_its_fields() {
        let line = count_line("Things", 3, std::time::UNIX_EPOCH, json!({"level": "WARN"}));
        let v: Value = serde_json::from_str(&line).unwrap();
        let m = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(m["Namespace"], "stockbridge");
        assert_eq!(m["Dimensions"], json!([[]]));
        assert_eq!(m["Metrics"][0], json!({"Name": "Things", "Unit": "Count"}));
        assert_eq!(
            (v["Things"].clone(), v["level"].clone()),
            (json!(3), json!("WARN"))
        );
    }
}

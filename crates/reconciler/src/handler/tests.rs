//! The edge with in-memory ports and a default `Context` (no time left: every phase stops at
//! once, the run is still recorded).

use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;
use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::memory::{MemoryPayments, MemoryPublisher, MemoryStore, TickingClock};
use stockbridge_app::orders::Services;
use stockbridge_app::ports::NoNotifier;
use stockbridge_bootstrap::ReconcilerSettings;

use super::{PrefixCheck, Reconciler};

struct Claimed(Option<&'static str>);

impl PrefixCheck for Claimed {
    async fn problem(&self) -> Option<String> {
        self.0.map(str::to_owned)
    }
}

type Fake =
    Reconciler<MemoryStore, MemoryPublisher, MemoryPayments, TickingClock, NoNotifier, Claimed>;

fn reconciler(prefix: Claimed) -> Fake {
    let store = MemoryStore::default();
    let payments = MemoryPayments::default();
    Reconciler {
        inventory: Services::new(
            store.clone(),
            MemoryPublisher::default(),
            payments.clone(),
            TickingClock::default(),
            stockbridge_app::memory::inventory_config(),
        ),
        sync: CatalogSync {
            store,
            stripe: payments,
            clock: TickingClock::default(),
        },
        notifier: NoNotifier,
        settings: ReconcilerSettings {
            max_events: 10,
            event_overlap_secs: 60,
            session_hours: 24,
            session_grace_secs: 600,
            catalog_segments: 0,
            catalog_max_pages: 10,
            event_bus: "default".into(),
            report_only: false,
        },
        prefix,
    }
}

#[tokio::test]
async fn a_run_is_reported_and_a_problem_found_before_it_is_one_of_its_errors() {
    let problem = "iot-topic-prefix: stockbridge/_deployment is claimed by another deployment";
    let r = reconciler(Claimed(Some(problem)));
    let event = LambdaEvent::new(json!({"detail": {}}), Context::default());
    let out = r.handle(event).await.unwrap();
    let errors = out["summary"]["errors"].as_array().unwrap();
    assert!(errors.iter().any(|e| e == problem), "{out}");
    assert_eq!(out["summary"]["dry_run"], json!(false));
}

#[tokio::test]
async fn without_a_problem_the_run_records_none_of_its_own() {
    let r = reconciler(Claimed(None));
    let out = r
        .handle(LambdaEvent::new(json!({}), Context::default()))
        .await
        .unwrap();
    let errors = out["summary"]["errors"].as_array().unwrap();
    assert!(
        !errors
            .iter()
            .any(|e| e.as_str().unwrap_or("").starts_with("iot-topic-prefix")),
        "{out}"
    );
}

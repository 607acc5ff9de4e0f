//! The edge with in-memory ports and a `Context` whose deadline is set per test.

use std::sync::atomic::Ordering;

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use lambda_runtime::{Context, LambdaEvent};
use stockbridge_app::catalog_sync::CatalogSync;
use stockbridge_app::decode::EventFilter;
use stockbridge_app::memory::{MemoryDeadLetters, MemoryPayments, MemoryStore, TickingClock};

use super::handle;

type Sync = CatalogSync<MemoryStore, MemoryPayments, TickingClock>;

fn sync() -> Sync {
    CatalogSync {
        store: MemoryStore::default(),
        stripe: MemoryPayments::default(),
        clock: TickingClock::default(),
    }
}

fn filter() -> EventFilter {
    EventFilter {
        source_prefix: "aws.partner/stripe.com/".into(),
        livemode: false,
    }
}

fn batch(bodies: &[(&str, &str)], deadline_in_ms: Option<u64>) -> LambdaEvent<SqsEvent> {
    let mut event = SqsEvent::default();
    for (id, body) in bodies {
        let mut m = SqsMessage::default();
        m.message_id = Some((*id).to_owned());
        m.body = Some((*body).to_owned());
        event.records.push(m);
    }
    let mut context = Context::default();
    if let Some(ms) = deadline_in_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        context.deadline = u64::try_from(now).unwrap() + ms;
    }
    LambdaEvent::new(event, context)
}

fn retried(r: &aws_lambda_events::event::sqs::SqsBatchResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

/// A stream record of something that is not a product's details: never syncable.
const POISON: &str = r#"{"dynamodb": {"Keys": {"pk": {"S": "ITEM#s#p"}, "sk": {"S": "ITEM"}}}}"#;
/// An event from a source that is not Stripe's: skipped, done.
const FOREIGN: &str = r#"{"source": "aws.partner/other.com/x", "detail-type": "product.updated"}"#;

#[tokio::test]
async fn a_poison_message_is_set_aside_with_its_reason_and_not_retried() {
    let dead = MemoryDeadLetters::default();
    let out = handle(
        &sync(),
        &filter(),
        &dead,
        batch(&[("m1", POISON), ("m2", FOREIGN)], Some(60_000)),
    )
    .await
    .unwrap();
    assert!(retried(&out).is_empty());
    let sent = dead.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].0.as_str(), sent[0].1.as_str()), ("m1", POISON));
    assert!(
        sent[0].2.contains("not a product's details record"),
        "{}",
        sent[0].2
    );
}

#[tokio::test]
async fn a_poison_message_that_cannot_be_set_aside_is_left_for_the_queues_redrive() {
    let dead = MemoryDeadLetters::default();
    dead.fail_next.store(1, Ordering::SeqCst);
    let out = handle(
        &sync(),
        &filter(),
        &dead,
        batch(&[("m1", POISON)], Some(60_000)),
    )
    .await
    .unwrap();
    assert_eq!(retried(&out), ["m1"]);
}

#[tokio::test]
async fn messages_past_the_deadline_are_handed_back_untouched() {
    let dead = MemoryDeadLetters::default();
    // A default Context's deadline is long past.
    let out = handle(
        &sync(),
        &filter(),
        &dead,
        batch(&[("m1", POISON), ("m2", FOREIGN)], None),
    )
    .await
    .unwrap();
    assert_eq!(retried(&out), ["m1", "m2"]);
    assert!(dead.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_sync_that_may_pass_later_is_retried_not_dead_lettered_and_passes_on_redelivery() {
    use stockbridge_app::ports::CatalogStore;
    use stockbridge_domain::{Money, ProductDetails, ProductId, StoreId, Timestamp};
    let sync = sync();
    let (store, product) = (
        StoreId::parse("s1").unwrap(),
        ProductId::parse("tee").unwrap(),
    );
    // Sold out in its store: the new link is switched off, and Stripe fails that switch once.
    sync.store.put_item(stockbridge_app::memory::test_item(
        &store, &product, "Tee", 0,
    ));
    let details = ProductDetails {
        product_id: product,
        name: "Tee".into(),
        description: None,
        images: vec![],
        price: Money::new(1500, "usd").unwrap(),
        active: true,
        metadata: Default::default(),
        stores: [store].into_iter().collect(),
        revision: 1,
        updated_at: Timestamp(0),
    };
    sync.store.put_details(&details, None).await.unwrap();
    sync.stripe.fail_links.store(1, Ordering::SeqCst);
    let change = r#"{"dynamodb": {"Keys": {"pk": {"S": "PRODUCT#tee"}, "sk": {"S": "DETAILS"}}}}"#;
    let dead = MemoryDeadLetters::default();
    let first = handle(
        &sync,
        &filter(),
        &dead,
        batch(&[("m1", change)], Some(60_000)),
    )
    .await
    .unwrap();
    assert_eq!(retried(&first), ["m1"], "handed back for SQS to retry");
    assert!(dead.sent.lock().unwrap().is_empty(), "not a poison message");
    let again = handle(
        &sync,
        &filter(),
        &dead,
        batch(&[("m1", change)], Some(60_000)),
    )
    .await
    .unwrap();
    assert!(retried(&again).is_empty(), "the redelivery syncs it");
    assert!(dead.sent.lock().unwrap().is_empty());
}

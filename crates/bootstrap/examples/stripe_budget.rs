//! Load for `bench/stripe_budget.py`: one "function" calling Stripe as fast as its callers ask,
//! through the real adapter and (when `STRIPE_BUDGET_RPS` is set) the deployment's shared
//! budget in the table. A third of the calls each: an order's line items (selling), a refund
//! (settling), a page of events (background). Prints one JSON line: calls and p50/p95 latency
//! per priority, and how many ended rate limited.
//!
//!     cargo run --example stripe_budget -p stockbridge-bootstrap -- SECONDS CALLERS

use std::time::{Duration, Instant};

use stockbridge_app::ports::{EventLog, Payments, PaymentsError};
use stockbridge_domain::{OrderId, PaymentIntentId, RefundRequest};

#[derive(Default)]
struct Tally {
    latencies_ms: Vec<f64>,
    rate_limited: usize,
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

async fn one(
    payments: &stockbridge_stripe::StripePayments,
    kind: usize,
    n: usize,
) -> Result<(), PaymentsError> {
    match kind {
        0 => payments
            .line_items(&OrderId::parse(format!("cs_budget_{n}")).expect("id"))
            .await
            .map(drop),
        1 => payments
            .refund(&RefundRequest {
                order_id: OrderId::parse(format!("cs_budget_{n}")).expect("id"),
                payment_intent: PaymentIntentId::parse(format!("pi_budget_{n}")).expect("id"),
                amount: None,
                idempotency_key: format!("budget-{n}"),
            })
            .await
            .map(drop),
        _ => payments
            .events_between(&["checkout.session.completed"], 0, 1)
            .await
            .map(drop),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).map_or(Ok(10), |a| a.parse())?;
    let callers: usize = args.get(2).map_or(Ok(6), |a| a.parse())?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let config = stockbridge_bootstrap::Config::from_env()?;
    let payments = stockbridge_bootstrap::adapters(&config).await?.payments;
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..callers)
        .map(|c| {
            let payments = payments.clone();
            tokio::spawn(async move {
                let mut tally: [Tally; 3] = Default::default();
                let mut n =
                    c * 1_000_000 + usize::try_from(std::process::id()).unwrap_or(0) * 10_000_000;
                while Instant::now() < end {
                    let kind = n % 3;
                    let t = Instant::now();
                    let r = one(&payments, kind, n).await;
                    tally[kind]
                        .latencies_ms
                        .push(t.elapsed().as_secs_f64() * 1000.0);
                    if matches!(r, Err(PaymentsError::RateLimited { .. })) {
                        tally[kind].rate_limited += 1;
                    }
                    n += 1;
                }
                tally
            })
        })
        .collect();
    let mut all: [Tally; 3] = Default::default();
    for t in tasks {
        for (a, b) in all.iter_mut().zip(t.await?) {
            a.latencies_ms.extend(b.latencies_ms);
            a.rate_limited += b.rate_limited;
        }
    }
    let mut out = serde_json::Map::new();
    for (name, t) in ["sell", "settle", "background"].iter().zip(all.iter_mut()) {
        out.insert(
            (*name).into(),
            serde_json::json!({
                "calls": t.latencies_ms.len(),
                "rate_limited": t.rate_limited,
                "p50_ms": percentile(&mut t.latencies_ms, 0.5).round(),
                "p95_ms": percentile(&mut t.latencies_ms, 0.95).round(),
            }),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}

//! `stockbridge waitlist list|erase|announce`: who waits for a product's next restock, an address
//! erased from every list on its owner's request, and the restocks left unannounced announced
//! (docs/waitlist.md).

use anyhow::{Context, Result};
use stockbridge_app::ports::{Waitlist, WaitlistEntry};
use stockbridge_app::reservations::caps::email_key;
use stockbridge_app::waitlist::each_confirmed;
use stockbridge_bootstrap::Config;
use stockbridge_domain::ProductId;

use super::store_id;

/// Prints the confirmed addresses that the product's next restock will serve.
pub async fn list(
    config: &Config,
    store: Option<String>,
    product: String,
    json: bool,
) -> Result<()> {
    let store = store_id(config, store)?;
    let product = ProductId::parse(product).context("product")?;
    let table = stockbridge_bootstrap::store(config).await;
    let since = table.announced(&store, &product).await?.version;
    let mut all: Vec<WaitlistEntry> = Vec::new();
    let ids = (&store, &product);
    each_confirmed(&table, ids, since..u64::MAX, |page| all.extend(page)).await?;
    if json {
        let list: Vec<_> = all
            .iter()
            .map(|e| serde_json::json!({"email": e.email, "confirmed_at_version": e.confirmed}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"store_id": store.as_str(), "product_id": product.as_str(), "entries": list})
        );
        return Ok(());
    }
    println!(
        "{} confirmed address(es) wait for the next restock of {store}/{product}",
        all.len()
    );
    for e in &all {
        println!("  {}", e.email);
    }
    Ok(())
}

/// Erases an address from every list (entries confirmed or not).
pub async fn erase(config: &Config, email: &str, json: bool) -> Result<()> {
    let table = stockbridge_bootstrap::store(config).await;
    let erased = table.erase_address(&email_key(email)).await?;
    if json {
        println!("{}", serde_json::json!({"erased": erased}));
    } else {
        println!("erased {email} from {erased} waitlist(s)");
    }
    Ok(())
}

/// Announces every restock left pending (the broadcaster's announcement failed, or the waitlist
/// was off). Needs the waitlist's configuration (`WAITLIST_SECRET(_ARN)`, `WAITLIST_LINK_BASE`,
/// `MERCHANT_EVENT_BUS`).
pub async fn announce(config: &Config, json: bool) -> Result<()> {
    use stockbridge_app::ports::Clock;
    let Some(setup) = stockbridge_bootstrap::waitlist().await? else {
        anyhow::bail!(
            "the waitlist is off: set WAITLIST_SECRET_ARN (or WAITLIST_SECRET) as the stack has it"
        );
    };
    anyhow::ensure!(
        !setup.links.base.is_empty(),
        "set WAITLIST_LINK_BASE to the checkout function's URL (the stack's CheckoutUrl output)"
    );
    let table = stockbridge_bootstrap::store(config).await;
    let pending = table.pending_restocks(1000).await?;
    let (mut announced, mut failed) = (Vec::new(), Vec::new());
    for r in &pending {
        let key = (&r.store_id, &r.product_id, r.version);
        let now = stockbridge_app::ports::SystemClock.now();
        match stockbridge_app::waitlist::announce_restock(&table, &setup.events, &setup.links, key, now).await {
            Ok(count) => announced.push(serde_json::json!({"store_id": r.store_id.as_str(), "product_id": r.product_id.as_str(), "restock": r.version, "count": count})),
            Err(e) => failed.push(format!("{}/{} restock {}: {e}", r.store_id, r.product_id, r.version)),
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"announced": announced, "failed": failed})
        );
    } else {
        println!(
            "{} pending restock(s): {} announced, {} failed",
            pending.len(),
            announced.len(),
            failed.len()
        );
        for f in &failed {
            println!("  failed: {f}");
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "{} restock(s) still pending",
        failed.len()
    );
    Ok(())
}

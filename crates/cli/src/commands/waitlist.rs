//! `stockbridge waitlist list|erase`: who waits for a product's next restock, and an address
//! erased from every list on its owner's request (docs/waitlist.md).

use anyhow::{Context, Result};
use stockbridge_app::ports::{Waitlist, WaitlistEntry};
use stockbridge_app::reservations::caps::email_key;
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
    let since = table.last_announced(&store, &product).await?;
    let (mut all, mut after): (Vec<WaitlistEntry>, Option<String>) = (Vec::new(), None);
    loop {
        let page = table
            .confirmed_entries(&store, &product, since..u64::MAX, after.as_deref(), 500)
            .await?;
        all.extend(page.entries);
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
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

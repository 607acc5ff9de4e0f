//! `stockbridge pause|resume repairs|links|refunds|all`: the kill switch, usable mid-sale. Kept
//! in the table; every function honours it within a few seconds
//! (`stockbridge_dynamodb::CONTROLS_TTL`).

use anyhow::Result;
use clap::ValueEnum;
use stockbridge_app::ports::{ControlStore, Controls, InventoryStore};
use stockbridge_bootstrap::Config;

/// What to pause or resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// The reconciler's replays and repairs (it still checks and records).
    Repairs,
    /// Payment Link switches for stock (sell-out and restock), everywhere.
    Links,
    /// Refunds of oversold orders, everywhere.
    Refunds,
    /// All three.
    All,
}

fn apply(controls: &mut Controls, switch: Switch, paused: bool) {
    let all = switch == Switch::All;
    if all || switch == Switch::Repairs {
        controls.repairs_paused = paused;
    }
    if all || switch == Switch::Links {
        controls.links_paused = paused;
    }
    if all || switch == Switch::Refunds {
        controls.refunds_paused = paused;
    }
}

/// One line saying what is paused.
pub fn describe(c: &Controls) -> String {
    let paused: Vec<&str> = [
        (c.repairs_paused, "repairs"),
        (c.links_paused, "links"),
        (c.refunds_paused, "refunds"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if paused.is_empty() {
        "nothing paused".to_owned()
    } else {
        format!("PAUSED: {} (`stockbridge resume ...`)", paused.join(", "))
    }
}

pub async fn set(config: &Config, switch: Switch, paused: bool) -> Result<()> {
    let store = stockbridge_bootstrap::store(config).await;
    let mut controls = store.controls().await?;
    apply(&mut controls, switch, paused);
    store.set_controls(&controls).await?;
    println!(
        "{} (every function sees it within {} s)",
        describe(&controls),
        stockbridge_dynamodb::CONTROLS_TTL.as_secs()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pausing_all_then_resuming_one_leaves_the_others_paused() {
        let mut c = Controls::default();
        apply(&mut c, Switch::All, true);
        apply(&mut c, Switch::Links, false);
        assert_eq!(
            c,
            Controls {
                repairs_paused: true,
                links_paused: false,
                refunds_paused: true
            }
        );
        assert_eq!(
            describe(&c),
            "PAUSED: repairs, refunds (`stockbridge resume ...`)"
        );
    }
}

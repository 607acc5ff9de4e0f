//! `stockbridge pause|resume repairs|links|refunds|all`: the kill switch, usable mid-sale. Kept
//! in the table; every function honours it within a few seconds
//! (`stockbridge_dynamodb::CONTROLS_TTL`).

use anyhow::Result;
use clap::ValueEnum;
use stockbridge_app::ports::{Control, ControlStore, Controls, InventoryStore};
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

impl Switch {
    fn controls(self) -> &'static [Control] {
        match self {
            Self::Repairs => &[Control::Repairs],
            Self::Links => &[Control::Links],
            Self::Refunds => &[Control::Refunds],
            Self::All => &[Control::Repairs, Control::Links, Control::Refunds],
        }
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
    for control in switch.controls() {
        store.set_control(*control, paused).await?;
    }
    let controls = store.controls().await?;
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
    fn the_switches_read_as_a_sentence() {
        let c = Controls {
            repairs_paused: true,
            links_paused: false,
            refunds_paused: true,
        };
        assert_eq!(
            describe(&c),
            "PAUSED: repairs, refunds (`stockbridge resume ...`)"
        );
        assert_eq!(describe(&Controls::default()), "nothing paused");
        assert_eq!(Switch::All.controls().len(), 3);
    }
}

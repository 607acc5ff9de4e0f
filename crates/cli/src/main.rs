//! The `stockbridge` command line: create the table, import a catalog, show and change stock,
//! read an item's history, reconcile, backfill an existing Stripe account and show the
//! operating status. Same configuration as the Lambda (see the README).
//!
//! This file only dispatches: the commands are in `args.rs` (what clap parses) and
//! `commands/` (what each does).

mod args;
mod commands;

use anyhow::{Result, bail};
use clap::Parser;
use stockbridge_bootstrap::Config;

use args::{
    CatalogCommand, Cli, Command, ParkedCommand, StoreCommand, TableCommand, WaitlistCommand, YesNo,
};
use commands::{catalog, ops, parked, preflight, stock, store, switches, table, waitlist};

async fn run(cli: Cli) -> Result<()> {
    // Before a deploy there is no table yet.
    if let Command::Preflight {
        reserve_concurrency,
        webhook,
        json,
    } = cli.command
    {
        let options = preflight::Options {
            reserve_concurrency: reserve_concurrency == YesNo::Yes,
            webhook,
            json,
        };
        return preflight::run(&options).await;
    }
    let config = Config::from_env()?;
    let c = &config;
    match cli.command {
        Command::Table {
            command: TableCommand::Create,
        } => table::create(c).await,
        Command::Catalog { command } => match command {
            CatalogCommand::Import { file, set_stock } => {
                catalog::import(c, &file, set_stock).await
            }
            CatalogCommand::Export { store, out } => catalog::export(c, store, out).await,
        },
        Command::Stock { command } => stock::run(c, command).await,
        Command::Reconcile(args) => ops::reconcile(c, args).await,
        Command::Backfill {
            store,
            default_stock,
            restart,
        } => {
            let options = stockbridge_app::backfill::BackfillOptions {
                store: commands::store_id(c, store)?,
                default_stock,
                restart,
            };
            ops::backfill(c, options).await
        }
        Command::Status { json } => ops::status(c, json).await,
        Command::Migrate { dry_run, json } => table::migrate(c, dry_run, json).await,
        Command::Preflight { .. } => bail!("preflight runs before the configuration is read"),
        Command::Pause { what } => switches::set(c, what, true).await,
        Command::Resume { what } => switches::set(c, what, false).await,
        Command::Parked { command, json } => {
            let action = match command {
                ParkedCommand::List => parked::Action::List,
                ParkedCommand::Retry { id } => parked::Action::Retry(id),
                ParkedCommand::Skip { id } => parked::Action::Skip(id),
            };
            parked::run(c, action, json).await
        }
        Command::History {
            product,
            store,
            json,
        } => stock::history(c, store, product, json).await,
        Command::Store {
            command:
                StoreCommand::Returns {
                    store,
                    refunds,
                    lost_disputes,
                    json,
                },
        } => store::returns(c, store, (refunds, lost_disputes), json).await,
        Command::Waitlist {
            command:
                WaitlistCommand::List {
                    product,
                    store,
                    json,
                },
        } => waitlist::list(c, store, product, json).await,
        Command::Waitlist {
            command: WaitlistCommand::Erase { email, json },
        } => waitlist::erase(c, &email, json).await,
        Command::Waitlist {
            command: WaitlistCommand::Announce { json },
        } => waitlist::announce(c, json).await,
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("STOCKBRIDGE_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Library errors already carry their cause in their message: print each cause once.
            let mut parts: Vec<String> = Vec::new();
            for cause in e.chain().map(ToString::to_string) {
                if !parts.last().is_some_and(|prev| prev.contains(&cause)) {
                    parts.push(cause);
                }
            }
            eprintln!("error: {}", parts.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}

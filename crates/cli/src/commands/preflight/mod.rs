//! `stockbridge preflight`: before and after a deploy, check what the account and Stripe must
//! have for the stack to work, and explain each finding.
//!
//! Each check reads what it needs from the environment and is skipped when that is not set
//! (before a deploy there is no table, no queue): the Stripe key (`STRIPE_API_KEY` or
//! `STRIPE_SECRET_ARN`) and `STRIPE_LIVEMODE`; `STRIPE_EVENT_SOURCE_NAME` to pick one
//! destination; `TABLE_NAME`; `IOT_TOPIC_PREFIX` and the IoT data endpoint
//! (`AWS_ENDPOINT_URL_IOT_DATA_PLANE`); the queues (`CATALOG_SYNC_QUEUE_URL`,
//! `CATALOG_SYNC_DLQ_URL`, `INVENTORY_DLQ_URL`, `STRIPE_EVENTS_DLQ_URL`, `BROADCASTER_FAILED_BATCHES_URL`,
//! `CATALOG_PIPE_DLQ_URL`). A failed check makes the command exit 1 (for CI); a warning does
//! not.

mod aws;
mod stripe;

use anyhow::{Result, bail};
use stockbridge_bootstrap::Config;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, but look at it.
    Warn,
    /// The stack will not work (or not fully) until this is fixed.
    Fail,
    /// Not checked (what it needs is not set).
    Skip,
}

/// One check's finding.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    /// The check (`lambda-quota`, `stripe-key`, ...).
    pub check: &'static str,
    /// How it came out.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn new(check: &'static str, level: Level, detail: impl Into<String>) -> Self {
        Self {
            check,
            level,
            detail: detail.into(),
            fix: None,
        }
    }

    fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Level::Ok, detail)
    }

    fn warn(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Level::Warn, detail).with_fix(fix)
    }

    fn fail(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Level::Fail, detail).with_fix(fix)
    }

    fn skip(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Level::Skip, detail)
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

/// The command's options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Whether the stack reserves concurrency (`ReserveConcurrency`).
    pub reserve_concurrency: bool,
    /// Whether the stack has a webhook endpoint (`--webhook`).
    pub webhook: bool,
    /// Print JSON.
    pub json: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Runs every check, prints the findings, and fails when any check failed.
///
/// # Errors
/// When a check failed (exit code 1), or the configuration is invalid.
pub async fn run(options: &Options) -> Result<()> {
    let config = Config::from_env_without_table()?;
    let aws = stockbridge_bootstrap::aws_config().await;
    let deployed = !config.table_name.is_empty();
    let extra = if options.webhook {
        aws::WEBHOOK_RESERVED
    } else {
        0
    };
    let mut findings =
        vec![aws::lambda_quota(&aws, options.reserve_concurrency, deployed, extra).await];
    let source = stripe::checks(&config, &mut findings, options.webhook).await;
    findings.push(aws::partner_source(&aws, source.as_ref()).await);
    findings.push(aws::topic_prefix(&aws, &config).await);
    findings.extend(aws::table(&aws, &config).await);
    findings.extend(aws::queues(&aws).await);
    print(&findings, options.json)?;
    let failed = findings.iter().filter(|f| f.level == Level::Fail).count();
    if failed > 0 {
        bail!("preflight: {failed} check(s) failed");
    }
    Ok(())
}

fn print(findings: &[Finding], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(findings)?);
        return Ok(());
    }
    for f in findings {
        let mark = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
            Level::Skip => "skip",
        };
        println!("{mark}  {:<18} {}", f.check, f.detail);
        if let Some(fix) = &f.fix {
            println!("      {:<18} → {fix}", "");
        }
    }
    Ok(())
}

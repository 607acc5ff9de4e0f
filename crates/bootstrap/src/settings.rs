//! The reconciler's and the checkout's own settings.

use super::*;

/// The reconciler's settings, from the environment.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// `RECONCILER_MAX_EVENTS`: events replayed per run at most (default 1000; the next run
    /// continues from the cursor).
    pub max_events: usize,
    /// `RECONCILER_EVENT_OVERLAP_SECS`: seconds re-listed before the replay cursor, for events
    /// that become visible in `/v1/events` after newer ones (default 60).
    pub event_overlap_secs: u32,
    /// `RECONCILER_SESSION_HOURS`: paid sessions of the last hours that must have an order
    /// (default 24; 0 skips the check).
    pub session_hours: u32,
    /// `RECONCILER_SESSION_GRACE_SECS`: sessions younger than this are left to their events
    /// (default 600).
    pub session_grace_secs: u32,
    /// `RECONCILER_CATALOG_SEGMENTS`: parallel scan segments of the catalog check (default 4;
    /// 0 skips it).
    pub catalog_segments: u32,
    /// `RECONCILER_CATALOG_MAX_PAGES`: Stripe list requests of the catalog check per run
    /// (default 1500: 150,000 products; a bigger catalog is checked over several runs).
    pub catalog_max_pages: usize,
    /// `RECONCILIATION_EVENT_BUS`: where the summary event goes (default `default`).
    pub event_bus: String,
    /// `STOCKBRIDGE_REPAIRS=report`: every repair is computed, recorded and alarmed on, none is
    /// carried out (default `act`). See [`report_only`].
    pub report_only: bool,
}

/// `STOCKBRIDGE_REPAIRS`: `act` (default) or `report` — the safe way to connect an account
/// that sold before stockbridge: the reconciler replays nothing and repairs nothing, but
/// records (and alarms on) everything it would have done.
///
/// # Errors
/// [`ConfigError::Invalid`] for any other value.
pub fn report_only() -> Result<bool, ConfigError> {
    match var("STOCKBRIDGE_REPAIRS").as_deref().map(str::trim) {
        None | Some("act") => Ok(false),
        Some("report") => Ok(true),
        Some(other) => Err(ConfigError::Invalid {
            name: "STOCKBRIDGE_REPAIRS",
            message: format!("{other:?} is neither \"act\" nor \"report\""),
        }),
    }
}

pub(crate) fn number<T: std::str::FromStr + PartialOrd + Copy>(
    name: &'static str,
    default: T,
    min: T,
) -> Result<T, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n >= min)
            .ok_or(ConfigError::Invalid {
                name,
                message: format!("{v:?} is not a number (at least the minimum allowed)"),
            }),
    }
}

/// `hours` of paid sessions to check, held within the retention: a session older than the
/// orders the table keeps would find no order and be applied again.
pub fn within_retention(hours: u32, retention: Option<stockbridge_dynamodb::Retention>) -> u32 {
    match retention {
        Some(r) if hours > r.max_lookback_hours() => {
            tracing::warn!(
                hours,
                max = r.max_lookback_hours(),
                "the session check would reach past the orders the table keeps (RETENTION_DAYS): shortened"
            );
            r.max_lookback_hours()
        }
        _ => hours,
    }
}

impl ReconcilerSettings {
    /// Reads them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            max_events: number("RECONCILER_MAX_EVENTS", 1000, 1)?,
            event_overlap_secs: number(
                "RECONCILER_EVENT_OVERLAP_SECS",
                stockbridge_app::reconcile::recovery::DEFAULT_OVERLAP_SECS,
                0,
            )?,
            session_hours: within_retention(
                number("RECONCILER_SESSION_HOURS", 24, 0)?,
                retention()?,
            ),
            session_grace_secs: number("RECONCILER_SESSION_GRACE_SECS", 600, 0)?,
            catalog_segments: number("RECONCILER_CATALOG_SEGMENTS", 4, 0)?,
            catalog_max_pages: number("RECONCILER_CATALOG_MAX_PAGES", 1500, 0)?,
            event_bus: var("RECONCILIATION_EVENT_BUS").unwrap_or_else(|| "default".into()),
            report_only: report_only()?,
        })
    }

    /// The run options they give at `now` (every store; repairs on unless
    /// `STOCKBRIDGE_REPAIRS=report`), the run's time shared out until `deadline`.
    pub fn options(
        &self,
        now: stockbridge_domain::Timestamp,
        deadline: Option<std::time::Instant>,
    ) -> RunOptions {
        RunOptions {
            store: None,
            dry_run: self.report_only,
            max_events: self.max_events,
            event_overlap_secs: self.event_overlap_secs,
            sessions: SessionWindow::last_hours(now, self.session_hours, self.session_grace_secs),
            catalog_segments: self.catalog_segments,
            catalog_grace_ms: i64::from(self.session_grace_secs) * 1000,
            catalog_max_pages: self.catalog_max_pages,
            budget: deadline.map_or_else(
                stockbridge_app::reconcile::Budget::unlimited,
                stockbridge_app::reconcile::Budget::until,
            ),
            found_before: Vec::new(),
        }
    }
}

/// The checkout function's settings, from the environment.
#[derive(Debug, Clone)]
pub struct CheckoutSettings {
    /// `CHECKOUT_MAX_QUANTITY` (10), `CHECKOUT_MAX_LINES` (20), `CHECKOUT_HOLD_SECONDS` (900),
    /// `CHECKOUT_MAX_UNITS` (10), `CHECKOUT_HOLD_SHARE_PERCENT` (50, at most 100),
    /// `CHECKOUT_HOLDS_PER_EMAIL` (3), `CHECKOUT_HOLDS_PER_CLIENT` (300),
    /// `CHECKOUT_FAILURES_PER_HOUR` (5), `CHECKOUT_FAILURES_PER_CLIENT_HOUR` (50),
    /// `CHECKOUT_UNITS_PER_EMAIL` (0: none), `CHECKOUT_EMAIL_LIMIT_SECONDS` (86400): see
    /// docs/checkout.md, *Caps*.
    pub limits: stockbridge_app::reservations::HoldLimits,
    /// `CHECKOUT_ALLOWED_ORIGINS`: comma-separated origins allowed to call it from a browser,
    /// or `*`. Default none: browsers send `Origin` on every POST, so an empty list refuses
    /// every browser call; calls without `Origin` (servers, curl) are always served.
    pub allowed_origins: Vec<String>,
    /// `CHECKOUT_MAX_BODY_BYTES` (16384).
    pub max_body_bytes: usize,
}

impl CheckoutSettings {
    /// Reads them.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            limits: stockbridge_app::reservations::HoldLimits {
                max_quantity: number("CHECKOUT_MAX_QUANTITY", 10, 1)?,
                max_lines: number("CHECKOUT_MAX_LINES", 20, 1)?,
                hold_seconds: number("CHECKOUT_HOLD_SECONDS", 900, 10)?,
                max_units: number("CHECKOUT_MAX_UNITS", 10, 1)?,
                hold_share_percent: match number("CHECKOUT_HOLD_SHARE_PERCENT", 50u8, 1)? {
                    p if p <= 100 => p,
                    p => {
                        return Err(ConfigError::Invalid {
                            name: "CHECKOUT_HOLD_SHARE_PERCENT",
                            message: format!("{p} is above 100"),
                        });
                    }
                },
                holds_per_email: number("CHECKOUT_HOLDS_PER_EMAIL", 3, 1)?,
                holds_per_client: number("CHECKOUT_HOLDS_PER_CLIENT", 300, 1)?,
                failures_per_hour: number("CHECKOUT_FAILURES_PER_HOUR", 5, 1)?,
                failures_per_client_hour: number("CHECKOUT_FAILURES_PER_CLIENT_HOUR", 50, 1)?,
                units_per_email: number("CHECKOUT_UNITS_PER_EMAIL", 0, 0)?,
                email_limit_seconds: number("CHECKOUT_EMAIL_LIMIT_SECONDS", 86_400, 60)?,
            },
            allowed_origins: var("CHECKOUT_ALLOWED_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_owned())
                        .filter(|o| !o.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            max_body_bytes: number("CHECKOUT_MAX_BODY_BYTES", 16_384, 256)?,
        })
    }
}

/// The `webhook` function's own settings, from the environment.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where the endpoint's signing secrets come from: `STRIPE_WEBHOOK_SECRET` (the `whsec_…`
    /// values, comma-separated: during a rotation, the new and the previous one), which wins over
    /// `STRIPE_WEBHOOK_SECRET_ARN` (a Secrets Manager secret holding the same text).
    pub secret: StripeKeySource,
    /// `CATALOG_SYNC_QUEUE_URL`: where catalog events go (the catalog-sync queue).
    pub catalog_queue_url: Option<String>,
    /// `WEBHOOK_MAX_BODY_BYTES` (262144): a larger body is refused (413) before its signature
    /// is checked.
    pub max_body_bytes: usize,
}

impl WebhookSettings {
    /// Reads them.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when no secret is configured, [`ConfigError::Invalid`] naming a
    /// variable that cannot be read.
    pub fn from_env() -> Result<Self, ConfigError> {
        let secret = match (
            var("STRIPE_WEBHOOK_SECRET"),
            var("STRIPE_WEBHOOK_SECRET_ARN"),
        ) {
            (Some(s), _) => StripeKeySource::Env(SecretString::from(s)),
            (None, Some(arn)) => StripeKeySource::SecretsManager(arn),
            (None, None) => {
                return Err(ConfigError::Missing(
                    "STRIPE_WEBHOOK_SECRET",
                    "set it, or STRIPE_WEBHOOK_SECRET_ARN, to the endpoint's signing secret",
                ));
            }
        };
        Ok(Self {
            secret,
            catalog_queue_url: var("CATALOG_SYNC_QUEUE_URL"),
            max_body_bytes: number("WEBHOOK_MAX_BODY_BYTES", 262_144, 1024)?,
        })
    }
}

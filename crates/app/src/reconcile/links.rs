//! The reconciler's link check: every catalog product's payment links are active iff it has
//! stock; a discrepancy is repaired on the item as it is now (or parked with its reason).

use super::*;
use crate::effects::guard::{guard_quantity, switch_link_on};
use crate::ports::GuardOutcome;
use stockbridge_domain::PaymentLinkId;
use stockbridge_domain::link_guard::{LinkLimit, LinkSeen, wanted_limit};
use tracing::info;

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Checks that every catalog product's payment links are active iff it has stock (of one
    /// store, or all), records each discrepancy and, unless `dry_run`, repairs it: a link
    /// switched off at 0 is recorded as switched off by stockbridge (so a restock switches it
    /// back on); a link switched on is forgotten as such.
    ///
    /// # Errors
    /// [`CheckError`]; repairs already made stay made.
    pub async fn check_link_invariants(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
    ) -> Result<CheckReport, CheckError> {
        let mut failures = Failures::load(&self.store).await?;
        let mut report = CheckReport::default();
        self.check_links(
            store,
            dry_run,
            &mut failures,
            &mut report,
            (&Budget::unlimited(), None),
        )
        .await?;
        Ok(report)
    }

    /// The link check, from after `resume_after` (`store/product`) until the budget is spent.
    pub(crate) async fn check_links(
        &self,
        store: Option<&StoreId>,
        dry_run: bool,
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
        (budget, resume_after): (&Budget, Option<&str>),
    ) -> Result<(), CheckError> {
        let mut items = match store {
            Some(s) => self.store.store_items(s).await?,
            None => self.store.all_items().await?,
        };
        report.items = items.len();
        report.managed_since = items.iter().map(|i| i.managed_since.0).min();
        let act = !dry_run && !self.store.controls().await?.links_paused;
        let key = |i: &CatalogItem| format!("{}/{}", i.store_id, i.product_id);
        items.sort_by_key(key);
        let start = resume_after.map_or(0, |after| {
            items.partition_point(|i| key(i).as_str() <= after)
        });
        for (n, item) in items.iter().enumerate().skip(start) {
            // At least one item per run, so every run moves on; `links_resume_after` holds the
            // last item done, on every way out (time, or an error).
            if n > start && budget.spent() {
                report.unfinished.push("links");
                break;
            }
            let item = item.clone();
            let mut states = Vec::with_capacity(item.payment_links.len());
            for link in &item.payment_links {
                let key = format!("link:{link}");
                if failures.set_aside(&key) {
                    continue;
                }
                // One link Stripe cannot be asked about is recorded; the others go on.
                match self.payments.link_state(link).await {
                    Ok(Some(seen)) => states.push((link.clone(), seen)),
                    Ok(None) => {}
                    Err(e) => {
                        report.parked.extend(
                            failures
                                .note(
                                    key.clone(),
                                    format!("reading the link: {e}"),
                                    e.is_retryable(),
                                    self.clock.now(),
                                )
                                .await?,
                        );
                    }
                }
            }
            report.links += states.len();
            for d in check_links(&item, &states) {
                warn!(what = d.what, subject = %d.subject, expected = %d.expected, found = %d.found, dry_run, "invariant violated");
                let now = self.clock.now();
                let repaired = act
                    && self
                        .repair_or_park(&item, &d, &states, failures, report)
                        .await?;
                report.repaired += usize::from(repaired);
                self.store.record(now, &d, repaired).await?;
                report.discrepancies.push(d);
            }
            if act {
                self.keep_guards(&item, &states, failures, report).await?;
            }
            if let Some(spread) = item.spread {
                for d in self.check_spread(&item, spread.shards).await? {
                    warn!(what = d.what, subject = %d.subject, expected = %d.expected, found = %d.found, "invariant violated");
                    self.store.record(self.clock.now(), &d, false).await?;
                    report.discrepancies.push(d);
                }
            }
            if !dry_run {
                self.forget_recorded_takes(&item).await;
            }
            report.links_resume_after = Some(key(&item));
        }
        if !report.unfinished.contains(&"links") {
            report.links_resume_after = None; // done to the end: the next run starts over
        }
        Ok(())
    }

    /// Removes the marks of recorded takes left on `item` by functions that stopped before
    /// their next take of it (`stockbridge_domain::take`). Housekeeping: a failure is logged and
    /// the run goes on (the next run tries again; a mark left costs bytes, never a count).
    async fn forget_recorded_takes(&self, item: &CatalogItem) {
        match self
            .store
            .forget_recorded_takes(&item.store_id, &item.product_id)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                debug!(store = %item.store_id, product = %item.product_id, n, "marks of recorded takes removed")
            }
            Err(e) => {
                warn!(store = %item.store_id, product = %item.product_id, error = %e, "the marks of recorded takes could not be removed")
            }
        }
    }

    /// [`Self::repair_link`], a failure recorded (and parked when it cannot succeed).
    async fn repair_or_park(
        &self,
        item: &CatalogItem,
        d: &Discrepancy,
        states: &[(PaymentLinkId, LinkSeen)],
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
    ) -> Result<bool, CheckError> {
        let Repair::SetLinkActive { link, .. } = &d.action else {
            return Ok(false);
        };
        let key = format!("link:{link}");
        // Off at the limit stockbridge set: Stripe's switch for stockbridge, so its to undo.
        let stripe_at_our_limit = states
            .iter()
            .any(|(l, seen)| l == link && seen.off_at_our_limit());
        match self.repair_link(item, &d.action, stripe_at_our_limit).await {
            Ok(done) => {
                failures.succeeded(&key).await?;
                Ok(done)
            }
            Err(e) => {
                let retryable = match &e {
                    CheckError::Payments(p) => p.is_retryable(),
                    CheckError::Store(s) => s.is_retryable(),
                    _ => true,
                };
                report
                    .parked
                    .extend(failures.note(key, e, retryable, self.clock.now()).await?);
                Ok(false)
            }
        }
    }
}

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Carries out a link repair on the item as it is now (re-read: a sale or a restock since
    /// the check may have settled it). A link switched off here is recorded as stockbridge's
    /// only when this call switched it; one switched on is forgotten as such. Whether it acted.
    async fn repair_link(
        &self,
        checked: &CatalogItem,
        action: &Repair,
        stripe_at_our_limit: bool,
    ) -> Result<bool, CheckError> {
        let Repair::SetLinkActive { link, active } = action else {
            return Ok(false);
        };
        let Some(item) = self
            .store
            .item(&checked.store_id, &checked.product_id)
            .await?
            .filter(|i| (i.level().available > 0) == *active)
        else {
            return Ok(false);
        };
        let recorded = item.deactivated_links.contains(link);
        if *active && !recorded && !stripe_at_our_limit {
            return Ok(false); // forgotten since: no longer stockbridge's to switch on
        }
        // Paused since the run began (`stockbridge pause links`): leave it.
        if self.store.controls().await?.links_paused {
            return Ok(false);
        }
        let changed = if *active {
            // A guarded link is switched on with its new limit, or Stripe keeps it off.
            switch_link_on(&self.store, &self.payments, &item, link, recorded)
                .await
                .map_err(|e| match e {
                    EffectError::Payments(p) => CheckError::Payments(p),
                    EffectError::Store(s) => CheckError::Store(s),
                    other => CheckError::Repair(other),
                })?
        } else {
            self.payments
                .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
                .await?
                .switched()
        };
        if *active {
            // A sale may have sold it out between the read and the switch.
            if self
                .store
                .item(&item.store_id, &item.product_id)
                .await?
                .is_some_and(|now| now.available == 0)
            {
                self.payments
                    .set_link_active(link, false, Some(SOLD_OUT_MESSAGE))
                    .await?;
                return Ok(false);
            }
            self.store
                .clear_deactivated(&item.store_id, &item.product_id, std::slice::from_ref(link))
                .await?;
        } else if changed && !recorded {
            let mut links = item.deactivated_links.clone();
            links.push(link.clone());
            let record = WriteSet {
                items: vec![record_links_off(&item, links)],
                ..WriteSet::default()
            };
            // A concurrent change wins; the next run checks again.
            match self.store.commit(&record).await {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }
}

impl<Store: ReconcilerStore, Publisher: StockPublisher, Stripe: ReconcilerStripe, Time: Clock>
    Services<Store, Publisher, Stripe, Time>
{
    /// Sets the Stripe-side limit of each of the item's guarded links that is on and has none,
    /// or one above what its stock allows (holds, another channel's sales or a count down moved
    /// the stock without the link's count; docs/link-guard.md), from the item read again now.
    /// It never raises a limit: Stripe's count can run ahead of the stock by orders still on
    /// their way, so a raise here could let Stripe sell units that are gone; a limit too low
    /// switches the link off early, and the link check above switches it on with the right one.
    /// A limit someone else set is left. A failure is parked under its own key (`guard:{link}`),
    /// never the link's switches, and the run goes on.
    async fn keep_guards(
        &self,
        checked: &CatalogItem,
        states: &[(PaymentLinkId, LinkSeen)],
        failures: &mut Failures<'_, Store>,
        report: &mut CheckReport,
    ) -> Result<(), CheckError> {
        let Some(item) = self
            .store
            .item(&checked.store_id, &checked.product_id)
            .await?
        else {
            return Ok(());
        };
        let available = item.level().available;
        for (link, seen) in states.iter().filter(|(_, s)| s.active) {
            let key = format!("guard:{link}");
            if seen.limit == LinkLimit::Theirs || failures.set_aside(&key) {
                continue;
            }
            let quantity = match guard_quantity(&self.store, &item, link).await {
                Ok(Some(q)) => q,
                Ok(None) => continue,
                Err(e) => {
                    warn!(payment_link = %link, error = %e, "the link's terms could not be read: its limit is left for the next run");
                    continue;
                }
            };
            let sessions = available / quantity;
            let needed = match seen.limit {
                // Sold out: the switch-off owns the link, not the limit.
                _ if sessions == 0 => false,
                LinkLimit::Ours(g) => {
                    wanted_limit(g.count, available, quantity).is_some_and(|w| w < g.limit)
                }
                _ => true,
            };
            if !needed {
                continue;
            }
            match self.payments.guard_link(link, sessions, false).await {
                Ok(outcome) => {
                    if let GuardOutcome::Set { limit, .. } = outcome {
                        info!(payment_link = %link, limit, "payment link limit set in step with stock");
                        report.guards_set += 1;
                    }
                    failures.succeeded(&key).await?;
                }
                Err(e) => {
                    let reason = format!("setting the link's limit: {e}");
                    report.parked.extend(
                        failures
                            .note(key, reason, e.is_retryable(), self.clock.now())
                            .await?,
                    );
                }
            }
        }
        Ok(())
    }
}

//! Counters, the parking lot, the replay cursor and the event log, in memory.

use super::*;

impl crate::ports::Counters for MemoryStore {
    async fn take(&self, w: &crate::ports::Window, n: u32, cap: u32) -> Result<bool, StoreError> {
        let mut counters = lock(&self.counters);
        let count = counters.entry((w.key.clone(), w.start.0)).or_default();
        if count.saturating_add(n) > cap {
            return Ok(false);
        }
        *count += n;
        Ok(true)
    }

    async fn count(&self, w: &crate::ports::Window) -> Result<u32, StoreError> {
        Ok(lock(&self.counters)
            .get(&(w.key.clone(), w.start.0))
            .copied()
            .unwrap_or(0))
    }

    async fn add(&self, w: &crate::ports::Window, n: u32) -> Result<(), StoreError> {
        *lock(&self.counters)
            .entry((w.key.clone(), w.start.0))
            .or_default() += n;
        Ok(())
    }

    async fn give_back(&self, w: &crate::ports::Window, n: u32) -> Result<(), StoreError> {
        // As the table's conditional update: more than there is changes nothing.
        if let Some(count) = lock(&self.counters)
            .get_mut(&(w.key.clone(), w.start.0))
            .filter(|c| **c >= n)
        {
            *count -= n;
        }
        Ok(())
    }
}

impl crate::parking::ParkingLot for MemoryStore {
    async fn parked(&self) -> Result<Vec<crate::parking::Parked>, StoreError> {
        Ok(lock(&self.parking).values().cloned().collect())
    }

    async fn save_parked(&self, record: &crate::parking::Parked) -> Result<(), StoreError> {
        lock(&self.parking).insert(record.id.clone(), record.clone());
        Ok(())
    }

    async fn remove_parked(&self, id: &str) -> Result<(), StoreError> {
        lock(&self.parking).remove(id);
        Ok(())
    }
}

impl crate::ports::CursorStore for MemoryStore {
    async fn cursor(&self) -> Result<Option<crate::ports::Cursor>, StoreError> {
        crate::ports::CursorStore::cursor(&self.cursor).await
    }

    async fn advance_cursor(
        &self,
        previous: Option<&crate::ports::Cursor>,
        next: &crate::ports::Cursor,
    ) -> Result<(), StoreError> {
        crate::ports::CursorStore::advance_cursor(&self.cursor, previous, next).await
    }
}

impl crate::ports::EventLog for MemoryPayments {
    async fn events_between(
        &self,
        types: &[&str],
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::ports::LoggedEvent>, PaymentsError> {
        crate::ports::EventLog::events_between(&self.event_log, types, from, to).await
    }
}

//! Sessions in a map in memory: for tests and for processes that do not
//! need sessions to survive a restart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Precondition, SessionBackend, SessionId, SessionInfo, SessionRecord};
use crate::error::Error;

/// A [`SessionBackend`] that keeps records in memory, lost when dropped.
#[derive(Default)]
pub struct MemoryBackend {
    sessions: Mutex<HashMap<SessionId, SessionRecord>>,
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, SessionRecord>> {
        // Every update is a single insert or remove: a panic elsewhere
        // cannot leave the map half-written.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionBackend for MemoryBackend {
    fn load(&self, id: &SessionId) -> Result<Option<SessionRecord>, Error> {
        Ok(self.lock().get(id).cloned())
    }

    fn save(&self, record: &SessionRecord, precondition: Precondition) -> Result<bool, Error> {
        let mut map = self.lock();
        let holds = match (precondition, map.get(record.id())) {
            (Precondition::Absent, None) => true,
            (Precondition::Version(v), Some(current)) => current.version == v,
            _ => false,
        };
        if holds {
            map.insert(record.id().clone(), record.clone());
        }
        Ok(holds)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        Ok(self.lock().remove(id).is_some())
    }

    fn delete_at_version(&self, id: &SessionId, version: u64) -> Result<bool, Error> {
        let mut all = self.lock();
        if all.get(id).is_some_and(|r| r.version == version) {
            all.remove(id);
            return Ok(true);
        }
        Ok(false)
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let mut out: Vec<SessionInfo> = self.lock().values().map(|r| r.info.clone()).collect();
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }
}

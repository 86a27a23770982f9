//! Sessions in a map in memory: for tests and for processes that do not
//! need sessions to survive a restart.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::{Precondition, SessionBackend, SessionId, SessionInfo, StoredSession};
use crate::error::Error;

/// A [`SessionBackend`] that keeps records in memory, lost when dropped.
#[derive(Default)]
pub struct MemoryBackend {
    sessions: Mutex<HashMap<SessionId, StoredSession>>,
}

impl MemoryBackend {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, StoredSession>> {
        // Every update is a single insert or remove: a panic elsewhere
        // cannot leave the map half-written.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionBackend for MemoryBackend {
    fn load(&self, id: &SessionId) -> Result<Option<StoredSession>, Error> {
        Ok(self.lock().get(id).cloned())
    }

    fn save(&self, session: &StoredSession, precondition: Precondition) -> Result<bool, Error> {
        let mut map = self.lock();
        let holds = match (precondition, map.get(&session.meta.id)) {
            (Precondition::Absent, None) => true,
            (Precondition::Version(v), Some(current)) => current.meta.version == v,
            _ => false,
        };
        if holds {
            map.insert(session.meta.id.clone(), session.clone());
        }
        Ok(holds)
    }

    fn delete(&self, id: &SessionId) -> Result<bool, Error> {
        Ok(self.lock().remove(id).is_some())
    }

    fn list(&self) -> Result<Vec<SessionInfo>, Error> {
        let mut out: Vec<SessionInfo> = self.lock().values().map(StoredSession::info).collect();
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }
}

//! Rotating our own identity on a live session (a renewed certificate,
//! maybe a new key): installed at our next commit's UpdatePath leaf.

use std::sync::Arc;

use super::{Active, Engine};
use crate::credentials::Identity;
use crate::error::Error;

impl Engine {
    /// Uses `identity` for our leaf from the next commit on (a renewed
    /// certificate, maybe a new key): the commit's UpdatePath carries it and
    /// it signs once that commit is merged. Must be for the session's
    /// ciphersuite. To resume the session later, the configuration must
    /// hold the new identity too.
    pub fn rotate_identity(&mut self, identity: Arc<Identity>) -> Result<(), Error> {
        let a = self
            .active_mut()
            .ok_or(Error::ApiMisuse("no session to rotate the identity of"))?;
        if identity.suite() != a.meta.suite {
            return Err(Error::ApiMisuse(
                "the new identity is for another ciphersuite than the session",
            ));
        }
        a.rotate_to = Some(identity);
        Ok(())
    }
}

impl Active {
    /// After merging our own commit: if it installed the rotated identity's
    /// key in our leaf, that identity signs from now on.
    pub(super) fn sync_identity(&mut self) {
        let own_key = self
            .group
            .own_leaf_node()
            .map(|l| l.signature_key().as_slice());
        if let Some(next) = self.rotate_to.take() {
            if own_key == Some(next.public_key()) {
                self.identity = next;
            } else {
                self.rotate_to = Some(next);
            }
        }
    }
}

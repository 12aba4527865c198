//! The restorer thread ([`state_changelog::Restorer`]), started when the
//! first partition needs it.

use rdkafka::config::ClientConfig;
use state_changelog::{ChangelogError, RecoveryConfig, Restorer};

use crate::error::{ManagerError, Result};

/// See the [module docs](self).
pub(super) struct LazyRestorer {
    client: ClientConfig,
    group_id: String,
    config: RecoveryConfig,
    running: Option<Restorer>,
}

impl LazyRestorer {
    /// A restorer of group `group_id`'s changelogs, reading with `client`'s
    /// settings, once started.
    pub(super) fn new(client: ClientConfig, group_id: String, config: RecoveryConfig) -> Self {
        LazyRestorer {
            client,
            group_id,
            config,
            running: None,
        }
    }

    /// The restorer, started now if it is not running.
    pub(super) fn get(&mut self) -> Result<&Restorer> {
        if self.running.is_none() {
            self.running = Some(Restorer::start(&self.client, &self.group_id, self.config.clone())?);
        }
        self.running
            .as_ref()
            .ok_or(ManagerError::Changelog(ChangelogError::Stopped))
    }

    /// Stops the restorer thread (joining it), if it runs.
    pub(super) fn stop(&mut self) {
        self.running = None;
    }

    /// The restorer, if it was started.
    pub(super) fn running(&self) -> Option<&Restorer> {
        self.running.as_ref()
    }
}

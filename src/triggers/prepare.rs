//! What `CacheLayerBuilder::build` does about triggers: installs them if asked, otherwise
//! checks they exist, then tells the journal which tables they log.

use std::collections::HashSet;

use sea_orm::DatabaseConnection;

use super::Triggers;
use crate::coherence::Journal;
use crate::error::{Error, Result};

/// For each captured entity (its triggers, and whether the layer stops logging its keys):
/// installs its triggers (`install`), or, with coherence on (`journal`), checks that they
/// exist; then has `journal` skip the keys the triggers log.
///
/// # Errors
/// [`Error::Db`] from the database; [`Error::TriggersMissing`] for triggers neither installed
/// nor asked for.
pub(crate) async fn prepare(
    db: &DatabaseConnection,
    journal: Option<&Journal>,
    install: bool,
    captured: Vec<(Triggers, bool)>,
) -> Result<()> {
    let mut skipped = HashSet::new();
    for (triggers, trigger_logged) in captured {
        if install {
            triggers.install(db).await?;
        } else if journal.is_some() && !triggers.installed(db).await? {
            return Err(Error::TriggersMissing {
                entity: triggers.table().to_owned(),
            });
        }
        if trigger_logged {
            skipped.insert(triggers.table().to_owned());
        }
    }
    if let Some(journal) = journal {
        journal.set_captured(skipped);
    }
    Ok(())
}

//! [`Capture`]: who writes an entity's changes into the invalidation log (DESIGN G11).

/// Who adds an entity's changes to the invalidation log that other instances tail.
///
/// With [`Capture::Triggers`], database triggers on the entity's table log every INSERT,
/// UPDATE and DELETE, whoever makes it (psql, another service, a migration), and the layer
/// stops adding a second row for the keys its own writes change. The triggers must exist:
/// install them with [`CacheLayerBuilder::install_triggers`](crate::CacheLayerBuilder::install_triggers)
/// or from a migration ([`triggers::for_entity`](crate::triggers::for_entity)); with coherence
/// on, `build` refuses a captured entity whose triggers are missing
/// ([`Error::TriggersMissing`](crate::Error::TriggersMissing)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Capture {
    /// The layer logs the writes made through it; writes that bypass it are caught only by
    /// TTL (and measured by the staleness sampler).
    #[default]
    Layer,
    /// Database triggers log every write to the table, the layer's included.
    Triggers,
}

impl Capture {
    /// In the order of `parse::CAPTURES`.
    pub(crate) const ALL: [Capture; 2] = [Capture::Layer, Capture::Triggers];

    /// The name used in configuration (`"layer"`, `"triggers"`).
    pub fn name(self) -> &'static str {
        match self {
            Capture::Layer => "layer",
            Capture::Triggers => "triggers",
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.
mod tests {
    use super::Capture;
    use crate::CacheConfig;

    #[test]
    fn a_config_file_and_the_builder_set_it() {
        let config: CacheConfig = serde_json::from_str(r#"{ "capture": "triggers" }"#).unwrap();
        assert_eq!(config.capture, Capture::Triggers);
        assert_eq!(CacheConfig::default().capture, Capture::Layer);
        let err = serde_json::from_str::<CacheConfig>(r#"{ "capture": "trigger" }"#).unwrap_err();
        assert!(err.to_string().contains("did you mean `triggers`"), "{err}");
        for capture in Capture::ALL {
            let text = format!(r#"{{ "capture": "{}" }}"#, capture.name());
            assert_eq!(
                serde_json::from_str::<CacheConfig>(&text).unwrap().capture,
                capture
            );
        }
    }
}

//! Bounded `app` label values. Every app would be one more series per labelled metric (and a
//! histogram is 15 of them), so a hostile or merely large tenant base could grow a gateway's
//! `/metrics` without bound: the first `limit` apps seen by this process keep their own value,
//! every later one is counted under `app="other"`. Which apps got a slot depends on the order
//! this process met them; a slot is kept until the process restarts.

use std::collections::HashSet;
use std::sync::Mutex;

/// The label value of apps past the limit.
pub const OTHER: &str = "other";

/// Apps this process gave a label value of their own.
pub struct AppLabels {
    limit: Mutex<usize>,
    labelled: Mutex<HashSet<String>>,
}

/// Default number of apps with their own label value (`metrics_app_labels`).
pub const DEFAULT_LIMIT: usize = 100;

impl Default for AppLabels {
    fn default() -> Self {
        AppLabels {
            limit: Mutex::new(DEFAULT_LIMIT),
            labelled: Mutex::default(),
        }
    }
}

impl AppLabels {
    /// At most `limit` apps get a value of their own from now on; apps already given one keep
    /// it.
    pub fn set_limit(&self, limit: usize) {
        *self.limit.lock().expect("app labels poisoned") = limit;
    }

    /// The label value for `app`: itself while slots are free (or it already has one), else
    /// [`OTHER`]. Called when a handle is resolved (a channel's first local subscriber, an app
    /// loaded), never per message.
    pub fn label(&self, app: &str) -> String {
        let limit = *self.limit.lock().expect("app labels poisoned");
        let mut labelled = self.labelled.lock().expect("app labels poisoned");
        if labelled.contains(app) {
            return app.to_owned();
        }
        // An app named "other" must not pass for the overflow.
        if labelled.len() < limit && app != OTHER {
            labelled.insert(app.to_owned());
            return app.to_owned();
        }
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_past_the_limit_share_other() {
        let labels = AppLabels::default();
        labels.set_limit(2);
        assert_eq!(labels.label("a"), "a");
        assert_eq!(labels.label("b"), "b");
        assert_eq!(labels.label("c"), OTHER);
        // A labelled app keeps its value.
        assert_eq!(labels.label("a"), "a");
        labels.set_limit(0);
        assert_eq!(labels.label("b"), "b");
        assert_eq!(labels.label("d"), OTHER);
    }

    #[test]
    fn an_app_named_other_takes_no_slot() {
        let labels = AppLabels::default();
        labels.set_limit(1);
        assert_eq!(labels.label(OTHER), OTHER);
        assert_eq!(labels.label("a"), "a");
    }
}

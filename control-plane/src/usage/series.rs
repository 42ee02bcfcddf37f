//! A range of an app's usage, as `GET /v1/admin/apps/{app}/usage` and the dashboard answer it:
//! every bucket of the range, those with nothing recorded as zeros, in order.

use super::Usage;
use crate::store::usage::{UsagePoint, HOUR, MINUTE};
use crate::store::StoreError;
use serde::{Deserialize, Serialize};
use waas_protocol::AppId;

/// A day bucket's length, s (UTC days, made of hour buckets).
const DAY: i64 = 86_400;

/// The query string: `from` and `to` in seconds since the Unix epoch, `step` one of `minute`,
/// `hour`, `day`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Start of the range, s since the Unix epoch (rounded down to the step). Default: `to`
    /// less 60 steps (minute), 48 (hour) or 30 (day).
    pub from: Option<i64>,
    /// End of the range, s since the Unix epoch, exclusive (rounded up to the step). Default:
    /// now.
    pub to: Option<i64>,
    /// `minute`, `hour` (default) or `day`.
    pub step: Option<String>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UsageSeries {
    pub app: String,
    /// `minute`, `hour` or `day`.
    pub step: String,
    /// The range the points cover, `[from, to)`, s since the Unix epoch.
    pub from: i64,
    pub to: i64,
    /// True when the range asked for held more than `usage_max_points` points: `from` was moved
    /// up to keep the most recent ones.
    pub capped: bool,
    /// Connections open now, cluster-wide.
    pub connections_now: i64,
    /// One per step from `from`, zeros where nothing happened.
    pub points: Vec<UsagePoint>,
}

/// Why a range was refused, or could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{0}")]
    BadRange(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn step_secs(step: &str) -> Option<i64> {
    match step {
        "minute" => Some(MINUTE),
        "hour" => Some(HOUR),
        "day" => Some(DAY),
        _ => None,
    }
}

/// The range a query asks for, checked, aligned and capped: `(step, from, to, capped)`.
pub fn range(
    q: &UsageQuery,
    now: i64,
    max_points: usize,
) -> Result<(&str, i64, i64, bool), SeriesError> {
    let name = q.step.as_deref().unwrap_or("hour");
    let step = step_secs(name).ok_or_else(|| {
        SeriesError::BadRange(format!(
            "\"step\" must be minute, hour or day, not {name:?}"
        ))
    })?;
    let to = q.to.unwrap_or(now);
    let default_points = match step {
        MINUTE => 60,
        HOUR => 48,
        _ => 30,
    };
    let from = q
        .from
        .unwrap_or_else(|| to.saturating_sub(default_points * step));
    if from < 0 || to < 0 {
        return Err(SeriesError::BadRange(
            "\"from\" and \"to\" are seconds since the Unix epoch, not negative".into(),
        ));
    }
    if from >= to {
        return Err(SeriesError::BadRange(format!(
            "\"from\" ({from}) must be before \"to\" ({to})"
        )));
    }
    let from = from - from.rem_euclid(step);
    let to = to.saturating_add((step - to.rem_euclid(step)) % step);
    let max = (max_points.max(1) as i64).saturating_mul(step);
    let capped = to - from > max;
    let from = if capped { to - max } else { from };
    Ok((name, from, to, capped))
}

impl Usage {
    /// `app`'s usage over the range `q` asks for.
    pub async fn series(&self, app: &AppId, q: &UsageQuery) -> Result<UsageSeries, SeriesError> {
        let (name, from, to, capped) = range(q, super::now(), self.config.max_points)?;
        let step = step_secs(name).expect("checked by range");
        let stored = if step == DAY {
            self.store.usage(app, HOUR, from, to).await?
        } else {
            self.store.usage(app, step, from, to).await?
        };
        let points = dense(&stored, step, from, to);
        Ok(UsageSeries {
            app: app.to_string(),
            step: name.to_owned(),
            from,
            to,
            capped,
            connections_now: self.connections_now(app).await?,
            points,
        })
    }
}

/// Every bucket of `step` in `[from, to)` (both multiples of `step`), adding up the stored
/// buckets (of `step`, or hours for days) that start in it; `connections` is their greatest.
pub fn dense(stored: &[UsagePoint], step: i64, from: i64, to: i64) -> Vec<UsagePoint> {
    let n = ((to - from) / step).max(0) as usize;
    let mut points: Vec<UsagePoint> = (0..n)
        .map(|i| UsagePoint {
            start: from + i as i64 * step,
            ..UsagePoint::default()
        })
        .collect();
    for s in stored {
        let i = (s.start - from).div_euclid(step);
        let Some(p) = usize::try_from(i).ok().and_then(|i| points.get_mut(i)) else {
            continue;
        };
        p.connections = p.connections.max(s.connections);
        p.published += s.published;
        p.delivered += s.delivered;
        p.webhooks += s.webhooks;
        p.webhook_errors += s.webhook_errors;
        p.requests += s.requests;
        p.request_errors += s.request_errors;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(from: Option<i64>, to: Option<i64>, step: Option<&str>) -> UsageQuery {
        UsageQuery {
            from,
            to,
            step: step.map(str::to_owned),
        }
    }

    #[test]
    fn ranges_are_checked_aligned_and_capped() {
        let now = 1_000_000;
        assert_eq!(
            range(&q(Some(61), Some(179), Some("minute")), now, 100).unwrap(),
            ("minute", 60, 180, false)
        );
        // Defaults: the last 48 hours to now.
        let defaults = q(None, None, None);
        let (step, from, to, capped) = range(&defaults, now, 100).unwrap();
        assert_eq!((step, to - from, capped), ("hour", 49 * 3600, false));
        // Unbounded: cut to the most recent points.
        assert_eq!(
            range(&q(Some(0), Some(6000), Some("minute")), now, 10).unwrap(),
            ("minute", 5400, 6000, true)
        );
        for bad in [
            q(Some(10), Some(10), None),
            q(Some(20), Some(10), None),
            q(Some(-5), Some(10), None),
            q(None, None, Some("week")),
        ] {
            assert!(matches!(
                range(&bad, now, 100),
                Err(SeriesError::BadRange(_))
            ));
        }
    }

    #[test]
    fn dense_fills_gaps_and_adds_hours_into_days() {
        let hour = |start, published, connections| UsagePoint {
            start,
            published,
            connections,
            ..UsagePoint::default()
        };
        let stored = [hour(3600, 2, 5), hour(7200, 3, 4), hour(DAY + 3600, 1, 1)];
        let days = dense(&stored, DAY, 0, 3 * DAY);
        assert_eq!(days.len(), 3);
        assert_eq!((days[0].published, days[0].connections), (5, 5));
        assert_eq!((days[1].start, days[1].published), (DAY, 1));
        assert_eq!(days[2].published, 0);
    }
}

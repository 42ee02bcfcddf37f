//! Replaying a recording: its events published again, in recorded order, into their own channels
//! or one target channel, at the recorded pace (scaled by `speed`) or all at once (`speed` 0).
//! Each replayed `message` carries `"replayed": true` and its original `ts`; it gets a new offset
//! in the channel it lands in. A replay can be paused, resumed and stopped; its state lives in
//! this control-plane's memory only (a restart ends running replays).

use super::{now_ms, RecordingError, Recordings};
use crate::store::recordings::RecordedEvent;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use waas_core::history::Head;
use waas_protocol::{AppId, ChannelName, ErrorCode};

/// Events read from the store at a time.
const PAGE: usize = 1000;
/// Fastest pace a replay accepts, as a multiple of the recorded one.
pub const MAX_SPEED: f64 = 1000.0;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartReplay {
    /// Publish every event into this channel instead of its own.
    #[serde(default)]
    pub channel: Option<String>,
    /// 1 = recorded pace (default), 10 = ten times faster, 0 = all at once.
    #[serde(default)]
    pub speed: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    Running,
    Paused,
    /// Stopped before the end.
    Stopped,
    Finished,
    /// Publishing failed (the message bus was unavailable); `error` says why.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayInfo {
    pub id: String,
    #[schema(value_type = String)]
    pub app_id: AppId,
    pub recording_id: String,
    pub channel: Option<String>,
    pub speed: f64,
    pub state: ReplayState,
    /// Events published so far.
    pub published: i64,
    /// Events in the recording when the replay started.
    pub total: i64,
    pub started_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

struct Replay {
    info: Mutex<ReplayInfo>,
    control: watch::Sender<ReplayState>,
}

/// The replays of this control-plane, by id.
#[derive(Default)]
pub struct Replays(Mutex<HashMap<String, Arc<Replay>>>);

impl Replays {
    fn get(&self, app: &AppId, id: &str) -> Result<Arc<Replay>, RecordingError> {
        self.0
            .lock()
            .expect("replays poisoned")
            .get(id)
            .filter(|r| r.info.lock().expect("replay poisoned").app_id == *app)
            .cloned()
            .ok_or_else(|| {
                RecordingError::new(ErrorCode::NotFound, format!("replay {id} not found"))
            })
    }

    /// Stops the replays of a recording being deleted.
    pub(crate) fn stop_all_of(&self, recording_id: &str) {
        for r in self.0.lock().expect("replays poisoned").values() {
            if r.info.lock().expect("replay poisoned").recording_id == recording_id {
                r.control.send_replace(ReplayState::Stopped);
            }
        }
    }
}

fn snapshot(replay: &Replay) -> ReplayInfo {
    replay.info.lock().expect("replay poisoned").clone()
}

impl Recordings {
    pub async fn start_replay(
        self: &Arc<Self>,
        app: &AppId,
        recording_id: &str,
        req: StartReplay,
    ) -> Result<ReplayInfo, RecordingError> {
        let recording = self.store.get_recording(app, recording_id).await?;
        let speed = req.speed.unwrap_or(1.0);
        if !(0.0..=MAX_SPEED).contains(&speed) || speed.is_nan() {
            return Err(RecordingError::bad_request(format!(
                "\"speed\" must be 0 (all at once) to {MAX_SPEED}"
            )));
        }
        let target = req
            .channel
            .as_deref()
            .map(|c| {
                ChannelName::parse(c).map_err(|e| {
                    RecordingError::new(
                        ErrorCode::InvalidChannel,
                        format!("invalid channel {c:?}: {e}"),
                    )
                })
            })
            .transpose()?;
        let gateway_app = self.app(app).await?;
        let info = ReplayInfo {
            id: format!("rpl_{:016x}", rand::random::<u64>()),
            app_id: app.clone(),
            recording_id: recording.id.clone(),
            channel: req.channel,
            speed,
            state: ReplayState::Running,
            published: 0,
            total: recording.event_count,
            started_at: now_ms(),
            error: None,
        };
        let (control, watch) = watch::channel(ReplayState::Running);
        let replay = Arc::new(Replay {
            info: Mutex::new(info.clone()),
            control,
        });
        self.replays
            .0
            .lock()
            .expect("replays poisoned")
            .insert(info.id.clone(), Arc::clone(&replay));
        crate::metrics::CP_METRICS.replays.inc();
        tokio::spawn(run(
            Arc::clone(self),
            replay,
            watch,
            gateway_app,
            target,
            speed,
        ));
        Ok(info)
    }

    pub fn replay(&self, app: &AppId, id: &str) -> Result<ReplayInfo, RecordingError> {
        let replay = self.replays.get(app, id)?;
        Ok(snapshot(&replay))
    }

    /// Pauses, resumes or stops a replay; a replay that ended stays as it ended.
    pub fn control_replay(
        &self,
        app: &AppId,
        id: &str,
        to: ReplayState,
    ) -> Result<ReplayInfo, RecordingError> {
        let replay = self.replays.get(app, id)?;
        {
            let mut info = replay.info.lock().expect("replay poisoned");
            if matches!(info.state, ReplayState::Running | ReplayState::Paused) {
                info.state = to;
                replay.control.send_replace(to);
            }
        }
        Ok(snapshot(&replay))
    }
}

/// Waits until `at`, honouring pause and stop. Returns how long it was paused, or `None` when
/// the replay was stopped.
async fn wait(at: Option<Instant>, control: &mut watch::Receiver<ReplayState>) -> Option<Duration> {
    let mut paused = Duration::ZERO;
    loop {
        let state = *control.borrow_and_update();
        match state {
            ReplayState::Running => {}
            ReplayState::Paused => {
                let since = Instant::now();
                if control.changed().await.is_err() {
                    return None;
                }
                paused += since.elapsed();
                continue;
            }
            _ => return None,
        }
        let Some(at) = at.map(|at| at + paused) else {
            return Some(paused);
        };
        tokio::select! {
            _ = tokio::time::sleep_until(at) => return Some(paused),
            changed = control.changed() => if changed.is_err() { return None },
        }
    }
}

#[derive(Deserialize)]
struct Parts<'a> {
    channel: String,
    event: String,
    #[serde(borrow)]
    data: &'a RawValue,
    ts: u64,
}

async fn run(
    recordings: Arc<Recordings>,
    replay: Arc<Replay>,
    mut control: watch::Receiver<ReplayState>,
    app: waas_core::app::App,
    target: Option<ChannelName>,
    speed: f64,
) {
    let (recording_id, mut after) = {
        let info = replay.info.lock().expect("replay poisoned");
        (info.recording_id.clone(), 0i64)
    };
    let mut start: Option<(Instant, i64)> = None;
    let end = loop {
        let page: Vec<RecordedEvent> = match recordings
            .store
            .list_events(&recording_id, after, PAGE)
            .await
        {
            Ok(page) => page,
            Err(e) => break (ReplayState::Failed, Some(e.to_string())),
        };
        if page.is_empty() {
            break (ReplayState::Finished, None);
        }
        let mut stopped = false;
        let mut failure = None;
        for event in &page {
            after = event.position;
            let at = if speed > 0.0 {
                let (t0, ts0) = *start.get_or_insert((Instant::now(), event.ts));
                let delay = (event.ts - ts0).max(0) as f64 / speed;
                Some(t0 + Duration::from_secs_f64(delay / 1000.0))
            } else {
                None
            };
            match wait(at, &mut control).await {
                Some(paused) => {
                    if let Some((t0, _)) = &mut start {
                        *t0 += paused;
                    }
                }
                None => {
                    stopped = true;
                    break;
                }
            }
            let Ok(parts) = serde_json::from_str::<Parts>(&event.frame) else {
                tracing::warn!(
                    recording_id,
                    position = event.position,
                    "unreadable recorded frame; skipped"
                );
                continue;
            };
            let channel = match &target {
                Some(c) => c.clone(),
                None => match ChannelName::parse(&parts.channel) {
                    Ok(c) => c,
                    Err(_) => continue,
                },
            };
            let head = Head::new(channel.as_str(), &parts.event, parts.data, parts.ts, true);
            if let Err(e) = recordings
                .publisher
                .publish_head(&app, &channel, &head)
                .await
            {
                failure = Some(e.to_string());
                break;
            }
            replay.info.lock().expect("replay poisoned").published += 1;
        }
        if stopped {
            break (ReplayState::Stopped, None);
        }
        if let Some(e) = failure {
            break (ReplayState::Failed, Some(e));
        }
    };
    let mut info = replay.info.lock().expect("replay poisoned");
    info.state = end.0;
    info.error = end.1;
}

//! A connection's publishes: checked, handed to storage in arrival order, and acknowledged in
//! that order once stored, while the connection goes on reading ([`super::pipeline`]).

use super::pipeline::Done;
use super::Conn;
use std::sync::Arc;
use waas_core::publisher::check_event;
use waas_protocol::{ChannelName, ErrorCode};

impl Conn {
    /// Checks a publish and hands it to storage; it is acknowledged once stored
    /// ([`Conn::published`]), while the connection goes on reading. Refusals are answered after
    /// the publishes in flight, so replies keep the order of the requests.
    pub(super) async fn publish(
        &mut self,
        id: u64,
        name: &str,
        event: &str,
        data: &serde_json::value::RawValue,
    ) {
        let channel = match self.may_publish(name, event) {
            Ok(channel) => channel,
            Err((code, message)) => {
                self.settle().await;
                return self.error(Some(id), code, message);
            }
        };
        let Some(app) = self.app.clone() else { return };
        let gw = Arc::clone(&self.gw);
        let started = {
            let start = gw.publisher.start(&app, &channel, event, data);
            tokio::pin!(start);
            // While storage is busy (at most 5,000 publishes of a gateway await acknowledgement
            // at once; an answer frees room), the ones already sent are acknowledged meanwhile.
            loop {
                tokio::select! {
                    biased;
                    started = &mut start => break started,
                    done = self.pipeline.next(), if !self.pipeline.is_empty() => self.published(done),
                }
            }
        };
        let stored = match started {
            Ok(stored) => stored,
            Err(e) => {
                let result = Err(e);
                self.pipeline
                    .push(Box::pin(std::future::ready(Done { id, result })));
                return;
            }
        };
        let report = app.config.webhooks.wants(&channel, true).then(|| {
            let identity = self.identity.as_ref().expect("publish after connect");
            let publisher = waas_core::webhooks::report::Publisher {
                user_id: identity.sub.clone(),
                connection_id: gw.connections.connection_id(app.id(), self.out().id),
            };
            (channel, event.to_owned(), data.to_owned(), publisher)
        });
        self.pipeline.push(Box::pin(async move {
            let result = stored.await;
            if let (Ok(offset), Some((channel, event, data, publisher))) = (&result, report) {
                gw.reporter
                    .published(&app, &channel, &event, &data, *offset, Some(publisher));
            }
            Done { id, result }
        }));
    }

    /// The channel a publish goes to, or why it is refused.
    fn may_publish(&mut self, name: &str, event: &str) -> Result<ChannelName, (ErrorCode, String)> {
        let channel = ChannelName::parse(name).map_err(|e| {
            (
                ErrorCode::InvalidChannel,
                format!("invalid channel {name:?}: {e}"),
            )
        })?;
        check_event(event).map_err(|m| (ErrorCode::BadRequest, m))?;
        let identity = self.identity.as_ref().expect("publish after connect");
        if !identity.may_publish(&channel) {
            return Err((
                ErrorCode::Forbidden,
                format!("the token does not allow publishing to {channel}"),
            ));
        }
        if !self.bucket.try_take() {
            return Err((
                ErrorCode::RateLimited,
                "publish rate exceeded; the message was not published".into(),
            ));
        }
        Ok(channel)
    }

    /// Answers a publish storage answered.
    pub(super) fn published(&self, done: Done) {
        match done.result {
            Ok(offset) => self.ack(done.id, Some(offset)),
            Err(e) => self.error(Some(done.id), ErrorCode::Unavailable, e.to_string()),
        }
    }

    /// Waits until every publish in flight is answered.
    pub(super) async fn settle(&mut self) {
        while !self.pipeline.is_empty() {
            let done = self.pipeline.next().await;
            self.published(done);
        }
    }
}

//! What a [`Session`] does with a server frame: messages go to their channel, answers to the
//! request waiting for them, presence changes become notices.

use super::channels::Stamp;
use super::{Notice, Pending, Session};
use crate::error::{Error, Result};
use waas_protocol::frame::ServerFrame;

impl Session {
    pub(crate) fn on_frame(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message {
                channel,
                event,
                data,
                offset,
                ts,
                replayed,
            } => self.deliver(
                channel,
                event,
                data,
                Stamp {
                    offset,
                    ts,
                    replayed,
                },
            ),
            ServerFrame::Ack {
                id,
                offset,
                epoch,
                recovered,
            } => {
                if let (Some(Pending::Subscribe { channel, .. }), Some(epoch)) =
                    (self.pending.get(&id), epoch)
                {
                    if let Some(state) = self.channels.get_mut(channel) {
                        state.ack = Some((epoch, offset.unwrap_or(0), recovered));
                    }
                }
                self.on_answer(id, Ok(offset))
            }
            ServerFrame::Pong { id: Some(id) } => self.on_answer(id, Ok(None)),
            ServerFrame::Pong { id: None } => {}
            ServerFrame::Error {
                id: Some(id),
                code,
                message,
            } if self.pending.contains_key(&id) => {
                self.on_answer(id, Err(Error::Rejected { code, message }))
            }
            ServerFrame::Error { code, message, .. } => {
                tracing::warn!(%code, %message, "server reported an error not tied to a request");
            }
            ServerFrame::Ready { .. } => {
                tracing::debug!("ignoring a second ready");
            }
            frame @ (ServerFrame::Response { .. } | ServerFrame::Request { .. }) => {
                self.on_rpc_frame(frame)
            }
            ServerFrame::Members {
                id,
                channel,
                members,
            } => {
                if let Some(Pending::Members { .. }) = id.and_then(|id| self.pending.get(&id)) {
                    if let Some(Pending::Members { reply }) =
                        id.and_then(|id| self.pending.remove(&id))
                    {
                        let _ = reply.send(Ok(members.clone()));
                    }
                }
                self.notices
                    .push(Notice::Presence(crate::presence::PresenceEvent::Members {
                        channel,
                        members,
                    }));
            }
            ServerFrame::MemberAdded { channel, member } => self.notices.push(Notice::Presence(
                crate::presence::PresenceEvent::MemberAdded { channel, member },
            )),
            ServerFrame::MemberRemoved { channel, member } => self.notices.push(Notice::Presence(
                crate::presence::PresenceEvent::MemberRemoved { channel, member },
            )),
            frame @ (ServerFrame::Keys { .. } | ServerFrame::RoomKeys { .. }) => {
                self.on_key_frame(frame)
            }
            ServerFrame::Gap {
                channel,
                offset,
                epoch,
            } => self.on_gap(channel, offset, epoch),
            ServerFrame::History { id, page } => match self.pending.remove(&id) {
                Some(Pending::History { reply }) => {
                    let _ = reply.send(Ok(page));
                }
                Some(other) => {
                    // Not ours to answer with a page: put it back for its own answer.
                    self.pending.insert(id, other);
                    tracing::debug!(id, "history page answering another request");
                }
                None => tracing::debug!(id, "history page for a request this client did not make"),
            },
        }
    }

    fn on_answer(&mut self, id: u64, answer: Result<Option<u64>>) {
        let Some(pending) = self.pending.remove(&id) else {
            tracing::debug!(id, "answer to an unknown request");
            return;
        };
        match pending {
            Pending::Subscribe {
                channel,
                at_connect,
            } => self.on_subscribe_answer(channel, at_connect, answer.map(|_| ())),
            Pending::Unsubscribe { reply } => {
                if let Some(reply) = reply {
                    let _ = reply.send(answer.map(|_| ()));
                }
            }
            Pending::Publish { reply } => {
                let result = answer.and_then(|offset| {
                    offset.ok_or_else(|| Error::Protocol("publish ack without an offset".into()))
                });
                let _ = reply.send(result);
            }
            Pending::Ping { reply, sent } => {
                let _ = reply.send(answer.map(|_| sent.elapsed()));
            }
            Pending::Heartbeat => {
                // Any answer, even an error, shows the connection is alive.
                self.heartbeat = None;
            }
            Pending::Rpc(waiting) => self.on_rpc_answer(waiting, answer),
            Pending::Members { reply } => {
                let _ = reply.send(answer.and_then(|_| {
                    Err(Error::Protocol(
                        "presence answered by ack, not members".into(),
                    ))
                }));
            }
            Pending::History { reply } => {
                let _ = reply.send(answer.and_then(|_| {
                    Err(Error::Protocol(
                        "history answered by ack, not a page".into(),
                    ))
                }));
            }
            Pending::Keys { reply } => {
                let _ = reply.send(answer.map(|offset| ServerFrame::Ack {
                    id,
                    offset,
                    epoch: None,
                    recovered: None,
                }));
            }
        }
    }
}

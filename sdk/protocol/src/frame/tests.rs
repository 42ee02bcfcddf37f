use super::*;
use crate::codes::ErrorCode;
use crate::e2ee::DeviceKey;

#[test]
fn parse_distinguishes_failures() {
    let e = ClientFrame::parse("not json").unwrap_err();
    assert_eq!(e.code, ErrorCode::MalformedFrame);
    assert_eq!(e.id, None);

    let e = ClientFrame::parse(r#"{"op":"dance","id":4}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::UnknownOp, Some(4)));

    let e = ClientFrame::parse(r#"{"op":"subscribe","id":5}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(5)));

    let e = ClientFrame::parse(r#"{"op":"subscribe","channel":"a"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);

    let e = ClientFrame::parse(r#"{"op":"subscribe","id":6,"channel":7}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(6)));

    let e = ClientFrame::parse(r#"{"op":"subscribe","id":"x"}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::MalformedFrame, None));
}

#[test]
fn null_data_is_data() {
    let f = ClientFrame::parse(r#"{"op":"publish","id":1,"channel":"c","event":"e","data":null}"#);
    assert!(matches!(f, Ok(ClientFrame::Publish { .. })));
    let m = ServerFrame::parse(
        r#"{"op":"message","channel":"c","event":"e","data":null,"offset":1,"ts":2}"#,
    );
    assert!(matches!(m, Ok(ServerFrame::Message { .. })), "{m:?}");
}

#[test]
fn parse_publish_keeps_raw_data() {
    let f = ClientFrame::parse(
        r#"{"op":"publish","id":1,"channel":"c","event":"e","data":{"x": [1,2]}}"#,
    )
    .unwrap();
    match f {
        ClientFrame::Publish { data, .. } => assert_eq!(data.get(), r#"{"x": [1,2]}"#),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn message_ref_encodes_as_server_frame() {
    let data = RawValue::from_string("{\"t\":21.5}".into()).unwrap();
    let text = serde_json::to_string(&MessageRef::new("w.paris", "reading", &data, 7, 99)).unwrap();
    match ServerFrame::parse(&text).unwrap() {
        ServerFrame::Message {
            channel,
            event,
            data,
            offset,
            ts,
            replayed: false,
        } => {
            assert_eq!((channel.as_str(), event.as_str()), ("w.paris", "reading"));
            assert_eq!((data.get(), offset, ts), ("{\"t\":21.5}", 7, 99));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn since_and_history_parse() {
    let f = ClientFrame::parse(
        r#"{"op":"subscribe","id":1,"channel":"c","since":{"offset":7,"epoch":"e1"}}"#,
    )
    .unwrap();
    match f {
        ClientFrame::Subscribe { since: Some(s), .. } => {
            assert_eq!((s.offset, s.epoch.as_str()), (7, "e1"))
        }
        other => panic!("unexpected {other:?}"),
    }
    let e = ClientFrame::parse(r#"{"op":"subscribe","id":2,"channel":"c","since":7}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(2)));
    let e =
        ClientFrame::parse(r#"{"op":"subscribe","id":3,"channel":"c","since":"x"}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(3)));
    let f = ClientFrame::parse(
        r#"{"op":"history","id":4,"channel":"c","since":9,"limit":2,"reverse":true}"#,
    )
    .unwrap();
    assert!(matches!(
        f,
        ClientFrame::History {
            id: 4,
            since: Some(9),
            limit: Some(2),
            reverse: true,
            ..
        }
    ));
    let e = ClientFrame::parse(
        r#"{"op":"history","id":5,"channel":"c","since":{"offset":1,"epoch":"e"}}"#,
    )
    .unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(5)));
    let h = ServerFrame::parse(
        r#"{"op":"history","id":4,"channel":"c","epoch":"e1","offset":9,"messages":[{"op":"message","offset":8}]}"#,
    )
    .unwrap();
    match h {
        ServerFrame::History { id, page } => {
            assert_eq!((id, page.epoch.as_str(), page.offset), (4, "e1", 9));
            assert_eq!(page.messages[0].get(), r#"{"op":"message","offset":8}"#);
        }
        other => panic!("unexpected {other:?}"),
    }
    let ack =
        ServerFrame::parse(r#"{"op":"ack","id":1,"offset":9,"epoch":"e1","recovered":false}"#)
            .unwrap();
    assert!(matches!(
        ack,
        ServerFrame::Ack {
            recovered: Some(false),
            ..
        }
    ));
}

#[test]
fn key_directory_frames_parse() {
    let f = ClientFrame::parse(
        r#"{"op":"room_key_put","id":3,"channel":"c","key_id":"k","version":2,"wrapped":[{"sub":"bob","device":"d","key":"AA=="}]}"#,
    )
    .unwrap();
    match &f {
        ClientFrame::RoomKeyPut {
            version, wrapped, ..
        } => assert_eq!((*version, wrapped[0].sub.as_str()), (2, "bob")),
        other => panic!("unexpected {other:?}"),
    }
    let text = serde_json::to_string(&f).unwrap();
    assert!(matches!(
        ClientFrame::parse(&text),
        Ok(ClientFrame::RoomKeyPut { id: 3, .. })
    ));
    let e = ClientFrame::parse(
        r#"{"op":"room_key_put","id":4,"channel":"c","key_id":"k","version":-1,"wrapped":[]}"#,
    )
    .unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(4)));
    let e = ClientFrame::parse(r#"{"op":"keys_get","id":5}"#).unwrap_err();
    assert_eq!((e.code, e.id), (ErrorCode::BadRequest, Some(5)));
    let keys = ServerFrame::Keys {
        id: 1,
        sub: "bob".into(),
        keys: vec![DeviceKey {
            device: "d".into(),
            public_key: "p".into(),
            ts: 9,
        }],
    };
    let text = serde_json::to_string(&keys).unwrap();
    assert_eq!(
        text,
        r#"{"op":"keys","id":1,"sub":"bob","keys":[{"device":"d","public_key":"p","ts":9}]}"#
    );
    assert!(matches!(
        ServerFrame::parse(&text),
        Ok(ServerFrame::Keys { id: 1, .. })
    ));
    let rooms = ServerFrame::parse(
        r#"{"op":"room_keys","id":2,"channel":"c","keys":[{"kid":"k","v":1,"device":"d","key":"x"}]}"#,
    )
    .unwrap();
    match rooms {
        ServerFrame::RoomKeys { keys, .. } => assert_eq!(keys[0].v, 1),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn client_frames_roundtrip_through_parse() {
    let f = ClientFrame::Subscribe {
        id: 9,
        channel: "a.b".into(),
        since: None,
    };
    let text = serde_json::to_string(&f).unwrap();
    assert_eq!(text, r#"{"op":"subscribe","id":9,"channel":"a.b"}"#);
    assert!(matches!(
        ClientFrame::parse(&text).unwrap(),
        ClientFrame::Subscribe { id: 9, .. }
    ));
}

/// `gap` round-trips, and ends with its epoch: a frame ending in `"offset":N}` is a message to
/// the gateway's hub.
#[test]
fn gap_frames_roundtrip_and_do_not_end_with_an_offset() {
    let gap = ServerFrame::Gap {
        channel: "c".into(),
        offset: 41,
        epoch: "e1".into(),
    };
    let json = serde_json::to_string(&gap).unwrap();
    assert_eq!(
        json,
        r#"{"op":"gap","channel":"c","offset":41,"epoch":"e1"}"#
    );
    assert!(matches!(
        ServerFrame::parse(&json).unwrap(),
        ServerFrame::Gap { offset: 41, ref epoch, .. } if epoch == "e1"
    ));
    assert!(ServerFrame::parse(r#"{"op":"gap","channel":"c","offset":1}"#).is_err());
}

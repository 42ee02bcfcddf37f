"""The `pusher` PyPI library against WaaS's Pusher HTTP API (docs/pusher.md).

Run by test/python.test.mjs with WAAS_HOST, WAAS_PORT, PUSHER_APP, PUSHER_SECRET,
WEBHOOK_FILE (a JSON file: {"headers": {...}, "body": "..."} of a webhook WaaS sent),
MASTER_KEY (base64 of 32 bytes) and ENCRYPTED_CHANNEL (a private-encrypted- channel). Prints
one JSON object with what each call returned, for the Node test to check.
"""

import json
import os

import pusher

client = pusher.Pusher(
    app_id=os.environ["PUSHER_APP"],
    key=os.environ["PUSHER_APP"],
    secret=os.environ["PUSHER_SECRET"],
    host=os.environ["WAAS_HOST"],
    port=int(os.environ["WAAS_PORT"]),
    ssl=False,
)
out = {}
out["trigger"] = client.trigger(["py-1"], "py-event", {"from": "python"})
out["trigger_batch"] = client.trigger_batch(
    [
        {"channel": "py-1", "name": "py-b1", "data": "one"},
        {"channel": "py-1", "name": "py-b2", "data": {"n": 2}},
    ]
)
out["channels_info"] = client.channels_info(prefix_filter="py-", attributes=["subscription_count"])
out["channel_info"] = client.channel_info("presence.py", attributes=["user_count"])
out["users_info"] = client.users_info("presence.py")

with open(os.environ["WEBHOOK_FILE"]) as f:
    hook = json.load(f)
headers = {k.lower(): v for k, v in hook["headers"].items()}
out["validate_webhook"] = client.validate_webhook(
    key=headers["x-pusher-key"], signature=headers["x-pusher-signature"], body=hook["body"]
)
out["validate_tampered"] = client.validate_webhook(
    key=headers["x-pusher-key"], signature=headers["x-pusher-signature"], body=hook["body"] + " "
)

wrong = pusher.Pusher(
    app_id=os.environ["PUSHER_APP"],
    key=os.environ["PUSHER_APP"],
    secret="not-the-secret",
    host=os.environ["WAAS_HOST"],
    port=int(os.environ["WAAS_PORT"]),
    ssl=False,
)
try:
    wrong.trigger(["py-1"], "e", "x")
    out["wrong_secret"] = "accepted"
except Exception as e:  # the library raises PusherBadAuth on 401
    out["wrong_secret"] = type(e).__name__
out["validate_wrong_secret"] = wrong.validate_webhook(
    key=headers["x-pusher-key"], signature=headers["x-pusher-signature"], body=hook["body"]
)

# End-to-end encryption the library's way: it seals the data with the channel's shared key
# (derived from the master key, which WaaS never sees); the Node test's pusher-js client opens it.
sealing = pusher.Pusher(
    app_id=os.environ["PUSHER_APP"],
    key=os.environ["PUSHER_APP"],
    secret=os.environ["PUSHER_SECRET"],
    host=os.environ["WAAS_HOST"],
    port=int(os.environ["WAAS_PORT"]),
    ssl=False,
    encryption_master_key_base64=os.environ["MASTER_KEY"],
)
out["trigger_encrypted"] = sealing.trigger(
    os.environ["ENCRYPTED_CHANNEL"], "py-sealed", {"secret": "from python"}
)

print(json.dumps(out))

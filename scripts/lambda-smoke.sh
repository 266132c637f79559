#!/usr/bin/env bash
# Smoke test of the three Lambda functions under the real Lambda runtime, locally:
#
#   moto_server (DynamoDB + SQS)  ←  cargo lambda watch (admin, receiver, dispatcher)
#
# 1. admin:      create a GitHub source and a subscription pointing at a local sink;
# 2. receiver:   POST the signed webhook of events/receiver-webhook.json;
# 3. SQS:        read the dispatch task the receiver enqueued, as an SQS event;
# 4. dispatcher: `cargo lambda invoke dispatcher` with that event;
# 5. sink:       check it got the webhook, signed per Standard Webhooks.
#
# Tables and queues are created by the functions themselves at init
# (HOOKHUB_CREATE_RESOURCES=true), as with `hookhub dev --backend aws`.
#
# Needs cargo-lambda, moto_server and python3 (with boto3, which moto brings). Every process
# started here is stopped on exit; every wait is bounded. Prints one PASS or FAIL line last.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
startup_timeout=${SMOKE_STARTUP_TIMEOUT:-120}   # seconds for a server or a cold function start

work=$(mktemp -d "${TMPDIR:-/tmp}/hookhub-lambda-smoke.XXXXXX")
pgids=()

cleanup() {
  local status=$?
  # Each background job leads its own process group (setsid), so this reaches the functions
  # that `cargo lambda watch` started as well, and nothing else.
  for pgid in "${pgids[@]}"; do
    kill -TERM -- "-$pgid" 2>/dev/null || true
  done
  for pgid in "${pgids[@]}"; do
    for _ in $(seq 50); do
      kill -0 -- "-$pgid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  if [ "$status" -ne 0 ]; then
    for log in "$work"/*.log; do
      [ -s "$log" ] || continue
      echo "--- last lines of $(basename "$log") ---"
      tail -n 25 "$log"
    done
    echo "FAIL: lambda smoke test (logs above; work dir $work kept)"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "lambda-smoke: $*" >&2
  exit 1
}

# Starts "$@" in its own process group with output to $work/$name.log.
start() {
  local name=$1
  shift
  setsid "$@" >"$work/$name.log" 2>&1 </dev/null &
  pgids+=("$!")
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}

for tool in cargo-lambda moto_server curl; do
  command -v "$tool" >/dev/null || fail "$tool not found (see docs/local-lambda.md)"
done
"$python" -c 'import boto3' 2>/dev/null || fail "python3 cannot import boto3 (pip install 'moto[server]')"

# Built before `watch` starts, one binary at a time as `cargo run --bin NAME` builds them (same
# features), so the first invocations do not wait for a compiler.
echo "lambda-smoke: building the functions"
for function in admin receiver dispatcher; do
  cargo build --quiet --bin "$function"
done

moto_port=$(free_port)
start moto moto_server -H 127.0.0.1 -p "$moto_port"
wait_for "$startup_timeout" "moto_server" curl -sf "http://127.0.0.1:$moto_port/moto-api/"

# The subscriber: records each request (headers and base64 body) as one JSON line.
sink_port=$(free_port)
cat >"$work/sink.py" <<'PY'
import base64, json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Sink(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        record = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                  "body": base64.b64encode(body).decode()}
        with open(sys.argv[2], "a") as out:
            out.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
start sink "$python" "$work/sink.py" "$sink_port" "$work/received.jsonl"
wait_for 30 "the sink" "$python" -c "import socket; socket.create_connection(('127.0.0.1', $sink_port), 1)"

admin_key="hh_smoke_$("$python" -c 'import secrets; print(secrets.token_hex(16))')"
prefix="smoke-"
# An env file rather than --env-var: values may hold commas, which --env-var splits on.
cat >"$work/lambda.env" <<EOF
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
HOOKHUB_TABLE_PREFIX=$prefix
HOOKHUB_QUEUE_NAME=${prefix}tasks
HOOKHUB_CREATE_RESOURCES=true
HOOKHUB_ALLOW_PRIVATE_TARGETS=true
HOOKHUB_ADMIN_KEY=$admin_key
RUST_LOG=info
EOF

lambda_port=$(free_port)
start watch cargo lambda watch --ignore-changes --invoke-address 127.0.0.1 \
  --invoke-port "$lambda_port" --env-file "$work/lambda.env"
wait_for "$startup_timeout" "cargo lambda watch" "$python" -c \
  "import socket; socket.create_connection(('127.0.0.1', $lambda_port), 1)"
base="http://127.0.0.1:$lambda_port/lambda-url"

# call NAME EXPECTED_STATUS curl-args...: one HTTP request to a function, answer in $work/NAME.json.
call() {
  local name=$1 expected=$2
  shift 2
  local status
  status=$(curl -sS --max-time "$startup_timeout" -o "$work/$name.json" -w '%{http_code}' "$@") ||
    fail "$name: request failed"
  [ "$status" = "$expected" ] || fail "$name: HTTP $status, expected $expected: $(cat "$work/$name.json")"
}

echo "lambda-smoke: admin function: source and subscription"
call create-source 201 -X POST "$base/admin/v1/sources" \
  -H "authorization: Bearer $admin_key" -H 'content-type: application/json' \
  -d '{"id": "github", "verify": {"scheme": "github", "secret": "my-github-secret"}}'
call create-subscription 201 -X POST "$base/admin/v1/subscriptions" \
  -H "authorization: Bearer $admin_key" -H 'content-type: application/json' \
  -d "{\"url\": \"http://127.0.0.1:$sink_port/hook\", \"sources\": [\"github\"], \"label\": \"smoke\"}"
call wrong-key 401 "$base/admin/v1/sources" -H 'authorization: Bearer not-the-key'

echo "lambda-smoke: receiver function: the sample GitHub webhook"
# Body and signature exactly as in the sample event (signed with "my-github-secret").
"$python" - "$work" <<'PY'
import json, sys
event = json.load(open("events/receiver-webhook.json"))
open(f"{sys.argv[1]}/webhook-body", "w").write(event["body"])
headers = [f"{k}: {event['headers'][k]}" for k in
           ("content-type", "x-github-event", "x-github-delivery", "x-hub-signature-256")]
open(f"{sys.argv[1]}/webhook-headers", "w").write("\n".join(headers) + "\n")
bad = [h for h in headers if not h.startswith("x-hub-signature-256")]
bad.append("x-hub-signature-256: sha256=" + "0" * 64)
open(f"{sys.argv[1]}/bad-signature-headers", "w").write("\n".join(bad) + "\n")
PY
call webhook 200 -X POST "$base/receiver/webhooks/github" -H @"$work/webhook-headers" \
  --data-binary @"$work/webhook-body"
call bad-signature 401 -X POST "$base/receiver/webhooks/github" \
  -H @"$work/bad-signature-headers" --data-binary @"$work/webhook-body"

echo "lambda-smoke: SQS: the dispatch task, as the event source mapping delivers it"
"$python" - "$work" "http://127.0.0.1:$moto_port" "${prefix}tasks" <<'PY'
import json, sys, time
import boto3
work, endpoint, queue = sys.argv[1:4]
sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing")
url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
messages, deadline = [], time.time() + 15
while not messages and time.time() < deadline:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                   MessageSystemAttributeNames=["All"]).get("Messages", [])
if not messages:
    sys.exit("no task on the queue")
records = [{
    "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
    "attributes": m.get("Attributes", {}), "messageAttributes": {},
    "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
    "awsRegion": "us-east-1",
} for m in messages]
json.dump({"Records": records}, open(f"{work}/sqs-event.json", "w"), indent=2)
print(f"lambda-smoke: {len(records)} record(s): " + ", ".join(r["body"] for r in records))
PY

echo "lambda-smoke: dispatcher function: cargo lambda invoke"
timeout "$startup_timeout" cargo lambda invoke dispatcher --data-file "$work/sqs-event.json" \
  --invoke-address 127.0.0.1 --invoke-port "$lambda_port" --output-format json \
  >"$work/dispatcher-response.json" || fail "cargo lambda invoke dispatcher failed"
echo "lambda-smoke: dispatcher answered $(cat "$work/dispatcher-response.json")"

echo "lambda-smoke: sink: the signed delivery"
"$python" - "$work" <<'PY'
import base64, hashlib, hmac, json, os, sys, time
work = sys.argv[1]
response = json.load(open(f"{work}/dispatcher-response.json"))
if response.get("batchItemFailures"):
    sys.exit(f"the dispatcher reported failures: {response}")
event_id = json.load(open(f"{work}/webhook.json"))["id"]
secret = json.load(open(f"{work}/create-subscription.json"))["secret"]
sent = open(f"{work}/webhook-body", "rb").read()
received, deadline = [], time.time() + 15
while not received and time.time() < deadline:
    if os.path.exists(f"{work}/received.jsonl"):
        received = [json.loads(line) for line in open(f"{work}/received.jsonl")]
    time.sleep(0.2)
if len(received) != 1:
    sys.exit(f"the sink got {len(received)} requests, expected 1")
got = received[0]
h, body = got["headers"], base64.b64decode(got["body"])
key = base64.b64decode(secret.removeprefix("whsec_"))
signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + body
expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
signatures = [s.split(",", 1)[1] for s in h["webhook-signature"].split() if s.startswith("v1,")]
checks = {
    "webhook-id is the event id": h["webhook-id"] == event_id,
    "body is the webhook as sent": body == sent,
    "signature verifies": any(hmac.compare_digest(s, expected) for s in signatures),
    "timestamp is recent": abs(time.time() - int(h["webhook-timestamp"])) < 300,
}
for name, ok in checks.items():
    print(f"lambda-smoke:   {'ok ' if ok else 'BAD'} {name}")
if not all(checks.values()):
    sys.exit("the delivery is not what was sent")
PY

echo "PASS: lambda smoke test (admin → receiver → SQS → dispatcher → signed delivery)"

#!/usr/bin/env bash
# Post-deploy verification: proves the whole webhook path of a running Hookhub (a deployed stack
# or `hookhub dev`) end to end, in well under a minute, and cleans up after itself:
#
#   1. the admin API answers the admin key
#   2. a throw-away source (generic HMAC-SHA256, random secret) and a subscription to the sink
#   3. a webhook signed with the source's secret is accepted (200, an event id)
#   4. the sink receives it, signed (Standard Webhooks: webhook-id = the event id, the
#      signature checked with the subscription's secret) -- local sink only, see --sink
#   5. the attempt log records the delivery as succeeded
#   6. a wrong signature gets 401, an unknown source 404
#   7. the subscription and the source are deleted (also when a step failed)
#
# Each step prints a line with its time; the script exits 0 only when every step passed.
#
# Usage:
#   scripts/verify-deployment.sh --url <base URL> --key-file <admin key file> [--sink <URL>]
#                                [--timeout <seconds>]
#
#   --url       base URL of the Hookhub: the stack's custom domain or ExecuteApiUrl output,
#               or `hookhub dev`'s address (http://127.0.0.1:8080)
#   --key-file  file holding the admin key (e.g. `hookhub dev`'s <data-dir>/admin-key)
#   --sink      the subscriber URL deliveries go to. Without it the script starts its own sink
#               on 127.0.0.1 (python3) and also checks what arrives there: for `hookhub dev`.
#               A deployed stack cannot reach your 127.0.0.1: give an https URL that answers
#               2xx to POSTs; the delivery is then proven by the attempt log (step 5).
#   --timeout   seconds to wait for the delivery (default 30)
#
# Needs bash, curl, openssl and python3 (JSON parsing, and the local sink).
set -euo pipefail

url="" key_file="" sink="" timeout=30
usage() { sed -n '2,29p' "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --url) url=${2:?--url needs a value}; shift 2 ;;
    --key-file) key_file=${2:?--key-file needs a value}; shift 2 ;;
    --sink) sink=${2:?--sink needs a value}; shift 2 ;;
    --timeout) timeout=${2:?--timeout needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "verify: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$url" ] && [ -n "$key_file" ] || { usage >&2; exit 2; }
[ -r "$key_file" ] || { echo "verify: cannot read the key file $key_file" >&2; exit 2; }
for tool in curl openssl python3; do
  command -v "$tool" >/dev/null || { echo "verify: $tool is required" >&2; exit 2; }
done
url=${url%/}
admin_key=$(tr -d '\r\n' <"$key_file")

work=$(mktemp -d "${TMPDIR:-/tmp}/hookhub-verify.XXXXXX")
sink_pid="" source_id="" subscription_id="" failed=0
started=$EPOCHREALTIME
step_started=$EPOCHREALTIME

# --- Output ----------------------------------------------------------------------------------

# Milliseconds since an $EPOCHREALTIME value (microseconds once the separator, "." or ",", is gone).
ms_since() {
  local now=${EPOCHREALTIME//[.,]/} since=${1//[.,]/}
  echo $(((10#$now - 10#$since) / 1000))
}
begin() {
  step_name=$1
  step_started=$EPOCHREALTIME
}
ok() { echo "verify: ok   $step_name ($(ms_since "$step_started") ms)${1:+: $1}"; }
die() {
  echo "verify: FAIL $step_name ($(ms_since "$step_started") ms): $*" >&2
  failed=1
  exit 1
}

# --- HTTP ------------------------------------------------------------------------------------

# request METHOD PATH [BODY] [extra curl args...]: sets $status and $body ($work/body).
request() {
  local method=$1 path=$2 data=${3-}
  shift 3 || shift $#
  local args=(-sS -o "$work/body" -w '%{http_code}' -X "$method" --max-time 15)
  [ -n "$data" ] && args+=(-H 'content-type: application/json' --data-binary "$data")
  status=$(curl "${args[@]}" "$@" "$url$path") || status="000"
  body=$(cat "$work/body" 2>/dev/null || true)
}
admin() { request "$1" "$2" "${3-}" -H "authorization: Bearer $admin_key"; }
# json FIELD-PATH: a field of $body ("id", "data.0.state"), empty when missing.
json() {
  python3 - "$1" "$body" <<'PY'
import json, sys
value = json.loads(sys.argv[2] or "null")
for part in sys.argv[1].split("."):
    if isinstance(value, list):
        value = value[int(part)] if int(part) < len(value) else None
    elif isinstance(value, dict):
        value = value.get(part)
    else:
        value = None
print("" if value is None else value if isinstance(value, str) else json.dumps(value))
PY
}

# --- Cleanup: whatever was created, also after a failure ----------------------------------

cleanup() {
  local rc=$?
  set +e
  if [ -n "$subscription_id" ] || [ -n "$source_id" ]; then
    begin "delete the subscription and the source"
    local problems=""
    if [ -n "$subscription_id" ]; then
      admin DELETE "/v1/subscriptions/$subscription_id"
      [ "$status" = 204 ] || problems+=" subscription $subscription_id: $status $body;"
    fi
    if [ -n "$source_id" ]; then
      admin DELETE "/v1/sources/$source_id"
      [ "$status" = 204 ] || problems+=" source $source_id: $status $body;"
    fi
    if [ -n "$problems" ]; then
      echo "verify: FAIL $step_name:$problems" >&2
      rc=1
    else
      ok
    fi
  fi
  [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
  rm -rf "$work"
  if [ "$rc" = 0 ] && [ "$failed" = 0 ]; then
    echo "verify: PASS in $(ms_since "$started") ms"
  else
    echo "verify: FAILED after $(ms_since "$started") ms" >&2
    rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# --- Local sink --------------------------------------------------------------------------

# Answers 200 to every POST and keeps each request as <n>.json (headers) and <n>.body.
start_local_sink() {
  mkdir -p "$work/sink"
  python3 -u - "$work/sink" >"$work/sink.port" 2>"$work/sink.log" <<'PY' &
import http.server, json, sys, os

out = sys.argv[1]
count = 0

class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        count += 1
        with open(os.path.join(out, f"{count}.body"), "wb") as f:
            f.write(body)
        with open(os.path.join(out, f"{count}.json.tmp"), "w") as f:
            json.dump({k.lower(): v for k, v in self.headers.items()}, f)
        os.rename(os.path.join(out, f"{count}.json.tmp"), os.path.join(out, f"{count}.json"))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
  sink_pid=$!
  local deadline=$((SECONDS + 10))
  until [ -s "$work/sink.port" ]; do
    [ $SECONDS -lt $deadline ] || die "the local sink did not start: $(cat "$work/sink.log")"
    sleep 0.1
  done
  sink="http://127.0.0.1:$(head -1 "$work/sink.port")/hookhub-verify"
}

# The delivery whose webhook-id is $1, as "<n>" (files $work/sink/<n>.json and .body).
find_delivery() {
  python3 - "$work/sink" "$1" <<'PY'
import glob, json, os, sys
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    with open(path) as f:
        if json.load(f).get("webhook-id") == sys.argv[2]:
            print(os.path.basename(path)[: -len(".json")])
            break
PY
}

header_of() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2"; }

# --- The steps -------------------------------------------------------------------------------

nonce=$(openssl rand -hex 6)

begin "admin API answers the key ($url)"
admin GET /v1/sources
[ "$status" = 200 ] || die "GET /v1/sources: $status $body"
ok

if [ -z "$sink" ]; then
  begin "start a local sink"
  start_local_sink
  ok "$sink"
  local_sink=true
else
  local_sink=false
fi

begin "create a source (generic HMAC-SHA256)"
source_secret=$(openssl rand -hex 32)
candidate="verify-$nonce"
admin POST /v1/sources "{\"id\":\"$candidate\",\"verify\":{\"scheme\":\"hmac\",\"header\":\"X-Verify-Signature\",\"algorithm\":\"sha256\",\"encoding\":\"hex\",\"prefix\":\"sha256=\",\"secret\":\"$source_secret\"}}"
[ "$status" = 201 ] || die "POST /v1/sources: $status $body"
source_id=$candidate
ok "$source_id"

begin "create a subscription to the sink"
admin POST /v1/subscriptions "{\"url\":\"$sink\",\"sources\":[\"$source_id\"],\"label\":\"verify-deployment $nonce\"}"
[ "$status" = 201 ] || die "POST /v1/subscriptions: $status $body"
subscription_id=$(json id)
subscription_secret=$(json secret)
[ -n "$subscription_id" ] && [[ "$subscription_secret" == whsec_* ]] ||
  die "the answer has no id or whsec_ secret: $body"
ok "$subscription_id"

payload="{\"type\":\"verify.ping\",\"nonce\":\"$nonce\"}"
sign() { printf %s "$payload" | openssl dgst -sha256 -hmac "$1" -hex | sed 's/^.*= *//'; }

begin "send a signed webhook"
request POST "/webhooks/$source_id" "$payload" -H "X-Verify-Signature: sha256=$(sign "$source_secret")"
[ "$status" = 200 ] || die "POST /webhooks/$source_id: $status $body"
event_id=$(json id)
[ -n "$event_id" ] || die "no event id in $body"
ok "$event_id"

deadline=$((SECONDS + timeout))
if $local_sink; then
  begin "the sink receives the signed delivery"
  until delivery=$(find_delivery "$event_id") && [ -n "$delivery" ]; do
    [ $SECONDS -lt $deadline ] || die "nothing delivered within ${timeout}s"
    sleep 0.2
  done
  headers="$work/sink/$delivery.json"
  cmp -s "$work/sink/$delivery.body" <(printf %s "$payload") || die "the delivered body differs"
  timestamp=$(header_of "$headers" webhook-timestamp)
  signatures=$(header_of "$headers" webhook-signature)
  key_hex=$(printf %s "${subscription_secret#whsec_}" | openssl base64 -d -A | od -An -v -tx1 | tr -d ' \n')
  expected=$({ printf '%s.%s.' "$event_id" "$timestamp"; cat "$work/sink/$delivery.body"; } |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -binary | openssl base64 -A)
  [[ " $signatures " == *" v1,$expected "* ]] ||
    die "webhook-signature '$signatures' does not match the subscription's secret"
  ok "webhook-id $event_id, signature verified"
fi

begin "the attempt log records the delivery"
until
  admin GET "/v1/events/$event_id/attempts"
  [ "$status" = 200 ] && [ "$(json data.0.state)" = succeeded ] &&
    [ "$(json data.0.subscription_id)" = "$subscription_id" ]
do
  [ $SECONDS -lt $deadline ] || die "no succeeded attempt within ${timeout}s: $status $body"
  sleep 0.3
done
ok "attempt $(json data.0.attempt): $(json data.0.state), HTTP $(json data.0.status_code)"

begin "a wrong signature gets 401"
request POST "/webhooks/$source_id" "$payload" -H "X-Verify-Signature: sha256=$(sign "not-the-secret")"
[ "$status" = 401 ] || die "expected 401, got $status $body"
ok "$(json error.code)"

begin "an unknown source gets 404"
request POST "/webhooks/verify-unknown-$nonce" "$payload" -H "X-Verify-Signature: sha256=$(sign "$source_secret")"
[ "$status" = 404 ] || die "expected 404, got $status $body"
ok "$(json error.code)"

#!/usr/bin/env python3
"""HTTP proxy in front of the AWS emulator that injects AWS errors, so the error counters of the
dashboards get real data from the functions' real error paths (docs/observability.md,
"Proving the dashboards").

    python3 fault_proxy.py LISTEN_PORT EMULATOR_PORT
    AWS_ENDPOINT_URL=http://127.0.0.1:LISTEN_PORT cargo run -p tradeflow-local -- demo ...

Once each, in the order the requests come (then everything is forwarded unchanged):
- the first 6 DynamoDB GetItem on the cursors table: 500 InternalServerError (the SDK retries 3
  times, so 2 streams fail: generator_scan_errors_total{error_type="cursor_store"});
- the first 6 PutItem on the leases table (dispatch_failures_total{reason="lease_store"});
- the first 6 GetItem on the pipelines table, which only the executor does
  (execution_retries_total{reason="pipeline_store"});
- the first SendMessageBatch to the signals queue: answered 200 with every entry failed and
  blamed on the sender, as SQS does for a bad entry (queue_publish_failure_total{error_type=
  "rejected"}; the scan fails, faas_errors_total).
Only for local emulators: it listens on 127.0.0.1.
"""
import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# [name, X-Amz-Target suffix, substring of the body (table or queue name), requests left]
FAULTS = [
    ["cursors GetItem", "DynamoDB_20120810.GetItem", "-cursors", 6],
    ["leases PutItem", "DynamoDB_20120810.PutItem", "-leases", 6],
    ["pipelines GetItem", "DynamoDB_20120810.GetItem", "-pipelines", 6],
    ["signals SendMessageBatch", "AmazonSQS.SendMessageBatch", "-signals\"", 1],
]
LOCK = threading.Lock()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream = 5000

    def log_message(self, *args):
        pass

    def reply(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def fault(self, target, text):
        with LOCK:
            for f in FAULTS:
                if f[3] > 0 and target.endswith(f[1]) and f[2] in text:
                    f[3] -= 1
                    print(f"fault: {f[0]} ({f[3]} left)", flush=True)
                    return f[0]
        return None

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.headers.get("X-Amz-Target", "")
        text = body.decode("utf-8", "replace")
        fault = self.fault(target, text)
        if fault and "SendMessageBatch" in target:
            ids = [e["Id"] for e in json.loads(text)["Entries"]]
            return self.reply(200, {"Successful": [], "Failed": [
                {"Id": i, "SenderFault": True, "Code": "InvalidMessageContents", "Message": "injected fault"}
                for i in ids]})
        if fault:
            return self.reply(500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                    "message": "injected fault"})
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


if __name__ == "__main__":
    listen, Proxy.upstream = int(sys.argv[1]), int(sys.argv[2])
    ThreadingHTTPServer(("127.0.0.1", listen), Proxy).serve_forever()

#!/usr/bin/env python3
"""A tiny webhook receiver for tests: appends each POST's JSON body (and its
Authorization header's presence) as one line to a file.

Usage: webhook_sink.py PORT OUTPUT_JSONL [ADDRESS]

ADDRESS: where it listens, 127.0.0.1 unless given (0.0.0.0 for senders on other hosts).
"""

import http.server
import json
import sys


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            event = json.loads(body)
        except ValueError:
            event = {"unparsed": body.decode(errors="replace")}
        event["_authorization"] = self.headers.get("Authorization", "")
        with open(sys.argv[2], "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event) + "\n")
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    address = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    http.server.HTTPServer((address, int(sys.argv[1])), Sink).serve_forever()

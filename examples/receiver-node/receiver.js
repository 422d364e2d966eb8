#!/usr/bin/env node
// A complete webhook receiver for outboxd, in Node.js, with node:crypto and
// node:http only.
//
// It reads the raw body, verifies the Standard Webhooks signature and timestamp,
// skips a webhook-id it has already accepted, answers 2xx at once and does the
// work afterwards.
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node examples/receiver-node/receiver.js
//
// Then: outboxd subscriptions create --url http://127.0.0.1:8000/webhooks
// --secret whsec_... --allow-private-targets 127.0.0.1/32 (a daemon reaches
// loopback only with the same flag on outboxd run).
//
// The official library does the verification in one call, if you can install it
// (npm install standardwebhooks):
//
//   import { Webhook } from "standardwebhooks";
//   new Webhook(secret).verify(rawBody, headers); // throws on a bad signature or timestamp
//
// It keeps what it has seen, and its work queue, in memory: a real receiver keeps
// them in a durable store, in one transaction (INSERT INTO received (webhook_id,
// body) ... ON CONFLICT (webhook_id) DO NOTHING, then answer 2xx; a worker
// processes the rows), so that neither a restart nor a redelivery does the work
// twice or loses it.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");

const TOLERANCE_SECONDS = 5 * 60; // refuse older (or newer) timestamps: stops replays
const MAX_BODY = 1 << 20; // outboxd's payloads are at most 256 KiB by default, plus the envelope

class VerificationError extends Error {}

// verify checks a request as Standard Webhooks defines it and returns its webhook-id.
function verify(key, headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = headers["webhook-signature"];
  if (!id || !timestamp || !signatures) {
    throw new VerificationError("missing webhook-id, webhook-timestamp or webhook-signature");
  }
  const sentAt = Number(timestamp);
  if (!Number.isInteger(sentAt)) {
    throw new VerificationError("webhook-timestamp is not a number");
  }
  if (Math.abs(Date.now() / 1000 - sentAt) > TOLERANCE_SECONDS) {
    throw new VerificationError("webhook-timestamp is more than 5 minutes away from now");
  }
  const expected = crypto.createHmac("sha256", key).update(`${id}.${timestamp}.`).update(body).digest();
  // Several signatures come during a secret rotation: any one may match.
  for (const candidate of signatures.split(" ")) {
    const [version, signature] = candidate.split(",", 2);
    if (version !== "v1" || !signature) continue;
    const given = Buffer.from(signature, "base64");
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) {
      return id;
    }
  }
  throw new VerificationError("no signature matches");
}

function main() {
  const secret = process.env.WEBHOOK_SECRET || "";
  if (!secret.startsWith("whsec_")) {
    console.error("set WEBHOOK_SECRET to the subscription's whsec_... secret");
    process.exit(1);
  }
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const seen = new Set(); // webhook-ids accepted; a real receiver keeps them durably
  const work = [];

  // process does the work for each accepted event, after its request was answered.
  function process_() {
    while (work.length > 0) {
      const event = work.shift();
      // Your work here: update a database, call another service, ...
      console.log(`processed ${event.id} ${event.type}`);
    }
  }

  const server = http.createServer((req, res) => {
    const answer = (status, text = "") => {
      res.writeHead(status, text ? { "content-type": "text/plain" } : {});
      res.end(text);
    };
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return answer(405, "POST webhooks here");
    }
    // The raw bytes: the signature covers them exactly, so never re-encode JSON
    // before verifying.
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        answer(413, "body too large");
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      let id, event;
      try {
        id = verify(key, req.headers, body);
        event = JSON.parse(body.toString("utf8"));
      } catch (err) {
        if (err instanceof VerificationError) {
          console.log(`rejected: ${err.message}`);
          return answer(err.message.startsWith("missing") ? 400 : 401, "bad signature");
        }
        console.log(`rejected: body is not an outboxd event: ${err.message}`);
        return answer(400, "not an event");
      }

      // webhook-id is the event's id, the same on every retry: at-least-once
      // delivery means a repeat can come, and it must not do the work again.
      if (seen.has(id)) {
        console.log(`duplicate ${id}`);
        return answer(200); // acknowledged, so outboxd stops sending it
      }
      seen.add(id);

      // Answer now; slow work would hold outboxd's request until it times out
      // and is retried.
      console.log(`accepted ${id} ${event.type}`);
      work.push(event);
      answer(204);
      setImmediate(process_);
    });
  });
  server.listen(Number(process.env.PORT || 8000), process.env.HOST || "127.0.0.1", () => {
    const { address, port } = server.address();
    console.log(`listening on http://${address}:${port}`);
  });
}

main();

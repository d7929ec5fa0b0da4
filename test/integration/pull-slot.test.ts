/**
 * PullSlot (shared/adapters/nats/pull-slot.ts), the batch worker's one-task-at-a-time pull, on a
 * real nats-server: a work-queue stream and an explicit-ack durable consumer like the batch queue's.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AckPolicy, RetentionPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { PullSlot, StreamSetupError, parseAckSubject } from "../../shared/adapters/nats/index.js";
import { natsFixture, natsMissing } from "../helpers/nats.js";

const STREAM = "PULL_SLOT_TEST";
const CONSUMER = "workers";

/** A work-queue stream with `n` messages `task 1` ... `task n` and its durable consumer. */
async function queueOf(nc: NatsConnection, n: number, ackWaitMs = 30_000, maxWaiting?: number) {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: STREAM, subjects: ["work.>"], retention: RetentionPolicy.Workqueue });
  await jsm.consumers.add(STREAM, {
    durable_name: CONSUMER,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    ...(maxWaiting ? { max_waiting: maxWaiting } : {}),
  });
  const js = jetstream(nc);
  for (let i = 1; i <= n; i++) await js.publish(`work.${i}`, `task ${i}`);
  return {
    /** The consumer's acknowledgements pending and messages not yet delivered. */
    async state() {
      const info = await jsm.consumers.info(STREAM, CONSUMER);
      return { ackPending: info.num_ack_pending, undelivered: info.num_pending };
    },
    /** The state once it is `wanted` (the server applies acknowledgements asynchronously), else after 2 s. */
    async settledAt(wanted: { ackPending: number; undelivered: number }) {
      const until = Date.now() + 2_000;
      for (;;) {
        const now = await this.state();
        if (
          (now.ackPending === wanted.ackPending && now.undelivered === wanted.undelivered) ||
          Date.now() > until
        )
          return now;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    },
    async messagesLeft() {
      return (await jsm.streams.info(STREAM)).state.messages;
    },
  };
}

const text = (d: Uint8Array) => new TextDecoder().decode(d);

describe("PullSlot, one message per pull on one subscription", { skip: natsMissing() }, () => {
  test("delivers one message per next() and holds no other: the rest stay undelivered until it asks again", async () => {
    await using nats = await natsFixture();
    const q = await queueOf(nats.nc, 3);
    const slot = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      const first = await slot.next({ expiresMs: 2_000 });
      assert.ok(first);
      assert.equal(text(first.data), "task 1");
      assert.equal(first.subject, "work.1");
      assert.equal(first.seq, 1);
      assert.equal(first.info.deliveryCount, 1);
      assert.ok(Math.abs(first.info.timestampNanos / 1e6 - Date.now()) < 60_000, "stored just now");
      // The slot works on task 1: nothing else was delivered to it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(await q.state(), { ackPending: 1, undelivered: 2 });
      first.ack();
      const second = await slot.next({ expiresMs: 2_000 });
      assert.equal(text(second!.data), "task 2");
      second!.ack();
      const third = await slot.next({ expiresMs: 2_000 });
      assert.equal(text(third!.data), "task 3");
      third!.ack();
      // Acknowledged messages leave the work queue; an empty queue answers null when the pull expires.
      const t0 = Date.now();
      assert.equal(await slot.next({ expiresMs: 300 }), null);
      assert.ok(Date.now() - t0 < 2_000, "the server's 408 ends the pull, not the slot's own timer");
      assert.equal(await q.messagesLeft(), 0);
    } finally {
      slot.close();
    }
  });

  test("a next() that carries the previous message's ack sends one +NXT on its ack subject: acknowledged, and the next message delivered, with no separate pull request", async () => {
    await using nats = await natsFixture();
    const q = await queueOf(nats.nc, 3);
    // What crosses the broker: every ack of the stream and every pull request, seen from a second connection.
    const spy = await connect({ servers: nats.server.url });
    const seen: string[] = [];
    spy.subscribe(`$JS.ACK.${STREAM}.>`, { callback: (_e, m) => void seen.push(`ack ${text(m.data)}`) });
    spy.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${STREAM}.>`, { callback: () => void seen.push("pull") });
    await spy.flush();
    const slot = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      const first = await slot.next({ expiresMs: 2_000 });
      const second = await slot.next({ expiresMs: 2_000, ack: first! });
      assert.equal(text(second!.data), "task 2");
      assert.deepEqual(await q.settledAt({ ackPending: 1, undelivered: 1 }), {
        ackPending: 1,
        undelivered: 1,
      });
      assert.equal(await q.messagesLeft(), 2, "task 1 acknowledged: out of the work queue");
      first!.ack(); // already acknowledged: nothing more is sent
      const third = await slot.next({ expiresMs: 2_000, ack: second! });
      assert.equal(text(third!.data), "task 3");
      // The queue is empty: the pull that acknowledges task 3 expires with nothing.
      assert.equal(await slot.next({ expiresMs: 300, ack: third! }), null);
      await nats.nc.flush();
      await spy.flush();
      assert.equal(await q.messagesLeft(), 0);
      assert.deepEqual(
        seen.map((s) => s.replace(/\{.*\}/, "{...}")),
        ["pull", "ack +NXT {...}", "ack +NXT {...}", "ack +NXT {...}"],
      );
    } finally {
      slot.close();
      await spy.close();
    }
  });

  test("a nak with a delay, in-progress heartbeats and a term act on the server as nats.js's JsMsg does", async () => {
    await using nats = await natsFixture();
    const q = await queueOf(nats.nc, 1, 1_000);
    const slot = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      const m = await slot.next({ expiresMs: 2_000 });
      // +WPI keeps it ours past its 1 s ack wait.
      for (let i = 0; i < 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 400));
        m!.working();
      }
      await nats.nc.flush();
      assert.deepEqual(await q.state(), { ackPending: 1, undelivered: 0 });
      const t0 = Date.now();
      m!.nak(300); // delivered again after 300 ms, as its second delivery
      const again = await slot.next({ expiresMs: 2_000 });
      assert.ok(Date.now() - t0 >= 250, "not before its delay");
      assert.equal(text(again!.data), "task 1");
      assert.equal(again!.info.deliveryCount, 2);
      // (A reason after +TERM needs nats-server 2.10; Debian's 2.9 takes only the bare +TERM.)
      again!.term();
      again!.ack(); // after a term nothing more is sent
      assert.equal(await slot.next({ expiresMs: 300 }), null);
      await nats.nc.flush();
      assert.deepEqual(await q.settledAt({ ackPending: 0, undelivered: 0 }), {
        ackPending: 0,
        undelivered: 0,
      });
    } finally {
      slot.close();
    }
  });

  test("an aborted wait resolves null at once, and the message its pull still brings is handed back for another slot", async () => {
    await using nats = await natsFixture();
    await queueOf(nats.nc, 0);
    const a = new PullSlot(nats.nc, STREAM, CONSUMER);
    const b = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      const stop = new AbortController();
      const waiting = a.next({ expiresMs: 3_000, signal: stop.signal });
      await nats.nc.flush(); // the pull request is in the server
      stop.abort();
      assert.equal(await waiting, null);
      // Slot a's pull request still waits in the server: the message goes to a, which no longer
      // wants it and naks it, and b gets it as its second delivery, without waiting for an ack wait.
      await jetstream(nats.nc).publish("work.late", "late task");
      await new Promise((resolve) => setTimeout(resolve, 300));
      const t0 = Date.now();
      const m = await b.next({ expiresMs: 2_000 });
      assert.equal(text(m!.data), "late task");
      assert.equal(m!.info.deliveryCount, 2);
      assert.ok(Date.now() - t0 < 1_500);
      m!.ack();
    } finally {
      a.close();
      b.close();
    }
  });

  test("a pull the server refuses (more pulls waiting than the consumer's max_waiting) rejects with NATS_SETUP", async () => {
    await using nats = await natsFixture();
    await queueOf(nats.nc, 0, 30_000, 1);
    const a = new PullSlot(nats.nc, STREAM, CONSUMER);
    const b = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      const waiting = a.next({ expiresMs: 1_000 });
      await nats.nc.flush();
      await assert.rejects(b.next({ expiresMs: 1_000 }), (err: unknown) => {
        assert.ok(err instanceof StreamSetupError, String(err));
        assert.equal(err.code, "NATS_SETUP");
        assert.match(err.message, /pull from consumer workers failed: 409 Exceeded MaxWaiting/);
        return true;
      });
      assert.equal(await waiting, null);
    } finally {
      a.close();
      b.close();
    }
  });

  test("a pull waiting when its consumer is deleted rejects (409), and one after is answered by nobody: null with unanswered set, which an expired pull of a live consumer never sets", async () => {
    await using nats = await natsFixture();
    await queueOf(nats.nc, 0);
    const jsm = await jetstreamManager(nats.nc);
    const slot = new PullSlot(nats.nc, STREAM, CONSUMER);
    try {
      assert.equal(await slot.next({ expiresMs: 300 }), null, "expired: the server's 408");
      assert.equal(slot.unanswered, false);
      const refused = assert.rejects(
        slot.next({ expiresMs: 5_000 }),
        /pull from consumer workers failed: 409 Consumer Deleted/,
      );
      await nats.nc.flush();
      await jsm.consumers.delete(STREAM, CONSUMER);
      await refused;
      // Given up by the slot itself, expiresMs + 2 s later: no 408 comes from a missing consumer.
      assert.equal(await slot.next({ expiresMs: 300 }), null);
      assert.equal(slot.unanswered, true);
    } finally {
      slot.close();
    }
  });

  test("reads the delivery info of both forms of the ack subject", () => {
    assert.deepEqual(parseAckSubject("$JS.ACK.S.C.2.17.40.1700000000000000000.5"), {
      stream: "S",
      consumer: "C",
      deliveryCount: 2,
      streamSequence: 17,
      timestampNanos: 1700000000000000000,
      pending: 5,
    });
    assert.equal(parseAckSubject("$JS.ACK.hub.ACCHASH.S.C.1.3.3.1700000000000000000.0.token")?.stream, "S");
    assert.equal(parseAckSubject("_INBOX.abc"), null);
  });
});

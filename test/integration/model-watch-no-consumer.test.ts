/**
 * The active-model watch follows activations even when its KV watch (a consumer) cannot be
 * created: nats-server 2.9 may place that consumer on an offline peer of a cluster (nats-server
 * PR #7165), and every worker and serve start waited up to 60 s on it with a node down (issue 14).
 * Made exact here with a server that refuses this client any consumer: the watch must resolve at
 * once and hear each activation by its read of the pointer, within a few periods of it.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { NatsModelRegistry } from "../../shared/adapters/nats/index.js";
import { natsMissing } from "../helpers/nats.js";
import { startNatsServerWithUsers } from "../helpers/nats-permissions.js";
import { testModel } from "./speed-fixtures.js";

/** How long the watch may take to start and to hear an activation (its read runs every 1 s). */
const BOUND_MS = 5_000;

describe("the active-model watch without a consumer", { skip: natsMissing() }, () => {
  test("starts at once and hears every activation by its read of the pointer when no consumer can be created", async () => {
    await using server = await startNatsServerWithUsers([
      { user: "admin", password: "admin" },
      {
        user: "reader",
        password: "reader",
        denyPublish: ["$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.DURABLE.CREATE.>"],
      },
    ]);
    const admin = await connect({ servers: server.url, user: "admin", pass: "admin" });
    const reader = await connect({ servers: server.url, user: "reader", pass: "reader" });
    try {
      const writer = await NatsModelRegistry.open(admin);
      const first = await testModel(5);
      const second = await testModel(3);
      await writer.put(first);
      await writer.put(second);
      await writer.activate(first.version);

      const registry = await NatsModelRegistry.open(reader);
      const heard: (string | null)[] = [];
      const started = performance.now();
      const watch = await Promise.race([
        registry.watch((p) => heard.push(p?.version ?? null)),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`the watch did not start within ${BOUND_MS} ms`)), BOUND_MS),
        ),
      ]);
      try {
        const until = async (version: string): Promise<number> => {
          const at = performance.now();
          while (!heard.includes(version)) {
            assert.ok(performance.now() - at < BOUND_MS, `${version} heard within ${BOUND_MS} ms`);
            await new Promise((r) => setTimeout(r, 20));
          }
          return performance.now() - at;
        };
        await until(first.version);
        assert.ok(performance.now() - started < BOUND_MS);
        await writer.activate(second.version);
        await until(second.version);
        assert.deepEqual(heard, [first.version, second.version], "each activation once, in order");
      } finally {
        watch.stop();
      }
    } finally {
      await reader.close();
      await admin.close();
    }
  });
});

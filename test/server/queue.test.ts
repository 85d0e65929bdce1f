import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Aborted, QueueFull } from "../../src/errors/index.js";
import { AdmissionQueue } from "../../src/server/queue.js";

describe("AdmissionQueue", () => {
  it("runs up to `slots` at once, queues up to `maxWaiting`, and refuses the rest with QueueFull and a retry time", async () => {
    const queue = new AdmissionQueue({ slots: 2, maxWaiting: 1 });
    const first = await queue.enter();
    const second = await queue.enter();
    const order: string[] = [];
    const third = queue.enter().then((slot) => {
      order.push("third");
      return slot;
    });
    assert.equal(queue.runningCount, 2);
    assert.equal(queue.waitingCount, 1);

    await assert.rejects(queue.enter(), (error: unknown) => {
      assert.ok(error instanceof QueueFull);
      assert.equal(error.status, 503);
      const retry = error.details?.retry_after_seconds;
      assert.ok(typeof retry === "number" && retry >= 1, `retry_after_seconds = ${String(retry)}`);
      return true;
    });

    first.release();
    first.release(); // idempotent: must not free a second slot
    const slot = await third;
    assert.deepEqual(order, ["third"]);
    assert.equal(queue.runningCount, 2);
    assert.equal(queue.waitingCount, 0);
    second.release();
    slot.release();
    assert.equal(queue.runningCount, 0);
  });

  it("drops a waiter whose request is aborted, rejecting it with Aborted", async () => {
    const queue = new AdmissionQueue({ slots: 1, maxWaiting: 4 });
    const running = await queue.enter();
    const controller = new AbortController();
    const waiting = queue.enter(controller.signal);
    controller.abort();
    await assert.rejects(waiting, Aborted);
    assert.equal(queue.waitingCount, 0);
    running.release();
    assert.equal(queue.runningCount, 0);
  });

  it("with maxWaiting 0, a busy queue refuses at once", async () => {
    const queue = new AdmissionQueue({ slots: 1, maxWaiting: 0 });
    const running = await queue.enter();
    await assert.rejects(queue.enter(), QueueFull);
    running.release();
    (await queue.enter()).release();
  });
});

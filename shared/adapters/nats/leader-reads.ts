/**
 * Why lanemap's KV buckets are read through their stream's leader and never by a direct get.
 *
 * nats.js opens a bucket with `allow_direct` when the server offers it, and then `KV.get` is a
 * `$JS.API.DIRECT.GET` request, which every replica of the bucket's stream answers through one
 * queue group: the server hands each request to one of them. On a 3-node cluster with one node
 * frozen (SIGSTOP: a hung VM or a paused host), that node's replica keeps its queue subscription
 * until its routes are dropped, and the requests handed to it are never answered: `lanemap batch
 * run` failed 3 times in 4 with "reading the model registry: timeout" (issue 14, F6). A read
 * through the leader (`$JS.API.STREAM.MSG.GET`) is answered by the replica the RAFT group elected,
 * and a frozen leader is replaced within seconds by the group's own heartbeats; the leader's
 * answer is also never a write behind, as a follower's may be.
 *
 * The cost: every read of a bucket lands on one server instead of being spread over its replicas.
 * lanemap's KV reads are pointers, records and catalogue entries (tens per second at most).
 */

/** `Kvm.create` options that make the bucket's `get` ask the stream's leader (see the module). */
export const LEADER_READS = { allow_direct: false } as const;

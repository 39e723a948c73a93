'use strict';
// The official Node.js MongoDB driver (`mongodb`) and shell (`mongosh`) against the simulated
// members of a real `ddsd serve` (docs/wire.md); the Node.js half of tests/sdk/test_wire.py.
//
// What an application relies on:
// - the URI built from `DescribeDBInstanceAttribute` (`ReplicaSets.ReplicaSet[]`, `ReplicaSetName`)
//   reaches the instance; `root` logs in with `CreateDBInstance`'s `AccountPassword` (SCRAM-SHA-256
//   by default, and SCRAM-SHA-1), a wrong password is AuthenticationFailed (18);
// - `replSetGetStatus` and `buildInfo` agree with `DescribeDBInstanceAttribute`;
// - through a whole `UpgradeDBInstanceKernelVersion` a writer with retryable writes and
//   `w: "majority"` keeps working: afterwards every acknowledged write is there exactly once, the
//   driver followed the new primary, and every member's `buildInfo` shows the target;
// - mongosh, pointed at one member, sees the same set and who is primary.
//
// The plane runs at `--sim-speed 20`: a member restart takes about a second of wall time.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { setTimeout: sleep } = require('node:timers/promises');
const OpenApi = require('@alicloud/openapi-client');
const Util = require('@alicloud/tea-util');
const { MongoClient, MongoServerError, MongoNetworkError, MongoServerSelectionError } = require('mongodb');
const { startDdsd } = require('./ddsd');

const REGION = 'cn-hangzhou';
const SPEED = '20';
const PASSWORD = 'Str0ng!pass';
const OLD_44 = 'mongodb_20211020_4.4.6'; // the oldest catalogued 4.4 kernel
const MONGOSH = path.join(__dirname, 'node_modules', '.bin', 'mongosh');

function teaClient(d, keyId, keySecret) {
  return new OpenApi.default(new OpenApi.Config({
    accessKeyId: keyId, accessKeySecret: keySecret, endpoint: d.endpoint, protocol: 'http', regionId: REGION,
  }));
}

// The generated Dds clients' Params shape (dds-api.md section 8, C7), for any action.
async function call(client, action, query = {}) {
  const params = new OpenApi.Params({
    action, version: '2015-12-01', protocol: 'HTTPS', pathname: '/',
    method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  const r = await client.callApi(params, new OpenApi.OpenApiRequest({ query }), new Util.RuntimeOptions({}));
  return r.body;
}

const release = (kernel) => kernel.split('_').at(-1);
const addr = (s) => `${s.ConnectionDomain}:${s.ConnectionPort}`;
const members = (a) => a.ReplicaSets.ReplicaSet;

function rsUri(a, { password = PASSWORD, ...opts } = {}) {
  const q = new URLSearchParams({ replicaSet: a.ReplicaSetName, authSource: 'admin', ...opts });
  return `mongodb://root:${encodeURIComponent(password)}@${members(a).map(addr).join(',')}/?${q}`;
}

function directUri(member) {
  return `mongodb://root:${encodeURIComponent(PASSWORD)}@${addr(member)}/?directConnection=true&authSource=admin`;
}

function mongo(uri, opts = {}) {
  return new MongoClient(uri, { serverSelectionTimeoutMS: 30_000, heartbeatFrequencyMS: 500, ...opts });
}

async function withClient(uri, fn, opts) {
  const c = mongo(uri, opts);
  try {
    await c.connect();
    return await fn(c);
  } finally {
    await c.close();
  }
}

// The failures a retryable-write application is told it may retry: the driver's own label, or the
// connection / server-selection / not-primary kinds a failover produces.
const NOT_PRIMARY_CODES = new Set([10107, 13435, 13436, 11600, 11602, 189, 91, 6, 7, 89, 9001, 262]);
function retryable(e) {
  return (typeof e.hasErrorLabel === 'function' && e.hasErrorLabel('RetryableWriteError'))
    || e instanceof MongoNetworkError || e instanceof MongoServerSelectionError
    || NOT_PRIMARY_CODES.has(e.code);
}

describe('the MongoDB Node.js driver and mongosh against the simulated members', () => {
  let d;
  let user;
  let admin;

  const attribute = async (iid) => (await call(user, 'DescribeDBInstanceAttribute', { DBInstanceId: iid }))
    .DBInstances.DBInstance[0];

  async function waitStatus(iid, want, timeoutMs = 240_000) {
    const deadline = Date.now() + timeoutMs;
    let seen;
    while (Date.now() < deadline) {
      seen = (await attribute(iid)).DBInstanceStatus;
      if (seen === want) return;
      await sleep(200);
    }
    assert.fail(`${iid} stayed ${seen}, expected ${want}`);
  }

  async function createRs(kernel) {
    const q = {
      RegionId: REGION, Engine: 'MongoDB', EngineVersion: '4.4', DBInstanceClass: 'dds.mongo.mid',
      DBInstanceStorage: '20', AccountPassword: PASSWORD,
    };
    let iid;
    if (kernel) {
      iid = (await call(admin, 'DdsdCreateDBInstance', { ...q, KernelVersion: kernel })).DBInstanceId;
    } else {
      iid = (await call(user, 'CreateDBInstance', q)).DBInstanceId;
    }
    await waitStatus(iid, 'Running', 60_000);
    return iid;
  }

  before(async () => {
    d = await startDdsd({ extraArgs: ['--sim-speed', SPEED] });
    const key = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'admin-key.json'), 'utf8'));
    admin = teaClient(d, key.AccessKeyId, key.AccessKeySecret);
    user = teaClient(d, d.keyId, d.keySecret);
  });
  after(async () => {
    if (!d) return;
    const { code } = await d.stop();
    assert.equal(code, 0, 'ddsd did not exit cleanly on SIGTERM');
  });

  it('connects with the described URI, authenticates, writes and reads, and agrees with the describe', async () => {
    const iid = await createRs();
    const a = await attribute(iid);
    await withClient(rsUri(a), async (c) => {
      const coll = c.db('app').collection('orders', { writeConcern: { w: 'majority' } });
      const ins = await coll.insertMany(Array.from({ length: 10 }, (_, i) => ({
        _id: i, n: i, kind: i % 2 === 0 ? 'even' : 'odd',
      })));
      assert.equal(ins.insertedCount, 10);
      const found = await coll.find({ n: { $gte: 5 } }).sort({ n: -1 }).toArray();
      assert.deepEqual(found.map((x) => x.n), [9, 8, 7, 6, 5]);
      assert.equal(await coll.countDocuments({ kind: 'odd' }), 5);
      const up = await coll.updateOne({ _id: 3 }, { $set: { n: 103, kind: 'changed' } });
      assert.deepEqual([up.matchedCount, up.modifiedCount], [1, 1]);
      assert.deepEqual(await coll.findOne({ _id: 3 }), { _id: 3, n: 103, kind: 'changed' });
      assert.equal((await coll.deleteOne({ _id: 4 })).deletedCount, 1);
      assert.equal(await coll.countDocuments({}), 9);
      assert.equal(await coll.countDocuments({ kind: 'odd' }), 4);

      const status = await c.db('admin').command({ replSetGetStatus: 1 });
      assert.equal(status.set, a.ReplicaSetName);
      const names = new Set(status.members.map((m) => m.name));
      for (const s of members(a)) assert.ok(names.has(addr(s)), `${addr(s)} in ${[...names]}`);
      const primary = status.members.filter((m) => m.stateStr === 'PRIMARY').map((m) => m.name);
      const described = members(a).filter((s) => s.ReplicaSetRole === 'Primary').map(addr);
      assert.deepEqual(primary, described);
      const hello = await c.db('admin').command({ hello: 1 });
      assert.equal(hello.isWritablePrimary, true);
      assert.equal(hello.me, described[0]);
      assert.equal(hello.setName, a.ReplicaSetName);

      const info = await c.db('admin').command({ buildInfo: 1 });
      assert.equal(info.version, release(a.CurrentKernelVersion));
      const conn = await c.db('admin').command({ connectionStatus: 1 });
      assert.deepEqual(conn.authInfo.authenticatedUsers, [{ user: 'root', db: 'admin' }]);
    });

    for (const mech of ['SCRAM-SHA-1', 'SCRAM-SHA-256']) {
      await withClient(rsUri(a, { authMechanism: mech }), async (c) => {
        assert.equal(await c.db('app').collection('orders').countDocuments({}), 9, mech);
      });
    }

    const wrong = mongo(rsUri(a, { password: 'Wr0ng!pass' }), { serverSelectionTimeoutMS: 5_000 });
    try {
      await assert.rejects(wrong.db('admin').command({ ping: 1 }), (e) => {
        assert.ok(e instanceof MongoServerError, `${e.name}: ${e.message}`);
        assert.equal(e.code, 18);
        return true;
      });
    } finally {
      await wrong.close();
    }
  });

  it('a writer with retryable majority writes lives through UpgradeDBInstanceKernelVersion', async (t) => {
    const iid = await createRs(OLD_44);
    const notes = await call(user, 'DescribeKernelReleaseNotes', { KernelVersion: OLD_44 });
    const later = notes.ReleaseNotes.ReleaseNote.map((n) => n.KernelVersion);
    assert.ok(later.length > 0, 'the catalog has 4.4 kernels newer than the pinned one');
    const target = later.at(-1);
    const a = await attribute(iid);
    assert.equal(a.CurrentKernelVersion, OLD_44);

    const c = mongo(rsUri(a, { retryWrites: 'true', w: 'majority' }));
    try {
      await c.connect();
      const coll = c.db('app').collection('events');
      const acked = [];
      const unknown = [];
      const errors = [];
      const primaries = []; // [ms since start, `me` of the writable primary], each change once
      let stop = false;
      let longestGapMs = 0;
      const t0 = Date.now();

      const writer = (async () => {
        let n = 0;
        let lastOk = Date.now();
        while (!stop) {
          n += 1;
          try {
            await coll.insertOne({ _id: n, at: new Date() });
            const now = Date.now();
            longestGapMs = Math.max(longestGapMs, now - lastOk);
            lastOk = now;
            acked.push(n);
          } catch (e) { // the outcome of this insert is unknown
            unknown.push(n);
            errors.push(e);
            await sleep(50);
          }
          await sleep(5);
        }
      })();
      // Who the driver sends primary-bound commands to: `hello` answered by a writable primary
      // names itself in `me`.
      const watcher = (async () => {
        while (!stop) {
          try {
            const h = await c.db('admin').command({ hello: 1 });
            if (h.isWritablePrimary && primaries.at(-1)?.[1] !== h.me) primaries.push([Date.now() - t0, h.me]);
          } catch { /* a failover in progress: try again */ }
          await sleep(100);
        }
      })();

      await sleep(1000);
      const up0 = Date.now();
      await call(user, 'UpgradeDBInstanceKernelVersion', { DBInstanceId: iid });
      assert.equal((await attribute(iid)).DBInstanceStatus, 'MinorVersionUpgrading');
      await waitStatus(iid, 'Running', 240_000);
      const upgradeMs = Date.now() - up0;
      await sleep(1000);
      stop = true;
      await Promise.all([writer, watcher]);

      t.diagnostic(`upgrade ${upgradeMs} ms; acked ${acked.length}, unknown ${unknown.length}, `
        + `longest gap ${longestGapMs} ms; primaries ${JSON.stringify(primaries)}`);
      assert.ok(acked.length > 50, `acked ${acked.length}: ${errors.slice(0, 5).map(String)}`);
      const notRetryable = errors.filter((e) => !retryable(e));
      assert.deepEqual(notRetryable.map((e) => `${e.name} ${e.code}: ${e.message}`), []);

      const ids = (await coll.find({}, { projection: { _id: 1 } }).toArray()).map((x) => x._id);
      assert.equal(ids.length, new Set(ids).size, 'no document twice');
      const have = new Set(ids);
      const lost = acked.filter((n) => !have.has(n));
      assert.deepEqual(lost, [], 'no acknowledged write lost');
      const sent = new Set([...acked, ...unknown]);
      assert.deepEqual(ids.filter((n) => !sent.has(n)), [], 'nothing written that the writer did not send');

      const distinct = new Set(primaries.map(([, me]) => me));
      assert.ok(distinct.size >= 2, `the driver followed the new primary: ${JSON.stringify(primaries)}`);
      const after = await c.db('admin').command({ hello: 1 });
      assert.equal(after.me, primaries.at(-1)[1]);
    } finally {
      await c.close();
    }

    const b = await attribute(iid);
    assert.equal(b.CurrentKernelVersion, target);
    for (const s of members(b)) {
      const info = await withClient(directUri(s), (m) => m.db('admin').command({ buildInfo: 1 }),
        { serverSelectionTimeoutMS: 10_000 });
      assert.equal(info.version, release(target), addr(s));
    }
    // The describe's roles follow the election.
    const nowPrimary = await withClient(rsUri(b), async (m) => (await m.db('admin').command({ hello: 1 })).me);
    assert.deepEqual(members(b).filter((s) => s.ReplicaSetRole === 'Primary').map(addr), [nowPrimary]);
  });

  it('mongosh pointed at one member sees the set and who is primary', async (t) => {
    const iid = await createRs();
    const a = await attribute(iid);
    // mongosh keeps its config, logs and history under $HOME: a fresh one per run.
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'ddsd-mongosh-'));
    const env = { ...process.env, HOME: home, MONGOSH_FORCE_DISABLE_TELEMETRY_FOR_TESTING: '1' };
    const sh = (member) => new Promise((resolve, reject) => {
      execFile(MONGOSH, [
        `mongodb://${addr(member)}/?authSource=admin`, '-u', 'root', '-p', PASSWORD, '--quiet', '--norc',
        '--eval', 'JSON.stringify({s: rs.status().set, h: db.hello().isWritablePrimary})',
      ], { env, timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`mongosh ${addr(member)}: ${err.message}\n${stdout}\n${stderr}`));
        else resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
      });
    });
    try {
      for (const s of members(a)) {
        const t0 = Date.now();
        const out = await sh(s);
        t.diagnostic(`mongosh ${s.ReplicaSetRole} ${addr(s)}: ${JSON.stringify(out)} in ${Date.now() - t0} ms`);
        assert.deepEqual(out, { s: a.ReplicaSetName, h: s.ReplicaSetRole === 'Primary' });
      }
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  });
});

'use strict';
// Injected API errors (DdsdArmApiFault, docs/extensions.md) as the official Node.js SDKs see them:
// the armed error reaches @alicloud/openapi-client and @alicloud/pop-core as their own errors
// (code, HTTP status, the envelope), and once the fault is spent the same call succeeds.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const OpenApi = require('@alicloud/openapi-client');
const Util = require('@alicloud/tea-util');
const RPCClient = require('@alicloud/pop-core').RPCClient;
const { startDdsd } = require('./ddsd');

function teaClient(d, keyId, keySecret) {
  return new OpenApi.default(new OpenApi.Config({
    accessKeyId: keyId, accessKeySecret: keySecret, endpoint: d.endpoint, protocol: 'http', regionId: 'cn-hangzhou',
  }));
}

// The generated Dds clients' Params shape (dds-api.md section 8, C7), for any action.
function call(client, action, query = {}) {
  const params = new OpenApi.Params({
    action, version: '2015-12-01', protocol: 'HTTPS', pathname: '/',
    method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  return client.callApi(params, new OpenApi.OpenApiRequest({ query }), new Util.RuntimeOptions({}));
}

describe('injected API errors through the official Node.js SDKs', () => {
  let d;
  let admin;
  let user;
  before(async () => {
    d = await startDdsd();
    const key = JSON.parse(fs.readFileSync(path.join(d.dataDir, 'admin-key.json'), 'utf8'));
    admin = teaClient(d, key.AccessKeyId, key.AccessKeySecret);
    user = teaClient(d, d.keyId, d.keySecret);
  });
  after(async () => {
    if (!d) return;
    const { code } = await d.stop();
    assert.equal(code, 0, 'ddsd did not exit cleanly on SIGTERM');
  });

  it('openapi-client: a 503 armed for two calls, then the real answer', async () => {
    const armed = await call(admin, 'DdsdArmApiFault', {
      TargetAction: 'DescribeRegions', ErrorCode: 'ServiceUnavailable', Count: '2',
    });
    assert.equal(armed.body.ApiFault.HttpStatus, 503);
    for (let i = 0; i < 2; i++) {
      await assert.rejects(call(user, 'DescribeRegions'), (e) => {
        assert.equal(e.code, 'ServiceUnavailable');
        assert.equal(e.statusCode, 503);
        assert.equal(e.data.Message, 'The request has failed due to a temporary failure of the server.');
        assert.ok(e.data.RequestId);
        return true;
      });
    }
    const r = await call(user, 'DescribeRegions');
    assert.equal(r.statusCode, 200);
    assert.ok(r.body.Regions.DdsRegion.length > 0);
    const listed = await call(admin, 'DdsdDescribeApiFaults');
    const f = listed.body.ApiFaults.ApiFault.find((x) => x.FaultId === armed.body.ApiFault.FaultId);
    assert.deepEqual([f.Fired, f.Remaining], [2, 0]);
  });

  it('pop-core: a custom code armed once, then the real answer; only the admin key may arm', async () => {
    await call(admin, 'DdsdArmApiFault', {
      TargetAction: '*', ErrorCode: 'Task.Conflict', HttpStatus: '409', Message: 'Another task is running.',
    });
    const pop = new RPCClient({
      accessKeyId: d.keyId, accessKeySecret: d.keySecret, endpoint: d.url, apiVersion: '2015-12-01',
    });
    await assert.rejects(pop.request('DescribeRegions', {}), (e) => {
      assert.equal(e.code, 'Task.Conflict');
      assert.equal(e.data.Message, 'Another task is running.');
      return true;
    });
    const body = await pop.request('DescribeRegions', {});
    assert.ok(body.Regions.DdsRegion.length > 0);

    await assert.rejects(call(user, 'DdsdArmApiFault', { TargetAction: '*', ErrorCode: 'InternalError' }), (e) => {
      assert.equal(e.code, 'Forbidden.RAM');
      assert.equal(e.statusCode, 403);
      return true;
    });
    const cleared = await call(admin, 'DdsdClearApiFaults');
    assert.equal(cleared.body.ClearedApiFaults, 2);
  });
});

'use strict';
// DescribeRegions through the official Node.js SDKs, unchanged, pointed at a real ddsd:
//  - @alicloud/openapi-client (Tea core): V3 ACS3-HMAC-SHA256 by default, V1 with
//    signatureAlgorithm 'v2'. There is no @alicloud/dds20151201 on npm, so the suite calls
//    callApi with exactly the Params the generated Dds SDKs use (dds-api.md section 8, C7).
//  - @alicloud/pop-core RPCClient (legacy POP SDK): V1, GET by default, POST with every
//    parameter in a form body.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const OpenApi = require('@alicloud/openapi-client');
const Util = require('@alicloud/tea-util');
const RPCClient = require('@alicloud/pop-core').RPCClient;
const { startDdsd } = require('./ddsd');

const HOME_REGION = 'cn-hangzhou';
const JSON_CONTENT_TYPE = 'application/json;charset=utf-8';

function teaClient(d, { secret, keyId, signatureAlgorithm } = {}) {
  const config = new OpenApi.Config({
    accessKeyId: keyId || d.keyId,
    accessKeySecret: secret || d.keySecret,
    endpoint: d.endpoint,
    protocol: 'http',
    regionId: HOME_REGION,
  });
  if (signatureAlgorithm) config.signatureAlgorithm = signatureAlgorithm;
  return new OpenApi.default(config);
}

// The generated Dds client's Params for DescribeRegions (alibabacloud_dds20151201 client).
function describeRegions(client, query = {}) {
  const params = new OpenApi.Params({
    action: 'DescribeRegions', version: '2015-12-01', protocol: 'HTTPS', pathname: '/',
    method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  return client.callApi(params, new OpenApi.OpenApiRequest({ query }), new Util.RuntimeOptions({}));
}

function popClient(d, secret) {
  return new RPCClient({
    accessKeyId: d.keyId,
    accessKeySecret: secret || d.keySecret,
    endpoint: d.url,
    apiVersion: '2015-12-01',
  });
}

function checkRegions(body) {
  assert.equal(typeof body.RequestId, 'string');
  assert.ok(body.RequestId.length > 0);
  const regions = body.Regions.DdsRegion;
  assert.ok(Array.isArray(regions) && regions.length > 0, 'no regions');
  for (const r of regions) {
    for (const k of ['RegionId', 'RegionName', 'EndPoint']) {
      assert.equal(typeof r[k], 'string', `${k} of ${JSON.stringify(r)}`);
      assert.ok(r[k].length > 0, `${k} empty`);
    }
    assert.ok(Array.isArray(r.Zones.Zone) && r.Zones.Zone.length > 0, `${r.RegionId} has no zones`);
    for (const z of r.Zones.Zone) {
      assert.ok(z.ZoneId.startsWith(`${r.RegionId}-`), z.ZoneId);
      assert.equal(typeof z.ZoneName, 'string');
      assert.equal(typeof z.VpcEnabled, 'boolean');
    }
  }
  assert.ok(regions.some((r) => r.RegionId === HOME_REGION), `${HOME_REGION} missing`);
  return regions;
}

describe('official Node.js SDKs against ddsd', () => {
  let d;
  before(async () => { d = await startDdsd(); });
  after(async () => {
    if (!d) return;
    const { code } = await d.stop();
    assert.equal(code, 0, 'ddsd did not exit cleanly on SIGTERM');
  });

  for (const signatureAlgorithm of [undefined, 'v2']) {
    const name = signatureAlgorithm ? 'V1 (signatureAlgorithm v2)' : 'V3 (default)';

    it(`openapi-client ${name}: DescribeRegions`, async () => {
      const r = await describeRegions(teaClient(d, { signatureAlgorithm }));
      assert.equal(r.statusCode, 200);
      assert.equal(r.headers['content-type'], JSON_CONTENT_TYPE);
      assert.equal(r.headers['x-acs-request-id'], r.body.RequestId);
      checkRegions(r.body);
    });

    it(`openapi-client ${name}: RegionId filter narrows to one`, async () => {
      const r = await describeRegions(teaClient(d, { signatureAlgorithm }), { RegionId: HOME_REGION });
      assert.deepEqual(r.body.Regions.DdsRegion.map((x) => x.RegionId), [HOME_REGION]);
    });

    it(`openapi-client ${name}: unknown AccessKeyId is InvalidAccessKeyId.NotFound 404`, async () => {
      await assert.rejects(describeRegions(teaClient(d, { keyId: 'LTAInosuchkey0000000000', signatureAlgorithm })), (e) => {
        assert.equal(e.code, 'InvalidAccessKeyId.NotFound');
        assert.equal(e.statusCode, 404);
        assert.equal(e.data.Message, 'Specified access key is not found.');
        assert.ok(e.data.RequestId);
        return true;
      });
    });

    it(`openapi-client ${name}: wrong secret is SignatureDoesNotMatch 400`, async () => {
      await assert.rejects(describeRegions(teaClient(d, { secret: 'not-the-secret', signatureAlgorithm })), (e) => {
        assert.equal(e.code, 'SignatureDoesNotMatch');
        assert.equal(e.statusCode, 400);
        assert.ok(e.data.Message.startsWith('Specified signature is not matched with our calculation.'));
        return true;
      });
    });
  }

  for (const method of ['GET', 'POST']) {
    it(`pop-core ${method}: DescribeRegions`, async () => {
      const client = popClient(d);
      client.verbose = true; // also hand back the HTTP exchange
      const [body, entry] = await client.request('DescribeRegions', {}, { method });
      assert.equal(entry.response.statusCode, 200);
      assert.equal(entry.response.headers['content-type'], JSON_CONTENT_TYPE);
      assert.equal(entry.response.headers['x-acs-request-id'], body.RequestId);
      if (method === 'POST') {
        // Everything, signature included, travelled in the form body; the URL is bare.
        assert.equal(entry.url, `${d.url}/`);
        assert.equal(entry.request.headers['content-type'], 'application/x-www-form-urlencoded');
      } else {
        assert.match(entry.url, /[?&]Signature=/);
      }
      const all = checkRegions(body);

      const filtered = await popClient(d).request('DescribeRegions', { RegionId: HOME_REGION }, { method });
      assert.deepEqual(JSON.parse(JSON.stringify(filtered.Regions.DdsRegion)),
        JSON.parse(JSON.stringify(all.filter((r) => r.RegionId === HOME_REGION))));
    });

    it(`pop-core ${method}: wrong secret is SignatureDoesNotMatch`, async () => {
      await assert.rejects(popClient(d, 'not-the-secret').request('DescribeRegions', {}, { method }), (e) => {
        assert.equal(e.code, 'SignatureDoesNotMatch');
        assert.match(e.data.Message, /^Specified signature is not matched with our calculation\. server string to sign is:/);
        assert.ok(e.data.Message.endsWith(`%26Version%3D2015-12-01`), e.data.Message);
        return true;
      });
    });
  }

  it('every client sees the same regions', async () => {
    const tea = await describeRegions(teaClient(d));
    const pop = await popClient(d).request('DescribeRegions', {});
    // pop-core parses with json-bigint (null-prototype objects); compare plain data.
    assert.deepEqual(tea.body.Regions, JSON.parse(JSON.stringify(pop.Regions)));
  });
});

'use strict';
// HTTPS with @alicloud/openapi-client left on its default protocol: ddsd serves
// `--tls-self-signed`, the client trusts the certificate through `ca` (its PEM text), and the
// same client without it is stopped by its own certificate check.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const OpenApi = require('@alicloud/openapi-client');
const Util = require('@alicloud/tea-util');
const { startDdsd } = require('./ddsd');

function client(d, ca) {
  const config = new OpenApi.Config({
    accessKeyId: d.keyId,
    accessKeySecret: d.keySecret,
    endpoint: d.endpoint,
    regionId: 'cn-hangzhou',
  });
  if (ca) config.ca = ca;
  return new OpenApi.default(config);
}

function describeRegions(c) {
  const params = new OpenApi.Params({
    action: 'DescribeRegions', version: '2015-12-01', protocol: 'HTTPS', pathname: '/',
    method: 'POST', authType: 'AK', style: 'RPC', reqBodyType: 'formData', bodyType: 'json',
  });
  return c.callApi(params, new OpenApi.OpenApiRequest({ query: {} }), new Util.RuntimeOptions({}));
}

describe('HTTPS (serve --tls-self-signed)', () => {
  let d;
  before(async () => { d = await startDdsd({ extraArgs: ['--tls-self-signed'] }); });
  after(async () => { if (d) await d.stop(); });

  it('answers the Tea client that trusts its certificate, over https', async () => {
    assert.equal(d.url, `https://${d.endpoint}`);
    const ca = fs.readFileSync(path.join(d.dataDir, 'tls', 'cert.pem'), 'utf8');
    const r = await describeRegions(client(d, ca));
    assert.equal(r.statusCode, 200);
    assert.ok(r.body.Regions.DdsRegion.some((x) => x.RegionId === 'cn-hangzhou'));
  });

  it('is refused by a client that does not trust the certificate', async () => {
    await assert.rejects(describeRegions(client(d)), (e) => {
      assert.match(`${e.code} ${e.message}`, /SELF_SIGNED|self[- ]signed|certificate/i);
      return true;
    });
  });
});

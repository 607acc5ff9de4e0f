import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import {
  CredentialCache,
  amzDate,
  cognitoUrlProvider,
  getCognitoCredentials,
  presignIotWebsocketUrl,
  type AwsCredentials,
} from './aws';
import { StockConnection, type MqttClientLike } from './connection';

const CREDS = {
  accessKeyId: 'AKIDEXAMPLE',
  secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  sessionToken: 'IQoJb3JpZ2luX2VjE+/token==',
};
const ENDPOINT = 'abc123-ats.iot.us-east-1.amazonaws.com';
const DATE = new Date('2026-11-23T10:00:00.000Z');

/** SigV4 query signing written out independently, following the AWS IoT WebSocket docs. */
function referenceSignature(): string {
  const amz = '20261123T100000Z';
  const scope = '20261123/us-east-1/iotdevicegateway/aws4_request';
  const qs = [
    'X-Amz-Algorithm=AWS4-HMAC-SHA256',
    `X-Amz-Credential=${encodeURIComponent(`${CREDS.accessKeyId}/${scope}`)}`,
    `X-Amz-Date=${amz}`,
    'X-Amz-SignedHeaders=host',
  ].join('&');
  const emptyHash = createHash('sha256').update('').digest('hex');
  const canonical = ['GET', '/mqtt', qs, `host:${ENDPOINT}`, '', 'host', emptyHash].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amz, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const h = (k: string | Buffer, s: string) => createHmac('sha256', k).update(s).digest();
  const kSigning = h(h(h(h(`AWS4${CREDS.secretAccessKey}`, '20261123'), 'us-east-1'), 'iotdevicegateway'), 'aws4_request');
  return createHmac('sha256', kSigning).update(toSign).digest('hex');
}

describe('presignIotWebsocketUrl', () => {
  it('formats the SigV4 date', () => {
    expect(amzDate(DATE)).toBe('20261123T100000Z');
  });

  it('matches an independent SigV4 computation (fixed date known answer)', async () => {
    const signed = new URL(await presignIotWebsocketUrl(ENDPOINT, 'us-east-1', CREDS, DATE));
    expect(signed.protocol).toBe('wss:');
    expect(signed.host).toBe(ENDPOINT);
    expect(signed.pathname).toBe('/mqtt');
    const q = signed.searchParams;
    expect(q.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(q.get('X-Amz-Credential')).toBe('AKIDEXAMPLE/20261123/us-east-1/iotdevicegateway/aws4_request');
    expect(q.get('X-Amz-Date')).toBe('20261123T100000Z');
    expect(q.get('X-Amz-SignedHeaders')).toBe('host');
    expect(q.get('X-Amz-Signature')).toBe(referenceSignature());
    expect(q.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('appends the session token after signing (not part of the signature, last parameter)', async () => {
    const url = await presignIotWebsocketUrl(ENDPOINT, 'us-east-1', CREDS, DATE);
    const keys = [...new URL(url).searchParams.keys()];
    expect(keys[keys.length - 1]).toBe('X-Amz-Security-Token');
    expect(new URL(url).searchParams.get('X-Amz-Security-Token')).toBe(CREDS.sessionToken);
    // '+', '/' and '=' in the token are percent-encoded in the URL.
    expect(url).not.toContain(CREDS.sessionToken);
    // Same signature as without a token at all: the token is not signed.
    const noToken = await presignIotWebsocketUrl(ENDPOINT, 'us-east-1', { ...CREDS, sessionToken: '' }, DATE);
    expect(new URL(noToken).searchParams.get('X-Amz-Signature')).toBe(new URL(url).searchParams.get('X-Amz-Signature'));
  });
});

function jsonResponse(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/x-amz-json-1.1' } });
}

function memoryStore() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    map: m,
  };
}

describe('getCognitoCredentials', () => {
  const EXP = 1795000000;
  const credentialsBody = {
    IdentityId: 'us-east-1:identity-1',
    Credentials: { AccessKeyId: 'ASIA1', SecretKey: 'secret', SessionToken: 'token', Expiration: EXP },
  };

  it('calls GetId then GetCredentialsForIdentity with the JSON protocol', async () => {
    const calls: { url: string; target: string; body: unknown; type: string }[] = [];
    const fetchImpl = vi.fn(async (url: RequestInfo | URL, init?: RequestInit) => {
      const headers = new Headers(init?.headers);
      const target = headers.get('X-Amz-Target') ?? '';
      calls.push({ url: String(url), target, body: JSON.parse(String(init?.body)), type: headers.get('Content-Type') ?? '' });
      if (target.endsWith('.GetId')) return jsonResponse(200, { IdentityId: 'us-east-1:identity-1' });
      return jsonResponse(200, credentialsBody);
    }) as unknown as typeof fetch;
    const store = memoryStore();
    const creds = await getCognitoCredentials('us-east-1', 'us-east-1:pool', { fetchImpl, store });
    expect(calls).toEqual([
      {
        url: 'https://cognito-identity.us-east-1.amazonaws.com/',
        target: 'AWSCognitoIdentityService.GetId',
        body: { IdentityPoolId: 'us-east-1:pool' },
        type: 'application/x-amz-json-1.1',
      },
      {
        url: 'https://cognito-identity.us-east-1.amazonaws.com/',
        target: 'AWSCognitoIdentityService.GetCredentialsForIdentity',
        body: { IdentityId: 'us-east-1:identity-1' },
        type: 'application/x-amz-json-1.1',
      },
    ]);
    expect(creds).toEqual({
      identityId: 'us-east-1:identity-1',
      accessKeyId: 'ASIA1',
      secretAccessKey: 'secret',
      sessionToken: 'token',
      expiration: new Date(EXP * 1000),
    });
    expect([...store.map.values()]).toEqual(['us-east-1:identity-1']);
  });

  it('reuses a remembered identity, and replaces one the pool no longer knows', async () => {
    const store = memoryStore();
    store.setItem('stockbridge.identity.us-east-1:pool', 'us-east-1:gone');
    const targets: string[] = [];
    const fetchImpl = (async (_url: RequestInfo | URL, init?: RequestInit) => {
      const target = new Headers(init?.headers).get('X-Amz-Target') ?? '';
      const body = JSON.parse(String(init?.body));
      targets.push(`${target.split('.')[1]}:${body.IdentityId ?? ''}`);
      if (target.endsWith('.GetId')) return jsonResponse(200, { IdentityId: 'us-east-1:identity-2' });
      if (body.IdentityId === 'us-east-1:gone') {
        return jsonResponse(400, { __type: 'ResourceNotFoundException', message: 'Identity not found' });
      }
      return jsonResponse(200, credentialsBody);
    }) as typeof fetch;
    await getCognitoCredentials('us-east-1', 'us-east-1:pool', { fetchImpl, store });
    expect(targets).toEqual([
      'GetCredentialsForIdentity:us-east-1:gone',
      'GetId:',
      'GetCredentialsForIdentity:us-east-1:identity-2',
    ]);
    expect(store.getItem('stockbridge.identity.us-east-1:pool')).toBe('us-east-1:identity-2');
  });

  it('the connection target carries the identity id as client id prefix (the guest role allows only <id> and <id>-*)', async () => {
    const fetchImpl = (async (_url: RequestInfo | URL, init?: RequestInit) => {
      const target = new Headers(init?.headers).get('X-Amz-Target') ?? '';
      if (target.endsWith('.GetId')) return jsonResponse(200, { IdentityId: 'us-east-1:identity-1' });
      return jsonResponse(200, credentialsBody);
    }) as typeof fetch;
    const provider = cognitoUrlProvider({ endpoint: ENDPOINT, region: 'us-east-1', identity_pool_id: 'us-east-1:pool' }, { fetchImpl });
    const t = await provider.url();
    expect(t.clientIdPrefix).toBe('us-east-1:identity-1-');
    expect(new URL(t.url).host).toBe(ENDPOINT);
    expect(new URL(t.url).searchParams.get('X-Amz-Security-Token')).toBe('token');

    // What the connection makes of it: `<identity id>-<16 hex>`, whatever `client_id_prefix` says.
    const ids: string[] = [];
    const conn = new StockConnection({
      connect: (_url, opts) => {
        ids.push(String(opts.clientId));
        return { on: () => undefined, subscribe: () => undefined, end: () => undefined } as MqttClientLike;
      },
      url: provider.url,
      topicFilters: [],
      clientIdPrefix: 'stockbridge-web-',
      onState: () => undefined,
      onMessage: () => undefined,
      env: { isOnline: () => true, listen: () => () => undefined },
      log: () => undefined,
    });
    conn.start();
    await vi.waitFor(() => expect(ids).toHaveLength(1));
    conn.stop();
    expect(ids[0]).toMatch(/^us-east-1:identity-1-[0-9a-f]{16}$/);
  });

  it('reports Cognito errors by type', async () => {
    const fetchImpl = (async () =>
      jsonResponse(400, { __type: 'com.amazonaws#NotAuthorizedException', message: 'Unauthenticated access is not supported' })) as unknown as typeof fetch;
    await expect(getCognitoCredentials('us-east-1', 'p', { fetchImpl })).rejects.toMatchObject({
      name: 'AwsError',
      type: 'NotAuthorizedException',
    });
  });
});

describe('CredentialCache', () => {
  it('refreshes credentials that expire within the margin, and shares one request', async () => {
    let now = 0;
    let n = 0;
    const load = vi.fn(async (): Promise<AwsCredentials> => {
      n++;
      return { accessKeyId: `k${n}`, secretAccessKey: 's', sessionToken: 't', expiration: new Date(now + 60 * 60_000) };
    });
    const cache = new CredentialCache(load, 5 * 60_000, () => now);
    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    expect(a.accessKeyId).toBe('k1');
    expect(b).toBe(a);
    now = 50 * 60_000;
    expect((await cache.get()).accessKeyId).toBe('k1');
    now = 56 * 60_000; // 4 minutes before expiry
    expect((await cache.get()).accessKeyId).toBe('k2');
    cache.invalidate();
    expect((await cache.get()).accessKeyId).toBe('k3');
    expect(load).toHaveBeenCalledTimes(3);
  });

  it('retries after a failed load', async () => {
    const load = vi
      .fn<() => Promise<AwsCredentials>>()
      .mockRejectedValueOnce(new Error('network'))
      .mockResolvedValueOnce({ accessKeyId: 'k', secretAccessKey: 's', sessionToken: 't', expiration: new Date(Date.now() + 3600_000) });
    const cache = new CredentialCache(load);
    await expect(cache.get()).rejects.toThrow('network');
    expect((await cache.get()).accessKeyId).toBe('k');
  });
});

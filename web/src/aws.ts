/**
 * AWS IoT Core over WebSocket for a browser with no secret: unauthenticated Cognito Identity
 * credentials (the JSON API, called with fetch) and a SigV4 query-signed `wss://{endpoint}/mqtt` URL.
 * Loaded only when `config.mqtt.auth` is `cognito`.
 */
import { AwsV4Signer } from 'aws4fetch';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** When the credentials stop working. */
  expiration: Date;
}

/** Credentials of a Cognito identity, with the identity id (`us-east-1:1a2b…`) they belong to. */
export interface CognitoCredentials extends AwsCredentials {
  identityId: string;
}

export class AwsError extends Error {
  constructor(
    message: string,
    readonly type: string | null,
  ) {
    super(message);
    this.name = 'AwsError';
  }
}

/** The minimal storage used to remember the identity id between visits (localStorage fits). */
export interface KeyValueStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

async function cognitoCall(
  fetchImpl: typeof fetch,
  region: string,
  target: 'GetId' | 'GetCredentialsForIdentity',
  body: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetchImpl(`https://cognito-identity.${region}.amazonaws.com/`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-amz-json-1.1',
      'X-Amz-Target': `AWSCognitoIdentityService.${target}`,
    },
    body: JSON.stringify(body),
    cache: 'no-store',
  });
  let json: Record<string, unknown> = {};
  try {
    json = (await res.json()) as Record<string, unknown>;
  } catch {
    // An error page that is not JSON: reported below by status.
  }
  if (!res.ok) {
    const type = typeof json.__type === 'string' ? json.__type.replace(/^.*#/, '') : null;
    const message = typeof json.message === 'string' ? json.message : typeof json.Message === 'string' ? json.Message : '';
    throw new AwsError(`Cognito ${target}: HTTP ${res.status} ${type ?? ''} ${message}`.trim(), type);
  }
  return json;
}

/**
 * Unauthenticated credentials from an identity pool: `GetId`, then `GetCredentialsForIdentity`.
 * The identity id is remembered in `store` (if given) so a returning visitor keeps one identity;
 * a remembered id the pool no longer knows is forgotten and a new one is obtained. The result
 * carries the identity id: the guest role only lets it connect with that id as MQTT client id.
 */
export async function getCognitoCredentials(
  region: string,
  identityPoolId: string,
  opts: { fetchImpl?: typeof fetch; store?: KeyValueStore | null } = {},
): Promise<CognitoCredentials> {
  const fetchImpl = opts.fetchImpl ?? fetch;
  const store = opts.store ?? null;
  const key = `stockbridge.identity.${identityPoolId}`;
  let remembered: string | null = null;
  try {
    remembered = store?.getItem(key) ?? null;
  } catch {
    remembered = null;
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let identityId = attempt === 0 ? remembered : null;
    if (!identityId) {
      const got = await cognitoCall(fetchImpl, region, 'GetId', { IdentityPoolId: identityPoolId });
      if (typeof got.IdentityId !== 'string') throw new AwsError('Cognito GetId: no IdentityId', null);
      identityId = got.IdentityId;
    }
    let creds: Record<string, unknown>;
    try {
      creds = await cognitoCall(fetchImpl, region, 'GetCredentialsForIdentity', { IdentityId: identityId });
    } catch (e) {
      const forgettable = e instanceof AwsError && (e.type === 'ResourceNotFoundException' || e.type === 'NotAuthorizedException');
      if (attempt === 0 && remembered && forgettable) {
        try {
          store?.removeItem(key);
        } catch {
          /* storage unavailable */
        }
        continue;
      }
      throw e;
    }
    const c = creds.Credentials as Record<string, unknown> | undefined;
    if (!c || typeof c.AccessKeyId !== 'string' || typeof c.SecretKey !== 'string' || typeof c.SessionToken !== 'string') {
      throw new AwsError('Cognito GetCredentialsForIdentity: no Credentials', null);
    }
    // The JSON protocol sends timestamps as epoch seconds.
    const exp = typeof c.Expiration === 'number' ? new Date(c.Expiration * 1000) : new Date(String(c.Expiration));
    try {
      store?.setItem(key, identityId);
    } catch {
      /* storage unavailable */
    }
    return {
      identityId: typeof creds.IdentityId === 'string' && creds.IdentityId !== '' ? creds.IdentityId : identityId,
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretKey,
      sessionToken: c.SessionToken,
      expiration: Number.isNaN(exp.getTime()) ? new Date(Date.now() + 15 * 60_000) : exp,
    };
  }
  throw new AwsError('Cognito: could not obtain credentials', null);
}

/**
 * Keeps credentials and fetches new ones when they are missing or expire within `refreshBeforeMs`.
 * Concurrent callers share one request.
 */
export class CredentialCache<C extends AwsCredentials = AwsCredentials> {
  private creds: C | null = null;
  private pending: Promise<C> | null = null;

  constructor(
    private readonly load: () => Promise<C>,
    private readonly refreshBeforeMs = 5 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<C> {
    if (this.creds && this.creds.expiration.getTime() - this.now() > this.refreshBeforeMs) return this.creds;
    if (!this.pending) {
      this.pending = this.load().then(
        (c) => {
          this.creds = c;
          this.pending = null;
          return c;
        },
        (e: unknown) => {
          this.pending = null;
          throw e;
        },
      );
    }
    return this.pending;
  }

  /** Forgets the credentials, e.g. after the broker refused them. */
  invalidate(): void {
    this.creds = null;
  }
}

/** `YYYYMMDDTHHMMSSZ` */
export function amzDate(d: Date): string {
  return d.toISOString().replace(/[:-]|\.\d{3}/g, '');
}

/**
 * The presigned `wss://{endpoint}/mqtt` URL: SigV4 query signing for service `iotdevicegateway`,
 * signed header `host`, the hash of the empty payload, and `X-Amz-Security-Token` appended after
 * signing (as IoT Core requires).
 */
export async function presignIotWebsocketUrl(
  endpoint: string,
  region: string,
  creds: Pick<AwsCredentials, 'accessKeyId' | 'secretAccessKey' | 'sessionToken'>,
  date: Date = new Date(),
): Promise<string> {
  const signer = new AwsV4Signer({
    method: 'GET',
    url: `wss://${endpoint}/mqtt`,
    accessKeyId: creds.accessKeyId,
    secretAccessKey: creds.secretAccessKey,
    sessionToken: creds.sessionToken,
    service: 'iotdevicegateway',
    region,
    signQuery: true,
    appendSessionToken: true,
    datetime: amzDate(date),
  });
  const signed = await signer.sign();
  return signed.url.toString();
}

/**
 * A connection target provider: fresh credentials when needed, a new signature every time, and
 * the client id prefix `<identity id>-`. The guest role (template.yaml, `StorefrontGuestRole`)
 * allows `iot:Connect` only as `client/${cognito-identity.amazonaws.com:sub}` or
 * `client/${cognito-identity.amazonaws.com:sub}-*`, so the client id is
 * `<identity id>-<16 random hex digits>` (one per connection, so tabs sharing the remembered
 * identity do not disconnect each other).
 */
export function cognitoUrlProvider(
  cfg: { endpoint: string; region: string; identity_pool_id: string },
  opts: { fetchImpl?: typeof fetch; store?: KeyValueStore | null } = {},
): { url: () => Promise<{ url: string; clientIdPrefix: string }>; invalidate: () => void } {
  const cache = new CredentialCache(() => getCognitoCredentials(cfg.region, cfg.identity_pool_id, opts));
  return {
    url: async () => {
      const creds = await cache.get();
      return {
        url: await presignIotWebsocketUrl(cfg.endpoint, cfg.region, creds),
        clientIdPrefix: `${creds.identityId}-`,
      };
    },
    invalidate: () => cache.invalidate(),
  };
}

// The gateway's own signing key, for identity assertions to upstreams: loaded from a PEM file (EC P-256
// → ES256, RSA ≥ 2048 bits → RS256) or generated at start (ES256), and published as a JWKS at
// /.well-known/jwks.json so that an upstream can check a call came through the gateway.

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, type JWK } from 'jose';

export type SigningAlg = 'ES256' | 'RS256';

export class SigningKeyError extends Error {}

export class GatewaySigningKey {
  readonly alg: SigningAlg;
  /** RFC 7638 thumbprint of the public key: the same on every instance sharing the key file. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly #jwks: { keys: JWK[] };

  private constructor(privateKey: KeyObject, alg: SigningAlg, kid: string, publicJwk: JWK) {
    this.privateKey = privateKey;
    this.alg = alg;
    this.kid = kid;
    this.#jwks = { keys: [{ ...publicJwk, kid, alg, use: 'sig' }] };
  }

  /** The public key set (never the private part). */
  jwks(): { keys: JWK[] } {
    return this.#jwks;
  }

  static async fromKeyObject(privateKey: KeyObject): Promise<GatewaySigningKey> {
    const alg = algorithmOf(privateKey);
    const publicJwk = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256');
    return new GatewaySigningKey(privateKey, alg, kid, publicJwk);
  }

  /** A fresh EC P-256 key (ES256): assertions then verify only against this instance's JWKS. */
  static generate(): Promise<GatewaySigningKey> {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return GatewaySigningKey.fromKeyObject(privateKey);
  }

  /** A PEM private key (PKCS#8, SEC1 or PKCS#1). Throws SigningKeyError saying what is wrong. */
  static async fromPemFile(path: string): Promise<GatewaySigningKey> {
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (err) {
      throw new SigningKeyError(`cannot read ${path}: ${(err as Error).message}`);
    }
    let key: KeyObject;
    try {
      key = createPrivateKey(pem);
    } catch {
      throw new SigningKeyError(`${path} is not a PEM private key (EC P-256 or RSA)`);
    }
    return GatewaySigningKey.fromKeyObject(key);
  }
}

function algorithmOf(key: KeyObject): SigningAlg {
  const d = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa') {
    if ((d?.modulusLength ?? 0) < 2048)
      throw new SigningKeyError(
        `an RSA signing key needs at least 2048 bits (this one has ${d?.modulusLength})`,
      );
    return 'RS256';
  }
  const what = key.asymmetricKeyType === 'ec' ? `EC ${d?.namedCurve}` : String(key.asymmetricKeyType);
  throw new SigningKeyError(`the signing key is ${what}; use EC P-256 (ES256) or RSA (RS256)`);
}

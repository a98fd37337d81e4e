/**
 * The one entitlement check. Every way in (subscribe on each transport, publish, history, the
 * server API, MQTT) asks this function, through resume/ and publish/, so that no route can forget.
 */
import { PushError } from '../errors.js';
import { granted, type Action } from './caps.js';
import { isUnrestricted, type Identity } from './identity.js';

const VERBS: Record<Action, string> = { sub: 'subscribe to', pub: 'publish to', hst: 'read the history of' };

/** Throws `401 unauthorized` (no credentials, and anonymous may not) or `403 forbidden` (a valid token that does not grant it). */
export function authorize(identity: Identity, action: Action, target: string): void {
  if (isAllowed(identity, action, target)) return;
  const what = `${VERBS[action]} ${JSON.stringify(target.slice(0, 64))}`;
  if (identity.kind === 'anonymous') throw new PushError('unauthorized', `a token is needed to ${what}`, { channel: target });
  throw new PushError('forbidden', `the token does not allow you to ${what}`, { channel: target });
}

/** Like authorize, as a yes/no, for re-checking live subscriptions after a token refresh. */
export function isAllowed(identity: Identity, action: Action, target: string): boolean {
  if (isUnrestricted(identity) || granted(identity.grants, action, target)) return true;
  // A token that subscribes its holder to a channel (its `subs`) grants that subscription too.
  return action === 'sub' && identity.subs.includes(target);
}

/** edgepush client: `import { EdgePush } from './edgepush.js'`. See docs/client.md. */
export { EdgePush, type EdgePushEvents } from './edgepush.js';
export type { EdgePushOptions } from './options.js';
export type { GetToken } from './token-source.js';
export type { PublishOptions } from './publish.js';
export { Subscription, type MessageHandler, type SubscribeOptions } from './subscription.js';
export type { StorageLike, WebSocketConstructor, WebSocketLike } from './environment.js';
export {
  EdgePushError,
  type ConnectionState,
  type DeltaFormat,
  type Message,
  type ResetNotice,
  type StateChange,
  type TransportName,
} from './types.js';

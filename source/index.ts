export {multidb} from './multidb.js';
export type {MultiDb, MultiDbEvents, MultiDbHook, ReplicaHandle, ReplicaInfo, ReplicaQueryOptions, ReplicaStatus} from './multidb.js';
export {usePrimaryDb, pin, unpin, isPinned, withConsistency} from './context.js';
export {pinning, dbWrite} from './koa.js';
export type {MultiDbOptions, PinningOptions} from './options.js';
export type {RouteReason, RouteStats} from './stats.js';
export type {FailureKind} from './failure.js';
export {MultiDbError, NoReplicaAvailableError, ReplicaTimeoutError} from './errors.js';
export type {MultiDbErrorCode} from './errors.js';

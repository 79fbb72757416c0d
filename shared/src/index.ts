export * from './result.js';
export * from './errors.js';
export * from './version.js';
export * from './backoff.js';
export * from './facts.js';
export * from './messages.js';
export * from './sync.js';
export * from './hash.js';

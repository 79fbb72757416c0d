export { loadConfig, ConfigFileError, sourceName, type SourceConfig, type PostgresSourceConfig, type HttpSourceConfig } from './config.js';
export { PostgresSource, SlotFault, MappingError } from './postgres-source.js';
export { HttpSource } from './http-source.js';
export { SinkRefused } from './sink.js';
export { runSources, resyncSource, type RunOptions } from './runner.js';
export { formatPosition, parsePosition, type PgPosition } from './pg-position.js';

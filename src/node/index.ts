/** Node-only parts of storvm: the CLI and backends that use the host's files. */
export { main as cli, UsageError } from './cli.js';

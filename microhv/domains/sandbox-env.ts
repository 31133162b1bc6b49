// The one thing a domain process needs from the sandbox module, on its own: importing sandbox.ts
// would load node:child_process (and with it net and streams) into every domain at start,
// which costs a restarting domain hundreds of milliseconds on a slow host.

/** The environment variable that tells a domain it was started in the sandbox, and in which namespaces. */
export const SANDBOX_ENV = 'MICROHV_SANDBOX';
